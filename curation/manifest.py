"""Parquet manifests with enforced schemas: ``image_manifest`` (one row per curated image) and
``identity_manifest`` (one row per animal)."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from curation.crops import CROP_STATUSES, CROPS_SCHEMA
from curation.splits import DEFAULT_RATIOS, SPLIT_VALUES, assign_splits
from petid.errors import UserError
from petid.records import KINDS, SPECIES

IMAGE_MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("identity_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("species", pa.string()),  # the listing's: cat | dog | other | null
        pa.field("kind", pa.string()),  # lost | found | null
        pa.field("date", pa.string()),
        pa.field("text", pa.string()),
        pa.field("url", pa.string()),
        pa.field("path", pa.string(), nullable=False),  # curated JPEG
        pa.field("src_path", pa.string()),  # the raw file it came from
        pa.field("photo_url", pa.string()),
        pa.field("position", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("src_format", pa.string()),
        pa.field("sha256", pa.string()),  # of the source bytes
        pa.field("phash", pa.uint64()),
        pa.field("dhash", pa.uint64()),
        pa.field("bbox", pa.list_(pa.float32())),  # detector box x1, y1, x2, y2 in pixels of `path`
        pa.field("crop_path", pa.string()),  # null: use `path` (no crop)
        pa.field("crop_status", pa.string(), nullable=False),  # curation.crops.CROP_STATUSES
        pa.field("det_species", pa.string()),
        pa.field("det_conf", pa.float32()),
        pa.field("split", pa.string(), nullable=False),  # train | val | test | excluded
        pa.field("merged_from", pa.string()),  # the listing's own identity when a merge rewrote identity_id
    ]
)

IDENTITY_MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("identity_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("species", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("date", pa.string()),
        pa.field("n_images", pa.int32(), nullable=False),
        pa.field("n_cropped", pa.int32(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("url", pa.string()),
        pa.field("split", pa.string(), nullable=False),
    ]
)

# Allowed values per column, checked by validate_manifest (null is allowed where the field is nullable).
VOCABULARIES: dict[str, tuple[str, ...]] = {
    "species": SPECIES,
    "kind": KINDS,
    "crop_status": CROP_STATUSES,
    "split": SPLIT_VALUES,
}

REQUIRED_IMAGE_COLUMNS = ("image_id", "identity_id", "source", "path")
_MAX_LISTED = 10


class ManifestSchemaError(UserError, ValueError):
    """A manifest breaks its schema; the message names the columns and (first) rows at fault."""


def validate_manifest(table: pa.Table, schema: pa.Schema) -> None:
    """Raise ``ManifestSchemaError`` unless ``table`` has exactly ``schema``'s columns and types, no nulls in
    non-nullable columns, and only allowed values in vocabulary columns (species, kind, crop_status, split)."""
    problems: list[str] = []
    names = set(table.column_names)
    missing = [f.name for f in schema if f.name not in names]
    extra = [n for n in table.column_names if n not in schema.names]
    if missing:
        problems.append(f"missing column(s) {missing}")
    if extra:
        problems.append(f"unexpected column(s) {extra}")
    for field in schema:
        if field.name not in names:
            continue
        column = table.column(field.name)
        if not column.type.equals(field.type):
            problems.append(f"column {field.name!r} has type {column.type}, expected {field.type}")
            continue
        if not field.nullable and column.null_count:
            rows = _rows_where(pc.is_null(column))
            problems.append(f"column {field.name!r} has {column.null_count} null(s) at row(s) {rows}")
        allowed = VOCABULARIES.get(field.name)
        if allowed is not None and pa.types.is_string(field.type):
            bad = pc.invert(pc.is_in(column, value_set=pa.array(allowed)))
            bad = pc.and_(bad, pc.is_valid(column))
            if pc.any(bad).as_py():
                values = sorted(set(pc.filter(column, bad).to_pylist()))[:_MAX_LISTED]
                problems.append(
                    f"column {field.name!r} has value(s) {values} not in {allowed} at row(s) {_rows_where(bad)}"
                )
    if problems:
        raise ManifestSchemaError("manifest does not match its schema: " + "; ".join(problems))


def _rows_where(mask: pa.ChunkedArray | pa.Array) -> list[int]:
    indices = pc.indices_nonzero(pc.fill_null(mask, False))
    return indices.slice(0, _MAX_LISTED).to_pylist()


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` reordered and cast to ``schema``; absent nullable columns become nulls, extra columns are dropped."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            try:
                columns.append(table.column(field.name).cast(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ManifestSchemaError(f"column {field.name!r} cannot be cast to {field.type}: {exc}") from exc
        elif field.nullable:
            columns.append(pa.nulls(table.num_rows, field.type))
        else:
            raise ManifestSchemaError(f"required column {field.name!r} is missing")
    return pa.Table.from_arrays(columns, schema=schema)


def build_image_manifest(
    images: pa.Table,
    crops: pa.Table | None,
    min_photos: int = 2,
    seed: int = 0,
    ratios: tuple[float, float, float] = DEFAULT_RATIOS,
    merges: Mapping[str, str] | None = None,
    split_groups: Mapping[str, str] | None = None,
) -> pa.Table:
    """The image manifest: deduplicated ``images`` joined with detector ``crops`` on ``image_id`` (rows without
    a crop row get ``crop_status`` ``disabled``), plus each identity's split (identity-disjoint, stratified by
    source and species, stable as data grows). Identities with fewer than ``min_photos`` images get split
    ``excluded`` and stay in the manifest. ``merges`` (``curation.decisions.identity_merges`` of the reviewers'
    ``same`` pairs) rewrites identities before the split, so both listings of one animal share it.
    ``split_groups`` (identity → group, e.g. known lost/found pairs) keeps identities in one split without merging
    them: the same animal is never trained on under one listing and tested under another. Validated against
    ``IMAGE_MANIFEST_SCHEMA``."""
    missing = [c for c in REQUIRED_IMAGE_COLUMNS if c not in images.column_names]
    if missing:
        raise ManifestSchemaError(f"images table lacks required column(s) {missing}")
    table = images.drop_columns([c for c in CROPS_SCHEMA.names if c != "image_id" and c in images.column_names])
    if merges:
        from curation.decisions import apply_identity_merges

        table = apply_identity_merges(table, merges)
    if crops is not None and crops.num_rows:
        crops = conform(crops, CROPS_SCHEMA)
        # index_in finds the first crop row per image_id (the same content under two identities may repeat);
        # a take() rather than a join because Arrow's hash join cannot carry the list-typed bbox column.
        matched = crops.take(pc.index_in(table.column("image_id"), value_set=crops.column("image_id").combine_chunks()))
        for name in CROPS_SCHEMA.names[1:]:
            table = table.append_column(name, matched.column(name))
    if "crop_status" in table.column_names:
        status = pc.fill_null(table.column("crop_status"), "disabled")
        table = table.set_column(table.column_names.index("crop_status"), "crop_status", status)
    else:
        table = table.append_column("crop_status", pa.array(["disabled"] * table.num_rows, pa.string()))
    table = table.append_column("split", pa.array(_splits_per_row(table, min_photos, seed, ratios, split_groups),
                                                  pa.string()))
    manifest = conform(table, IMAGE_MANIFEST_SCHEMA)
    validate_manifest(manifest, IMAGE_MANIFEST_SCHEMA)
    return manifest


def _splits_per_row(table: pa.Table, min_photos: int, seed: int, ratios: tuple[float, float, float],
                    groups: Mapping[str, str] | None = None) -> list[str]:
    ids = table.column("identity_id").to_pylist()
    sources = table.column("source").to_pylist()
    species = table.column("species").to_pylist() if "species" in table.column_names else [None] * len(ids)
    counts: dict[str, int] = {}
    strata: dict[str, tuple[str, str | None]] = {}
    for identity_id, source, sp in zip(ids, sources, species, strict=True):
        counts[identity_id] = counts.get(identity_id, 0) + 1
        strata.setdefault(identity_id, (source, sp))
    unique = list(counts)
    splits = assign_splits(
        unique, strata=[strata[i] for i in unique], ratios=ratios, seed=seed, n_photos=counts, min_photos=min_photos,
        groups=groups,
    )
    return [splits[i] for i in ids]


def build_identity_manifest(image_manifest: pa.Table) -> pa.Table:
    """One row per identity: identity-level fields (first non-null in photo order), ``n_images``, ``n_cropped``
    and the split. Validated against ``IDENTITY_MANIFEST_SCHEMA``."""
    if image_manifest.num_rows == 0:
        return IDENTITY_MANIFEST_SCHEMA.empty_table()
    cropped = pc.cast(pc.equal(image_manifest.column("crop_status"), "cropped"), pa.int32())
    firsts = ["source", "species", "kind", "date", "text", "url", "split"]
    table = image_manifest.select(["identity_id", "position", *firsts]).append_column("_cropped", cropped)
    table = table.sort_by([("identity_id", "ascending"), ("position", "ascending")])
    grouped = table.group_by("identity_id", use_threads=False).aggregate(
        [(c, "first") for c in firsts] + [("identity_id", "count"), ("_cropped", "sum")]
    )
    renamed = {f"{c}_first": c for c in firsts} | {"identity_id_count": "n_images", "_cropped_sum": "n_cropped"}
    grouped = grouped.rename_columns([renamed.get(n, n) for n in grouped.column_names])
    identities = conform(grouped, IDENTITY_MANIFEST_SCHEMA).sort_by("identity_id")
    validate_manifest(identities, IDENTITY_MANIFEST_SCHEMA)
    return identities
