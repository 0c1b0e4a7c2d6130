"""The ctypes binding to Pillow's libwebp (``curation.webp``) is an optimisation only: when it cannot be found, no
known ABI version initialises, or a decode through it fails, WebPs hash exactly as with ``fast=False`` (which is
imagehash's value); when it works, its hashes stay within the fast path's tolerance of a full decode."""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
import pytest
from PIL import Image

from curation import webp
from curation.hashing import hamming, hash_file, hash_images, load_gray
from petid_sample.images import photo


def _imagehash(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    images = [Image.open(p) for p in paths]
    return (
        np.array([int(str(imagehash.phash(img)), 16) for img in images], np.uint64),
        np.array([int(str(imagehash.dhash(img)), 16) for img in images], np.uint64),
    )


def _hashes(paths: list[Path], fast: bool) -> tuple[np.ndarray, np.ndarray]:
    table = hash_images(paths, workers=1, fast=fast)
    assert table.column("error").null_count == len(paths), table.column("error").to_pylist()
    return np.asarray(table.column("phash")), np.asarray(table.column("dhash"))


@pytest.fixture(scope="module")
def webp_photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Still WebPs the fast path treats differently: lossy at several qualities, sizes that do not divide by the
    reduction factor, small ones (no reduction), portrait, lossless, with alpha."""
    folder = tmp_path_factory.mktemp("webp")
    specs: list[tuple[tuple[int, int], dict[str, Any], str]] = [
        ((1024, 768), {"quality": 90}, "RGB"),
        ((768, 1024), {"quality": 60}, "RGB"),
        ((1001, 667), {"quality": 85}, "RGB"),
        ((333, 250), {"quality": 95}, "RGB"),
        ((120, 90), {"quality": 80}, "RGB"),
        ((640, 481), {"lossless": True}, "RGB"),
        ((700, 500), {"quality": 85}, "RGBA"),
        ((900, 900), {"quality": 40}, "L"),
    ]
    paths = []
    for k, (size, options, mode) in enumerate(specs):
        img = photo(900 + k, size).convert(mode)
        if mode == "RGBA":
            img.putalpha(Image.linear_gradient("L").resize(size))
        path = folder / f"w{k}.webp"
        img.save(path, "WEBP", **options)
        paths.append(path)
    return paths


@pytest.fixture
def clean_library() -> Iterator[None]:
    """Forget the probed library before and after, so a test's patched discovery neither sees nor leaves a cached
    result (the real ``_library`` is kept even when a test replaces the module attribute)."""
    real = webp._library
    real.cache_clear()
    yield
    real.cache_clear()


def _not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webp, "_candidates", lambda: ["/nonexistent/pillow.libs/libwebp-0.so.7"])


def _not_libwebp(monkeypatch: pytest.MonkeyPatch) -> None:
    # loads, but has none of libwebp's symbols (what a renamed or restructured bundled copy would look like)
    monkeypatch.setattr(webp, "_candidates", lambda: ["libm.so.6"])


def _unknown_abi(monkeypatch: pytest.MonkeyPatch) -> None:
    # a major version no libwebp we bind to speaks: WebPInitDecoderConfigInternal refuses it
    monkeypatch.setattr(webp, "_ABI_VERSIONS", (0x7F00,))


def _loader_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webp, "_library", lambda: None)


@pytest.mark.parametrize("disable", [_not_found, _not_libwebp, _unknown_abi, _loader_none],
                         ids=["not-found", "not-libwebp", "unknown-abi", "loader-none"])
def test_without_the_binding_webp_hashes_are_the_full_decode(
    disable: Callable[[pytest.MonkeyPatch], None], webp_photos: list[Path], monkeypatch: pytest.MonkeyPatch,
    clean_library: None,
) -> None:
    disable(monkeypatch)
    assert not webp.webp_available()
    assert webp.decode_luma(webp_photos[0].read_bytes()) is None
    fast, full, ref = _hashes(webp_photos, fast=True), _hashes(webp_photos, fast=False), _imagehash(webp_photos)
    for got, want in zip(fast + full, ref + ref):
        assert np.array_equal(got, want)
    assert load_gray(webp_photos[0].read_bytes(), fast=True).image.size == (1024, 768)  # Pillow decoded it
    assert hash_file(webp_photos[1]) == (int(ref[0][1]), int(ref[1][1]))


class _FailingDecode:
    """The real library, except that ``WebPDecode`` reports a bitstream error or raises."""

    def __init__(self, lib: ctypes.CDLL, raises: bool) -> None:
        self._lib, self._raises = lib, raises

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lib, name)

    def WebPDecode(self, *args: Any) -> int:  # noqa: N802 - libwebp's name
        if self._raises:
            raise OSError("exception: access violation reading 0x0")
        return 3  # VP8_STATUS_BITSTREAM_ERROR


def _decode_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any) -> None:
        raise ctypes.ArgumentError("argument 3: TypeError: expected LP__Config instance")

    monkeypatch.setattr(webp, "decode_luma", boom)


def _decode_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webp, "decode_luma", lambda *args: None)


def _status_error(monkeypatch: pytest.MonkeyPatch) -> None:
    lib, abi = webp._library()
    monkeypatch.setattr(webp, "_library", lambda: (_FailingDecode(lib, raises=False), abi))


def _library_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    lib, abi = webp._library()
    monkeypatch.setattr(webp, "_library", lambda: (_FailingDecode(lib, raises=True), abi))


@pytest.mark.parametrize("fail", [_decode_raises, _decode_none, _status_error, _library_raises],
                         ids=["decode-raises", "decode-none", "status-error", "library-raises"])
def test_a_failed_decode_through_the_binding_falls_back_to_pillow(
    fail: Callable[[pytest.MonkeyPatch], None], webp_photos: list[Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, clean_library: None,
) -> None:
    if fail in (_status_error, _library_raises) and not webp.webp_available():
        pytest.skip("no usable libwebp to wrap")
    broken = tmp_path / "broken.webp"  # a WebP header over garbage: Pillow's own error must still be reported
    broken.write_bytes(webp_photos[0].read_bytes()[:30] + b"\x00" * 200)
    expected = hash_images([*webp_photos, broken], workers=1, fast=False)
    fail(monkeypatch)
    got = hash_images([*webp_photos, broken], workers=1, fast=True)
    assert got.equals(expected)
    assert got.column("error")[len(webp_photos)].as_py() is not None
    assert got.column("phash").to_pylist()[:-1] == [int(h) for h in _imagehash(webp_photos)[0]]


def test_the_binding_stays_within_the_fast_tolerance_on_varied_webps(
    webp_photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """tests/test_hashing.py bounds fast-vs-full on same-sized lossy photos mixed with JPEGs; this checks the
    WebP-only cases the binding handles differently (partial last pixel, no reduction, lossless, alpha, grey) and
    that the binding, not the fallback, produced them."""
    if not webp.webp_available():
        pytest.skip("libwebp binding unavailable here: the fallback tests above cover this platform")
    used = []
    real = webp.decode_luma

    def counting(*args: Any) -> Any:
        result = real(*args)
        used.append(result is not None)
        return result

    monkeypatch.setattr(webp, "decode_luma", counting)
    fast_p, fast_d = _hashes(webp_photos, fast=True)
    assert used == [True] * len(webp_photos)
    ref_p, ref_d = _imagehash(webp_photos)
    p_bits, d_bits = hamming(fast_p, ref_p), hamming(fast_d, ref_d)
    assert p_bits.mean() <= 2 and d_bits.mean() <= 2, (p_bits, d_bits)  # the documented "a few bits"
    assert p_bits.max() <= 8 and d_bits.max() <= 8, (p_bits, d_bits)  # never past the duplicate threshold
