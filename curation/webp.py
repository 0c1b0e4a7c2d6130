"""Reduced WebP decoding for the fast hashing path: the bare luma plane of a still WebP, through libwebp by ctypes.

Why it exists: Pillow always decodes a WebP at full size to RGB(A), and that decode dominates the cost of hashing a
WebP. A perceptual hash needs only a small grey image, so ``decode_luma`` asks libwebp directly for the luma plane
(no loop filter, no chroma upsampling) and box-reduces it; ``curation.hashing.load_gray(fast=True)`` uses it, which
about halves ``hash_images`` time on 1024x768 WebP photos. The hashes differ from a full decode by a few bits
(the tolerance ``tests/test_hashing.py`` asserts); only ``fast=False`` is bit-identical to imagehash.

Why it is fragile: Pillow exposes no such API, so this binds to the libwebp copy inside Pillow's wheel
(``pillow.libs/libwebp-*.so*``; else a system ``libwebp.so.7`` / ``libwebp.so``) and mirrors libwebp's decoder
structures (``WebPDecoderConfig`` and its parts) in ctypes, laid out as for the decoder ABI versions in
``_ABI_VERSIONS``. ``WebPInitDecoderConfigInternal`` refuses a version whose major byte differs from the
library's own (a layout change), so a library is used only when one of those versions initialises. A Pillow
upgrade can ship a libwebp under another name, without a symbol we call, or with a new major ABI.

The fallback: ``decode_luma`` returns ``None`` — and ``curation.hashing`` then decodes with Pillow, exactly as
``fast=False`` does for a WebP, so the hashes are bit-identical to imagehash's — when no library loads, a loaded
one lacks a symbol we call, no known ABI version initialises, the header does not parse, the file is animated or
larger than ``max_pixels`` (Pillow then reports it), or libwebp's decode fails. ``curation.hashing`` also falls
back when the call raises. ``webp_available()`` says whether the fast path is in use at all.
"""

from __future__ import annotations

import ctypes
import glob
import os
from functools import lru_cache

import numpy as np

from curation.inputs import DEFAULT_MAX_PIXELS

# Decoder ABI versions (WEBP_DECODER_ABI_VERSION in libwebp's decode.h) whose structure layout the classes below
# mirror, tried in order; 0x0209 is what the libwebp 1.6.0 in Pillow 13's wheel reports. libwebp compares only the
# major byte, so a new major version (a new layout) is refused and needs the structures checked before adding it.
_ABI_VERSIONS = (0x0209, 0x0208)
_MODE_YUV = 11  # WEBP_CSP_MODE MODE_YUV
_VP8_STATUS_OK = 0


class _Features(ctypes.Structure):  # WebPBitstreamFeatures
    _fields_ = [("width", ctypes.c_int), ("height", ctypes.c_int), ("has_alpha", ctypes.c_int),
                ("has_animation", ctypes.c_int), ("format", ctypes.c_int), ("pad", ctypes.c_uint32 * 5)]


class _YUVA(ctypes.Structure):  # WebPYUVABuffer
    _fields_ = [("y", ctypes.POINTER(ctypes.c_uint8)), ("u", ctypes.POINTER(ctypes.c_uint8)),
                ("v", ctypes.POINTER(ctypes.c_uint8)), ("a", ctypes.POINTER(ctypes.c_uint8)),
                ("y_stride", ctypes.c_int), ("u_stride", ctypes.c_int), ("v_stride", ctypes.c_int),
                ("a_stride", ctypes.c_int), ("y_size", ctypes.c_size_t), ("u_size", ctypes.c_size_t),
                ("v_size", ctypes.c_size_t), ("a_size", ctypes.c_size_t)]


class _RGBA(ctypes.Structure):  # WebPRGBABuffer
    _fields_ = [("rgba", ctypes.POINTER(ctypes.c_uint8)), ("stride", ctypes.c_int), ("size", ctypes.c_size_t)]


class _Union(ctypes.Union):
    _fields_ = [("RGBA", _RGBA), ("YUVA", _YUVA)]


class _DecBuffer(ctypes.Structure):  # WebPDecBuffer
    _fields_ = [("colorspace", ctypes.c_int), ("width", ctypes.c_int), ("height", ctypes.c_int),
                ("is_external_memory", ctypes.c_int), ("u", _Union), ("pad", ctypes.c_uint32 * 4),
                ("private_memory", ctypes.POINTER(ctypes.c_uint8))]


class _Options(ctypes.Structure):  # WebPDecoderOptions
    _fields_ = [(name, ctypes.c_int) for name in (
        "bypass_filtering", "no_fancy_upsampling", "use_cropping", "crop_left", "crop_top", "crop_width",
        "crop_height", "use_scaling", "scaled_width", "scaled_height", "use_threads", "dithering_strength", "flip",
        "alpha_dithering_strength")] + [("pad", ctypes.c_uint32 * 5)]


class _Config(ctypes.Structure):  # WebPDecoderConfig
    _fields_ = [("input", _Features), ("output", _DecBuffer), ("options", _Options)]


_U8P = ctypes.POINTER(ctypes.c_uint8)
# VP8 stores limited-range luma (16..235); Pillow's "L" is full range.
_FULL_RANGE = np.clip((np.arange(256) - 16.0) * (255.0 / 219.0) + 0.5, 0, 255).astype(np.uint8)


def _candidates() -> list[str]:
    """Library names to try, in order: the copy inside Pillow's wheel (the one Pillow itself decodes with), then a
    system libwebp."""
    import PIL

    bundled = os.path.join(os.path.dirname(PIL.__file__), os.pardir, "pillow.libs", "libwebp-*.so*")
    return sorted(glob.glob(bundled)) + ["libwebp.so.7", "libwebp.so"]


def _probe(lib: ctypes.CDLL, abi_versions: tuple[int, ...]) -> int | None:
    """Declare the functions we call on ``lib`` and return the first of ``abi_versions`` it initialises a decoder
    config for; ``None`` when a symbol is missing or no version is accepted."""
    try:
        lib.WebPInitDecoderConfigInternal.argtypes = [ctypes.POINTER(_Config), ctypes.c_int]
        lib.WebPDecode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(_Config)]
        lib.WebPFreeDecBuffer.argtypes = [ctypes.POINTER(_DecBuffer)]
        lib.WebPGetFeaturesInternal.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(_Features),
                                                ctypes.c_int]
    except AttributeError:  # not a libwebp we know (a symbol was renamed or removed)
        return None
    for abi in abi_versions:
        if lib.WebPInitDecoderConfigInternal(ctypes.byref(_Config()), abi):
            return abi
    return None


def _load(candidates: list[str], abi_versions: tuple[int, ...]) -> tuple[ctypes.CDLL, int] | None:
    """The first of ``candidates`` that loads and accepts one of ``abi_versions``, with that version."""
    for name in candidates:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        abi = _probe(lib, abi_versions)
        if abi is not None:
            return lib, abi
    return None


@lru_cache(maxsize=1)
def _library() -> tuple[ctypes.CDLL, int] | None:
    """The libwebp in use and its ABI version, found once per process; ``None`` disables the fast path."""
    return _load(_candidates(), _ABI_VERSIONS)


def webp_available() -> bool:
    """Whether the fast luma decode is usable here (else WebPs are decoded by Pillow)."""
    return _library() is not None


def decode_luma(
    data: bytes, min_side: int = 64, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, tuple[float, float, float, float]] | None:
    """Grey (ITU-R 601 full-range) image of a still WebP, box-reduced so its shorter side is at least ``min_side``,
    and the region of it that covers the photo; ``None`` when libwebp is unavailable, the header does not parse, the
    file is animated or larger than ``max_pixels``, or decoding fails — the caller then decodes with Pillow.

    libwebp decodes at full size into our own planes (U and V share one scratch buffer: we never read them), with
    no loop filter and no chroma upsampling. Its in-decoder rescaler would also rescale the chroma planes and costs
    more (≈23 % more instructions per 1024 px photo) than decoding the full luma plane and box-reducing it here.
    """
    loaded = _library()
    if loaded is None:
        return None
    lib, abi = loaded
    config = _Config()
    if not lib.WebPInitDecoderConfigInternal(ctypes.byref(config), abi):
        return None
    if lib.WebPGetFeaturesInternal(data, len(data), ctypes.byref(config.input), abi) != _VP8_STATUS_OK:
        return None
    width, height = config.input.width, config.input.height
    if config.input.has_animation or width <= 0 or height <= 0 or width * height > max_pixels:
        return None
    luma = np.empty((height, width), np.uint8)
    chroma = np.empty(((height + 1) // 2, (width + 1) // 2), np.uint8)
    config.options.bypass_filtering = 1
    config.options.no_fancy_upsampling = 1
    out = config.output
    out.colorspace = _MODE_YUV
    out.is_external_memory = 1
    planes = out.u.YUVA
    planes.y, planes.y_stride, planes.y_size = luma.ctypes.data_as(_U8P), width, luma.size
    planes.u = planes.v = chroma.ctypes.data_as(_U8P)
    planes.u_stride = planes.v_stride = chroma.shape[1]
    planes.u_size = planes.v_size = chroma.size
    status = lib.WebPDecode(data, len(data), ctypes.byref(config))
    lib.WebPFreeDecBuffer(ctypes.byref(config.output))  # frees nothing of ours; releases any private state
    if status != _VP8_STATUS_OK:
        return None
    factor = max(1, min(width, height) // min_side)
    if factor > 1:
        from PIL import Image

        luma = np.asarray(Image.frombuffer("L", (width, height), luma, "raw", "L", 0, 1).reduce(factor))
    return _FULL_RANGE[luma], (0.0, 0.0, width / factor, height / factor)
