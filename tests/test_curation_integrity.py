"""A damaged curated JPEG is noticed: the conversion re-run redoes it, hashing re-converts it from its source and the
manifest check fails on it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from PIL import Image

from curation import checks
from curation.images import hash_curated, image_ok, process_images, process_stats
from petid.records import catalogue_table
from petid_sample.images import photo


def _curated(tmp_path: Path, n: int = 3) -> tuple[pa.Table, pa.Table]:
    src = tmp_path / "src"
    src.mkdir()
    paths = []
    for k in range(n):
        paths.append(src / f"{k}.png")
        photo(40 + k, (240, 180)).save(paths[-1])
    catalogue = catalogue_table({"identity_id": f"t:{k}", "source": "t", "path": str(p), "position": 0}
                                for k, p in enumerate(paths))
    images, rejected = process_images(catalogue, tmp_path / "out", workers=1)
    assert rejected.num_rows == 0
    return catalogue, images


def _truncate(path: str) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) * 2 // 3])


def _decodes(path: str) -> bool:
    try:
        with Image.open(path) as img:
            img.load()
    except OSError:
        return False
    return True


def test_rerun_redoes_a_truncated_curated_jpeg(tmp_path: Path) -> None:
    catalogue, images = _curated(tmp_path)
    damaged = images.column("path")[1].as_py()
    _truncate(damaged)
    assert not _decodes(damaged) and image_ok(damaged) is not None
    again, rejected = process_images(catalogue, tmp_path / "out", workers=1)
    assert rejected.num_rows == 0
    assert process_stats(again) == {"converted": 1, "reused": 2, "rejected": 0}
    assert _decodes(damaged) and image_ok(damaged) is None
    assert again.column("path").to_pylist() == images.column("path").to_pylist()


def test_manifest_check_catches_truncated_and_undecodable_files(tmp_path: Path) -> None:
    _, images = _curated(tmp_path, n=4)
    paths = images.column("path").to_pylist()
    assert checks.manifest_paths_exist(images).passed
    _truncate(paths[0])
    Path(paths[1]).write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG \xff\xd9")
    Path(paths[2]).write_bytes(b"")
    outcome = checks.manifest_paths_exist(images)
    assert not outcome.passed
    assert outcome.metadata["missing"] == 0 and outcome.metadata["unreadable"] == 3
    assert "3 of 4 files are unreadable" in outcome.description
    assert {e.split(":")[0] for e in outcome.metadata["examples"]} == set(paths[:3])
    Path(paths[3]).unlink()
    outcome = checks.manifest_paths_exist(images)
    assert outcome.metadata["missing"] == 1 and "1 of 4 files are missing" in outcome.description


def test_hash_curated_reconverts_a_file_that_fails_to_hash(tmp_path: Path) -> None:
    _, images = _curated(tmp_path)
    paths = images.column("path").to_pylist()
    _truncate(paths[0])
    Path(images.column("src_path")[2].as_py()).unlink()  # nothing to re-convert from
    _truncate(paths[2])
    hashes = hash_curated(images, workers=1)
    assert hashes.column("path").to_pylist() == paths
    errors = hashes.column("error").to_pylist()
    assert errors[0] is None and errors[1] is None and hashes.column("phash")[0].as_py() is not None
    assert _decodes(paths[0])
    assert "re-conversion failed" in errors[2] and "missing_file" in errors[2]
    assert hashes.schema.metadata[b"petid.reconverted"] == b"1"


def test_a_truncated_crop_is_rewritten_not_trusted(tmp_path: Path) -> None:
    from curation.crops import Detection, crop_images

    class OneDog:
        def detect(self, paths):
            return [[Detection("dog", 0.9, (20.0, 20.0, 200.0, 160.0))] for _ in paths]

    _, images = _curated(tmp_path, n=1)
    first = crop_images(images, OneDog(), tmp_path / "crops")
    crop = first.column("crop_path")[0].as_py()
    _truncate(crop)
    assert image_ok(crop) is not None
    second = crop_images(images, OneDog(), tmp_path / "crops")
    assert second.column("crop_path")[0].as_py() == crop and image_ok(crop) is None and _decodes(crop)
