"""Small helpers that turn library results into Dagster metadata (Markdown tables, counts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
from dagster import MetadataValue

from petid import tables


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, limit: int = 10) -> str:
    """Dict rows as a Markdown table (``petid.tables``), the first ``limit`` rows, long cells cut at 60 chars."""
    if not rows:
        return "_(no rows)_"
    columns = list(columns or rows[0].keys())
    text = tables.markdown_table(columns, ([row.get(c) for c in columns] for row in rows[:limit]), max_len=60)
    return text + (f"\n\n_{len(rows) - limit} more rows_" if len(rows) > limit else "")


def preview(table: pa.Table, columns: Sequence[str], limit: int = 8) -> MetadataValue:
    present = [c for c in columns if c in table.column_names]
    return MetadataValue.md(markdown_table(table.select(present).slice(0, limit).to_pylist(), present, limit))


def counts(stats: Mapping[str, Any]) -> dict[str, Any]:
    """Numeric stats as individual metadata entries (plottable in the UI)."""
    return {key: value for key, value in stats.items() if isinstance(value, (int, float)) and not isinstance(value, bool)}
