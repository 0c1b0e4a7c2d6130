"""Small helpers that turn library results into Dagster metadata (Markdown tables, counts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
from dagster import MetadataValue


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, limit: int = 10) -> str:
    if not rows:
        return "_(no rows)_"
    columns = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows[:limit]:
        cells = [_cell(row.get(col)) for col in columns]
        lines.append("| " + " | ".join(cells) + " |")
    if len(rows) > limit:
        lines.append(f"\n_{len(rows) - limit} more rows_")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def preview(table: pa.Table, columns: Sequence[str], limit: int = 8) -> MetadataValue:
    present = [c for c in columns if c in table.column_names]
    return MetadataValue.md(markdown_table(table.select(present).slice(0, limit).to_pylist(), present, limit))


def counts(stats: Mapping[str, Any]) -> dict[str, Any]:
    """Numeric stats as individual metadata entries (plottable in the UI)."""
    return {key: value for key, value in stats.items() if isinstance(value, (int, float)) and not isinstance(value, bool)}
