"""Identity-disjoint train/val/test splits that stay put as the corpus grows.

Each identity's split is a pure function of ``(seed, identity_id)`` and its stratum's ratios: a 64-bit BLAKE2b
hash of the pair, mapped to ``[0, 1)``, is compared with the cumulative ratios. Adding identities never moves an
existing one, and each (source, species) stratum gets the ratios in expectation. Identities with fewer than
``min_photos`` photos are ``excluded`` (kept in the manifests, left out of training and evaluation); one that
later gains photos joins the split its hash already names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Mapping, Sequence

from petid.errors import UserError

SPLITS = ("train", "val", "test")
EXCLUDED = "excluded"
SPLIT_VALUES = (*SPLITS, EXCLUDED)
DEFAULT_RATIOS: tuple[float, float, float] = (0.7, 0.15, 0.15)


class SplitError(UserError, ValueError):
    """Bad split arguments (ratios that do not sum to 1, mismatched lengths, duplicate identities)."""


def unit_hash(identity_id: str, seed: int = 0) -> float:
    """A uniform number in ``[0, 1)`` fixed by ``(seed, identity_id)``, identical on every machine and run."""
    digest = hashlib.blake2b(f"{seed}\x1f{identity_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise SplitError(f"split ratios must be three non-negative numbers summing to 1 (train, val, test): {ratios!r}")
    return (float(ratios[0]), float(ratios[1]), float(ratios[2]))


def split_for(u: float, ratios: Sequence[float]) -> str:
    """The split whose cumulative-ratio interval holds ``u``."""
    train, val, _ = ratios
    if u < train:
        return "train"
    if u < train + val:
        return "val"
    return "test"


def assign_splits(
    identity_ids: Sequence[str],
    strata: Sequence[Hashable] | None = None,
    ratios: Sequence[float] | Mapping[Hashable, Sequence[float]] = DEFAULT_RATIOS,
    seed: int = 0,
    n_photos: Sequence[int] | Mapping[str, int] | None = None,
    min_photos: int = 2,
    groups: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``{identity_id: "train"|"val"|"test"|"excluded"}``.

    ``strata``: one key per identity (e.g. ``(source, species)``); ``ratios`` may be one (train, val, test)
    triple or a mapping from stratum to triple (strata absent from it use ``DEFAULT_RATIOS``).
    ``n_photos``: photos per identity (parallel sequence or mapping); identities below ``min_photos`` are
    ``excluded``. Without ``n_photos`` nobody is excluded. ``groups`` (identity → group key, e.g. the two
    listings of one animal): a group's identities draw their split from the group key, so they land together;
    identities in no group keep their own draw.
    """
    ids = list(identity_ids)
    if len(set(ids)) != len(ids):
        raise SplitError("assign_splits: identity_ids contain duplicates")
    if strata is not None and len(strata) != len(ids):
        raise SplitError(f"assign_splits: {len(strata)} strata for {len(ids)} identities")
    if isinstance(ratios, Mapping):
        per_stratum = {key: _check_ratios(value) for key, value in ratios.items()}
        default = DEFAULT_RATIOS
    else:
        per_stratum, default = {}, _check_ratios(ratios)
    counts: Mapping[str, int] | None
    if n_photos is None or isinstance(n_photos, Mapping):
        counts = n_photos
    else:
        if len(n_photos) != len(ids):
            raise SplitError(f"assign_splits: {len(n_photos)} photo counts for {len(ids)} identities")
        counts = dict(zip(ids, n_photos, strict=True))

    result: dict[str, str] = {}
    for i, identity_id in enumerate(ids):
        if counts is not None and counts.get(identity_id, 0) < min_photos:
            result[identity_id] = EXCLUDED
            continue
        stratum_ratios = per_stratum.get(strata[i], default) if strata is not None else default
        key = (groups or {}).get(identity_id, identity_id)
        result[identity_id] = split_for(unit_hash(key, seed), stratum_ratios)
    return result
