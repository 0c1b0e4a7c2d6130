"""Defensive input handling shared by hashing, conversion and ``petid dedup``.

- ``read_regular``: the bytes of a *regular* file of bounded size. A symlink is followed only to a regular file; a
  FIFO, device, socket or directory is refused without being opened (opening a FIFO blocks, reading ``/dev/zero``
  never ends), and the opened descriptor is checked again, so a file swapped after the check is refused too.
- ``check_pixels``: the pixel cap, from the header, before anything is decoded.
- ``to_8bit``: 16-bit, 32-bit integer and float greyscale images (``I;16*``, ``I``, ``F``) as 8-bit ``L``, converted
  in row strips (never a full-size float copy; Pillow's own ``convert("L")`` clips them to white).
- ``printable``: a file name as valid UTF-8 text (Arrow strings, terminals) when it is not (``surrogateescape``).
"""

from __future__ import annotations

import os
import stat
from typing import Any

from petid.errors import UserError

DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # a photo larger than this is not a listing photo
DEFAULT_MAX_PIXELS = 50_000_000  # decompression-bomb limit (curation.images.ImageOptions uses the same)
WIDE_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
_STRIP_PIXELS = 1 << 20  # rows converted at a time in to_8bit: a few MB of temporaries whatever the image size

# Skip reasons.
NOT_A_FILE = "not_a_file"
TOO_LARGE = "too_large"
DANGLING = "dangling_symlink"


class InputRefused(UserError, ValueError):
    """A path that is not a regular file of acceptable size; ``reason`` is one of the skip reason codes."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def printable(text: str) -> str:
    """``text`` unchanged when it is valid UTF-8; else the undecodable bytes of a file name as ``\\xff`` escapes."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # surrogates that are not escaped bytes
            return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def check_regular(path: str | os.PathLike[str], st: os.stat_result, max_bytes: int) -> None:
    """Raise ``InputRefused`` unless ``st`` (a followed ``stat``) describes a regular file of at most ``max_bytes``."""
    if not stat.S_ISREG(st.st_mode):
        raise InputRefused(NOT_A_FILE, f"{printable(os.fspath(path))}: not a regular file ({_kind(st.st_mode)})")
    if st.st_size > max_bytes:
        raise InputRefused(
            TOO_LARGE, f"{printable(os.fspath(path))}: {st.st_size} bytes, larger than the limit of {max_bytes}"
        )


def stat_input(path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> os.stat_result:
    """The followed ``stat`` of an acceptable input; ``InputRefused`` for a dangling symlink, a non-regular or an
    oversized file (``FileNotFoundError`` when nothing is there at all)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise InputRefused(DANGLING, f"{printable(os.fspath(path))}: dangling symlink") from None
        raise
    check_regular(path, st, max_bytes)
    return st


def read_regular(path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of ``path`` if it is (a symlink to) a regular file of at most ``max_bytes``; else ``InputRefused``.

    Nothing else is ever opened; the descriptor is opened non-blocking and checked again with ``fstat`` (a FIFO
    swapped in after the first check neither blocks nor is read), and at most ``max_bytes + 1`` bytes are read.
    """
    stat_input(path, max_bytes)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with open(fd, "rb", buffering=0, closefd=True) as fh:
        check_regular(path, os.fstat(fd), max_bytes)
        chunks, size = [], 0
        while size <= max_bytes and (chunk := fh.read(min(1 << 20, max_bytes + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
    if size > max_bytes:  # grew after the check
        raise InputRefused(TOO_LARGE, f"{printable(os.fspath(path))}: larger than the limit of {max_bytes} bytes")
    return b"".join(chunks)


def check_pixels(img: Any, max_pixels: int) -> None:
    """Raise ``InputRefused`` (reason ``decompression_bomb``) when the header's size exceeds ``max_pixels``."""
    width, height = img.size
    if width * height > max_pixels:
        raise InputRefused(
            "decompression_bomb", f"{width}x{height} = {width * height} pixels > limit {max_pixels}"
        )


def to_8bit(img: Any) -> Any:
    """An 8-bit ``L`` image of a wide greyscale one (``I;16*``, ``I``, ``F``); other modes are returned unchanged.

    Scaling: integers within 0..65535 (16-bit samples) keep their high byte (``v >> 8``, what Pillow does for 16-bit
    RGB) — unless no value exceeds 255 (8-bit samples in a 16-bit container), which are kept as they are; floats
    within 0..1 are multiplied by 255; anything else is stretched from its minimum to its maximum. The image is
    converted a strip of rows at a time, so the only full-size allocation is the 8-bit result.
    """
    if img.mode not in WIDE_MODES:
        return img
    import numpy as np
    from PIL import Image

    width, height = img.size
    step = max(1, _STRIP_PIXELS // max(1, width))
    lo, hi = (float(v) for v in img.getextrema())
    if not (np.isfinite(lo) and np.isfinite(hi)):  # NaN/inf floats: the range of the finite values
        finite = [s[np.isfinite(s)] for s in (np.asarray(img.crop((0, t, width, min(height, t + step))))
                                                for t in range(0, height, step))]
        finite = [s for s in finite if s.size]
        lo, hi = (min(float(s.min()) for s in finite), max(float(s.max()) for s in finite)) if finite else (0.0, 0.0)
    if img.mode != "F" and lo >= 0 and hi <= 65535:
        scale, offset = (1.0, 0.0) if hi <= 255 else (None, 0.0)  # None: exact integer shift
    elif img.mode == "F" and lo >= 0 and hi <= 1.0:
        scale, offset = 255.0, 0.0
    else:
        scale, offset = (255.0 / (hi - lo) if hi > lo else 0.0), lo
    out = np.empty((height, width), np.uint8)
    for top in range(0, height, step):
        bottom = min(height, top + step)
        strip = np.asarray(img.crop((0, top, width, bottom)))
        if scale is None:
            out[top:bottom] = (strip.astype(np.uint32, copy=False) >> 8).astype(np.uint8)
        else:
            values = np.nan_to_num(strip.astype(np.float32), nan=0.0, posinf=hi, neginf=lo)
            out[top:bottom] = np.clip((values - offset) * scale + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(out, "L")
