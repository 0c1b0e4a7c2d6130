"""Identity-disjoint, seeded splits that never move an identity when the corpus grows."""

from __future__ import annotations

from collections import Counter

import pytest

from curation.splits import SplitError, assign_splits, unit_hash


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}:{i}" for i in range(n)]


def test_ratios_are_met_within_each_stratum() -> None:
    ids = _ids("pet911", 6000) + _ids("telegram:lost", 4000)
    strata = [("pet911", "cat" if i % 2 else "dog") for i in range(6000)] + [("telegram", "dog")] * 4000
    splits = assign_splits(ids, strata=strata, seed=3)
    for stratum in set(strata):
        members = [splits[i] for i, s in zip(ids, strata, strict=True) if s == stratum]
        share = Counter(members)
        assert share["train"] / len(members) == pytest.approx(0.7, abs=0.03), stratum
        assert share["val"] / len(members) == pytest.approx(0.15, abs=0.03), stratum
        assert share["test"] / len(members) == pytest.approx(0.15, abs=0.03), stratum


def test_an_identity_never_moves_when_identities_are_added() -> None:
    before = assign_splits(_ids("pet911", 500), seed=7)
    grown_ids = _ids("telegram", 300) + _ids("pet911", 2000)  # new ids, old ids, different order
    after = assign_splits(grown_ids, seed=7)
    assert all(after[i] == split for i, split in before.items())
    assert set(after.values()) == {"train", "val", "test"}


def test_seed_changes_the_assignment_and_is_reproducible() -> None:
    ids = _ids("x", 400)
    assert assign_splits(ids, seed=1) == assign_splits(ids, seed=1)
    moved = sum(a != b for a, b in zip(assign_splits(ids, seed=1).values(), assign_splits(ids, seed=2).values(), strict=True))
    assert moved > 100
    assert 0.0 <= unit_hash("x:1", 0) < 1.0 and unit_hash("x:1", 0) != unit_hash("x:1", 1)


def test_identities_below_min_photos_are_excluded_then_join_their_split() -> None:
    ids = _ids("p", 50)
    full = assign_splits(ids, n_photos=[5] * 50)
    few = assign_splits(ids, n_photos={i: (1 if n < 10 else 3) for n, i in enumerate(ids)}, min_photos=2)
    assert [few[i] for i in ids[:10]] == ["excluded"] * 10
    assert all(few[i] == full[i] for i in ids[10:])  # gaining photos never changes the hashed split


def test_per_stratum_ratios_and_bad_arguments() -> None:
    ids = _ids("s", 200)
    strata = ["a"] * 100 + ["b"] * 100
    splits = assign_splits(ids, strata=strata, ratios={"a": (0.0, 0.0, 1.0)})
    assert {splits[i] for i in ids[:100]} == {"test"}
    assert len({splits[i] for i in ids[100:]}) == 3
    with pytest.raises(SplitError, match="sum"):
        assign_splits(ids, ratios=(0.5, 0.2, 0.2))
    with pytest.raises(SplitError, match="duplicates"):
        assign_splits(["a", "a"])
    with pytest.raises(SplitError, match="strata"):
        assign_splits(ids, strata=["a"])


def test_grouped_identities_share_a_split_and_the_others_keep_theirs() -> None:
    ids = [f"listing-{i}" for i in range(400)]
    alone = assign_splits(ids, seed=3)
    groups = {f"listing-{i}": f"listing-{i - 1}" for i in range(1, 400, 2)} | {f"listing-{i}": f"listing-{i}"
                                                                                 for i in range(0, 400, 2)}
    grouped = assign_splits(ids, seed=3, groups=groups)
    assert all(grouped[f"listing-{i}"] == grouped[f"listing-{i - 1}"] for i in range(1, 400, 2))
    assert all(grouped[f"listing-{i}"] == alone[f"listing-{i}"] for i in range(0, 400, 2))  # the group key's draw
    assert sum(grouped[f"listing-{i}"] != alone[f"listing-{i}"] for i in range(1, 400, 2)) > 0
