"""Each published-dataset importer on a fixture generated in that dataset's on-disk layout, plus the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from petid_app.cli import main
from scrapers.datasets import CatalogueValidationError, DatasetLayoutError, load_catalogue

JPEG = b"\xff\xd8\xff\xe0" + b"x" * 32


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(JPEG + path.name.encode())
    return path


def _summary(table) -> list[tuple[str, str, str | None, int]]:
    return [(r["identity_id"], Path(r["path"]).name, r["species"], r["position"]) for r in table.to_pylist()]


def test_dogfacenet_layout(tmp_path: Path) -> None:
    for dog, n in ((0, 2), (10, 1), (2, 3)):
        for i in range(n):
            _touch(tmp_path / "after_4_bis" / str(dog) / f"{dog}.{i}.jpg")
    _touch(tmp_path / "classes_train.txt")
    table = load_catalogue(f"dogfacenet:{tmp_path}")
    ids = table["identity_id"].to_pylist()
    assert ids == ["dogfacenet:0"] * 2 + ["dogfacenet:2"] * 3 + ["dogfacenet:10"]
    assert set(table["species"].to_pylist()) == {"dog"} and set(table["source"].to_pylist()) == {"dogfacenet"}
    # pointing at after_4_bis itself works too
    assert load_catalogue(f"dogfacenet:{tmp_path / 'after_4_bis'}").num_rows == 6


def test_dogfacenet_wrong_layout(tmp_path: Path) -> None:
    _touch(tmp_path / "dogs" / "rex.jpg")
    with pytest.raises(DatasetLayoutError, match="no numeric dog folders"):
        load_catalogue(f"dogfacenet:{tmp_path}")


def test_cat_individuals_layout_skips_nested_duplicates_and_prefers_jpeg(tmp_path: Path) -> None:
    top = tmp_path / "cat_individuals_dataset"
    _touch(top / "0001" / "a.jpg")
    _touch(top / "0001" / "a.HEIC")  # converted twin exists: skipped
    _touch(top / "0001" / "b.heic")  # only copy: kept
    _touch(top / "0001" / "dup" / "a.jpg")  # archive duplicate: skipped
    _touch(top / "0002" / "c.png")
    table = load_catalogue(f"cat-individuals:{tmp_path}")
    assert _summary(table) == [
        ("cat-individuals:1", "a.jpg", "cat", 0), ("cat-individuals:1", "b.heic", "cat", 1),
        ("cat-individuals:2", "c.png", "cat", 0)]


def test_petface_all_images_and_split_files(tmp_path: Path) -> None:
    root = tmp_path / "PetFace"
    for family, animal, n in (("cat", "000000", 2), ("cat", "000001", 1), ("dog", "000000", 2), ("hamster", "000003", 1)):
        for i in range(n):
            _touch(root / "images" / family / animal / f"{i:02d}.png")
    split = root / "split" / "cat"
    split.mkdir(parents=True)
    (split / "train.csv").write_text("filename,label\ncat/000000/00.png,0\ncat/000000/01.png,0\n")
    (split / "reidentification.csv").write_text("filename,label\ncat/000001/00.png,5\n")
    (split / "verification.csv").write_text("filename1,filename2,label\ncat/000000/00.png,cat/000001/00.png,0\n")
    (split / "val.txt").write_text("cat/000001/00.png\n")

    everything = load_catalogue(f"petface:{root}")
    assert sorted(set(zip(everything["identity_id"].to_pylist(), everything["species"].to_pylist()))) == [
        ("petface:cat/000000", "cat"), ("petface:cat/000001", "cat"),
        ("petface:dog/000000", "dog"), ("petface:hamster/000003", "other")]
    assert everything.num_rows == 6

    train = load_catalogue(f"petface:{split / 'train.csv'}")
    assert _summary(train) == [("petface:cat/000000", "00.png", "cat", 0), ("petface:cat/000000", "01.png", "cat", 1)]
    pairs = load_catalogue(f"petface:{split / 'verification.csv'}")
    assert sorted(set(pairs["identity_id"].to_pylist())) == ["petface:cat/000000", "petface:cat/000001"]
    assert load_catalogue(f"petface:{split / 'val.txt'}")["identity_id"].to_pylist() == ["petface:cat/000001"]


def test_petface_split_naming_missing_image(tmp_path: Path) -> None:
    root = tmp_path / "PetFace"
    _touch(root / "images" / "cat" / "000000" / "00.png")
    split = root / "split" / "cat"
    split.mkdir(parents=True)
    (split / "train.csv").write_text("filename,label\ncat/000000/00.png,0\ncat/000000/07.png,0\n")
    with pytest.raises(CatalogueValidationError, match=r"file missing: 1 row\(s\).*petface:cat/000000.*07\.png"):
        load_catalogue(f"petface:{split / 'train.csv'}")
    (split / "bad.csv").write_text("filename,label\ncat/000000/00.png,0\ncat/000001/00.png,0\n")
    with pytest.raises(DatasetLayoutError, match="labels spanning several animal folders"):
        load_catalogue(f"petface:{split / 'bad.csv'}")


def test_lcw_split_folders_are_one_cat(tmp_path: Path) -> None:
    _touch(tmp_path / "train" / "17" / "a.jpg")
    _touch(tmp_path / "test" / "17" / "b.jpg")  # same animal in another split
    _touch(tmp_path / "test" / "18" / "c.jpeg")
    table = load_catalogue(f"lcw:{tmp_path}")
    assert _summary(table) == [("lcw:17", "b.jpg", "cat", 0), ("lcw:17", "a.jpg", "cat", 1),
                               ("lcw:18", "c.jpeg", "cat", 0)]


def test_cli_inspect_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for dog, n in ((1, 1), (2, 3)):
        for i in range(n):
            _touch(tmp_path / str(dog) / f"{i}.jpg")
    assert main(["datasets", "inspect", f"dogfacenet:{tmp_path}", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {k: out[k] for k in ("n_identities", "n_images", "min", "max", "mean", "median", "std")} == {
        "n_identities": 2, "n_images": 4, "min": 1, "max": 3, "mean": 2.0, "median": 2.0, "std": 1.0}
    assert main(["datasets", "inspect", f"nope:{tmp_path}"]) == 2
    assert "known formats" in capsys.readouterr().err


def test_cli_inspect_kennel_dev_text(kennel_dev: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "inspect", f"identity-folders:{kennel_dev / 'images'}"]) == 0
    out = capsys.readouterr().out
    assert "n_identities: 14" in out and "n_images: 359" in out
