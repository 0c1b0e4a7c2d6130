"""Generic dataset layouts, the shared validator and load_catalogue's spec handling."""

from __future__ import annotations

from pathlib import Path

import pytest

from petid.records import CATALOGUE_SCHEMA
from petid.stats import photos_per_identity
from scrapers.datasets import CatalogueValidationError, DatasetLayoutError, load_catalogue, validate_catalogue
from scrapers.datasets._common import Imported

JPEG = b"\xff\xd8\xff\xe0" + b"0" * 64


def _write(path: Path, data: bytes = JPEG) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_kennel_dev_through_identity_folders(kennel_dev: Path) -> None:
    table = load_catalogue(f"identity-folders:{kennel_dev / 'images'}")
    assert table.schema.equals(CATALOGUE_SCHEMA)
    stats = photos_per_identity(table["identity_id"].to_pylist())
    assert (stats["n_identities"], stats["n_images"]) == (14, 359)
    assert set(table["source"].to_pylist()) == {"kennel_dev"}
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in table["path"].to_pylist())


def test_kennel_dev_csv_matches_folders(kennel_dev: Path) -> None:
    by_csv = load_catalogue(f"csv:{kennel_dev / 'labels.csv'}")
    by_folders = load_catalogue(f"identity-folders:{kennel_dev / 'images'}")
    pairs = lambda t: sorted(zip(t["identity_id"].to_pylist(), t["path"].to_pylist()))  # noqa: E731
    assert pairs(by_csv) == pairs(by_folders)


def test_identity_folders_positions_and_source(tmp_path: Path) -> None:
    root = tmp_path / "my_pets"
    for name in ("b.jpg", "a.PNG", "notes.txt"):
        _write(root / "rex" / name)
    _write(root / "tom" / "nested" / "x.webp")
    table = load_catalogue(f"identity-folders:{root}")
    rows = table.to_pylist()
    assert [(r["identity_id"], Path(r["path"]).name, r["position"]) for r in rows] == [
        ("my_pets:rex", "a.PNG", 0), ("my_pets:rex", "b.jpg", 1), ("my_pets:tom", "x.webp", 0)]
    assert {r["source"] for r in rows} == {"my_pets"}


def test_identity_folder_without_images_is_named(tmp_path: Path) -> None:
    _write(tmp_path / "pets" / "rex" / "1.jpg")
    (tmp_path / "pets" / "ghost").mkdir()
    with pytest.raises(CatalogueValidationError, match=r"identity without images.*pets:ghost"):
        load_catalogue(f"identity-folders:{tmp_path / 'pets'}")


def test_csv_relative_paths_species_and_missing_file(tmp_path: Path) -> None:
    _write(tmp_path / "ds" / "img" / "1.jpg")
    _write(tmp_path / "ds" / "img" / "2.jpg")
    absolute = _write(tmp_path / "elsewhere" / "3.jpg")
    csv = tmp_path / "ds" / "labels.csv"
    csv.write_text(f"path,identity,species\nimg/1.jpg,7,Dog\nimg/2.jpg,7,dog\n{absolute},8,cats\n")
    rows = load_catalogue(f"csv:{csv}").to_pylist()
    assert [(r["identity_id"], r["species"], r["position"]) for r in rows] == [
        ("ds:7", "dog", 0), ("ds:7", "dog", 1), ("ds:8", "cat", 0)]
    assert rows[0]["path"] == str(tmp_path / "ds" / "img" / "1.jpg")

    csv.write_text("path,identity\nimg/1.jpg,7\nimg/404.jpg,7\nimg/405.jpg,9\n")
    with pytest.raises(CatalogueValidationError) as err:
        load_catalogue(f"csv:{csv}")
    message = str(err.value)
    assert "file missing: 2 row(s)" in message and "404.jpg" in message and "405.jpg" in message


def test_csv_bad_species_and_duplicates_named(tmp_path: Path) -> None:
    _write(tmp_path / "ds" / "1.jpg")
    csv = tmp_path / "ds" / "labels.csv"
    csv.write_text("path,identity,species\n1.jpg,a,dog\n1.jpg,a,dog\n1.jpg,b,hamster\n")
    with pytest.raises(CatalogueValidationError) as err:
        load_catalogue(f"csv:{csv}")
    message = str(err.value)
    assert "duplicate (identity_id, path): 1 row(s): row 1 (ds:a," in message
    assert "species=hamster" in message.replace("'", "")


def test_csv_missing_columns(tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label\n1.jpg,a\n")
    with pytest.raises(DatasetLayoutError, match=r"lacks column\(s\) \['identity', 'path'\]"):
        load_catalogue(f"csv:{csv}")


def test_unknown_format_lists_known(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown dataset format 'nope'.*identity-folders.*csv"):
        load_catalogue(f"nope:{tmp_path}")
    with pytest.raises(ValueError, match="known formats"):
        load_catalogue("just-a-path")


def test_validator_message_truncates_and_counts(tmp_path: Path) -> None:
    imported = Imported("x")
    for i in range(8):
        imported.add(str(i), [tmp_path / f"missing{i}.jpg"])
    with pytest.raises(CatalogueValidationError) as err:
        validate_catalogue(imported.table(), name="x-set")
    message = str(err.value)
    assert "file missing: 8 row(s)" in message and "missing0.jpg" in message and "(+3 more)" in message
    assert "missing7.jpg" not in message
    assert len(err.value.problems["file missing"]) == 8
