"""Published layouts of Dogs-World, LCW and PetFace (built to each format's source, see the importer modules),
and the one-line errors of ``petid datasets inspect``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from petid.errors import UserError
from petid_app.cli import main
from scrapers.datasets import DatasetLayoutError, import_dataset, load_catalogue

JPEG = b"\xff\xd8\xff\xe0" + b"x" * 32


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(JPEG + path.name.encode())
    return path


def _pairs(table) -> list[tuple[str, str]]:
    return [(r["identity_id"], Path(r["path"]).name) for r in table.to_pylist()]


# --- Dogs-World: ROOT/images/<file> + ROOT/metadata/<hash>.json {"path", "identities": [{"identity"}]} ---------

def _dogs_world(root: Path) -> Path:
    photos = {  # metadata file -> (listed path, identities)
        "0a1f.json": ("images/rex_1.jpg", [{"identity": "d1042"}]),
        "1b2e.json": ("images/rex_2.jpg", [{"identity": "d1042"}]),
        "2c3d.json": ("images/bim_1.jpg", [{"identity": 77}]),  # labels may be numbers
        "3d4c.json": ("images/two_dogs.jpg", [{"identity": "d1042"}, {"identity": 77}]),  # several dogs
        "4e5b.json": ("images/nobody.jpg", []),
        "5f6a.json": ("images/bim_2.jpg", [{"identity": 77}, {"identity": "77"}]),  # one dog listed twice
        "6a7f.json": ("images/rex_3.jpg", [{"identity": "d1042"}]),  # exists only as .png
    }
    for meta, (listed, identities) in photos.items():
        image = root / listed
        _touch(image.with_suffix(".png") if meta == "6a7f.json" else image)
        (root / "metadata").mkdir(parents=True, exist_ok=True)
        (root / "metadata" / meta).write_text(json.dumps({"path": listed, "identities": identities}))
    return root


def test_dogs_world_identities_come_from_the_metadata(tmp_path: Path) -> None:
    root = _dogs_world(tmp_path / "archive")
    table = load_catalogue(f"dogs-world:{root}")
    assert _pairs(table) == [("dogs-world:77", "bim_1.jpg"), ("dogs-world:77", "bim_2.jpg"),
                             ("dogs-world:d1042", "rex_1.jpg"), ("dogs-world:d1042", "rex_2.jpg"),
                             ("dogs-world:d1042", "rex_3.png")]
    assert set(table["species"].to_pylist()) == {"dog"}
    assert "two_dogs.jpg" not in {Path(p).name for p in table["path"].to_pylist()}  # nobody's photo alone
    assert json.loads(table.schema.metadata[b"petid.skipped"]) == {"no identity": 1, "several animals": 1}
    imported = import_dataset(f"dogs-world:{root}")
    several = [e for e in imported.skipped if e["reason"] == "several animals"]
    assert Path(several[0]["path"]).name == "two_dogs.jpg" and "77, d1042" in several[0]["detail"]
    # the folder above (what the download unpacks into) gives the same identities
    assert _pairs(load_catalogue(f"dogs-world:{tmp_path}")) == _pairs(table)


def test_dogs_world_inspect_counts_skipped_photos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _dogs_world(tmp_path / "archive")
    assert main(["datasets", "inspect", f"dogs-world:{root}", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["n_identities"], out["n_images"]) == (2, 5)
    assert out["skipped"] == {"no identity": 1, "several animals": 1}


def test_dogs_world_without_metadata_is_named(tmp_path: Path) -> None:
    _touch(tmp_path / "images" / "a.jpg")
    with pytest.raises(DatasetLayoutError, match=r"no metadata/ folder"):
        load_catalogue(f"dogs-world:{tmp_path}")


# --- LCW: ROOT/CatFullDataset/<cat id>/<photo> ------------------------------------------------------------------

def test_lcw_identity_ids_do_not_depend_on_the_folder_given(tmp_path: Path) -> None:
    cats = tmp_path / "lcw" / "CatFullDataset"
    _touch(cats / "17" / "a.jpg")
    _touch(cats / "17" / "b.jpg")
    _touch(cats / "1024" / "c.jpg")
    expected = [("lcw:17", "a.jpg"), ("lcw:17", "b.jpg"), ("lcw:1024", "c.jpg")]
    for given in (tmp_path, tmp_path / "lcw", cats):
        assert _pairs(load_catalogue(f"lcw:{given}")) == expected, given


def test_lcw_same_name_in_two_places_is_ambiguous(tmp_path: Path) -> None:
    _touch(tmp_path / "a" / "17" / "x.jpg")
    _touch(tmp_path / "b" / "17" / "y.jpg")
    with pytest.raises(DatasetLayoutError, match=r"two different folders are named '17'"):
        load_catalogue(f"lcw:{tmp_path}")


# --- PetFace: with or without the images/ level -----------------------------------------------------------------

def _petface(root: Path, images_level: bool) -> Path:
    base = root / "images" if images_level else root
    for family, animal, n in (("cat", "000000", 2), ("cat", "000001", 1), ("dog", "000005", 1)):
        for i in range(n):
            _touch(base / family / animal / f"{i:02d}.png")
    (root / "split" / "cat").mkdir(parents=True)
    (root / "split" / "cat" / "train.csv").write_text("filename,label\ncat/000000/00.png,0\ncat/000001/00.png,1\n")
    (root / "annotations").mkdir()
    (root / "annotations" / "cat.csv").write_text("filename,breed\ncat/000000/00.png,mix\n")
    return root


def test_petface_extracted_without_images_level(tmp_path: Path) -> None:
    flat = _petface(tmp_path / "flat", images_level=False)
    nested = _petface(tmp_path / "nested", images_level=True)
    ids = lambda t: sorted(set(t["identity_id"].to_pylist()))  # noqa: E731
    expected = ["petface:cat/000000", "petface:cat/000001", "petface:dog/000005"]
    assert ids(load_catalogue(f"petface:{flat}")) == ids(load_catalogue(f"petface:{nested}")) == expected
    assert load_catalogue(f"petface:{flat}").num_rows == 4
    train = load_catalogue(f"petface:{flat / 'split' / 'cat' / 'train.csv'}")
    assert _pairs(train) == [("petface:cat/000000", "00.png"), ("petface:cat/000001", "00.png")]
    assert Path(train["path"][0].as_py()) == flat / "cat" / "000000" / "00.png"


# --- petid datasets inspect: one line, exit 2 ------------------------------------------------------------------

@pytest.mark.parametrize("case", ["unknown format", "not a spec", "missing folder", "wrong layout", "invalid"])
def test_inspect_errors_are_one_line_exit_2(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pets" / "ghost").mkdir(parents=True)  # an identity folder without images fails validation
    spec = {"unknown format": f"nope:{tmp_path}", "not a spec": "just-a-path",
            "missing folder": f"lcw:{tmp_path / 'absent'}", "wrong layout": f"dogfacenet:{tmp_path / 'pets'}",
            "invalid": f"identity-folders:{tmp_path / 'pets'}"}[case]
    assert main(["datasets", "inspect", spec]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("petid datasets: ") and captured.err.count("\n") == 1
    assert "Traceback" not in captured.err and "internal error" not in captured.err


def test_spec_errors_are_user_errors(tmp_path: Path) -> None:
    for spec in (f"nope:{tmp_path}", "just-a-path", f"lcw:{tmp_path / 'absent'}"):
        with pytest.raises(UserError):
            load_catalogue(spec)
    with pytest.raises(FileNotFoundError):  # still a FileNotFoundError for callers that catch that
        load_catalogue(f"lcw:{tmp_path / 'absent'}")
