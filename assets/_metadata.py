"""Small helpers that turn library results into Dagster metadata: typed tables, rounded metrics, table schemas and
the content digests behind the source-side data versions."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from dagster import (
    DataVersion,
    MetadataValue,
    TableColumn,
    TableColumnConstraints,
    TableMetadataValue,
    TableRecord,
    TableSchema,
)

from petid import tables
from petid.paths import sha256_file

DIGITS = 4  # significant digits of every float shown in metadata
MAX_CELL = 60  # characters of a text cell in a table preview


def metric(value: Any, digits: int = DIGITS) -> Any:
    """A float rounded to ``digits`` significant digits (ints, bools, text and non-finite floats unchanged)."""
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.{digits}g}")
    return value


def counts(stats: Mapping[str, Any]) -> dict[str, Any]:
    """Numeric stats as individual metadata entries (plottable in the UI), floats rounded."""
    return {key: metric(value) for key, value in stats.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, limit: int = 10) -> str:
    """Dict rows as a Markdown table (``petid.tables``), the first ``limit`` rows, long cells cut at 60 chars."""
    if not rows:
        return "_(no rows)_"
    columns = list(columns or rows[0].keys())
    text = tables.markdown_table(columns, ([row.get(c) for c in columns] for row in rows[:limit]), max_len=MAX_CELL)
    return text + (f"\n\n_{len(rows) - limit} more rows_" if len(rows) > limit else "")


_ARROW_TYPES = ((pa.types.is_boolean, "bool"), (pa.types.is_integer, "int"), (pa.types.is_floating, "float"),
                (pa.types.is_string, "string"), (pa.types.is_large_string, "string"), (pa.types.is_date, "date"),
                (pa.types.is_timestamp, "datetime"))


def column_type(arrow_type: pa.DataType) -> str:
    """The type name shown in the UI's Columns section (``int``, ``string``, ``list<float>``, ...)."""
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return f"list<{column_type(arrow_type.value_type)}>"
    return next((name for test, name in _ARROW_TYPES if test(arrow_type)), str(arrow_type))


def table_schema(schema: pa.Schema) -> TableSchema:
    """A Dagster ``TableSchema`` from an Arrow schema: names, types, nullability, field descriptions if any."""
    def description(field: pa.Field) -> str | None:
        value = (field.metadata or {}).get(b"description")
        return value.decode() if value else None

    return TableSchema(columns=[
        TableColumn(field.name, column_type(field.type), description=description(field),
                    constraints=TableColumnConstraints(nullable=field.nullable))
        for field in schema
    ])


def table_metadata(table: pa.Table) -> dict[str, Any]:
    """The standard table metadata every table output carries (``dagster/row_count``, ``dagster/column_schema``)."""
    return {"dagster/row_count": MetadataValue.int(table.num_rows),
            "dagster/column_schema": MetadataValue.table_schema(table_schema(table.schema))}


def _cell(value: Any) -> str | int | float | bool | None:
    """A value a ``TableRecord`` can hold: scalars as they are (floats rounded), the rest as short text."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return metric(value) if math.isfinite(value) else str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        text = value.isoformat()
    elif isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def _infer_type(values: Sequence[Any]) -> str:
    kinds = {type(v) for v in values if v is not None}
    for kind, name in ((bool, "bool"), (int, "int"), (float, "float")):
        if kinds == {kind}:
            return name
    return "float" if kinds == {int, float} else "string"


def records_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                  limit: int = 20) -> TableMetadataValue:
    """Dict rows as a typed table (the first ``limit``); columns: ``columns``, else every key in order of appearance
    (name them when there may be no rows)."""
    columns = list(columns or dict.fromkeys(key for row in rows for key in row))
    cells = [{c: _cell(row.get(c)) for c in columns} for row in rows[:limit]]
    schema = TableSchema(columns=[TableColumn(c, _infer_type([r[c] for r in cells])) for c in columns])
    return MetadataValue.table([TableRecord(r) for r in cells], schema)


def preview(table: pa.Table, columns: Sequence[str], limit: int = 8) -> TableMetadataValue:
    """The first ``limit`` rows of ``columns`` (those present) as a typed table, types from the Arrow schema."""
    part = table.select([c for c in columns if c in table.column_names]).slice(0, limit)
    schema = TableSchema(columns=[TableColumn(f.name, column_type(f.type)) for f in part.schema])
    return MetadataValue.table([TableRecord({k: _cell(v) for k, v in row.items()}) for row in part.to_pylist()],
                               schema)


_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


def file_digest(path: str | None) -> str | None:
    """The sha256 of a file's bytes: the name itself for content-addressed files (``ab/<sha256>.<ext>``)."""
    if not path:
        return None
    stem = Path(path).name.split(".")[0]
    if _HEX_DIGEST.fullmatch(stem):
        return stem
    try:
        return sha256_file(path)
    except OSError:
        return "missing"


def content_digest(table: pa.Table, ignore: Sequence[str] = (), files: Sequence[str] = ()) -> str:
    """A stable digest of a table's content: independent of row order and of the process (sha256 over the rows as
    canonical JSON, sorted), without the ``ignore`` columns; ``files`` columns hold paths and count by the bytes of
    the file they name, so the same photos under another storage root digest the same."""
    columns = sorted(c for c in table.column_names if c not in ignore)
    rows = table.select(columns).to_pylist()
    for row in rows:
        for column in files:
            if column in row:
                row[column] = file_digest(row[column])
    lines = sorted(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str) for row in rows)
    digest = hashlib.sha256(json.dumps(columns).encode())
    for line in lines:
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()[:24]


def data_version(table: pa.Table, ignore: Sequence[str] = (), files: Sequence[str] = ()) -> DataVersion:
    """``DataVersion`` of :func:`content_digest`: unchanged content keeps downstream assets fresh."""
    return DataVersion(content_digest(table, ignore=ignore, files=files))
