"""Validate, orient and convert every catalogue photo into an RGB JPEG under a content-addressed path.

Every input ends up either in ``images`` (converted) or in ``rejected`` (with a short reason code): nothing is dropped
silently. The output file is keyed by the sha256 of the *source bytes*, so a re-run finds it and skips the decode and
the encode (only the source is re-read and hashed). Changing ``ImageOptions`` does not redo existing outputs: use a
new ``out_dir`` for that. Work is spread over worker processes in chunks; the parent only
ever holds small per-row metadata, never pixels.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from petid.paths import atomic_write_bytes, content_path

# Reason codes of the rejected table.
ZERO_BYTES = "zero_bytes"
TRUNCATED = "truncated"
NOT_AN_IMAGE = "not_an_image"
TOO_SMALL = "too_small"
DECOMPRESSION_BOMB = "decompression_bomb"
MISSING_FILE = "missing_file"
DECODE_ERROR = "decode_error"
DUPLICATE_IN_IDENTITY = "duplicate_in_identity"

REJECTED_SCHEMA = pa.schema(
    [
        pa.field("identity_id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("src_path", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
    ]
)
ADDED_FIELDS = [
    pa.field("src_path", pa.string()),
    pa.field("image_id", pa.string()),
    pa.field("sha256", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("src_format", pa.string()),
]
STATS_METADATA_KEY = b"petid.process_images"
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")  # header cut short → truncated
_SLICE = 8192  # catalogue rows turned into Python objects at a time
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ImageOptions:
    """Conversion settings. ``max_pixels`` is the decompression-bomb limit (checked from the header, before decoding)."""

    jpeg_quality: int = 90
    min_side: int = 64
    max_pixels: int = 50_000_000
    background: tuple[int, int, int] = (255, 255, 255)  # alpha is composited on this colour
    chunk_size: int = 32  # rows per worker task


def image_id_for(identity_id: str, sha256: str) -> str:
    """Stable id of one photo of one identity: the same content under two identities gets two ids."""
    return hashlib.sha256(f"{identity_id}\x00{sha256}".encode()).hexdigest()[:24]


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _to_rgb(img: Any, background: tuple[int, int, int]) -> Any:
    """RGB copy of ``img``: alpha (RGBA, LA, palette transparency) composited on ``background``; CMYK, 16-bit, float
    and palette images converted."""
    from PIL import Image

    if img.mode == "P" and "transparency" in img.info or img.mode in ("PA", "LA", "La", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        canvas = Image.new("RGB", img.size, background)
        canvas.paste(img, mask=img.getchannel("A"))
        return canvas
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        hi = float(arr.max()) or 1.0
        img = Image.fromarray((np.clip(arr / hi, 0, 1) * 255).round().astype(np.uint8), "L")
    return img if img.mode == "RGB" else img.convert("RGB")


def _convert(data: bytes, options: ImageOptions) -> tuple[bytes, int, int, str]:
    """Decode ``data`` and return (jpeg bytes, width, height, source format); raises ``_Reject``."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        if data.startswith(_SIGNATURES) or data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            raise _Reject(TRUNCATED, f"image signature but no readable header ({len(data)} bytes)") from exc
        raise _Reject(NOT_AN_IMAGE, f"Pillow cannot identify the file: {exc}") from exc
    except Image.DecompressionBombError as exc:
        raise _Reject(DECOMPRESSION_BOMB, str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - any header-parse failure is a bad file, recorded with its message
        raise _Reject(NOT_AN_IMAGE, f"{type(exc).__name__}: {exc}") from exc
    fmt = img.format or "unknown"
    width, height = img.size
    if width * height > options.max_pixels:
        raise _Reject(DECOMPRESSION_BOMB, f"{width}x{height} = {width * height} pixels > limit {options.max_pixels}")
    try:
        img.load()  # first frame for animations
        img = ImageOps.exif_transpose(img)
        rgb = _to_rgb(img, options.background)
    except Image.DecompressionBombError as exc:
        raise _Reject(DECOMPRESSION_BOMB, str(exc)) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        message = f"{type(exc).__name__}: {exc}"
        reason = TRUNCATED if "truncated" in str(exc).lower() or "premature" in str(exc).lower() else DECODE_ERROR
        raise _Reject(reason, message) from exc
    if min(rgb.size) < options.min_side:
        raise _Reject(TOO_SMALL, f"{rgb.size[0]}x{rgb.size[1]} smaller than min_side {options.min_side}")
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=options.jpeg_quality)
    return out.getvalue(), rgb.size[0], rgb.size[1], fmt


def _process_one(src: str, out_dir: str, options: ImageOptions) -> dict[str, Any]:
    """Result dict for one source file: either {sha256, path, width, height, src_format, reused} or {reason, detail}."""
    from PIL import Image

    try:
        with open(src, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return {"reason": MISSING_FILE, "detail": f"no such file: {src}"}
    except OSError as exc:
        return {"reason": MISSING_FILE, "detail": f"cannot read {src}: {exc}"}
    if not data:
        return {"reason": ZERO_BYTES, "detail": f"{src} is empty"}
    sha = hashlib.sha256(data).hexdigest()
    target = content_path(out_dir, sha, ".jpg")
    if target.exists():  # converted by an earlier run: read two headers, no decode or encode
        try:
            with Image.open(target) as done, Image.open(io.BytesIO(data)) as original:
                return {"sha256": sha, "path": str(target), "width": done.size[0], "height": done.size[1],
                        "src_format": original.format or "unknown", "reused": True}
        except Exception:  # noqa: BLE001 - a damaged cached output is simply redone
            target.unlink(missing_ok=True)
    try:
        jpeg, width, height, fmt = _convert(data, options)
    except _Reject as rej:
        return {"reason": rej.reason, "detail": rej.detail}
    atomic_write_bytes(target, jpeg)
    return {"sha256": sha, "path": str(target), "width": width, "height": height, "src_format": fmt, "reused": False}


def _process_chunk(args: tuple[list[tuple[str, str]], str, ImageOptions]) -> list[dict[str, Any]]:
    from PIL import Image, ImageFile

    items, out_dir, options = args
    Image.MAX_IMAGE_PIXELS = options.max_pixels  # also guards decoders that allocate before our header check
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file must fail, whatever the parent process set
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for src, identity in items:
            result = _process_one(src, out_dir, options)
            if "sha256" in result:
                result["image_id"] = image_id_for(identity, result["sha256"])
            results.append(result)
    return results


def _tasks(catalogue: pa.Table, out_dir: str, options: ImageOptions) -> Iterator[tuple[list[tuple[str, str]], str, ImageOptions]]:
    """Worker tasks read lazily from the catalogue, one slice at a time (no full Python copy of its columns)."""
    for start in range(0, catalogue.num_rows, _SLICE):
        part = catalogue.slice(start, _SLICE)
        pairs = list(zip(part.column("path").to_pylist(), part.column("identity_id").to_pylist()))
        for offset in range(0, len(pairs), options.chunk_size):
            yield pairs[offset : offset + options.chunk_size], out_dir, options


def _run_chunks(catalogue: pa.Table, out_dir: str, options: ImageOptions, workers: int) -> Iterator[dict[str, Any]]:
    tasks = _tasks(catalogue, out_dir, options)
    if workers <= 1 or catalogue.num_rows <= options.chunk_size:
        for task in tasks:
            yield from _process_chunk(task)
        return
    for results in bounded_map(_process_chunk, tasks, workers):  # small dicts only: pixels never leave a worker
        yield from results


def bounded_map(fn: Callable[[T], R], tasks: Iterable[T], workers: int, ahead: int = 4) -> Iterator[R]:
    """``fn`` over ``tasks`` in ``workers`` processes, results in task order, at most ``ahead`` tasks per worker
    in flight (``Executor.map`` would submit every task at once)."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[R]] = deque()
        for task in tasks:
            pending.append(pool.submit(fn, task))
            if len(pending) >= workers * ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def process_images(
    catalogue: pa.Table, out_dir: Path, options: ImageOptions = ImageOptions(), workers: int | None = None
) -> tuple[pa.Table, pa.Table]:
    """Convert every catalogue photo to an oriented RGB JPEG at ``out_dir/ab/<sha256 of source>.jpg``.

    Returns ``(images, rejected)``. ``images`` keeps the catalogue columns (``path`` = the converted JPEG) and adds
    ``src_path``, ``image_id``, ``sha256`` (of the source bytes), ``width``, ``height``, ``src_format``; its schema
    metadata ``petid.process_images`` holds JSON counts (``converted``, ``reused``, ``rejected``). ``rejected`` has
    ``identity_id, source, src_path, reason, detail``; reasons: zero_bytes, truncated, not_an_image, too_small,
    decompression_bomb, missing_file, decode_error, duplicate_in_identity (the same bytes twice under one identity).
    """
    missing = {"identity_id", "source", "path"} - set(catalogue.column_names)
    if missing:
        raise ValueError(f"catalogue lacks columns {sorted(missing)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = default_workers() if workers is None else max(1, int(workers))
    kept_columns = ("path", "image_id", "sha256", "width", "height", "src_format", "reused")
    kept_types = {"path": pa.string(), "reused": pa.bool_(), **{f.name: f.type for f in ADDED_FIELDS}}
    buffer: dict[str, list[Any]] = {name: [] for name in kept_columns}
    flushed: dict[str, list[pa.Array]] = {name: [] for name in kept_columns}
    keep = array("q")  # accepted catalogue rows
    rejected: dict[str, list[Any]] = {name: [] for name in REJECTED_SCHEMA.names}
    counts = {"rejected": 0}

    def flush() -> None:  # Python strings → Arrow buffers, so memory per accepted row stays ~200 bytes
        for name in kept_columns:
            flushed[name].append(pa.array(buffer[name], kept_types[name]))
            buffer[name].clear()

    def reject(row: int, reason: str, detail: str) -> None:
        counts["rejected"] += 1
        values = (catalogue.column("identity_id")[row].as_py(), catalogue.column("source")[row].as_py(),
                  catalogue.column("path")[row].as_py(), reason, detail)
        for name, value in zip(REJECTED_SCHEMA.names, values):
            rejected[name].append(value)

    for row, result in enumerate(_run_chunks(catalogue, str(out_dir), options, workers)):
        if "reason" in result:
            reject(row, result["reason"], result["detail"])
            continue
        keep.append(row)
        for name in kept_columns:
            buffer[name].append(result[name])
        if len(buffer["path"]) >= _SLICE:
            flush()
    flush()
    kept = {name: pa.chunked_array(flushed[name], kept_types[name]) for name in kept_columns}
    rows = np.frombuffer(keep, dtype=np.int64) if len(keep) else np.empty(0, np.int64)

    # The same bytes twice under one identity share an image_id: keep the first, reject the others.
    codes = np.asarray(pc.dictionary_encode(kept["image_id"].combine_chunks()).indices, dtype=np.int64)
    first_of = np.full(len(codes) and codes.max() + 1, -1, np.int64)
    first_of[codes[::-1]] = np.arange(len(codes))[::-1]
    repeated = np.flatnonzero(first_of[codes] != np.arange(len(codes)))
    for k in repeated.tolist():
        first_src = catalogue.column("path")[int(rows[first_of[codes[k]]])].as_py()
        identity = catalogue.column("identity_id")[int(rows[k])].as_py()
        reject(int(rows[k]), DUPLICATE_IN_IDENTITY, f"same bytes as {first_src} in {identity}")
    if len(repeated):
        unique = np.ones(len(rows), bool)
        unique[repeated] = False
        rows = rows[unique]
        kept = {name: column.filter(pa.array(unique)) for name, column in kept.items()}

    reused = int(pc.sum(kept["reused"]).as_py() or 0)
    counts = {"converted": len(rows) - reused, "reused": reused, "rejected": counts["rejected"]}
    images = catalogue.take(pa.array(rows, pa.int64()))
    src_path = images.column("path")
    path_index = images.column_names.index("path")
    images = images.set_column(path_index, images.schema.field("path"), kept["path"])
    for field in ADDED_FIELDS:
        if field.name in images.column_names:
            images = images.drop_columns([field.name])
        images = images.append_column(field, src_path if field.name == "src_path" else kept[field.name])
    metadata = dict(images.schema.metadata or {})
    metadata[STATS_METADATA_KEY] = json.dumps({**counts, "options": asdict(options)}).encode()
    images = images.replace_schema_metadata(metadata)
    return images, pa.Table.from_pydict(rejected, schema=REJECTED_SCHEMA)


def process_stats(images: pa.Table) -> dict[str, int]:
    """The counts ``process_images`` stored in the schema metadata (converted, reused, rejected)."""
    raw = (images.schema.metadata or {}).get(STATS_METADATA_KEY)
    if not raw:
        return {}
    return {k: v for k, v in json.loads(raw).items() if isinstance(v, int)}
