"""Image and identity manifests: enforced schemas, crop join, splits with exclusions, checks."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from curation import checks
from curation.crops import CROPS_SCHEMA
from curation.manifest import (
    IDENTITY_MANIFEST_SCHEMA,
    IMAGE_MANIFEST_SCHEMA,
    ManifestSchemaError,
    build_identity_manifest,
    build_image_manifest,
    validate_manifest,
)
from petid.records import CATALOGUE_SCHEMA


def _tiny_jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 80, 40)).save(buf, "JPEG")
    return buf.getvalue()


_TINY_JPEG = _tiny_jpeg()


def _images(tmp_path: Path, photos: dict[str, int]) -> pa.Table:
    """A part-A style deduplicated images table: catalogue columns + curated path, ids, hashes."""
    rows = []
    for identity_id, n in photos.items():
        source = identity_id.split(":")[0]
        for pos in range(n):
            image_id = f"{identity_id}-{pos}".replace(":", "_")
            path = tmp_path / f"{image_id}.jpg"
            path.write_bytes(_TINY_JPEG)  # a real (tiny) JPEG: the paths check verifies files are intact
            rows.append(
                {
                    "identity_id": identity_id, "source": source, "species": "cat" if "c" in identity_id else "dog",
                    "kind": "lost", "date": "2024-05-01", "text": f"text of {identity_id}", "url": f"https://x/{identity_id}",
                    "path": str(path), "photo_url": None, "position": pos, "src_path": f"/raw/{image_id}.webp",
                    "image_id": image_id, "sha256": f"sha-{image_id}", "width": 640, "height": 480, "src_format": "WEBP",
                    "phash": 2**63 + pos, "dhash": pos,
                }
            )
    return pa.Table.from_pylist(rows, schema=IMAGES_SCHEMA)


# part A's deduplicated images: catalogue columns + these (sizes int64 here; the manifest casts them to int32)
IMAGES_SCHEMA = CATALOGUE_SCHEMA.append(pa.field("src_path", pa.string()))
for _name, _type in [("image_id", pa.string()), ("sha256", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
                     ("src_format", pa.string()), ("phash", pa.uint64()), ("dhash", pa.uint64())]:
    IMAGES_SCHEMA = IMAGES_SCHEMA.append(pa.field(_name, _type))


PHOTOS = {"pet911:c1": 3, "pet911:d2": 2, "pet911:d3": 1, "telegram:ch:c4": 4, "telegram:ch:d5": 1}


def test_build_image_manifest_joins_crops_and_assigns_splits(tmp_path: Path) -> None:
    images = _images(tmp_path, PHOTOS)
    crops = pa.Table.from_pylist(
        [
            {"image_id": "pet911_c1-0", "bbox": [1.0, 2.0, 30.0, 40.0], "crop_path": str(tmp_path / "pet911_c1-0.jpg"),
             "det_species": "cat", "det_conf": 0.9, "crop_status": "cropped"},
            {"image_id": "pet911_d2-1", "bbox": [5.0, 5.0, 9.0, 9.0], "crop_path": None,
             "det_species": "dog", "det_conf": 0.5, "crop_status": "too_small"},
        ],
        schema=CROPS_SCHEMA,
    )
    manifest = build_image_manifest(images, crops, min_photos=2, seed=0)
    assert manifest.schema.equals(IMAGE_MANIFEST_SCHEMA)
    assert manifest.num_rows == images.num_rows
    assert manifest.column("image_id").to_pylist() == images.column("image_id").to_pylist()  # row order kept
    rows = {r["image_id"]: r for r in manifest.to_pylist()}
    assert rows["pet911_c1-0"]["bbox"] == [1.0, 2.0, 30.0, 40.0] and rows["pet911_c1-0"]["crop_status"] == "cropped"
    assert rows["pet911_d2-1"]["crop_status"] == "too_small" and rows["pet911_d2-1"]["crop_path"] is None
    assert rows["pet911_c1-1"]["crop_status"] == "disabled" and rows["pet911_c1-1"]["bbox"] is None
    assert rows["pet911_c1-0"]["phash"] == 2**63
    split_of = {r["identity_id"]: r["split"] for r in rows.values()}
    assert split_of["pet911:d3"] == "excluded" and split_of["telegram:ch:d5"] == "excluded"
    assert {split_of[i] for i in ("pet911:c1", "pet911:d2", "telegram:ch:c4")} <= {"train", "val", "test"}
    assert checks.no_identity_in_two_splits(manifest).passed
    assert checks.manifest_paths_exist(manifest).passed
    assert checks.no_duplicate_content_within_identity(manifest).passed
    assert checks.min_photos_per_identity_in_splits(manifest, min_photos=2).passed
    assert checks.schema_matches(manifest, IMAGE_MANIFEST_SCHEMA).passed


def test_without_crops_every_row_is_disabled_and_min_photos_is_configurable(tmp_path: Path) -> None:
    manifest = build_image_manifest(_images(tmp_path, PHOTOS), None, min_photos=4)
    assert set(manifest.column("crop_status").to_pylist()) == {"disabled"}
    in_splits = manifest.filter(pc.not_equal(manifest.column("split"), "excluded"))
    assert set(in_splits.column("identity_id").to_pylist()) == {"telegram:ch:c4"}


def test_identity_manifest_rolls_up_images(tmp_path: Path) -> None:
    images = _images(tmp_path, PHOTOS)
    crops = pa.Table.from_pylist(
        [{"image_id": "telegram_ch_c4-2", "bbox": [0.0, 0.0, 50.0, 50.0], "crop_path": "/c.jpg", "det_species": "cat",
          "det_conf": 0.8, "crop_status": "cropped"}],
        schema=CROPS_SCHEMA,
    )
    identities = build_identity_manifest(build_image_manifest(images, crops))
    assert identities.schema.equals(IDENTITY_MANIFEST_SCHEMA)
    rows = {r["identity_id"]: r for r in identities.to_pylist()}
    assert set(rows) == set(PHOTOS)
    assert {i: r["n_images"] for i, r in rows.items()} == PHOTOS
    c4 = rows["telegram:ch:c4"]
    assert (c4["source"], c4["species"], c4["kind"], c4["n_cropped"]) == ("telegram", "cat", "lost", 1)
    assert c4["text"] == "text of telegram:ch:c4" and c4["url"] == "https://x/telegram:ch:c4"
    assert rows["pet911:d3"]["split"] == "excluded"


def test_validate_manifest_names_columns_and_rows_at_fault(tmp_path: Path) -> None:
    manifest = build_image_manifest(_images(tmp_path, PHOTOS), None)
    with pytest.raises(ManifestSchemaError, match=r"missing column\(s\) \['phash'\]"):
        validate_manifest(manifest.drop_columns(["phash"]), IMAGE_MANIFEST_SCHEMA)
    with pytest.raises(ManifestSchemaError, match=r"unexpected column\(s\) \['extra'\]"):
        validate_manifest(manifest.append_column("extra", pa.array([1] * manifest.num_rows)), IMAGE_MANIFEST_SCHEMA)
    retyped = manifest.set_column(manifest.column_names.index("width"), "width", manifest.column("width").cast(pa.int64()))
    with pytest.raises(ManifestSchemaError, match="'width' has type int64, expected int32"):
        validate_manifest(retyped, IMAGE_MANIFEST_SCHEMA)
    splits = manifest.column("split").to_pylist()
    splits[3] = "holdout"
    bad_split = manifest.set_column(manifest.column_names.index("split"), "split", pa.array(splits))
    with pytest.raises(ManifestSchemaError, match=r"'split' has value\(s\) \['holdout'\].*row\(s\) \[3\]"):
        validate_manifest(bad_split, IMAGE_MANIFEST_SCHEMA)
    outcome = checks.schema_matches(bad_split, IMAGE_MANIFEST_SCHEMA)
    assert not outcome.passed and "holdout" in outcome.description
    ids = manifest.column("identity_id").to_pylist()
    ids[5] = None
    nulled = manifest.set_column(manifest.column_names.index("identity_id"), pa.field("identity_id", pa.string(), False), pa.array(ids))
    with pytest.raises(ManifestSchemaError, match=r"'identity_id' has 1 null\(s\) at row\(s\) \[5\]"):
        validate_manifest(nulled, IMAGE_MANIFEST_SCHEMA)
    with pytest.raises(ManifestSchemaError, match="required column"):
        build_image_manifest(_images(tmp_path, PHOTOS).drop_columns(["path"]), None)
    species = manifest.column("species").to_pylist()
    species[0] = "hamster"
    with pytest.raises(ManifestSchemaError, match="hamster"):
        build_image_manifest(_images(tmp_path, PHOTOS).set_column(2, "species", pa.array(species)), None)


def test_checks_catch_leaks_missing_files_duplicates_and_thin_identities(tmp_path: Path) -> None:
    manifest = build_image_manifest(_images(tmp_path, PHOTOS), None)
    rows = manifest.to_pylist()
    rows[0]["split"], rows[1]["split"] = "train", "test"  # pet911:c1 leaks across splits
    rows[2]["sha256"] = rows[1]["sha256"]  # same content twice in pet911:c1
    Path(rows[4]["path"]).unlink()
    rows[5]["split"] = "val"  # pet911:d3 has one photo but sits in a split
    broken = pa.Table.from_pylist(rows, schema=IMAGE_MANIFEST_SCHEMA)

    leak = checks.no_identity_in_two_splits(broken)
    assert not leak.passed and leak.metadata["examples"] == ["pet911:c1"]
    missing = checks.manifest_paths_exist(broken)
    assert not missing.passed and missing.metadata["examples"] == [rows[4]["path"]]
    dupes = checks.no_duplicate_content_within_identity(broken)
    assert not dupes.passed and dupes.metadata["duplicates"] == 1
    thin = checks.min_photos_per_identity_in_splits(broken, min_photos=2)
    assert not thin.passed and thin.metadata["examples"] == ["pet911:d3"]


def test_write_parquet_is_atomic_and_round_trips(tmp_path: Path) -> None:
    manifest = build_image_manifest(_images(tmp_path, PHOTOS), None)
    from petid.paths import atomic_write_parquet

    out = atomic_write_parquet(manifest, tmp_path / "tables" / "image_manifest.parquet")
    assert pq.read_table(out).equals(manifest)
    assert [p.name for p in out.parent.iterdir()] == ["image_manifest.parquet"]  # no temporary file left behind
