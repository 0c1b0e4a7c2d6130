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
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.hashing import hamming
from curation.neardup import connected_groups, near_duplicate_pairs
from petid.errors import UserError

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


@dataclass(frozen=True)
class DedupPolicy:
    """What a cross-identity policy decides: the action recorded on a pair, whether both sides of a pair are
    removed (``drops``), whether the linked identities become one (``merges``)."""

    name: str
    action: str  # flagged | dropped | merged
    drops: bool = False
    merges: bool = False

    @classmethod
    def named(cls, name: str) -> DedupPolicy:
        """The policy called ``name`` (one of ``POLICIES``)."""
        if name not in POLICIES:
            raise DedupError(f"policy must be one of {POLICIES}, got {name!r}")
        return _POLICY_BY_NAME[name]

    def pair_action(self, merged: bool) -> str:
        """The action of a cross-identity pair; ``merged``: its two identities are now one (else, under merge, a
        species conflict kept them apart)."""
        return self.action if merged or not self.merges else "species_conflict"


_POLICY_BY_NAME = {
    p.name: p
    for p in (
        DedupPolicy("flag", "flagged"),
        DedupPolicy("drop", "dropped", drops=True),
        DedupPolicy("merge", "merged", merges=True),
    )
}
POLICIES = tuple(_POLICY_BY_NAME)


@dataclass
class DedupResult:
    kept: pa.Table  # input columns (identity_id possibly rewritten) + dup_group, cross_identity_dup, merged_from
    cross_identity: pa.Table  # CROSS_IDENTITY_SCHEMA
    removed: pa.Table  # input columns + is_duplicate_of (image_id of the kept copy or null) + removed_reason
    groups: list[list[int]] = field(default_factory=list)  # input row indices of each duplicate group (size > 1)
    stats: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Rows:
    """The per-row input values the phases read."""

    image_ids: list[str]
    identities: np.ndarray  # object array of identity_id
    species: list[str | None]
    paths: list[str]
    area: np.ndarray  # width x height (0 when unknown)
    phash: np.ndarray  # uint64, 0 where null
    dhash: np.ndarray

    @classmethod
    def of(cls, images: pa.Table) -> _Rows:
        n = images.num_rows
        return cls(
            image_ids=images.column("image_id").to_pylist(),
            identities=np.asarray(images.column("identity_id").to_pylist(), dtype=object),
            species=images.column("species").to_pylist() if "species" in images.column_names else [None] * n,
            paths=images.column("path").to_pylist(),
            area=np.asarray(images.column("width").fill_null(0), np.int64)
            * np.asarray(images.column("height").fill_null(0), np.int64),
            phash=np.asarray(images.column("phash").fill_null(0), dtype=np.uint64),
            dhash=np.asarray(images.column("dhash").fill_null(0), dtype=np.uint64),
        )


class _Edges(NamedTuple):
    """Duplicate edges over all rows: exact ones first, then confirmed near ones."""

    i: np.ndarray
    j: np.ndarray
    distance: np.ndarray  # pHash Hamming distance, 0 for exact
    is_exact: np.ndarray


@dataclass(frozen=True)
class _Outcome:
    """Cross-identity handling, per row and per cross-identity pair."""

    identity: np.ndarray  # identity_id after merging
    involved: np.ndarray  # the row is one side of a cross-identity pair
    reasons: np.ndarray  # removed_reason, None for kept rows
    keeper: np.ndarray  # the row that survives for each row (itself when kept)
    actions: list[str]  # one per cross-identity pair
    merged_identities: int


def deduplicate(
    images: pa.Table, threshold: int = 8, policy: str = "flag", dhash_threshold: int | None = None
) -> DedupResult:
    """Remove duplicates within identities and apply ``policy`` (flag | drop | merge) across identities.

    ``images`` needs ``identity_id, image_id, path, sha256, width, height, phash, dhash`` (``species`` is used when
    present). Returns ``DedupResult(kept, cross_identity, removed, groups, stats)``; see the module docstring for the
    duplicate rule and the policies.
    """
    rules = DedupPolicy.named(policy)
    _check_input(images)
    images = images.drop_columns([f.name for f in ADDED_FIELDS if f.name in images.column_names])
    rows = _Rows.of(images)
    edges = _edges(images, rows, threshold, 2 * threshold if dhash_threshold is None else dhash_threshold)
    dup_group, groups = _duplicate_groups(rows, edges)
    keeper = _keepers(_codes(images.column("identity_id")), edges.i, edges.j, rows.area)  # one image per group
    pairs = _cross_identity_pairs(rows.identities, keeper, edges)
    outcome = _apply_policy(rules, rows, edges, keeper, pairs)
    kept, removed = _image_tables(images, rules, rows, dup_group, outcome)
    return DedupResult(
        kept=kept,
        cross_identity=_cross_table(rows, pairs, outcome.actions),
        removed=removed,
        groups=groups,
        stats=_stats(images, edges, groups, pairs, outcome),
    )


def _check_input(images: pa.Table) -> None:
    """Raise ``DedupError`` when a required column is missing or an image_id repeats."""
    missing = [c for c in REQUIRED if c not in images.column_names]
    if missing:
        raise DedupError(f"images table lacks columns {missing}")
    image_ids = images.column("image_id").to_pylist()
    if len(set(image_ids)) != len(image_ids):
        dup = next(x for x, count in Counter(image_ids).items() if count > 1)
        raise DedupError(f"image_id {dup!r} appears more than once")


def _edges(images: pa.Table, rows: _Rows, threshold: int, dhash_threshold: int) -> _Edges:
    """Exact edges (same sha256), then near ones (pHash within ``threshold``, confirmed by dHash)."""
    codes = _codes(images.column("sha256"))
    exact_i, exact_j = _exact_pairs(codes)
    hashed = ~np.asarray(images.column("phash").is_null()) & ~np.asarray(images.column("dhash").is_null())
    near_i, near_j = _near_pairs(rows, np.flatnonzero(hashed), codes, threshold, dhash_threshold)
    i = np.concatenate((exact_i, near_i)).astype(np.int64)
    j = np.concatenate((exact_j, near_j)).astype(np.int64)
    is_exact = np.arange(len(i)) < len(exact_i)
    distance = np.where(is_exact, 0, hamming(rows.phash[i], rows.phash[j])) if len(i) else np.empty(0, np.int64)
    return _Edges(i, j, distance.astype(np.int64), is_exact)


def _exact_pairs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs with equal sha256 codes: all pairs of a group, a star around its first row past
    ``EXACT_GROUP_ALL_PAIRS``. Rows without a sha256 (code -1) have no exact duplicate."""
    hashed = np.flatnonzero(codes >= 0)
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
    empty = np.empty(0, np.int64)
    return (np.concatenate(ei) if ei else empty), (np.concatenate(ej) if ej else empty)


def _near_pairs(
    rows: _Rows, valid: np.ndarray, codes: np.ndarray, threshold: int, dhash_threshold: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs among ``valid`` (both hashes present) within ``threshold`` pHash bits and ``dhash_threshold``
    dHash bits, except pairs already exact."""
    pairs = near_duplicate_pairs(rows.phash[valid], threshold)
    ni, nj = valid[pairs["i"]], valid[pairs["j"]]
    same_bytes = (codes[ni] == codes[nj]) & (codes[ni] >= 0)
    confirmed = (hamming(rows.dhash[ni], rows.dhash[nj]) <= dhash_threshold) & ~same_bytes
    return ni[confirmed], nj[confirmed]


def _duplicate_groups(rows: _Rows, edges: _Edges) -> tuple[list[str | None], list[list[int]]]:
    """Each row's ``dup_group`` (image_id of its component's largest image, None when alone) and the row indices
    of every component with more than one row."""
    n = len(rows.image_ids)
    labels = connected_groups(n, edges.i, edges.j)
    sizes = np.bincount(labels, minlength=n) if n else np.empty(0, np.int64)
    best = _keepers(np.zeros(n, np.int64), edges.i, edges.j, rows.area)  # one label: the whole component's best
    dup_group = [rows.image_ids[best[r]] if sizes[labels[r]] > 1 else None for r in range(n)]
    rows_in_groups = np.flatnonzero(sizes[labels] > 1) if n else np.empty(0, np.int64)
    groups: dict[int, list[int]] = {}
    for r in rows_in_groups.tolist():
        groups.setdefault(int(labels[r]), []).append(r)
    return dup_group, list(groups.values())


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


def _cross_identity_pairs(identities: np.ndarray, keeper: np.ndarray, edges: _Edges) -> dict[tuple[int, int], bool]:
    """Duplicate edges between surviving images (endpoints mapped to their keepers) of two identities, as
    ``{(row_a, row_b): is_exact}`` with ``row_a < row_b``, in row order; a pair linked by any exact edge is exact."""
    ki, kj = keeper[edges.i], keeper[edges.j]
    cross = identities[ki] != identities[kj]
    exact: dict[tuple[int, int], bool] = {}
    for a, b, ex in zip(ki[cross].tolist(), kj[cross].tolist(), edges.is_exact[cross].tolist()):
        key = (min(a, b), max(a, b))
        exact[key] = exact.get(key, False) or ex
    return {key: exact[key] for key in sorted(exact)}


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


def _apply_policy(
    policy: DedupPolicy, rows: _Rows, edges: _Edges, keeper: np.ndarray, pairs: dict[tuple[int, int], bool]
) -> _Outcome:
    """Within-identity removal, then the policy across identities: merge the linked identities and remove the
    copies now inside one identity, or drop (or just flag) both sides of every pair."""
    n = len(keeper)
    canonical = _canonical_identities(rows.identities, rows.species, list(pairs)) if policy.merges else {}
    identity = np.array([canonical.get(x, x) for x in rows.identities], dtype=object)
    involved = np.zeros(n, bool)
    for a, b in pairs:
        involved[a] = involved[b] = True
    reasons = np.full(n, None, dtype=object)
    reasons[keeper != np.arange(n)] = "within_identity"
    if canonical:
        merged_codes = _codes(pa.chunked_array([pa.array(identity.tolist(), pa.string())]))
        keeper = _keepers(merged_codes, edges.i, edges.j, rows.area)
        reasons[(keeper != np.arange(n)) & (reasons == None)] = "merged_duplicate"  # noqa: E711
    if policy.drops:
        reasons[involved & (reasons == None)] = "cross_identity_drop"  # noqa: E711
    return _Outcome(
        identity=identity,
        involved=involved,
        reasons=reasons,
        keeper=keeper,
        actions=[policy.pair_action(identity[a] == identity[b]) for a, b in pairs],
        merged_identities=sum(1 for k, v in canonical.items() if k != v),
    )


def _image_tables(
    images: pa.Table, policy: DedupPolicy, rows: _Rows, dup_group: list[str | None], outcome: _Outcome
) -> tuple[pa.Table, pa.Table]:
    """``kept`` and ``removed``: the input (identity_id rewritten under merge) plus ``ADDED_FIELDS``; removed rows
    also carry ``is_duplicate_of`` and ``removed_reason``."""
    n = len(dup_group)
    flagged = np.zeros(n, bool) if policy.drops else outcome.involved
    merged_from = [rows.identities[r] if outcome.identity[r] != rows.identities[r] else None for r in range(n)]
    table = images
    if policy.merges:
        merged = pa.array(outcome.identity.tolist(), pa.string())
        table = table.set_column(table.column_names.index("identity_id"), table.schema.field("identity_id"), merged)
    table = table.append_column(ADDED_FIELDS[0], pa.array(dup_group, pa.string()))
    table = table.append_column(ADDED_FIELDS[1], pa.array(flagged.tolist(), pa.bool_()))
    table = table.append_column(ADDED_FIELDS[2], pa.array(merged_from, pa.string()))
    kept_mask = outcome.reasons == None  # noqa: E711
    removed_rows = np.flatnonzero(~kept_mask)
    keeper = outcome.keeper
    removed = (
        table.take(pa.array(removed_rows, pa.int64()))
        .append_column(
            "is_duplicate_of",
            pa.array([rows.image_ids[keeper[r]] if keeper[r] != r else None for r in removed_rows], pa.string()),
        )
        .append_column("removed_reason", pa.array(outcome.reasons[removed_rows].tolist(), pa.string()))
    )
    return table.filter(pa.array(kept_mask)), removed


def _cross_table(rows: _Rows, pairs: dict[tuple[int, int], bool], actions: list[str]) -> pa.Table:
    """One ``CROSS_IDENTITY_SCHEMA`` row per cross-identity pair."""
    columns: dict[str, list[Any]] = {name: [] for name in CROSS_IDENTITY_SCHEMA.names}
    for ((a, b), exact), action in zip(pairs.items(), actions):
        values = (
            rows.identities[a], rows.identities[b], rows.image_ids[a], rows.image_ids[b], rows.paths[a], rows.paths[b],
            0 if exact else int(hamming(rows.phash[a], rows.phash[b])), int(hamming(rows.dhash[a], rows.dhash[b])),
            "exact" if exact else "near", action,
        )
        for name, value in zip(CROSS_IDENTITY_SCHEMA.names, values):
            columns[name].append(value)
    return pa.Table.from_pydict(columns, schema=CROSS_IDENTITY_SCHEMA)


def _stats(
    images: pa.Table, edges: _Edges, groups: list[list[int]], pairs: dict[tuple[int, int], bool], outcome: _Outcome
) -> dict[str, int]:
    """Counts of every phase's result."""
    reasons = outcome.reasons
    return {
        "n_images": images.num_rows,
        "exact_pairs": int(edges.is_exact.sum()),
        "near_pairs": int((~edges.is_exact).sum()),
        "duplicate_groups": len(groups),
        "within_identity_removed": int((reasons == "within_identity").sum()),
        "cross_identity_pairs": len(pairs),
        "cross_identity_images": int(outcome.involved.sum()),
        "dropped_cross_identity": int((reasons == "cross_identity_drop").sum()),
        "merged_identities": outcome.merged_identities,
        "merged_duplicates_removed": int((reasons == "merged_duplicate").sum()),
        "kept": int((reasons == None).sum()),  # noqa: E711
        "unhashed": int(images.column("phash").null_count + images.column("dhash").null_count),
    }
