"""16-bit, 32-bit integer and float greyscale images: scaled to 8 bits before hashing and conversion (not clipped to
white), with bounded memory on huge ones and a pixel cap before decoding."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curation.hashing import hamming, hash_images, hash_pil_images
from curation.images import process_images
from petid.records import catalogue_table
from petid_app.cli import main
from petid_sample.images import photo

REPO = Path(__file__).resolve().parents[1]


def _grey(seed: int, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    return np.asarray(photo(seed, size).convert("L"))


def _save_16bit(path: Path, grey8: np.ndarray) -> Path:
    Image.fromarray(grey8.astype("<u2") * 257).save(path)  # mode I;16, a 16-bit greyscale PNG
    with Image.open(path) as img:
        assert img.mode == "I;16"
    return path


def _catalogue(paths: list[Path]):
    return catalogue_table({"identity_id": f"t:{k}", "source": "t", "path": str(p), "position": 0}
                           for k, p in enumerate(paths))


def test_four_different_16bit_dogs_are_not_one_duplicate_group(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "deep"
    folder.mkdir()
    greys = [_grey(seed) for seed in (11, 12, 13, 14)]
    paths = [_save_16bit(folder / f"dog{k}.png", g) for k, g in enumerate(greys)]
    reference = hash_pil_images([Image.fromarray(g, "L") for g in greys])
    for fast in (True, False):
        table = hash_images(paths, workers=1, fast=fast)
        phash = np.asarray(table.column("phash"), np.uint64)
        dhash = np.asarray(table.column("dhash"), np.uint64)
        assert len(set(phash.tolist())) == 4 and len(set(dhash.tolist())) == 4
        assert hamming(phash, reference[0]).max() <= 2 and hamming(dhash, reference[1]).max() <= 2
    assert main(["dedup", str(folder), "--json", "--workers", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["groups"] == []
    assert main(["dedup", str(folder), "--json", "--workers", "1", "--full-decode"]) == 0
    assert json.loads(capsys.readouterr().out)["groups"] == []


def test_wide_modes_convert_to_the_right_grey_levels(tmp_path: Path) -> None:
    grey = _grey(21, (200, 160))
    src = tmp_path / "src"
    src.mkdir()
    files = {
        "deep.png": _save_16bit(src / "deep.png", grey),
        "dark16.png": src / "dark16.png",  # 8-bit values in a 16-bit container: kept, not shifted to black
        "int32.tif": src / "int32.tif",
        "float.tif": src / "float.tif",  # floats in 0..1
    }
    Image.fromarray(grey.astype("<u2")).save(files["dark16.png"])
    Image.fromarray(grey.astype(np.int32) * 257, "I").save(files["int32.tif"])
    Image.fromarray(grey.astype(np.float32) / 255.0, "F").save(files["float.tif"])
    images, rejected = process_images(_catalogue(list(files.values())), tmp_path / "out", workers=1)
    assert rejected.num_rows == 0, rejected.to_pylist()
    for row in images.to_pylist():
        with Image.open(row["path"]) as out:
            assert out.mode == "RGB" and out.size == (200, 160)
            diff = np.abs(np.asarray(out.convert("L")).astype(int) - grey.astype(int))
        assert diff.mean() < 3, (row["src_path"], diff.mean())
    # The curated JPEG of a 16-bit photo hashes like the photo itself (dedup across original and curated copy).
    table = hash_images([files["deep.png"], images.column("path")[0].as_py()], workers=1)
    assert hamming(table.column("phash")[0].as_py(), table.column("phash")[1].as_py()) <= 4


def test_pixel_cap_rejects_before_decoding(tmp_path: Path) -> None:
    path = _save_16bit(tmp_path / "wide.png", _grey(31, (400, 300)))
    table = hash_images([path], workers=1, max_pixels=100_000)
    assert table.column("phash")[0].as_py() is None
    assert "120000 pixels" in table.column("error")[0].as_py()
    assert hash_images([path], workers=1).column("error")[0].as_py() is None


def _png16(path: Path, width: int, height: int) -> Path:
    """A 16-bit greyscale PNG streamed row by row (Sub filter: a smooth gradient compresses to a few hundred KB)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    parts = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0))]
    x = np.arange(width, dtype=np.uint32)
    idat = []
    for y in range(height):
        raw = np.frombuffer(((x * 60000 // width + y * 5000 // height) % 65536).astype(">u2").tobytes(), np.uint8)
        sub = raw.copy()
        sub[2:] = raw[2:] - raw[:-2]
        idat.append(comp.compress(b"\x01" + sub.tobytes()))
    idat.append(comp.flush())
    path.write_bytes(b"".join([*parts, chunk(b"IDAT", b"".join(idat)), chunk(b"IEND", b"")]))
    return path


PEAK_MB = 400  # absolute peak RSS of the measuring interpreter (its libraries alone take ~135 MB)
WORK_MB = 300  # peak RSS above that interpreter's baseline: what converting or hashing the image itself costs
_MEASURE = """
import json, resource, sys, tempfile
what, path = sys.argv[1], sys.argv[2]


def peak_kb():
    # VmHWM is this address space's own high-water mark. ru_maxrss alone is not: Linux carries it over from the
    # parent across fork + exec, so a child of a large pytest process would start at the parent's peak.
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


from PIL import Image
import numpy, pyarrow, scipy.fftpack
from curation.hashing import hash_images
from curation.images import ImageOptions, process_images
from petid.records import catalogue_table
catalogue = catalogue_table([{"identity_id": "t:1", "source": "t", "path": path, "position": 0}])
base = peak_kb()  # the interpreter with every library loaded
if what == "convert":
    images, rejected = process_images(catalogue, tempfile.mkdtemp(), workers=1)
    peak = peak_kb()
    result = {"accepted": images.num_rows, "rejected": rejected.column("reason").to_pylist()}
    if images.num_rows:
        with Image.open(images.column("path")[0].as_py()) as out:
            result["size"] = list(out.size)
            out.draft("L", (out.size[0] // 8, out.size[1] // 8))  # check the pixels at 1/8 scale
            result["mean"] = float(numpy.asarray(out.convert("L")).mean())
else:
    table = hash_images([path], workers=1, fast=what == "fast")
    peak = peak_kb()
    result = {"error": table.column("error")[0].as_py(), "dhash": table.column("dhash")[0].as_py()}
print(json.dumps({**result, "base_mb": base / 1024, "peak_mb": peak / 1024}))
"""


@pytest.fixture(scope="module")
def huge_16bit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _png16(tmp_path_factory.mktemp("huge") / "huge16.png", 7000, 7000)  # 49 Mpx, under the 50 Mpx cap


@pytest.mark.parametrize("what", ["convert", "fast", "full"])
def test_huge_16bit_png_peak_memory_is_bounded(huge_16bit: Path, what: str) -> None:
    """Peak RSS of a fresh interpreter that converts or hashes a 7000x7000 16-bit PNG (was 1.35 GB converting: a
    float64 copy and its temporaries). Now: the 16-bit decode (98 MB), its 8-bit grey (49 MB), and for the JPEG
    the RGB copy (147 MB) while the 16-bit one is already freed."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, what, str(huge_16bit)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    print(what, result)
    assert result["peak_mb"] - result["base_mb"] < WORK_MB and result["peak_mb"] < PEAK_MB, result
    if what == "convert":
        assert result["accepted"] == 1 and result["size"] == [7000, 7000]
        assert 100 < result["mean"] < 150  # a mid-grey gradient, not white
    else:
        assert result["error"] is None and result["dhash"] != 0  # a gradient, not a flat white image
