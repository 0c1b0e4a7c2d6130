"""Data-quality checks over the manifests, as pure functions (the Dagster asset checks call them)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curation.manifest import ManifestSchemaError, validate_manifest
from curation.splits import SPLITS

_EXAMPLES = 10


@dataclass(frozen=True)
class CheckOutcome:
    """What an asset check reports: pass/fail, one sentence, and small JSON-able metadata."""

    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def no_identity_in_two_splits(table: pa.Table) -> CheckOutcome:
    """Every identity sits in exactly one split (``table`` has ``identity_id``, ``split``)."""
    if table.num_rows == 0:
        return CheckOutcome(True, "no rows", {"identities": 0, "offending": 0})
    grouped = table.group_by("identity_id").aggregate([("split", "count_distinct")])
    bad = grouped.filter(pc.greater(grouped.column("split_count_distinct"), 1)).column("identity_id").to_pylist()
    return CheckOutcome(
        not bad,
        f"{len(bad)} identities appear in more than one split" if bad else "every identity is in exactly one split",
        {"identities": grouped.num_rows, "offending": len(bad), "examples": bad[:_EXAMPLES]},
    )


def manifest_paths_exist(
    table: pa.Table, columns: Sequence[str] = ("path", "crop_path"), verify: bool = True
) -> CheckOutcome:
    """Every non-null path in ``columns`` (those present) exists on disk and, with ``verify``, is an intact image
    file: its header parses and a JPEG ends with its end-of-image marker (what a truncated copy lacks; other formats
    are ``verify()``-ed). Nothing is decoded, so the check stays cheap: one header and the last bytes per file."""
    from curation.images import image_ok

    present = [c for c in columns if c in table.column_names]
    paths = [p for c in present for p in table.column(c).to_pylist() if p is not None]
    missing: list[str] = []
    unreadable: list[str] = []
    for p in paths:
        if not os.path.exists(p):
            missing.append(p)
        elif verify and (problem := image_ok(p)) is not None:
            unreadable.append(f"{p}: {problem}")
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {len(paths)} files are missing")
    if unreadable:
        problems.append(f"{len(unreadable)} of {len(paths)} files are unreadable (truncated or not an image)")
    intact = " and are intact images" if verify else ""
    return CheckOutcome(
        not problems,
        "; ".join(problems) if problems else f"all {len(paths)} files exist{intact}",
        {"checked": len(paths), "missing": len(missing), "unreadable": len(unreadable), "columns": present,
         "examples": (missing + unreadable)[:_EXAMPLES]},
    )


def no_duplicate_content_within_identity(table: pa.Table, content_column: str = "sha256") -> CheckOutcome:
    """No identity holds two rows with the same content hash (null hashes are not compared)."""
    subset = table.select(["identity_id", content_column]).filter(pc.is_valid(table.column(content_column)))
    if subset.num_rows == 0:
        return CheckOutcome(True, "no content hashes to compare", {"duplicates": 0})
    grouped = subset.group_by(["identity_id", content_column]).aggregate([(content_column, "count")])
    dupes = grouped.filter(pc.greater(grouped.column(f"{content_column}_count"), 1))
    count = f"{content_column}_count"
    examples = [
        f"{r['identity_id']}: {r[content_column]} x{r[count]}" for r in dupes.slice(0, _EXAMPLES).to_pylist()
    ]
    return CheckOutcome(
        dupes.num_rows == 0,
        f"{dupes.num_rows} (identity, {content_column}) pairs occur more than once"
        if dupes.num_rows
        else f"no identity holds the same {content_column} twice",
        {"duplicates": dupes.num_rows, "examples": examples},
    )


def min_photos_per_identity_in_splits(table: pa.Table, min_photos: int = 2) -> CheckOutcome:
    """Every identity in train/val/test has at least ``min_photos`` rows (``excluded`` rows are ignored)."""
    in_splits = table.filter(pc.is_in(table.column("split"), pa.array(SPLITS)))
    if in_splits.num_rows == 0:
        return CheckOutcome(True, "no identities in train/val/test", {"identities": 0, "offending": 0})
    grouped = in_splits.group_by("identity_id").aggregate([("identity_id", "count")])
    bad = grouped.filter(pc.less(grouped.column("identity_id_count"), min_photos))
    examples = bad.column("identity_id").slice(0, _EXAMPLES).to_pylist()
    return CheckOutcome(
        bad.num_rows == 0,
        f"{bad.num_rows} identities in splits have fewer than {min_photos} photos"
        if bad.num_rows
        else f"every identity in a split has at least {min_photos} photos",
        {"identities": grouped.num_rows, "offending": bad.num_rows, "min_photos": min_photos, "examples": examples},
    )


def schema_matches(table: pa.Table, schema: pa.Schema) -> CheckOutcome:
    """``table`` passes ``validate_manifest`` against ``schema``."""
    metadata = {"rows": table.num_rows, "columns": len(table.column_names)}
    try:
        validate_manifest(table, schema)
    except ManifestSchemaError as exc:
        return CheckOutcome(False, str(exc), metadata)
    return CheckOutcome(True, "the table matches its schema", metadata)
