"""``petid search | embed | evaluate | index build``: bad arguments give one line naming the problem and exit 2; the
default contact sheet goes to a private temp folder (a planted symlink in the shared temp folder is never followed)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from eval_fakes import PixelEmbedder, make_photos

from evaluation.search import SearchError, SearchIndex, build_index
from petid_app.cli import main


@pytest.fixture
def index(tmp_path: Path, monkeypatch) -> tuple[Path, pd.DataFrame]:
    import evaluation.search as search

    gallery = make_photos(tmp_path / "photos", n_identities=4, per_identity=2, seed=3)
    build_index(gallery, "m", None, tmp_path / "idx", embedder=PixelEmbedder())
    monkeypatch.setattr(search, "load_photo_embedder", lambda ref, root: PixelEmbedder())
    return tmp_path / "idx", gallery


@pytest.fixture
def shared_tmp(tmp_path: Path, monkeypatch) -> Path:
    """A stand-in for the system temp folder that other users can write to."""
    folder = tmp_path / "systemp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _one_line_error(capsys, command: str, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"petid {command}: "), err
    for word in words:
        assert word in err, err
    return err


def test_default_contact_sheet_never_follows_a_planted_symlink(index, shared_tmp: Path, tmp_path: Path, capsys) -> None:
    idx, gallery = index
    query = Path(gallery.path[0])
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    planted = shared_tmp / "petid-search"
    planted.mkdir()
    os.symlink(victim, planted / f"{query.stem}.png")
    for _ in range(2):  # two runs: two private folders, no fixed name to race for
        assert main(["search", str(query), "--index", str(idx), "--json"]) == 0
        sheet = Path(json.loads(capsys.readouterr().out)["contact_sheet"])
        assert sheet.read_bytes()[:4] == b"\x89PNG" and not sheet.is_symlink()
        assert sheet.parent.parent == shared_tmp and sheet.parent.name.startswith("petid-search-")
        assert oct(sheet.parent.stat().st_mode & 0o777) == "0o700"
    assert victim.read_text() == "precious" and (planted / f"{query.stem}.png").is_symlink()
    assert len(list(shared_tmp.glob("petid-search-*"))) == 2


def test_missing_and_non_image_query_photos(index, tmp_path: Path, capsys) -> None:
    idx, _ = index
    sheet = tmp_path / "sheet.png"
    assert main(["search", str(tmp_path / "nope.jpg"), "--index", str(idx), "--sheet", str(sheet)]) == 2
    _one_line_error(capsys, "search", "query photo", "nope.jpg")
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo\n")
    assert main(["search", str(notes), "--index", str(idx), "--sheet", str(sheet)]) == 2
    _one_line_error(capsys, "search", "notes.jpg", "not an image")
    assert main(["search", str(tmp_path), "--index", str(idx), "--sheet", str(sheet)]) == 2
    _one_line_error(capsys, "search", "not a file")
    truncated = tmp_path / "half.jpg"
    truncated.write_bytes(Path(index[1].path[0]).read_bytes()[:300])
    assert main(["search", str(truncated), "--index", str(idx), "--sheet", str(sheet)]) == 2
    _one_line_error(capsys, "search", "half.jpg")
    assert main(["search", str(index[1].path[0]), "--index", str(tmp_path / "noindex"), "--sheet", str(sheet)]) == 2
    _one_line_error(capsys, "search", "not a search index")
    assert not sheet.exists()


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_top_k_must_be_a_positive_integer(index, value: str, capsys) -> None:
    idx, gallery = index
    with pytest.raises(SystemExit) as exc:
        main(["search", str(gallery.path[0]), "--index", str(idx), f"--top-k={value}"])
    assert exc.value.code == 2
    assert "--top-k" in capsys.readouterr().err
    index_ = SearchIndex.load(idx, embedder=PixelEmbedder())
    with pytest.raises(SearchError, match="top_k"):
        index_.query(str(gallery.path[0]), top_k=0)


@pytest.mark.parametrize("command", [
    ["embed", "--out", "OUT/e.parquet"],
    ["evaluate", "--out", "OUT/report.json"],
    ["index", "build", "--out", "OUT/idx"],
])
@pytest.mark.parametrize("dataset", ["identity-folders:MISSING", "no-such-format:MISSING"])
def test_dataset_errors_are_one_line(tmp_path: Path, command: list[str], dataset: str, capsys) -> None:
    argv = [a.replace("OUT", str(tmp_path)) for a in command]
    argv += ["--dataset", dataset.replace("MISSING", str(tmp_path / "missing")), "--registry", str(tmp_path / "m")]
    assert main(argv) == 2
    _one_line_error(capsys, command[0], "missing" if dataset.startswith("identity") else "no-such-format")
    assert not (tmp_path / "idx").exists()


def test_manifest_without_test_split_is_one_line(tmp_path: Path, capsys) -> None:
    frame = pd.DataFrame({"path": ["a.jpg"], "identity_id": ["x:1"], "source": ["x"], "species": ["dog"],
                          "split": ["train"]})
    frame.to_parquet(tmp_path / "manifest.parquet")
    assert main(["evaluate", "--dataset", f"manifest:{tmp_path / 'manifest.parquet'}", "--out",
                 str(tmp_path / "r.json"), "--registry", str(tmp_path / "m")]) == 2
    _one_line_error(capsys, "evaluate", "no test split")


@pytest.mark.parametrize("value", ["0", "-1"])
def test_batch_size_must_be_positive(tmp_path: Path, value: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["embed", "--dataset", "manifest", "--out", str(tmp_path / "e.parquet"), f"--batch-size={value}"])
    assert exc.value.code == 2 and "--batch-size" in capsys.readouterr().err
