"""Near-duplicate search against brute force; deduplication within and across identities; ``petid dedup``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from curation.dedup import POLICIES, DedupError, DedupPolicy, deduplicate
from curation.hashing import hash_images
from curation.images import process_images
from curation.neardup import BRUTE_FORCE_MAX, brute_force_pairs, near_duplicate_pairs, plan_chunks
from petid.records import catalogue_table
from petid_app.cli import main
from petid_sample.images import photo


def _random_hashes(n: int, planted: int, max_flips: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    for k in range(planted):
        src, dst = rng.integers(0, n, 2)
        flips = rng.choice(64, int(rng.integers(0, max_flips + 1)), replace=False)
        hashes[dst] = hashes[src] ^ np.bitwise_or.reduce(np.uint64(1) << flips.astype(np.uint64), initial=np.uint64(0))
    return hashes


@pytest.mark.parametrize("threshold", [0, 2, 5, 8, 10])
def test_multi_index_search_equals_brute_force(threshold: int) -> None:
    hashes = _random_hashes(BRUTE_FORCE_MAX + 2000, planted=400, max_flips=threshold + 2, seed=threshold)
    hashes[:30] = hashes[30]  # a bucket of identical hashes
    expected = brute_force_pairs(hashes, threshold)
    found = near_duplicate_pairs(hashes, threshold)  # n > BRUTE_FORCE_MAX: the multi-index path
    assert len(expected) > 400
    assert np.array_equal(found, expected)
    for chunks in ([32, 32], [16, 16, 16, 16], [8] * 8):
        if threshold // len(chunks) <= 3:
            assert np.array_equal(near_duplicate_pairs(hashes, threshold, chunks=chunks), expected)


def test_chunk_plan_for_a_million_hashes_avoids_tiny_chunks() -> None:
    widths, radius = plan_chunks(1_000_000, 8)
    assert min(widths) >= 16 and sum(widths) == 64
    assert len(widths) * (radius + 1) > 8  # pigeonhole holds


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="threshold"):
        near_duplicate_pairs(np.zeros(3, np.uint64), 64)
    with pytest.raises(ValueError, match="sum to 64"):
        near_duplicate_pairs(np.zeros(3, np.uint64), 4, chunks=[30, 30])


def _table(tmp_path: Path, rows: list[tuple[str, str, str | None, Image.Image, str]]) -> pa.Table:
    """Process (identity, file name, species, image, format) rows through the real pipeline and hash them."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    catalogue = []
    for identity, name, species, img, fmt in rows:
        path = src / name
        if not path.exists():
            img.save(path, fmt, quality=90)
        catalogue.append({"identity_id": identity, "source": "test", "species": species, "path": str(path), "position": 0})
    images, rejected = process_images(catalogue_table(catalogue), tmp_path / "out", workers=1)
    assert rejected.num_rows == 0
    hashes = hash_images(images.column("path").to_pylist(), workers=1).select(["phash", "dhash"])
    return images.append_column("phash", hashes.column("phash")).append_column("dhash", hashes.column("dhash"))


@pytest.fixture
def corpus(tmp_path: Path) -> pa.Table:
    a, b, c, d = (photo(k, (640, 480)) for k in (11, 12, 13, 14))
    rows = [
        ("dog:1", "a_big.jpg", "dog", a, "JPEG"),
        ("dog:1", "a_small.jpg", "dog", a.resize((320, 240)), "JPEG"),  # near copy, smaller: dropped
        ("dog:1", "b.jpg", "dog", b, "JPEG"),  # a different photo of the same dog: kept
        ("dog:2", "b.jpg", "dog", b, "JPEG"),  # the exact same file under another listing
        ("dog:2", "e.jpg", "dog", photo(15, (480, 640)), "JPEG"),  # dog:2's own other photo
        ("cat:3", "c.jpg", "cat", c, "JPEG"),
        ("cat:4", "c.webp", None, c, "WEBP"),  # the same photo re-encoded under another listing: near
        ("dog:5", "d.jpg", "dog", d, "JPEG"),  # unrelated animal
    ]
    return _table(tmp_path, rows)


def _ids(table: pa.Table) -> list[str]:
    return sorted(table.column("identity_id").to_pylist())


def test_within_identity_keeps_largest_and_flags_cross_pairs(corpus: pa.Table) -> None:
    result = deduplicate(corpus, threshold=8, policy="flag")
    src = dict(zip(result.kept.column("src_path").to_pylist(), result.kept.column("identity_id").to_pylist()))
    assert not any(p.endswith("a_small.jpg") for p in src)
    assert any(p.endswith("a_big.jpg") for p in src)
    assert result.kept.num_rows == 7
    removed = result.removed.to_pylist()
    assert len(removed) == 1 and removed[0]["removed_reason"] == "within_identity"
    big_id = next(r["image_id"] for r in corpus.to_pylist() if r["src_path"].endswith("a_big.jpg"))
    assert removed[0]["is_duplicate_of"] == big_id
    pairs = {(r["identity_a"], r["identity_b"], r["kind"], r["action"]) for r in result.cross_identity.to_pylist()}
    assert pairs == {("dog:1", "dog:2", "exact", "flagged"), ("cat:3", "cat:4", "near", "flagged")}
    flagged = sorted((r["identity_id"], Path(r["src_path"]).name) for r in result.kept.to_pylist() if r["cross_identity_dup"])
    assert flagged == [("cat:3", "c.jpg"), ("cat:4", "c.webp"), ("dog:1", "b.jpg"), ("dog:2", "b.jpg")]
    assert result.stats["cross_identity_pairs"] == 2 and result.stats["within_identity_removed"] == 1
    assert sorted(len(g) for g in result.groups) == [2, 2, 2]
    d_row = next(r for r in result.kept.to_pylist() if r["identity_id"] == "dog:5")
    assert d_row["dup_group"] is None and not d_row["cross_identity_dup"]


def test_drop_policy_removes_both_sides(corpus: pa.Table) -> None:
    result = deduplicate(corpus, policy="drop")
    assert _ids(result.kept) == ["dog:1", "dog:2", "dog:5"]  # dog:1 keeps only a_big.jpg, dog:2 only e.jpg
    assert result.stats["dropped_cross_identity"] == 4
    assert set(result.cross_identity.column("action").to_pylist()) == {"dropped"}


def test_merge_policy_rewrites_identities(corpus: pa.Table) -> None:
    result = deduplicate(corpus, policy="merge")
    rows = result.kept.to_pylist()
    assert _ids(result.kept) == ["cat:3", "dog:1", "dog:1", "dog:1", "dog:5"]
    assert result.stats["merged_identities"] == 2 and result.stats["merged_duplicates_removed"] == 2
    merged = {Path(r["src_path"]).name: r["merged_from"] for r in rows if r["merged_from"]}
    assert merged == {"e.jpg": "dog:2"}  # dog:2's own photo moved to dog:1
    removed = {r["merged_from"]: r["removed_reason"] for r in result.removed.to_pylist() if r["merged_from"]}
    assert removed == {"dog:2": "merged_duplicate", "cat:4": "merged_duplicate"}


def test_distinct_animals_are_not_merged(tmp_path: Path) -> None:
    rows = [(f"dog:{k}", f"{k}.jpg", "dog", photo(1000 + k, (400, 300)), "JPEG") for k in range(40)]
    result = deduplicate(_table(tmp_path, rows), policy="merge")
    assert result.kept.num_rows == 40 and result.cross_identity.num_rows == 0
    assert result.stats["merged_identities"] == 0 and not result.groups


def test_distinct_real_animals_are_not_merged(oxford_pets: Path) -> None:
    files = sorted(oxford_pets.glob("images/*/*.jpg"))
    hashes = hash_images(files, workers=2)
    table = pa.table(
        {
            "identity_id": [f"oxford:{f.stem}" for f in files],
            "species": ["cat" if f.parent.name == "cats" else "dog" for f in files],
            "image_id": [f.stem for f in files],
            "path": [str(f) for f in files],
            "sha256": [str(k) for k in range(len(files))],
            "width": [1] * len(files),
            "height": [1] * len(files),
        }
    ).append_column("phash", hashes.column("phash")).append_column("dhash", hashes.column("dhash"))
    result = deduplicate(table, threshold=8, policy="merge")
    assert result.stats["merged_identities"] == 0
    assert result.kept.num_rows == len(files)


def test_species_conflict_is_never_merged(tmp_path: Path) -> None:
    img = photo(77, (400, 300))
    rows = [("dog:1", "x.jpg", "dog", img, "JPEG"), ("cat:2", "x.jpg", "cat", img, "JPEG")]
    result = deduplicate(_table(tmp_path, rows), policy="merge")
    assert _ids(result.kept) == ["cat:2", "dog:1"]
    assert result.cross_identity.column("action").to_pylist() == ["species_conflict"]


def test_dedup_rejects_bad_input(corpus: pa.Table) -> None:
    with pytest.raises(DedupError, match="policy"):
        deduplicate(corpus, policy="delete")
    with pytest.raises(DedupError, match="phash"):
        deduplicate(corpus.drop_columns(["phash"]))
    with pytest.raises(DedupError, match="appears more than once"):
        deduplicate(pa.concat_tables([corpus, corpus.slice(0, 1)]))


def test_policy_decisions() -> None:
    flag, drop, merge = (DedupPolicy.named(name) for name in POLICIES)
    assert [(p.drops, p.merges) for p in (flag, drop, merge)] == [(False, False), (True, False), (False, True)]
    assert [p.pair_action(merged=False) for p in (flag, drop, merge)] == ["flagged", "dropped", "species_conflict"]
    assert merge.pair_action(merged=True) == "merged"
    with pytest.raises(DedupError, match=r"policy must be one of \('flag', 'drop', 'merge'\), got 'delete'"):
        DedupPolicy.named("delete")


def test_dedup_cli_prints_groups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    a, b = photo(1, (500, 400)), photo(2, (500, 400))
    a.save(folder / "a.jpg", quality=90)
    a.resize((250, 200)).save(folder / "sub" / "a_small.webp", quality=80)
    b.save(folder / "b.png")
    (folder / "notes.txt").write_text("ignored")
    assert main(["dedup", str(folder), "--json", "--threshold", "6"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_images"] == 3 and out["seconds"] >= 0
    assert out["groups"] == [[str(folder / "a.jpg"), str(folder / "sub" / "a_small.webp")]]
    assert main(["dedup", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "3 images, 1 duplicate groups" in text and "a_small.webp" in text
    assert main(["dedup", str(tmp_path / "nope")]) == 2


def test_missing_sha_or_hash_is_never_a_duplicate() -> None:
    table = pa.table(
        {
            "identity_id": ["a", "b", "c", "d"],
            "image_id": ["1", "2", "3", "4"],
            "path": ["/w", "/x", "/y", "/z"],
            "sha256": pa.array([None, None, "s1", "s2"], pa.string()),
            "width": [10, 10, 10, 10],
            "height": [10, 10, 10, 10],
            "phash": pa.array([0, 2**64 - 1, None, None], pa.uint64()),  # 64 bits apart
            "dhash": pa.array([7, 2**30, None, None], pa.uint64()),
        }
    )
    result = deduplicate(table, policy="drop")
    assert result.kept.num_rows == 4 and result.cross_identity.num_rows == 0
    assert result.stats["unhashed"] == 4 and result.stats["exact_pairs"] == 0
