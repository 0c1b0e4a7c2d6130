"""pHash/dHash: bit-identical to imagehash on the same pixels; the fast decoding shortcuts stay within a few bits
and lose no duplicate."""

from __future__ import annotations

import io
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from curation.hashing import hamming, hash_file, hash_images, hash_pil_images, load_gray, to_hex, webp_available
from petid_sample.images import photo


def _reference(images: list[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.array([int(str(imagehash.phash(img)), 16) for img in images], np.uint64),
        np.array([int(str(imagehash.dhash(img)), 16) for img in images], np.uint64),
    )


def _varied_images() -> list[Image.Image]:
    """Photo-like images of many sizes and modes, including flat and tiny ones (median ties)."""
    out = []
    for k in range(60):
        size = (int(40 + 37 * k % 700), int(30 + 53 * k % 500))
        img = photo(100 + k, size)
        out.append(img.convert(("RGB", "L", "RGBA", "P", "CMYK")[k % 5]))
    out += [Image.new("RGB", (64, 64), (128, 128, 128)), Image.new("L", (9, 8), 0), Image.new("RGB", (33, 500), "red")]
    return out


def test_bit_identical_to_imagehash_on_synthetic_images() -> None:
    images = _varied_images()
    phash, dhash = hash_pil_images(images)
    ref_p, ref_d = _reference(images)
    assert np.array_equal(phash, ref_p)
    assert np.array_equal(dhash, ref_d)
    assert to_hex(phash[0]) == str(imagehash.phash(images[0]))


def test_bit_identical_to_imagehash_on_real_photos(oxford_pets: Path) -> None:
    files = sorted(oxford_pets.glob("images/*/*.jpg"))[:200]
    assert len(files) >= 50
    table = hash_images(files, workers=2, fast=False)
    ref_p, ref_d = _reference([Image.open(f) for f in files])
    assert np.array_equal(np.asarray(table.column("phash")), ref_p)
    assert np.array_equal(np.asarray(table.column("dhash")), ref_d)
    assert table.column("path").to_pylist() == [str(f) for f in files]


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for k in range(24):
        img = photo(300 + k, (800, 600) if k % 2 else (600, 800))
        path = folder / f"p{k}.{'jpg' if k % 3 else 'webp'}"
        img.save(path, quality=88)
        paths.append(path)
    return paths


def test_fast_decoding_stays_within_two_bits_on_average(photo_files: list[Path]) -> None:
    assert webp_available()
    fast = hash_images(photo_files, workers=1, fast=True)
    full = hash_images(photo_files, workers=1, fast=False)
    ref_p, ref_d = _reference([Image.open(p) for p in photo_files])
    assert np.array_equal(np.asarray(full.column("phash")), ref_p)
    p_bits = hamming(np.asarray(fast.column("phash")), ref_p)
    d_bits = hamming(np.asarray(fast.column("dhash")), ref_d)
    assert p_bits.mean() <= 2 and d_bits.mean() <= 2, (p_bits, d_bits)
    assert p_bits.max() <= 8


def test_fast_decoding_really_decodes_less(photo_files: list[Path]) -> None:
    jpeg = next(p for p in photo_files if p.suffix == ".jpg").read_bytes()
    webp = next(p for p in photo_files if p.suffix == ".webp").read_bytes()
    assert max(load_gray(jpeg, fast=True).image.size) <= 200
    assert max(load_gray(webp, fast=True).image.size) <= 100
    assert load_gray(jpeg, fast=False).image.size in ((800, 600), (600, 800))


def test_fast_decoding_costs_no_duplicate_recall(tmp_path: Path) -> None:
    """Every planted near-duplicate (resized, recompressed, re-encoded as WebP, brightened) is within 8 bits of its
    original both with and without the decoding shortcuts, and unrelated photos stay far apart."""
    from PIL import ImageEnhance

    originals, variants = [], []
    for k in range(15):
        img = photo(500 + k, (1000, 750))
        a = tmp_path / f"orig{k}.jpg"
        img.save(a, quality=92)
        edits = [
            (img.resize((500, 375)), "JPEG", {"quality": 75}),
            (img, "WEBP", {"quality": 70}),
            (ImageEnhance.Brightness(img).enhance(1.1), "JPEG", {"quality": 85}),
        ]
        for e, (edited, fmt, kwargs) in enumerate(edits):
            b = tmp_path / f"var{k}_{e}.{fmt.lower()}"
            edited.save(b, fmt, **kwargs)
            originals.append(a)
            variants.append(b)
    for fast in (True, False):
        h_orig = hash_images(originals, workers=2, fast=fast)
        h_var = hash_images(variants, workers=2, fast=fast)
        dist = hamming(np.asarray(h_orig.column("phash")), np.asarray(h_var.column("phash")))
        assert dist.max() <= 8, (fast, dist)
        unique = np.unique(np.asarray(h_orig.column("phash")))
        cross = hamming(unique[:, None], unique[None, :])[np.triu_indices(len(unique), 1)]
        assert cross.min() > 8


def test_unreadable_files_get_null_hashes_in_place(tmp_path: Path, photo_files: list[Path]) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    paths = [photo_files[0], bad, tmp_path / "missing.jpg", photo_files[1]]
    table = hash_images(paths, workers=1)
    assert table.column("path").to_pylist() == [str(p) for p in paths]
    assert table.column("phash").null_count == 2
    errors = table.column("error").to_pylist()
    assert errors[0] is None and errors[3] is None
    assert "bad.jpg" in errors[1] and "missing.jpg" in errors[2]
    assert table.column("phash")[0].as_py() == hash_file(photo_files[0])[0]


def test_worker_processes_match_serial(photo_files: list[Path]) -> None:
    many = photo_files * 6  # > one chunk, so the pool path runs
    assert hash_images(many, workers=2).equals(hash_images(many, workers=1))


def test_webp_luma_matches_pillow() -> None:
    img = photo(9, (300, 200))
    buf = io.BytesIO()
    img.save(buf, "WEBP", quality=95)
    fast = np.asarray(load_gray(buf.getvalue(), fast=True).image, dtype=float)
    ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L").resize(fast.shape[::-1], Image.Resampling.BOX), dtype=float)
    assert np.abs(fast - ref).mean() < 3


def test_results_do_not_depend_on_what_was_decoded_before(tmp_path: Path) -> None:
    """WebP planes are decoded into caller-provided buffers: a large photo, then a small one, then the large one
    again must hash exactly as in the reverse order."""
    sizes = [(1000, 700), (330, 250), (1000, 700), (701, 1003)]
    paths = []
    for k, size in enumerate(sizes):
        path = tmp_path / f"w{k}.webp"
        photo(700 + k, size).save(path, "WEBP", quality=85)
        paths.append(path)
    together = hash_images(paths, workers=1)
    reverse = [hash_file(p) for p in reversed(paths)][::-1]
    assert list(zip(together.column("phash").to_pylist(), together.column("dhash").to_pylist())) == reverse
    assert together.column("phash")[0] != together.column("phash")[1]
