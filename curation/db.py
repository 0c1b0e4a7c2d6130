"""A DuckDB database of views over the Parquet tables, for ``petid sql`` and notebooks.

Views only: the Parquet files stay the single source of truth, and a refresh is cheap (no data is copied).
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from petid.errors import UserError

# Convenience views, created when the tables they read exist.
CONVENIENCE_VIEWS: dict[str, tuple[tuple[str, ...], str]] = {
    "split_summary": (
        ("image_manifest",),
        "SELECT source, species, split, count(DISTINCT identity_id) AS identities, count(*) AS images "
        "FROM image_manifest GROUP BY ALL ORDER BY ALL",
    ),
    "crop_summary": (
        ("image_manifest",),
        "SELECT source, crop_status, count(*) AS images FROM image_manifest GROUP BY ALL ORDER BY ALL",
    ),
}


class DatabaseError(UserError, RuntimeError):
    """No tables to query yet, or a query failed; the message says which."""


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def refresh_views(duckdb_path: str | os.PathLike[str], tables_dir: str | os.PathLike[str]) -> list[str]:
    """``CREATE OR REPLACE VIEW <stem> AS SELECT * FROM read_parquet(<file>)`` for every ``*.parquet`` in
    ``tables_dir`` (plus the convenience views whose inputs exist); views over files that are gone are dropped.
    Returns the names of the views now defined, sorted."""
    import duckdb

    tables = Path(tables_dir).expanduser().resolve()
    files = sorted(p for p in tables.glob("*.parquet") if p.is_file() and not p.name.startswith("."))
    Path(duckdb_path).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(duckdb_path))
    try:
        names = [p.stem for p in files]
        for path in files:
            source = f"read_parquet({_quote_str(str(path))})"
            con.execute(f"CREATE OR REPLACE VIEW {_quote_ident(path.stem)} AS SELECT * FROM {source}")
        for name, (needs, sql) in CONVENIENCE_VIEWS.items():
            if name not in names and all(n in names for n in needs):
                try:
                    con.execute(f"CREATE OR REPLACE VIEW {_quote_ident(name)} AS {sql}")
                    names.append(name)
                except duckdb.Error:  # the table lacks a column it needs: leave the convenience view out
                    con.execute(f"DROP VIEW IF EXISTS {_quote_ident(name)}")
        existing = con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall()
        stale = [
            view
            for view, sql in existing
            if view not in names and (str(tables) in (sql or "") or view in CONVENIENCE_VIEWS)
        ]
        for view in stale:
            con.execute(f"DROP VIEW IF EXISTS {_quote_ident(view)}")
    finally:
        con.close()
    return sorted(names)


def query(duckdb_path: str | os.PathLike[str], sql: str) -> pa.Table:
    """Run ``sql`` against the database (read-only) and return the result as an Arrow table."""
    import duckdb

    if not Path(duckdb_path).exists():
        raise DatabaseError(f"no database at {duckdb_path}: refresh the views first")
    con = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        relation = con.sql(sql)
        return relation.to_arrow_table() if relation is not None else pa.table({})
    except duckdb.Error as exc:
        raise DatabaseError(f"query failed: {exc}") from exc
    finally:
        con.close()
