"""Hostile inputs to ``petid dedup`` and the hashing/conversion readers: FIFOs, device symlinks, oversized files and
non-UTF-8 file names are skipped or reported with a reason, never hang, exhaust memory or crash at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from curation.hashing import hash_images
from curation.images import process_images
from petid.records import catalogue_table
from petid_app.cli import main
from petid_sample.images import photo

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs and /dev/zero")


def _hostile_dir(root: Path) -> Path:
    folder = root / "photos"
    folder.mkdir()
    photo(1, (200, 150)).save(folder / "a.jpg", quality=90)
    (folder / "a_copy.jpg").write_bytes((folder / "a.jpg").read_bytes())
    photo(2, (200, 150)).save(folder / "b.png")
    os.mkfifo(folder / "pipe.jpg")  # opening it for reading blocks until a writer comes
    os.symlink("/dev/zero", folder / "zero.jpg")  # reading it never ends
    os.symlink(folder / "nowhere.jpg", folder / "dangling.jpg")
    os.symlink(folder / "b.png", folder / "link_to_b.png")  # a symlink to a regular file is fine
    return folder


@pytest.mark.timeout(60)
def test_dedup_skips_fifo_device_symlink_and_dangling_link(tmp_path: Path, capsys) -> None:
    folder = _hostile_dir(tmp_path)
    assert main(["dedup", str(folder), "--json", "--workers", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    skipped = {Path(s["path"]).name: s["reason"] for s in out["skipped"]}
    assert set(skipped) == {"pipe.jpg", "zero.jpg", "dangling.jpg"}
    assert "fifo" in skipped["pipe.jpg"] and "character device" in skipped["zero.jpg"]
    assert "dangling" in skipped["dangling.jpg"]
    assert out["n_images"] == 4 and not out["errors"]
    groups = [[Path(p).name for p in g] for g in out["groups"]]
    assert sorted(map(sorted, groups)) == [["a.jpg", "a_copy.jpg"], ["b.png", "link_to_b.png"]]
    assert main(["dedup", str(folder), "--workers", "1"]) == 0  # text output reports the skips too
    text = capsys.readouterr().out
    assert "skipped" in text and "pipe.jpg" in text and "4 images" in text


def test_dev_zero_symlink_does_not_exhaust_memory(tmp_path: Path) -> None:
    """In a child capped at 2 GB of address space and 60 s: reading /dev/zero to the end would blow either."""
    folder = _hostile_dir(tmp_path)
    script = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); "
        "from petid_app.cli import main; sys.exit(main(['dedup', sys.argv[1], '--json', '--workers', '1']))"
    )
    done = subprocess.run([sys.executable, "-c", script, str(folder)], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "zero.jpg" in {Path(s["path"]).name for s in json.loads(done.stdout)["skipped"]}


@pytest.mark.timeout(60)
def test_hash_images_and_process_images_refuse_non_regular_files(tmp_path: Path) -> None:
    """The library readers check too (a path handed in directly, or swapped after the walk)."""
    folder = _hostile_dir(tmp_path)
    names = ["a.jpg", "pipe.jpg", "zero.jpg", "link_to_b.png"]
    table = hash_images([folder / n for n in names], workers=1)
    errors = table.column("error").to_pylist()
    assert errors[0] is None and errors[3] is None
    assert "not a regular file" in errors[1] and "fifo" in errors[1]
    assert "not a regular file" in errors[2] and "character device" in errors[2]
    catalogue = catalogue_table({"identity_id": f"t:{k}", "source": "t", "path": str(folder / n), "position": 0}
                                for k, n in enumerate(names))
    images, rejected = process_images(catalogue, tmp_path / "out", workers=1)
    assert images.num_rows == 2
    assert dict(zip([Path(p).name for p in rejected.column("src_path").to_pylist()],
                    rejected.column("reason").to_pylist())) == {"pipe.jpg": "not_a_file", "zero.jpg": "not_a_file"}


def test_size_cap_is_configurable_and_reported(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    photo(3, (400, 300), noise=30).save(folder / "big.png")  # ~ 300 KB of noise
    photo(4, (64, 48)).save(folder / "small.jpg")
    assert main(["dedup", str(folder), "--json", "--workers", "1", "--max-size", "0.1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(Path(s["path"]).name, "larger than" in s["reason"]) for s in out["skipped"]] == [("big.png", True)]
    assert out["n_images"] == 1
    table = hash_images([folder / "big.png"], workers=1, max_bytes=1000)
    assert "larger than" in table.column("error")[0].as_py()
    assert main(["dedup", str(folder), "--max-size", "0"]) == 2
    assert "--max-size" in capsys.readouterr().err


def test_non_utf8_file_name_survives_to_the_output(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    odd = os.fsdecode(os.fsencode(str(folder)) + b"/dog\xff.jpg")  # a surrogate-escaped str, as os.walk gives it
    photo(5, (200, 150)).save(folder / "plain.jpg", quality=90)
    Path(odd).write_bytes((folder / "plain.jpg").read_bytes())
    assert main(["dedup", str(folder), "--json", "--workers", "1"]) == 0
    out = json.loads(capsys.readouterr().out)  # exact names: json's \udcff escape round-trips through os.fsencode
    assert out["groups"] == [[odd, str(folder / "plain.jpg")]] or out["groups"] == [[str(folder / "plain.jpg"), odd]]
    assert os.fsencode(odd) in {os.fsencode(p) for p in out["groups"][0]}
    assert main(["dedup", str(folder), "--workers", "1"]) == 0
    text = capsys.readouterr().out
    assert "dog\\xff.jpg" in text and "1 duplicate groups" in text
    table = hash_images([odd], workers=1)  # Arrow strings must be valid UTF-8: the path column shows it escaped
    assert table.column("path")[0].as_py().endswith("dog\\xff.jpg") and table.column("error")[0].as_py() is None
    unreadable = hash_images([odd + "-missing"], workers=1).column("error")[0].as_py()
    assert "dog\\xff.jpg-missing" in unreadable
