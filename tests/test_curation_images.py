"""Validation and conversion: hostile inputs are rejected with a reason, odd modes become clean RGB JPEGs, reruns
do no repeated work."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from curation.images import ImageOptions, image_id_for, process_images, process_stats
from petid.paths import sha256_file
from petid.records import catalogue_table
from petid_sample.images import photo


def _catalogue(paths: list[Path], identities: list[str] | None = None) -> pa.Table:
    identities = identities or [f"test:{k}" for k in range(len(paths))]
    return catalogue_table(
        {"identity_id": ident, "source": "test", "species": "dog", "path": str(p), "position": 0}
        for ident, p in zip(identities, paths)
    )


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width x height`` pixels but carries no pixel data: a decompression bomb probe."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def hostile(tmp_path: Path) -> dict[str, Path]:
    src = tmp_path / "src"
    src.mkdir()
    good = src / "good.jpg"
    photo(1, (320, 240)).save(good, quality=90)
    full = good.read_bytes()
    files = {
        "good": good,
        "zero": src / "zero.jpg",
        "truncated": src / "truncated.jpg",
        "text": src / "notes.jpg",
        "bomb": _png_header_only(src / "bomb.png", 20_000, 20_000),
        "small": src / "small.png",
        "missing": src / "missing.jpg",
    }
    files["zero"].write_bytes(b"")
    files["truncated"].write_bytes(full[: len(full) // 2])
    files["text"].write_text("this is a text file pretending to be a JPEG\n")
    photo(2, (40, 30)).save(files["small"])
    return files


def test_hostile_inputs_are_rejected_with_reasons(hostile: dict[str, Path], tmp_path: Path) -> None:
    names = list(hostile)
    images, rejected = process_images(_catalogue([hostile[n] for n in names]), tmp_path / "out", workers=1)
    assert images.column("src_path").to_pylist() == [str(hostile["good"])]
    reasons = dict(zip(rejected.column("src_path").to_pylist(), rejected.column("reason").to_pylist()))
    assert reasons == {
        str(hostile["zero"]): "zero_bytes",
        str(hostile["truncated"]): "truncated",
        str(hostile["text"]): "not_an_image",
        str(hostile["bomb"]): "decompression_bomb",
        str(hostile["small"]): "too_small",
        str(hostile["missing"]): "missing_file",
    }
    assert all(rejected.column("detail").to_pylist())
    assert set(rejected.column("identity_id").to_pylist()) == {f"test:{k}" for k in range(1, len(names))}
    assert images.num_rows + rejected.num_rows == len(names)  # nothing lost silently


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    photo(3, (400, 300)).save(path)
    _, rejected = process_images(_catalogue([path]), tmp_path / "out", ImageOptions(max_pixels=100_000), workers=1)
    assert rejected.column("reason").to_pylist() == ["decompression_bomb"]
    assert "120000" in rejected.column("detail")[0].as_py()


def test_output_is_content_addressed_rgb_jpeg_with_catalogue_columns(hostile: dict[str, Path], tmp_path: Path) -> None:
    images, _ = process_images(_catalogue([hostile["good"]]), tmp_path / "out", ImageOptions(jpeg_quality=80), workers=1)
    row = images.to_pylist()[0]
    sha = sha256_file(hostile["good"])
    assert row["sha256"] == sha
    assert row["path"] == str(tmp_path / "out" / sha[:2] / f"{sha}.jpg")
    assert row["image_id"] == image_id_for("test:0", sha)
    assert (row["width"], row["height"], row["src_format"]) == (320, 240, "JPEG")
    assert row["species"] == "dog" and row["source"] == "test"
    with Image.open(row["path"]) as out:
        assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (320, 240))


def test_cmyk_palette_alpha_gif_webp_and_16bit_become_rgb(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    base = photo(4, (200, 160))
    base.convert("CMYK").save(src / "cmyk.jpg")
    # Palette image whose index 0 is transparent: the transparent half must come out white.
    pal = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    arr = np.asarray(pal).copy()
    arr[:, :100] = 0
    pal_img = Image.fromarray(arr, "P")
    pal_img.putpalette(pal.getpalette())
    pal_img.save(src / "palette.png", transparency=0)
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.new("L", base.size, 0))
    rgba.save(src / "transparent.png")
    frames = [photo(5 + k, (200, 160)).convert("P") for k in range(3)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:])
    base.save(src / "photo.webp", quality=90)
    Image.fromarray(np.asarray(base.convert("L")).astype("<u2") * 257).save(src / "deep.png")
    paths = [src / n for n in ("cmyk.jpg", "palette.png", "transparent.png", "anim.gif", "photo.webp", "deep.png")]
    images, rejected = process_images(_catalogue(paths), tmp_path / "out", workers=1)
    assert rejected.num_rows == 0, rejected.to_pylist()
    by_src = {Path(r["src_path"]).name: r for r in images.to_pylist()}
    assert {r["src_format"] for r in by_src.values()} == {"JPEG", "PNG", "GIF", "WEBP"}
    for name, row in by_src.items():
        with Image.open(row["path"]) as out:
            assert out.mode == "RGB" and out.size == (200, 160), name
    pal_out = np.asarray(Image.open(by_src["palette.png"]["path"]))
    assert pal_out[:, :90].min() > 240  # transparent → white
    assert np.asarray(Image.open(by_src["transparent.png"]["path"])).min() > 240
    cmyk_out = np.asarray(Image.open(by_src["cmyk.jpg"]["path"])).astype(int)
    assert np.abs(cmyk_out - np.asarray(base).astype(int)).mean() < 20  # colours survive the CMYK round trip
    gif_out = np.asarray(Image.open(by_src["anim.gif"]["path"])).astype(int)
    first = np.asarray(frames[0].convert("RGB")).astype(int)
    assert np.abs(gif_out - first).mean() < np.abs(gif_out - np.asarray(frames[1].convert("RGB")).astype(int)).mean()


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (200, 100), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 50, 50))  # red square at the top-left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    images, _ = process_images(_catalogue([path]), tmp_path / "out", workers=1)
    row = images.to_pylist()[0]
    assert (row["width"], row["height"]) == (100, 200)
    out = np.asarray(Image.open(row["path"])).astype(int)
    assert out[25, 75, 0] > 200 and out[25, 75, 2] < 60  # top-left moved to the top-right
    assert out[175, 25, 2] > 200
    assert 0x0112 not in Image.open(row["path"]).getexif()


def test_rerun_does_no_repeated_work(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    paths = []
    for k in range(12):
        paths.append(src / f"{k}.jpg")
        photo(10 + k, (160, 120)).save(paths[-1])
    catalogue = _catalogue(paths)
    options = ImageOptions(chunk_size=4)
    first, _ = process_images(catalogue, tmp_path / "out", options, workers=2)
    assert process_stats(first) == {"converted": 12, "reused": 0, "rejected": 0}
    mtimes = {p: Path(p).stat().st_mtime_ns for p in first.column("path").to_pylist()}
    second, _ = process_images(catalogue, tmp_path / "out", options, workers=2)
    assert process_stats(second) == {"converted": 0, "reused": 12, "rejected": 0}
    assert {p: Path(p).stat().st_mtime_ns for p in second.column("path").to_pylist()} == mtimes
    assert second.to_pylist() == first.to_pylist()
    serial, _ = process_images(catalogue, tmp_path / "out2", options, workers=1)
    assert serial.column("image_id").to_pylist() == first.column("image_id").to_pylist()


def test_same_content_two_identities_and_repeat_within_identity(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    photo(7, (160, 120)).save(path)
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(path.read_bytes())
    images, rejected = process_images(_catalogue([path, path, copy], ["x:1", "x:2", "x:1"]), tmp_path / "out", workers=1)
    ids = images.column("image_id").to_pylist()
    assert len(ids) == 2 and len(set(ids)) == 2
    assert len(set(images.column("path").to_pylist())) == 1  # one file on disk
    assert rejected.to_pylist() == [
        {"identity_id": "x:1", "source": "test", "src_path": str(copy), "reason": "duplicate_in_identity",
         "detail": f"same bytes as {path} in x:1"}
    ]


def test_missing_columns_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="path"):
        process_images(pa.table({"identity_id": ["a"], "source": ["s"]}), tmp_path)


def test_empty_and_all_rejected_catalogues(tmp_path: Path) -> None:
    images, rejected = process_images(_catalogue([]), tmp_path / "out", workers=1)
    assert images.num_rows == 0 and rejected.num_rows == 0
    assert {"image_id", "sha256", "src_path", "width", "height", "src_format"} <= set(images.column_names)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff")
    images, rejected = process_images(_catalogue([bad, bad]), tmp_path / "out", workers=2)
    assert images.num_rows == 0 and rejected.column("reason").to_pylist() == ["truncated", "truncated"]
