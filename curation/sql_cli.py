"""``petid sql "SELECT …"``: query the Parquet tables through the DuckDB views in ``$PETID_HOME/petid.duckdb``."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any


def add_commands(sub: Any) -> None:
    parser = sub.add_parser(
        "sql",
        help="run a SQL query over the pipeline's tables (DuckDB views over tables/*.parquet)",
        description="Refreshes one DuckDB view per tables/*.parquet under $PETID_HOME, then runs the query. "
        "Views: image_manifest, identity_manifest, identity_stats, ... plus split_summary and crop_summary.",
    )
    parser.add_argument("query", help='SQL, e.g. "SELECT split, count(*) FROM image_manifest GROUP BY split"')
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print a JSON list of row objects")
    fmt.add_argument("--csv", action="store_true", help="print CSV with a header row")
    parser.set_defaults(func=run_sql)


def run_sql(args: argparse.Namespace) -> int:
    from curation.db import DatabaseError, query, refresh_views
    from petid.settings import Layout, petid_home

    layout = Layout(petid_home())
    if not layout.tables.is_dir() or not any(layout.tables.glob("*.parquet")):
        print(
            f"petid sql: no tables yet under {layout.tables} (set PETID_HOME, or materialize the pipeline first, "
            "e.g. `petid demo`)",
            file=sys.stderr,
        )
        return 2
    try:
        refresh_views(layout.duckdb_path, layout.tables)
        table = query(layout.duckdb_path, args.query)
    except DatabaseError as exc:
        print(f"petid sql: {exc}", file=sys.stderr)
        return 1
    rows = table.to_pylist()
    if args.json:
        print(json.dumps(rows, default=str, ensure_ascii=False))
    elif args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(table.column_names)
        writer.writerows([row[c] for c in table.column_names] for row in rows)
    else:
        print(_text_table(table.column_names, rows))
    return 0


def _text_table(columns: list[str], rows: list[dict[str, Any]], limit: int = 200) -> str:
    cells = [[("NULL" if r[c] is None else str(r[c]))[:60] for c in columns] for r in rows[:limit]]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    lines.append(f"({len(rows)} rows{', first ' + str(limit) + ' shown' if len(rows) > limit else ''})")
    return "\n".join(lines)
