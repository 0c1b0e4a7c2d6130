"""Curation reruns cost what is new: conversions, hashes and detector decisions are recorded by content and reused;
a changed option, a damaged output or a damaged cache only means the work is done again."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pytest

import curation.cache
import curation.hashing
import curation.images
from curation.cache import CACHE_DIRNAME, work_stats
from curation.crops import Detection, crop_images
from curation.hashing import hash_images
from curation.images import ImageOptions, hash_curated, process_images, process_stats
from petid.records import catalogue_table
from petid_sample.images import photo


def _photos(folder: Path, seeds: Sequence[int]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        paths.append(folder / f"{seed}.{'jpg' if seed % 2 else 'png'}")
        photo(seed, (200, 150)).save(paths[-1])
    return paths


def _catalogue(paths: Sequence[Path]) -> pa.Table:
    return catalogue_table({"identity_id": f"t:{p.stem}", "source": "t", "path": str(p), "position": 0}
                           for p in paths)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the source decodes of in-process conversions (``workers=1``)."""
    calls: list[int] = []
    original = curation.images._convert

    def counting(data: bytes, options: ImageOptions):
        calls.append(len(data))
        return original(data, options)

    monkeypatch.setattr(curation.images, "_convert", counting)
    return calls


@pytest.fixture
def no_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """``hash_curated`` must not decode anything."""

    def refuse(*args, **kwargs):
        raise AssertionError("hash_images called")

    monkeypatch.setattr(curation.hashing, "hash_images", refuse)


def test_second_run_decodes_nothing_and_hashes_come_from_the_records(tmp_path: Path, decodes: list[int]) -> None:
    catalogue = _catalogue(_photos(tmp_path / "src", range(6)))
    first, _ = process_images(catalogue, tmp_path / "out", workers=1)
    assert len(decodes) == 6 and work_stats(first)["decoded"] == 6
    first_hashes = hash_curated(first, workers=1)
    assert work_stats(first_hashes) == {"hashed": 0, "reused": 6}  # hashed during the conversion's decode
    reference = hash_images(first.column("path").to_pylist(), workers=1)  # what hashing the files gives
    for column in ("phash", "dhash", "error"):
        assert first_hashes.column(column).to_pylist() == reference.column(column).to_pylist()

    again, _ = process_images(catalogue, tmp_path / "out", workers=1)
    assert len(decodes) == 6 and work_stats(again)["decoded"] == 0
    assert process_stats(again) == {"converted": 0, "reused": 6, "rejected": 0}
    assert again.to_pylist() == first.to_pylist()
    assert hash_curated(again, workers=1).to_pylist() == first_hashes.to_pylist()


def test_settled_files_are_not_even_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_hashing: None) -> None:
    monkeypatch.setattr(curation.cache, "RACY_NS", -10**12)  # as if every file were written long ago
    catalogue = _catalogue(_photos(tmp_path / "src", range(4)))
    first, _ = process_images(catalogue, tmp_path / "out", workers=1)
    again, _ = process_images(catalogue, tmp_path / "out", workers=1)
    assert work_stats(again) == {"from_records": 4, "read": 0, "decoded": 0}
    assert again.to_pylist() == first.to_pylist()
    assert work_stats(hash_curated(again, workers=1)) == {"hashed": 0, "reused": 4}
    src = Path(catalogue.column("path")[0].as_py())
    photo(99, (200, 150)).save(src, "PNG")  # rewritten in place: read, and decoded as the new bytes they are
    third, _ = process_images(catalogue, tmp_path / "out", workers=1)
    assert work_stats(third) == {"from_records": 3, "read": 1, "decoded": 1}
    assert third.column("sha256")[0].as_py() != first.column("sha256")[0].as_py()


def test_a_new_photo_is_decoded_exactly_once(tmp_path: Path, decodes: list[int]) -> None:
    paths = _photos(tmp_path / "src", range(5))
    process_images(_catalogue(paths), tmp_path / "out", workers=1)
    paths += _photos(tmp_path / "src", [50])
    decodes.clear()
    grown, _ = process_images(_catalogue(paths), tmp_path / "out", workers=1)
    assert len(decodes) == 1 and process_stats(grown) == {"converted": 1, "reused": 5, "rejected": 0}
    assert work_stats(hash_curated(grown, workers=1)) == {"hashed": 0, "reused": 6}
    process_images(_catalogue(paths), tmp_path / "out", workers=1)
    assert len(decodes) == 1


def test_a_changed_option_invalidates_reuse(tmp_path: Path, decodes: list[int]) -> None:
    catalogue = _catalogue(_photos(tmp_path / "src", range(3)))
    first, _ = process_images(catalogue, tmp_path / "out", workers=1)
    before = [Path(p).read_bytes() for p in first.column("path").to_pylist()]
    options = ImageOptions(jpeg_quality=70)
    lower, _ = process_images(catalogue, tmp_path / "out", options, workers=1)
    assert len(decodes) == 6 and process_stats(lower)["converted"] == 3
    assert [Path(p).read_bytes() for p in lower.column("path").to_pylist()] != before
    hashes = hash_curated(lower, options, workers=1)
    assert work_stats(hashes)["reused"] == 3
    fresh = hash_images(lower.column("path").to_pylist(), workers=1)
    assert hashes.column("phash").to_pylist() == fresh.column("phash").to_pylist()
    process_images(catalogue, tmp_path / "out", ImageOptions(jpeg_quality=70, chunk_size=2), workers=1)
    assert len(decodes) == 6  # chunk_size is not an output setting
    back, _ = process_images(catalogue, tmp_path / "out", workers=1)  # the quality-90 records no longer hold
    assert len(decodes) == 9 and [Path(p).read_bytes() for p in back.column("path").to_pylist()] == before


def test_rejections_are_recorded_by_content(tmp_path: Path, decodes: list[int]) -> None:
    good = _photos(tmp_path / "src", [1])[0]
    truncated = tmp_path / "src" / "cut.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    catalogue = _catalogue([good, truncated])
    _, rejected = process_images(catalogue, tmp_path / "out", workers=1)
    _, again = process_images(catalogue, tmp_path / "out", workers=1)
    assert len(decodes) == 2 and again.to_pylist() == rejected.to_pylist()
    assert again.column("reason").to_pylist() == ["truncated"]


def test_a_corrupt_cache_is_ignored_and_the_work_redone(tmp_path: Path, decodes: list[int]) -> None:
    catalogue = _catalogue(_photos(tmp_path / "src", range(4)))
    first, _ = process_images(catalogue, tmp_path / "out", workers=1)
    hashes = hash_curated(first, workers=1)
    segments = sorted((tmp_path / "out" / CACHE_DIRNAME).glob("*/seg-*.parquet"))
    assert {s.parent.name.split("-")[0] for s in segments} == {"files", "conversions", "hashes"}
    for k, segment in enumerate(segments):  # garbage, cut short, or a valid Parquet file of another schema
        if k % 3 == 0:
            segment.write_bytes(b"not parquet at all")
        elif k % 3 == 1:
            segment.write_bytes(segment.read_bytes()[:50])
        else:
            import pyarrow.parquet as pq

            pq.write_table(pa.table({"k0": [1]}), segment)
    decodes.clear()
    again, rejected = process_images(catalogue, tmp_path / "out", workers=1)
    assert rejected.num_rows == 0 and len(decodes) == 4 and again.to_pylist() == first.to_pylist()
    assert hash_curated(again, workers=1).to_pylist() == hashes.to_pylist()
    assert not any(s.exists() for s in segments)  # the damaged segments are gone, fresh ones written
    process_images(catalogue, tmp_path / "out", workers=1)
    assert len(decodes) == 4


def test_a_missing_cache_adopts_intact_outputs(tmp_path: Path, decodes: list[int]) -> None:
    """Outputs from before the records existed (no cache directory) are taken as they are, as reruns always did."""
    import shutil

    catalogue = _catalogue(_photos(tmp_path / "src", range(3)))
    first, _ = process_images(catalogue, tmp_path / "out", workers=1)
    shutil.rmtree(tmp_path / "out" / CACHE_DIRNAME)
    again, _ = process_images(catalogue, tmp_path / "out", workers=1)
    assert len(decodes) == 3 and process_stats(again)["reused"] == 3 and again.to_pylist() == first.to_pylist()
    assert work_stats(hash_curated(again, workers=1))["hashed"] == 3  # hashed once more, then recorded
    assert work_stats(hash_curated(again, workers=1)) == {"hashed": 0, "reused": 3}


def test_a_damaged_output_is_converted_again_and_rehashed(tmp_path: Path, decodes: list[int]) -> None:
    catalogue = _catalogue(_photos(tmp_path / "src", range(3)))
    first, _ = process_images(catalogue, tmp_path / "out", workers=1)
    hashes = hash_curated(first, workers=1)
    damaged = Path(first.column("path")[1].as_py())
    data = damaged.read_bytes()
    damaged.write_bytes(data[:100] + bytes(len(data) - 100))  # same size, garbage after the header
    redone = hash_curated(first, workers=1)
    assert redone.schema.metadata[b"petid.reconverted"] == b"1" and redone.to_pylist() == hashes.to_pylist()
    assert damaged.read_bytes() == data
    damaged.write_bytes(data[: len(data) // 2])
    again, _ = process_images(catalogue, tmp_path / "out", workers=1)
    assert process_stats(again) == {"converted": 1, "reused": 2, "rejected": 0} and damaged.read_bytes() == data


def test_worker_processes_record_too(tmp_path: Path) -> None:
    catalogue = _catalogue(_photos(tmp_path / "src", range(8)))
    options = ImageOptions(chunk_size=2)
    first, _ = process_images(catalogue, tmp_path / "out", options, workers=2)
    assert work_stats(first)["decoded"] == 8
    again, _ = process_images(catalogue, tmp_path / "out", options, workers=2)
    assert work_stats(again)["decoded"] == 0 and again.to_pylist() == first.to_pylist()
    assert work_stats(hash_curated(again, options, workers=2)) == {"hashed": 0, "reused": 8}


class KeyedDetector:
    """One dog box per image; counts the images it is asked about."""

    def __init__(self, cache_key: str = "fake-dog-detector v1") -> None:
        self.cache_key = cache_key
        self.seen: list[str] = []

    def detect(self, paths: Sequence[str]) -> list[list[Detection]]:
        self.seen += list(paths)
        return [[Detection("dog", 0.9, (10.5, 12.0, 150.25, 120.0))] for _ in paths]


def test_detector_decisions_and_crops_are_reused_by_content(tmp_path: Path) -> None:
    images, _ = process_images(_catalogue(_photos(tmp_path / "src", range(3))), tmp_path / "out", workers=1)
    detector = KeyedDetector()
    first = crop_images(images, detector, tmp_path / "crops")
    assert len(detector.seen) == 3 and work_stats(first) == {"detected": 3, "reused": 0}
    again = crop_images(images, detector, tmp_path / "crops")
    assert len(detector.seen) == 3 and work_stats(again) == {"detected": 0, "reused": 3}
    assert again.to_pylist() == first.to_pylist()
    crop = Path(first.column("crop_path")[0].as_py())
    crop.write_bytes(crop.read_bytes()[:200])  # a damaged crop is cut again from the recorded decision
    third = crop_images(images, detector, tmp_path / "crops")
    assert len(detector.seen) == 3 and third.to_pylist() == first.to_pylist() and len(crop.read_bytes()) > 200
    other = KeyedDetector("fake-dog-detector v2")  # another model or setting: asked again
    crop_images(images, other, tmp_path / "crops")
    assert len(other.seen) == 3
    moved = images.set_column(images.column_names.index("image_id"), "image_id",
                              pa.array([f"new-{k}" for k in range(3)]))
    crop_images(moved, detector, tmp_path / "crops")  # keyed by content, not by id or row
    assert len(detector.seen) == 3


def test_detectors_without_a_key_are_always_asked(tmp_path: Path) -> None:
    images, _ = process_images(_catalogue(_photos(tmp_path / "src", range(2))), tmp_path / "out", workers=1)

    class Anonymous(KeyedDetector):
        cache_key = None  # type: ignore[assignment]

        def __init__(self) -> None:
            self.seen = []

    detector = Anonymous()
    crop_images(images, detector, tmp_path / "crops")
    crop_images(images, detector, tmp_path / "crops")
    assert len(detector.seen) == 4


def test_yolo_cache_key_names_weights_and_settings(tmp_path: Path) -> None:
    from curation.crops import YoloDetector

    weights = tmp_path / "w.pt"
    weights.write_bytes(b"weights one")
    key = YoloDetector(str(weights)).cache_key
    assert key == YoloDetector(str(weights)).cache_key != YoloDetector(str(weights), conf=0.5).cache_key
    weights.write_bytes(b"weights two")
    assert YoloDetector(str(weights)).cache_key != key
    assert "yolo11n.pt" in YoloDetector("yolo11n.pt").cache_key


def test_segments_are_compacted_and_records_survive(tmp_path: Path, decodes: list[int]) -> None:
    paths: list[Path] = []
    for night in range(curation.cache.MAX_SEGMENTS + 3):  # one new photo a night: one new segment per table
        paths += _photos(tmp_path / "src", [night])
        process_images(_catalogue(paths), tmp_path / "out", workers=1)
    assert len(decodes) == len(paths)
    for table in (tmp_path / "out" / CACHE_DIRNAME).iterdir():
        assert 1 <= len(list(table.glob("seg-*.parquet"))) <= curation.cache.MAX_SEGMENTS
    again, _ = process_images(_catalogue(paths), tmp_path / "out", workers=1)
    assert len(decodes) == len(paths) and work_stats(again)["decoded"] == 0
