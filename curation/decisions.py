"""Human decisions on lost ↔ found candidate pairs, and what they mean downstream.

Decisions live in one durable SQLite log under the storage root (``Layout.decisions``): every decision ever
recorded is kept (who, when, what), and the latest one per pair counts. A ``same`` pair links its two listings into
one identity for training and evaluation (the curated manifest rewrites ``identity_id`` and keeps the original in
``merged_from``, as the dedup merge policy does); a ``different`` pair is a hard negative for evaluation; ``unsure``
records that a person looked. Nothing is ever deleted, so reruns cannot lose a decision.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow as pa

from petid.errors import UserError

DECISIONS = ("same", "different", "unsure")
DECISIONS_SCHEMA = pa.schema([
    ("pair_id", pa.string()), ("listing_a", pa.string()), ("listing_b", pa.string()), ("decision", pa.string()),
    ("reviewer", pa.string()), ("decided_at", pa.timestamp("us", tz="UTC")), ("note", pa.string()),
])
_CREATE = """CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, pair_id TEXT NOT NULL, listing_a TEXT NOT NULL, listing_b TEXT NOT NULL,
    decision TEXT NOT NULL, reviewer TEXT NOT NULL, decided_at TEXT NOT NULL, note TEXT NOT NULL DEFAULT '')"""


class DecisionError(UserError, ValueError):
    """A decision that cannot be recorded (unknown verdict, a listing paired with itself, no reviewer)."""


def pair_id(listing_a: str, listing_b: str) -> str:
    """A short stable id for the unordered pair (the same whichever side was the query)."""
    first, second = sorted((str(listing_a), str(listing_b)))
    return hashlib.sha1(f"{first}\x1f{second}".encode()).hexdigest()[:12]


class DecisionLog:
    """The append-only decision log (SQLite, safe for several writers)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=30)
        connection.execute(_CREATE)
        return connection

    def record(self, listing_a: str, listing_b: str, decision: str, reviewer: str, note: str = "",
               when: dt.datetime | None = None) -> str:
        """Append one decision; returns the pair id."""
        if decision not in DECISIONS:
            raise DecisionError(f"decision {decision!r}: use one of {', '.join(DECISIONS)}")
        if str(listing_a) == str(listing_b):
            raise DecisionError(f"listing {listing_a} cannot be paired with itself")
        if not reviewer.strip():
            raise DecisionError("a decision needs a reviewer (--reviewer NAME)")
        first, second = sorted((str(listing_a), str(listing_b)))
        stamp = (when or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).isoformat()
        pid = pair_id(first, second)
        with self._connect() as connection:
            connection.execute("INSERT INTO decisions (pair_id, listing_a, listing_b, decision, reviewer, decided_at, "
                               "note) VALUES (?, ?, ?, ?, ?, ?, ?)", (pid, first, second, decision, reviewer.strip(),
                                                                      stamp, note))
        connection.close()
        return pid

    def history(self) -> pa.Table:
        """Every decision ever recorded, oldest first."""
        return self._table("SELECT pair_id, listing_a, listing_b, decision, reviewer, decided_at, note "
                           "FROM decisions ORDER BY seq")

    def latest(self) -> pa.Table:
        """The decision that counts for each pair: the most recent one."""
        return self._table("SELECT pair_id, listing_a, listing_b, decision, reviewer, decided_at, note FROM decisions "
                           "WHERE seq IN (SELECT MAX(seq) FROM decisions GROUP BY pair_id) ORDER BY pair_id")

    def _table(self, query: str) -> pa.Table:
        if not self.path.exists():
            return DECISIONS_SCHEMA.empty_table()
        connection = self._connect()
        try:
            rows = connection.execute(query).fetchall()
        finally:
            connection.close()
        columns = list(zip(*rows)) if rows else [[] for _ in DECISIONS_SCHEMA]
        arrays = [pa.array(col, type=f.type) if f.name != "decided_at" else
                  pa.array([dt.datetime.fromisoformat(v) for v in col], type=f.type)
                  for col, f in zip(columns, DECISIONS_SCHEMA)]
        return pa.Table.from_arrays(arrays, schema=DECISIONS_SCHEMA)


def _pairs(decisions: pa.Table, verdict: str) -> list[tuple[str, str]]:
    rows = decisions.select(["listing_a", "listing_b", "decision"]).to_pylist()
    return [(r["listing_a"], r["listing_b"]) for r in rows if r["decision"] == verdict]


def connected_components(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``id → canonical id`` for every id in ``pairs`` (union-find; the smallest id names its component and maps
    to itself). Ids in no pair are absent."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in list(parent)}


def identity_merges(decisions: pa.Table) -> dict[str, str]:
    """``identity → canonical identity`` for every listing in a ``same`` pair (``connected_components``).
    Listings in no ``same`` pair are absent."""
    return connected_components(_pairs(decisions, "same"))


def hard_negatives(decisions: pa.Table) -> list[tuple[str, str]]:
    """Pairs a person said are different animals."""
    return _pairs(decisions, "different")


def apply_identity_merges(table: pa.Table, merges: Mapping[str, str]) -> pa.Table:
    """``table`` with ``identity_id`` rewritten by ``merges`` and the original kept in ``merged_from`` (an existing
    ``merged_from`` from the dedup merge policy is kept when set)."""
    original = table.column("identity_id").to_pylist()
    rewritten = [merges.get(i, i) for i in original]
    previous: Iterable[str | None] = (table.column("merged_from").to_pylist() if "merged_from" in table.column_names
                                      else [None] * table.num_rows)
    merged_from = [p if p is not None else (o if r != o else None) for o, r, p in zip(original, rewritten, previous)]
    out = table.set_column(table.column_names.index("identity_id"), table.schema.field("identity_id"),
                           pa.array(rewritten, table.schema.field("identity_id").type))
    if "merged_from" in out.column_names:
        return out.set_column(out.column_names.index("merged_from"), "merged_from", pa.array(merged_from, pa.string()))
    return out.append_column("merged_from", pa.array(merged_from, pa.string()))
