"""Lineage on real photos: with a detector configured, the YOLO crops of real Oxford pets are what the graph trains
on, and the trained version's data hash says so."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.shared]


def test_training_reads_the_detector_crops(oxford_pets: Path, yolo_model_dir: Path, tmp_path: Path) -> None:
    from dagster import AssetSelection, materialize

    from assets import curation, dataset, ingest, matching, model
    from dagster_project.definitions import build_resources
    from dagster_project.resources import DetectorResource
    from petid.records import empty_catalogue
    from training.registry import ModelRegistry, manifest_hash

    home = tmp_path / "home"
    rows = list(csv.DictReader(open(oxford_pets / "classification.csv")))
    breeds = sorted({r["breed"] for r in rows})[:8]  # 8 breeds × 10 real photos stand in for 8 "animals"
    listing = tmp_path / "pets.csv"
    with open(listing, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "identity", "species"])
        for r in rows:
            if r["breed"] in breeds:
                photo = oxford_pets / "images" / f"{r['species']}s" / f"{r['image_name']}.jpg"
                writer.writerow([str(photo), r["breed"], r["species"]])
    for empty in ("pet911_photos", "telegram_posts"):  # the other sources have nothing this run
        pq.write_table(empty_catalogue(), io_path(home, empty))
    train_yaml = tmp_path / "train.yaml"
    train_yaml.write_text("preset: demo\nbackbone: test_efficientnet\npretrained: none\nembedding_dim: 16\n"
                          "image_size: 64\nepochs: 1\nmax_steps: 1\np: 4\nnum_workers: 0\ncache_images: false\n"
                          "unfreeze_blocks: 99\n")
    resources = {**build_resources(home=str(home)), "detector": DetectorResource(weights=str(yolo_model_dir))}
    selection = (AssetSelection.assets("external_datasets", "match_decisions").downstream()
                 - AssetSelection.groups("matching") - AssetSelection.assets("evaluation_report", "search_index"))
    result = materialize(
        [asset for group in (ingest, curation, dataset, model, matching) for asset in group.defs.assets],
        selection=selection, resources=resources,
        run_config={"ops": {"external_datasets": {"config": {"specs": [f"csv:{listing}"]}},
                            "images": {"config": {"workers": 1}}, "image_hashes": {"config": {"workers": 1}},
                            "reid_model": {"config": {"config_file": str(train_yaml)}}}},
    )
    assert result.success
    crops = pq.read_table(io_path(home, "animal_crops")).to_pandas()
    assert (crops.crop_status == "cropped").sum() >= 20  # YOLO found most of these real cats and dogs
    meta = result.asset_materializations_for_node("reid_model")[0].metadata
    assert meta["crops_used"].value >= 10

    from curation.frames import model_frame

    splits = pq.read_table(io_path(home, "dataset_splits"))
    frame = model_frame(splits, splits=("train", "val"))
    registry = ModelRegistry(home / "models")
    trained = meta["trained_version"].value
    stored_hash = (registry.path(trained) / "data_manifest_hash").read_text().strip()
    assert stored_hash == manifest_hash(frame)  # trained on the crops...
    assert stored_hash != manifest_hash(frame.assign(sha256=frame["photo_sha256"]))  # ...not the full photos
    assert frame["path"].str.contains("/crops/").sum() == meta["crops_used"].value


def io_path(home: Path, key: str) -> Path:
    from petid.settings import Layout

    path = Layout(home).table(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path

