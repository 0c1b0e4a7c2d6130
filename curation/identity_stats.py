"""Photos-per-identity statistics per source and in total (the seed paper's Table 2)."""

from __future__ import annotations

import pyarrow as pa

from petid.stats import photos_per_identity

STATS_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),  # a source name, or "total"
        pa.field("identities", pa.int64(), nullable=False),
        pa.field("photos", pa.int64(), nullable=False),
        pa.field("min", pa.int64(), nullable=False),
        pa.field("max", pa.int64(), nullable=False),
        pa.field("mean", pa.float64(), nullable=False),
        pa.field("median", pa.float64(), nullable=False),
        pa.field("std", pa.float64(), nullable=False),
    ]
)
TOTAL = "total"


def identity_stats(image_manifest: pa.Table, min_photos: int | None = None) -> pa.Table:
    """One row per source (sorted) plus a ``total`` row: identities, photos and min/max/mean/median/std photos
    per identity (population std, via ``petid.stats.photos_per_identity``). With ``min_photos``, identities with
    fewer photos are left out first."""
    ids = image_manifest.column("identity_id").to_pylist()
    sources = image_manifest.column("source").to_pylist()
    if min_photos is not None:
        counts: dict[str, int] = {}
        for identity_id in ids:
            counts[identity_id] = counts.get(identity_id, 0) + 1
        keep = [counts[i] >= min_photos for i in ids]
        ids = [i for i, k in zip(ids, keep, strict=True) if k]
        sources = [s for s, k in zip(sources, keep, strict=True) if k]
    by_source: dict[str, list[str]] = {}
    for identity_id, source in zip(ids, sources, strict=True):
        by_source.setdefault(source, []).append(identity_id)
    rows = [_row(source, by_source[source]) for source in sorted(by_source)]
    rows.append(_row(TOTAL, ids))
    return pa.Table.from_pylist(rows, schema=STATS_SCHEMA)


def _row(source: str, identity_ids: list[str]) -> dict[str, object]:
    s = photos_per_identity(identity_ids)
    return {
        "source": source,
        "identities": s["n_identities"],
        "photos": s["n_images"],
        **{key: s[key] for key in ("min", "max", "mean", "median", "std")},
    }


def stats_markdown(table: pa.Table) -> str:
    """The statistics as a Markdown table (Table-2 style; the total row in bold)."""
    from petid.tables import markdown_table

    header = ["Source", "Identities", "Photos", "Min", "Max", "Mean", "Median", "Std"]
    rows = []
    for row in table.to_pylist():
        cells = [str(row["source"]), f"{row['identities']:,}", f"{row['photos']:,}", str(row["min"]),
                 str(row["max"]), f"{row['mean']:.2f}", f"{row['median']:g}", f"{row['std']:.2f}"]
        rows.append([f"**{c}**" for c in cells] if row["source"] == TOTAL else cells)
    return markdown_table(header, rows, align=["l"] + ["r"] * (len(header) - 1))


def split_counts(image_manifest: pa.Table) -> pa.Table:
    """Identities and images per split: ``split``, ``identities``, ``images`` (int64), sorted by split."""
    schema = pa.schema([("split", pa.string()), ("identities", pa.int64()), ("images", pa.int64())])
    if image_manifest.num_rows == 0:
        return schema.empty_table()
    grouped = image_manifest.group_by("split").aggregate([("identity_id", "count_distinct"), ("image_id", "count")])
    names = {"identity_id_count_distinct": "identities", "image_id_count": "images"}
    grouped = grouped.rename_columns([names.get(n, n) for n in grouped.column_names])
    return grouped.select(schema.names).cast(schema).sort_by("split")
