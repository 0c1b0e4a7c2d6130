"""Exact and perceptual deduplication of curated images, within and across identities.

Duplicate rule: two images are duplicates when
- **exact**: the same ``sha256`` (source bytes), or
- **near**: pHash Hamming distance ``<= threshold`` *and* dHash Hamming distance ``<= dhash_threshold`` (default
  ``2 * threshold``). pHash finds candidates at scale (multi-index search, ``curation.neardup``); dHash, an
  independent gradient signature, confirms them, which rejects the rare structured pHash collisions (flat or
  low-texture images) while any resize/re-encode of the same photo moves both hashes by only a few bits.

Duplicates are linked into groups (connected components). Within one identity a group keeps one image, the largest
(width x height; ties: earliest row). Across identities the same photo under two listings is a data-quality event:
the pairs are reported in ``cross_identity`` and the policy applies:
- ``flag``: keep every image, ``cross_identity_dup`` = true on the images involved;
- ``drop``: remove every image involved in a cross-identity pair (both sides);
- ``merge``: merge the linked identities into one (canonical = smallest identity_id), ``identity_id`` rewritten and
  the original kept in ``merged_from``; the duplicate copies inside the merged identity are then removed like any
  within-identity duplicate. Identities of *different known species* are never merged (the pair stays flagged).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.hashing import hamming
from curation.neardup import connected_groups, near_duplicate_pairs
from petid.errors import UserError

POLICIES = ("flag", "drop", "merge")
EXACT_GROUP_ALL_PAIRS = 32  # larger exact groups are reported as a star around their first image

CROSS_IDENTITY_SCHEMA = pa.schema(
    [
        pa.field("identity_a", pa.string()),
        pa.field("identity_b", pa.string()),
        pa.field("image_a", pa.string()),
        pa.field("image_b", pa.string()),
        pa.field("path_a", pa.string()),
        pa.field("path_b", pa.string()),
        pa.field("distance", pa.int32()),  # pHash Hamming distance (0 for exact)
        pa.field("dhash_distance", pa.int32()),
        pa.field("kind", pa.string()),  # exact | near
        pa.field("action", pa.string()),  # flagged | dropped | merged | species_conflict
    ]
)
ADDED_FIELDS = [
    pa.field("dup_group", pa.string()),  # image_id of the group's largest image; null when the image has no duplicate
    pa.field("cross_identity_dup", pa.bool_()),
    pa.field("merged_from", pa.string()),  # original identity_id when the merge policy rewrote it
]
REQUIRED = ("identity_id", "image_id", "path", "sha256", "width", "height", "phash", "dhash")


class DedupError(UserError, ValueError):
    """The input table cannot be deduplicated (missing columns, bad policy, duplicate image ids)."""


@dataclass
class DedupResult:
    kept: pa.Table  # input columns (identity_id possibly rewritten) + dup_group, cross_identity_dup, merged_from
    cross_identity: pa.Table  # CROSS_IDENTITY_SCHEMA
    removed: pa.Table  # input columns + is_duplicate_of (image_id of the kept copy or null) + removed_reason
    groups: list[list[int]] = field(default_factory=list)  # input row indices of each duplicate group (size > 1)
    stats: dict[str, int] = field(default_factory=dict)


def _edges(images: pa.Table, threshold: int, dhash_threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Duplicate edges (i, j, phash distance, is_exact) over all rows."""
    codes = _codes(images.column("sha256"))
    hashed = np.flatnonzero(codes >= 0)  # rows without a sha256 have no exact duplicate
    order = hashed[np.argsort(codes[hashed], kind="stable")]
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]) if len(order) else np.empty(0, np.int64)
    sizes = np.diff(np.r_[starts, len(order)])
    ei, ej = [], []
    for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
        group = order[start : start + size]
        if size <= EXACT_GROUP_ALL_PAIRS:
            a, b = np.triu_indices(size, 1)
            ei.append(group[a])
            ej.append(group[b])
        else:
            ei.append(np.full(size - 1, group[0]))
            ej.append(group[1:])
    exact_i = np.concatenate(ei) if ei else np.empty(0, np.int64)
    exact_j = np.concatenate(ej) if ej else np.empty(0, np.int64)

    phash = images.column("phash")
    valid = np.flatnonzero(~np.asarray(phash.is_null()) & ~np.asarray(images.column("dhash").is_null()))
    ph = np.asarray(phash.fill_null(0), dtype=np.uint64)
    dh = np.asarray(images.column("dhash").fill_null(0), dtype=np.uint64)
    pairs = near_duplicate_pairs(ph[valid], threshold)
    ni, nj = valid[pairs["i"]], valid[pairs["j"]]
    same_bytes = (codes[ni] == codes[nj]) & (codes[ni] >= 0)  # already an exact edge
    confirmed = (hamming(dh[ni], dh[nj]) <= dhash_threshold) & ~same_bytes
    ni, nj = ni[confirmed], nj[confirmed]

    i = np.concatenate((exact_i, ni)).astype(np.int64)
    j = np.concatenate((exact_j, nj)).astype(np.int64)
    distance = np.where(np.arange(len(i)) < len(exact_i), 0, hamming(ph[i], ph[j])) if len(i) else np.empty(0, np.int64)
    is_exact = np.arange(len(i)) < len(exact_i)
    return i, j, distance.astype(np.int64), is_exact


def _codes(column: pa.ChunkedArray) -> np.ndarray:
    """Integer code per row, equal codes for equal values (nulls share one code)."""
    if len(column) == 0:
        return np.empty(0, np.int64)
    encoded = pc.dictionary_encode(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column)
    return np.asarray(encoded.indices.fill_null(-1), dtype=np.int64)


def _keepers(labels: np.ndarray, i: np.ndarray, j: np.ndarray, size: np.ndarray) -> np.ndarray:
    """For every row, the row that survives for it: the largest image of its component over same-label edges."""
    n = len(labels)
    same = labels[i] == labels[j]
    comp = connected_groups(n, i[same], j[same])
    # Best = largest area, then earliest row: sort by (comp, -area, row) and take the first of each component.
    order = np.lexsort((np.arange(n), -size, comp))
    first = np.ones(n, bool)
    first[1:] = comp[order][1:] != comp[order][:-1]
    best_of_comp = np.empty(comp.max() + 1 if n else 0, np.int64)
    best_of_comp[comp[order][first]] = order[first]
    return best_of_comp[comp] if n else np.empty(0, np.int64)


def _canonical_identities(identities: np.ndarray, species: list[str | None], pairs: list[tuple[int, int]]) -> dict[str, str]:
    """Union-find over identities linked by duplicate pairs → {identity: canonical (smallest) identity}. Two groups
    are joined only when their known species agree (unknown species is compatible with anything)."""
    known: dict[str, set[str]] = {}
    for identity, sp in zip(identities.tolist(), species):
        known.setdefault(identity, set()).update({sp} - {None})
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(identities[a]), find(identities[b])
        if ra == rb or len(known[ra] | known[rb]) > 1:
            continue  # already one identity, or a cat and a dog: never one animal
        root, child = (ra, rb) if ra < rb else (rb, ra)
        parent[child] = root
        known[root] = known[ra] | known[rb]
    return {x: find(x) for x in parent}


def deduplicate(
    images: pa.Table, threshold: int = 8, policy: str = "flag", dhash_threshold: int | None = None
) -> DedupResult:
    """Remove duplicates within identities and apply ``policy`` (flag | drop | merge) across identities.

    ``images`` needs ``identity_id, image_id, path, sha256, width, height, phash, dhash`` (``species`` is used when
    present). Returns ``DedupResult(kept, cross_identity, removed, groups, stats)``; see the module docstring for the
    duplicate rule and the policies.
    """
    if policy not in POLICIES:
        raise DedupError(f"policy must be one of {POLICIES}, got {policy!r}")
    missing = [c for c in REQUIRED if c not in images.column_names]
    if missing:
        raise DedupError(f"images table lacks columns {missing}")
    image_ids = images.column("image_id").to_pylist()
    if len(set(image_ids)) != len(image_ids):
        dup = next(x for x, count in Counter(image_ids).items() if count > 1)
        raise DedupError(f"image_id {dup!r} appears more than once")
    dhash_threshold = 2 * threshold if dhash_threshold is None else dhash_threshold
    images = images.drop_columns([f.name for f in ADDED_FIELDS if f.name in images.column_names])
    n = images.num_rows
    identities = np.asarray(images.column("identity_id").to_pylist(), dtype=object)
    species = images.column("species").to_pylist() if "species" in images.column_names else [None] * n
    paths = images.column("path").to_pylist()
    area = np.asarray(images.column("width").fill_null(0), np.int64) * np.asarray(images.column("height").fill_null(0), np.int64)
    ph = np.asarray(images.column("phash").fill_null(0), dtype=np.uint64)
    dh = np.asarray(images.column("dhash").fill_null(0), dtype=np.uint64)

    i, j, distance, is_exact = _edges(images, threshold, dhash_threshold)
    groups_label = connected_groups(n, i, j)
    sizes = np.bincount(groups_label, minlength=n) if n else np.empty(0, np.int64)
    group_best = _keepers(np.zeros(n, np.int64), i, j, area)  # one label: the whole component's best image
    dup_group = [image_ids[group_best[r]] if sizes[groups_label[r]] > 1 else None for r in range(n)]
    groups = _group_lists(groups_label, sizes)

    # Within each identity: one image per duplicate group.
    id_codes = _codes(images.column("identity_id"))
    keeper = _keepers(id_codes, i, j, area)

    # Cross-identity pairs among the surviving images (endpoints mapped to their keepers).
    ki, kj = keeper[i], keeper[j]
    cross = identities[ki] != identities[kj]
    pair_best: dict[tuple[int, int], tuple[int, bool]] = {}
    for a, b, d, ex in zip(ki[cross].tolist(), kj[cross].tolist(), distance[cross].tolist(), is_exact[cross].tolist()):
        key = (min(a, b), max(a, b))
        old = pair_best.get(key)
        if old is None or (ex, -d) > (old[1], -old[0]):
            pair_best[key] = (d, ex)
    cross_pairs = sorted(pair_best)

    canonical: dict[str, str] = {}
    if policy == "merge":
        canonical = _canonical_identities(identities, species, cross_pairs)
    new_identity = np.array([canonical.get(x, x) for x in identities], dtype=object)
    actions = []
    for a, b in cross_pairs:
        if policy == "merge":
            actions.append("merged" if new_identity[a] == new_identity[b] else "species_conflict")
        else:
            actions.append("dropped" if policy == "drop" else "flagged")
    involved = np.zeros(n, bool)
    for a, b in cross_pairs:
        involved[a] = involved[b] = True

    reasons = np.full(n, None, dtype=object)
    final_keeper = keeper
    reasons[keeper != np.arange(n)] = "within_identity"
    if policy == "merge" and canonical:
        new_codes = _codes(pa.chunked_array([pa.array(new_identity.tolist(), pa.string())]))
        final_keeper = _keepers(new_codes, i, j, area)
        reasons[(final_keeper != np.arange(n)) & (reasons == None)] = "merged_duplicate"  # noqa: E711
    if policy == "drop":
        reasons[involved & (reasons == None)] = "cross_identity_drop"  # noqa: E711
    kept_mask = reasons == None  # noqa: E711

    flagged = involved if policy != "drop" else np.zeros(n, bool)
    merged_from = [identities[r] if new_identity[r] != identities[r] else None for r in range(n)]
    table = images
    if policy == "merge":
        idx = table.column_names.index("identity_id")
        table = table.set_column(idx, table.schema.field("identity_id"), pa.array(new_identity.tolist(), pa.string()))
    table = table.append_column(ADDED_FIELDS[0], pa.array(dup_group, pa.string()))
    table = table.append_column(ADDED_FIELDS[1], pa.array(flagged.tolist(), pa.bool_()))
    table = table.append_column(ADDED_FIELDS[2], pa.array(merged_from, pa.string()))
    kept = table.filter(pa.array(kept_mask))
    removed_rows = np.flatnonzero(~kept_mask)
    removed = table.take(pa.array(removed_rows, pa.int64()))
    removed = removed.append_column(
        "is_duplicate_of",
        pa.array([image_ids[final_keeper[r]] if final_keeper[r] != r else None for r in removed_rows], pa.string()),
    ).append_column("removed_reason", pa.array(reasons[removed_rows].tolist(), pa.string()))

    cross_rows: dict[str, list[Any]] = {name: [] for name in CROSS_IDENTITY_SCHEMA.names}
    for (a, b), action in zip(cross_pairs, actions):
        d, ex = pair_best[(a, b)]
        values = (identities[a], identities[b], image_ids[a], image_ids[b], paths[a], paths[b],
                  int(hamming(ph[a], ph[b])) if not ex else 0, int(hamming(dh[a], dh[b])), "exact" if ex else "near",
                  action)
        for name, value in zip(CROSS_IDENTITY_SCHEMA.names, values):
            cross_rows[name].append(value)
    stats = {
        "n_images": n,
        "exact_pairs": int(is_exact.sum()),
        "near_pairs": int((~is_exact).sum()),
        "duplicate_groups": len(groups),
        "within_identity_removed": int((reasons == "within_identity").sum()),
        "cross_identity_pairs": len(cross_pairs),
        "cross_identity_images": int(involved.sum()),
        "dropped_cross_identity": int((reasons == "cross_identity_drop").sum()),
        "merged_identities": sum(1 for k, v in canonical.items() if k != v),
        "merged_duplicates_removed": int((reasons == "merged_duplicate").sum()),
        "kept": int(kept_mask.sum()),
        "unhashed": int(images.column("phash").null_count + images.column("dhash").null_count),
    }
    return DedupResult(
        kept=kept,
        cross_identity=pa.Table.from_pydict(cross_rows, schema=CROSS_IDENTITY_SCHEMA),
        removed=removed,
        groups=groups,
        stats=stats,
    )


def _group_lists(labels: np.ndarray, sizes: np.ndarray) -> list[list[int]]:
    rows = np.flatnonzero(sizes[labels] > 1) if len(labels) else np.empty(0, np.int64)
    out: dict[int, list[int]] = {}
    for r in rows.tolist():
        out.setdefault(int(labels[r]), []).append(r)
    return list(out.values())
