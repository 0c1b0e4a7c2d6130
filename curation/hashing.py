"""64-bit perceptual hashes (pHash, dHash): the ``imagehash`` library's algorithms, vectorised over batches.

Given the same grey pixels the values are bit-identical to ``imagehash.phash`` / ``imagehash.dhash`` (defaults:
hash_size 8, highfreq_factor 4), packed into a uint64 whose most significant bit is the first (top-left) bit, i.e.
``int(str(imagehash.phash(img)), 16)``.

``fast=True`` decodes less: JPEGs in draft mode (libjpeg DCT scaling, luma only) and still WebPs as the bare luma
plane (libwebp through ``curation.webp``, no loop filter, box-reduced; when that binding is unusable, Pillow
decodes the WebP exactly as with ``fast=False``); both give a grey image whose shorter side is about ``FAST_MIN_SIDE``
before the usual Lanczos resize, taken from exactly the region that covers the photo. That changes a few bits
relative to a full decode (measured by ``bench/curation.py`` and the tests); ``fast=False`` decodes fully and
matches imagehash on the file exactly — except for wide greyscale images (16-bit, 32-bit integer, float), which
imagehash's ``convert("L")`` clips to white: they are scaled to 8 bits first (``curation.inputs.to_8bit``).

Inputs are read defensively (``curation.inputs``): only regular files up to ``max_bytes`` (FIFOs, devices and
oversized files get an error row, never a hang), and images above ``max_pixels`` are refused from their header.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from curation import webp as _webp
from curation.inputs import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    InputRefused,
    check_pixels,
    printable,
    read_regular,
    to_8bit,
)
from curation.webp import webp_available  # noqa: F401 - re-exported: whether fast=True reduces WebPs
from petid.errors import UserError

HASH_SIZE = 8
PHASH_SIDE = HASH_SIZE * 4  # imagehash's highfreq_factor = 4
FAST_MIN_SIDE = 64
CHUNK_SIZE = 16  # small enough that no worker idles long at the end, large enough to batch the DCT

HASH_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string()),
        pa.field("phash", pa.uint64()),
        pa.field("dhash", pa.uint64()),
        pa.field("error", pa.string()),  # null when hashed; else why the file could not be decoded
    ]
)
_POWERS = (np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


class HashError(UserError, ValueError):
    """A file could not be decoded for hashing."""


def _pack(bits: np.ndarray) -> np.ndarray:
    """(n, 64) booleans, first bit most significant → (n,) uint64."""
    packed = np.packbits(bits.reshape(len(bits), 64).astype(np.uint8), axis=1)
    return packed.view(">u8").reshape(-1).astype(np.uint64)


def phash_pixels(pixels: np.ndarray) -> np.ndarray:
    """pHash of a batch of (n, 32, 32) grey images (already resized): DCT-II on both axes, top-left 8x8, > median."""
    import scipy.fftpack

    pixels = np.asarray(pixels)
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=1), axis=2)
    low = dct[:, :HASH_SIZE, :HASH_SIZE].reshape(len(pixels), -1)
    return _pack(low > np.median(low, axis=1, keepdims=True))


def dhash_pixels(pixels: np.ndarray) -> np.ndarray:
    """dHash of a batch of (n, 8, 9) grey images: each pixel brighter than its left neighbour."""
    pixels = np.asarray(pixels)
    return _pack(pixels[:, :, 1:] > pixels[:, :, :-1])


class Gray(NamedTuple):
    """A grey image to hash and ``box``: the region of it that covers the whole source photo (a reduced decode can
    end in a partial pixel; resizing from exactly that region keeps imagehash's geometry)."""

    image: Any
    box: tuple[float, float, float, float] | None = None


def _resized(gray: Gray) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    image, box = gray
    return (
        np.asarray(image.resize((PHASH_SIDE, PHASH_SIDE), Image.Resampling.LANCZOS, box)),
        np.asarray(image.resize((HASH_SIZE + 1, HASH_SIZE), Image.Resampling.LANCZOS, box)),
    )


def hash_pil_images(images: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(phash, dhash) uint64 arrays for PIL images, exactly as ``imagehash.phash`` / ``imagehash.dhash`` would."""
    if not images:
        return np.empty(0, np.uint64), np.empty(0, np.uint64)
    small = [_resized(Gray(to_8bit(img).convert("L"))) for img in images]
    return phash_pixels(np.stack([s[0] for s in small])), dhash_pixels(np.stack([s[1] for s in small]))


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bitwise Hamming distance between 64-bit hashes (element-wise, broadcasting; uint8): the one popcount
    near-duplicate search, deduplication and evaluation's burst exclusion all use."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64)))


def to_hex(value: int) -> str:
    """The 16-hex-digit string imagehash prints for the same hash."""
    return f"{int(value):016x}"


def load_gray(
    data: bytes, fast: bool = True, min_side: int = FAST_MIN_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Gray:
    """The grey image of encoded ``data`` to hash; with ``fast`` a reduced decode (JPEG draft, reduced WebP luma)
    whose shorter side is about ``min_side``. Wide greyscale modes are scaled to 8 bits (``to_8bit``). Raises
    ``HashError`` naming the problem when the bytes do not decode or the header claims more than ``max_pixels``."""
    from PIL import Image

    if fast and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        try:
            reduced = _webp.decode_luma(data, min_side, max_pixels)
        except Exception:  # noqa: BLE001 - a broken binding (e.g. after a Pillow upgrade) must not cost the file
            reduced = None
        if reduced is not None:  # else Pillow decodes it below, exactly as with fast=False
            luma, box = reduced
            return Gray(Image.fromarray(luma, "L"), box)
    try:
        img = Image.open(io.BytesIO(data))
        check_pixels(img, max_pixels)
        box = None
        if fast and img.format == "JPEG":
            drafted = img.draft("L", (min_side, min_side))
            box = drafted[1] if drafted else None
        gray = to_8bit(img)
        gray.load()  # decode errors are reported here, as HashError
        return Gray(gray if gray.mode == "L" else gray.convert("L"), box)  # convert("L") of an L image copies it
    except InputRefused as exc:
        raise HashError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - reported per file with its message
        raise HashError(f"{type(exc).__name__}: {exc}") from exc


def hash_file(
    path: str | os.PathLike[str], fast: bool = True, max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[int, int]:
    """(phash, dhash) of one file as Python ints (``InputRefused`` for a non-regular or oversized file)."""
    return hash_bytes(read_regular(path, max_bytes), fast, max_pixels)


def hash_bytes(data: bytes, fast: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(phash, dhash) of encoded ``data`` as Python ints: what ``hash_images`` gives for a file holding these bytes
    (``curation.images`` hashes a JPEG it has just encoded, before writing it, without reading it back)."""
    p, d = _resized(load_gray(data, fast, max_pixels=max_pixels))
    return int(phash_pixels(p[None])[0]), int(dhash_pixels(d[None])[0])


def _hash_chunk(args: tuple[list[str], bool, int, int]) -> list[tuple[int | None, int | None, str | None]]:
    paths, fast, max_bytes, max_pixels = args
    small_p, small_d, ok, errors = [], [], [], [None] * len(paths)
    for i, path in enumerate(paths):
        try:
            data = read_regular(path, max_bytes)
            p, d = _resized(load_gray(data, fast, max_pixels=max_pixels))
        except InputRefused as exc:  # names the path already
            errors[i] = printable(str(exc))
            continue
        except (OSError, HashError) as exc:
            errors[i] = printable(f"{path}: {exc}")
            continue
        small_p.append(p)
        small_d.append(d)
        ok.append(i)
    out: list[tuple[int | None, int | None, str | None]] = [(None, None, e) for e in errors]
    if ok:
        ph, dh = phash_pixels(np.stack(small_p)), dhash_pixels(np.stack(small_d))
        for k, i in enumerate(ok):
            out[i] = (int(ph[k]), int(dh[k]), None)
    return out


def _iter_hashes(
    paths: Sequence[str], workers: int, fast: bool, max_bytes: int, max_pixels: int
) -> Iterator[tuple[int | None, int | None, str | None]]:
    # Small inputs get smaller chunks so every worker stays busy to the end.
    size = max(4, min(CHUNK_SIZE, -(-len(paths) // (4 * workers))))
    tasks = ((list(paths[s : s + size]), fast, max_bytes, max_pixels) for s in range(0, len(paths), size))
    if workers <= 1 or len(paths) <= size:
        for task in tasks:
            yield from _hash_chunk(task)
        return
    import scipy.fftpack  # noqa: F401 - imported once here, inherited by forked workers
    from PIL import Image  # noqa: F401

    from curation.images import bounded_map

    for results in bounded_map(_hash_chunk, tasks, workers):
        yield from results


def hash_images(
    paths: Sequence[str | os.PathLike[str]],
    workers: int | None = None,
    fast: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> pa.Table:
    """pHash and dHash (uint64) of every file, in input order: columns ``path``, ``phash``, ``dhash``, ``error``.

    A file that cannot be read or decoded — not a regular file, over ``max_bytes`` bytes or ``max_pixels`` pixels,
    undecodable — gets null hashes and its message in ``error`` (never dropped, so the result lines up row for row
    with ``paths``). ``fast=False`` disables the reduced decoding shortcuts. A path that is not valid UTF-8 (a
    surrogate-escaped file name) appears in ``path`` with its odd bytes as ``\\xff`` escapes (Arrow strings are
    UTF-8); match rows by position, not by that text.
    """
    from curation.images import default_workers

    paths = [os.fspath(p) for p in paths]
    workers = default_workers() if workers is None else max(1, int(workers))
    phashes = np.zeros(len(paths), np.uint64)
    dhashes = np.zeros(len(paths), np.uint64)
    failed = np.zeros(len(paths), bool)
    errors: dict[int, str] = {}
    for row, (p, d, e) in enumerate(_iter_hashes(paths, workers, fast, max_bytes, max_pixels)):
        if e is None:
            phashes[row], dhashes[row] = p, d
        else:
            failed[row] = True
            errors[row] = e
    mask = failed
    return pa.Table.from_arrays(
        [pa.array([printable(p) for p in paths], pa.string()), pa.array(phashes, pa.uint64(), mask=mask),
         pa.array(dhashes, pa.uint64(), mask=mask), pa.array([errors.get(r) for r in range(len(paths))], pa.string())],
        schema=HASH_SCHEMA,
    )
