"""The one table renderer: rows of cells as Markdown (Dagster metadata, reports, the CLI) or HTML (reports)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any


def cell(value: Any, float_format: str = ".4g", max_len: int | None = None, none: str = "") -> str:
    """A value as one table cell: floats by ``float_format``, None as ``none``, pipes escaped, newlines flattened,
    cut to ``max_len`` characters."""
    if isinstance(value, float):
        return format(value, float_format)
    text = none if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if max_len is None or len(text) <= max_len else text[: max_len - 3] + "..."


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: Sequence[str] | None = None,
                   **cell_options: Any) -> str:
    """A Markdown table; ``align`` per column: ``"l"`` (default) or ``"r"``. Cells go through :func:`cell`."""
    rules = ["---:" if a == "r" else "---" for a in (align or ["l"] * len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rules) + "|"]
    lines += ["| " + " | ".join(cell(v, **cell_options) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def html_table(header: Sequence[str], rows: Iterable[Sequence[Any]], **cell_options: Any) -> str:
    """The same table as HTML (every cell escaped)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell(v, **cell_options))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
