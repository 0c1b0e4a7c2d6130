"""The catalogue: the one table every ingestion source produces.

One row per photo file on disk. Identity-level fields (species, kind, date, text, url) repeat on every row of
the same ``identity_id``; curation groups them back into the identity manifest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from petid.errors import UserError

SPECIES = ("cat", "dog", "other")
KINDS = ("lost", "found")

CATALOGUE_SCHEMA = pa.schema(
    [
        pa.field("identity_id", pa.string(), nullable=False),  # "<source>:<local id>", globally unique
        pa.field("source", pa.string(), nullable=False),  # "pet911", "telegram", or a dataset name
        pa.field("species", pa.string()),  # "cat" | "dog" | "other" | null
        pa.field("kind", pa.string()),  # "lost" | "found" | null
        pa.field("date", pa.string()),  # ISO date of the listing/post, or null
        pa.field("text", pa.string()),  # listing description / post caption
        pa.field("url", pa.string()),  # listing or post URL
        pa.field("path", pa.string(), nullable=False),  # absolute path of the raw photo file
        pa.field("photo_url", pa.string()),  # where the photo was downloaded from
        pa.field("position", pa.int32(), nullable=False),  # order of the photo within its identity
    ]
)


class CatalogueError(UserError, ValueError):
    """A catalogue row breaks the schema (missing column, bad species or kind)."""


def catalogue_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Build a catalogue table from dict rows, enforcing the schema and the value vocabularies."""
    rows = list(rows)
    for i, row in enumerate(rows):
        if row.get("species") not in (None, *SPECIES):
            raise CatalogueError(f"row {i} ({row.get('identity_id')}): species {row.get('species')!r} not in {SPECIES}")
        if row.get("kind") not in (None, *KINDS):
            raise CatalogueError(f"row {i} ({row.get('identity_id')}): kind {row.get('kind')!r} not in {KINDS}")
    columns = {name: [row.get(name) for row in rows] for name in CATALOGUE_SCHEMA.names}
    try:
        return pa.Table.from_pydict(columns, schema=CATALOGUE_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise CatalogueError(f"catalogue rows do not fit the schema: {exc}") from exc


def empty_catalogue() -> pa.Table:
    return CATALOGUE_SCHEMA.empty_table()
