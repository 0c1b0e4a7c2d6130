"""YOLO crops: a real detector on real pet photos, and the selection rules with a scripted detector."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from curation.crops import (
    CROPS_SCHEMA,
    CropError,
    Detection,
    YoloDetector,
    choose_detection,
    crop_box,
    crop_images,
)


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _images(rows: list[tuple[str, str, str | None]]) -> pa.Table:
    return pa.table(
        {
            "image_id": [r[0] for r in rows],
            "path": [r[1] for r in rows],
            "species": pa.array([r[2] for r in rows], pa.string()),
        }
    )


@pytest.fixture
def torch_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Three torch threads and no OMP_NUM_THREADS for the test; the process's settings are put back after."""
    import torch

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(3)
    yield 3
    torch.set_num_threads(before)


def test_yolo_openvino_crops_real_pets(oxford_pets: Path, yolo_model_dir: Path, tmp_path: Path,
                                       torch_threads: int) -> None:
    truth = {r["image_name"]: r for r in csv.DictReader((oxford_pets / "bboxes.csv").open())}
    species = {r["image_name"]: r["species"] for r in csv.DictReader((oxford_pets / "classification.csv").open())}
    cat, dog = "Abyssinian_101", "shiba_inu_159"  # their annotated box covers most of the animal
    assert (species[cat], species[dog]) == ("cat", "dog")
    cat_path = oxford_pets / "images" / "cats" / f"{cat}.jpg"
    dog_path = oxford_pets / "images" / "dogs" / f"{dog}.jpg"
    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (400, 300), (128, 128, 128)).save(blank)

    detector = YoloDetector(str(yolo_model_dir), conf=0.25, imgsz=640, batch=2)
    images = _images(
        [("cat", str(cat_path), "cat"), ("dog", str(dog_path), "dog"), ("blank", str(blank), "dog"),
         ("dog-as-cat", str(dog_path), "cat"), ("dog-unknown", str(dog_path), None)]
    )
    crops = crop_images(images, detector, tmp_path / "crops", margin=0.1, min_box_side=32)
    assert crops.schema.equals(CROPS_SCHEMA)
    import torch  # Ultralytics set OMP_NUM_THREADS=1 and torch to cores - 1 threads; training after crops keeps its own

    assert torch.get_num_threads() == torch_threads and "OMP_NUM_THREADS" not in os.environ
    rows = {r["image_id"]: r for r in crops.to_pylist()}

    for key, name, path in (("cat", cat, cat_path), ("dog", dog, dog_path)):
        row = rows[key]
        assert row["crop_status"] == "cropped" and row["det_species"] == key and row["det_conf"] > 0.5
        gt = [float(truth[name][k]) for k in ("xmin", "ymin", "xmax", "ymax")]
        assert _iou(row["bbox"], gt) > 0.5, (name, row["bbox"], gt)
        crop = Path(row["crop_path"])
        assert crop.is_file() and crop.is_relative_to(tmp_path / "crops") and crop.stem == crop.parent.name + crop.stem[2:]
        with Image.open(path) as full, Image.open(crop) as cropped:
            left, top, right, bottom = crop_box(row["bbox"], full.width, full.height, 0.1)
            assert cropped.size == (right - left, bottom - top)
            if key == "cat":  # the cat fills part of its photo: the crop is visibly smaller
                assert cropped.width * cropped.height < 0.8 * full.width * full.height

    assert rows["blank"]["crop_status"] == "no_detection" and rows["blank"]["bbox"] is None
    assert rows["blank"]["crop_path"] is None
    assert rows["dog-as-cat"]["crop_status"] == "species_mismatch" and rows["dog-as-cat"]["det_species"] == "dog"
    assert rows["dog-as-cat"]["crop_path"] is None and rows["dog-as-cat"]["bbox"] == rows["dog"]["bbox"]
    assert rows["dog-unknown"]["crop_status"] == "cropped" and rows["dog-unknown"]["crop_path"] == rows["dog"]["crop_path"]


class ScriptedDetector:
    """Returns fixed detections per path; records the batches it was asked for."""

    def __init__(self, script: dict[str, list[Detection]]) -> None:
        self.script = script
        self.calls: list[int] = []

    def detect(self, paths: Sequence[str]) -> list[list[Detection]]:
        self.calls.append(len(paths))
        return [self.script.get(Path(p).stem, []) for p in paths]


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, str]:
    rng = np.random.default_rng(0)
    out = {}
    for name in ("two_dogs", "cat_and_dog", "tiny", "weak", "nothing", "other"):
        path = tmp_path / f"{name}.jpg"
        Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(path)
        out[name] = str(path)
    return out


SCRIPT = {
    "two_dogs": [Detection("dog", 0.9, (10, 10, 60, 60)), Detection("dog", 0.6, (100, 20, 290, 190))],
    "cat_and_dog": [Detection("dog", 0.95, (0, 0, 250, 190)), Detection("cat", 0.7, (200, 100, 280, 180))],
    "tiny": [Detection("cat", 0.9, (10, 10, 30, 200))],
    "weak": [Detection("dog", 0.2, (10, 10, 200, 150))],
    "other": [Detection("cat", 0.8, (20, 20, 120, 120))],
}


def test_selection_rules_with_a_scripted_detector(photos: dict[str, str], tmp_path: Path) -> None:
    images = _images(
        [("a", photos["two_dogs"], "dog"), ("b", photos["cat_and_dog"], "cat"), ("c", photos["tiny"], "cat"),
         ("d", photos["weak"], "dog"), ("e", photos["nothing"], None), ("f", photos["other"], "other"),
         ("g", photos["cat_and_dog"], "dog")]
    )
    detector = ScriptedDetector(SCRIPT)
    crops = crop_images(images, detector, tmp_path / "crops", margin=0.0, min_box_side=32, min_conf=0.25, chunk_size=3)
    assert detector.calls == [3, 3, 1]  # bounded chunks
    rows = {r["image_id"]: r for r in crops.to_pylist()}
    statuses = {k: r["crop_status"] for k, r in rows.items()}
    assert statuses == {"a": "cropped", "b": "cropped", "c": "too_small", "d": "no_detection", "e": "no_detection",
                        "f": "species_mismatch", "g": "cropped"}
    assert rows["a"]["bbox"] == [100, 20, 290, 190]  # the largest confident dog, not the most confident one
    assert rows["b"]["det_species"] == "cat" and rows["b"]["bbox"] == [200, 100, 280, 180]  # listing says cat
    assert rows["g"]["det_species"] == "dog" and rows["g"]["bbox"] == [0, 0, 250, 190]
    assert rows["c"]["bbox"] == [10, 10, 30, 200] and rows["c"]["crop_path"] is None
    with Image.open(rows["a"]["crop_path"]) as crop:
        assert crop.size == (190, 170)
    # re-running writes the same content-addressed files
    again = crop_images(images, ScriptedDetector(SCRIPT), tmp_path / "crops", margin=0.0)
    assert again.column("crop_path").to_pylist() == crops.column("crop_path").to_pylist()


def test_no_detector_means_disabled(photos: dict[str, str], tmp_path: Path) -> None:
    crops = crop_images(_images([("a", photos["tiny"], "cat"), ("b", photos["weak"], None)]), None, tmp_path / "crops")
    assert crops.schema.equals(CROPS_SCHEMA)
    assert crops.column("crop_status").to_pylist() == ["disabled", "disabled"]
    assert crops.column("crop_path").null_count == 2 and not (tmp_path / "crops").exists()


def test_margin_is_clipped_and_choose_detection_handles_empty() -> None:
    assert crop_box((10, 10, 110, 60), 120, 100, 0.2) == (0, 0, 120, 70)
    assert crop_box((10.4, 10.6, 20.2, 20.9), 100, 100, 0.0) == (10, 10, 21, 21)
    assert choose_detection([], "cat", 0.25) == (None, "no_detection")


def test_errors_name_the_offending_item(tmp_path: Path) -> None:
    bad = tmp_path / "not_an_image.jpg"
    bad.write_text("hello")
    with pytest.raises(CropError, match="weights not found: /nonexistent/yolo_openvino_model"):
        YoloDetector("/nonexistent/yolo_openvino_model").detect([str(bad)])
    with pytest.raises(CropError, match="not_an_image.jpg"):
        crop_images(_images([("x", str(bad), "dog")]), ScriptedDetector({"not_an_image": SCRIPT["two_dogs"]}), tmp_path)
    # importing ultralytics (done above) must not leave Pillow patched to pip-install plugins on bad files
    with pytest.raises(Image.UnidentifiedImageError):
        Image.open(bad)
    with pytest.raises(ValueError, match="path"):
        crop_images(pa.table({"image_id": ["x"]}), None, tmp_path)
