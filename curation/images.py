"""Validate, orient and convert every catalogue photo into an RGB JPEG under a content-addressed path.

Every input ends up either in ``images`` (converted) or in ``rejected`` (with a short reason code): nothing is dropped
silently. The output file is keyed by the sha256 of the *source bytes*, so a re-run finds it and skips the decode and
the encode (only the source is re-read and hashed) — provided the existing output is intact (its header parses and a
JPEG ends with its end-of-image marker); a damaged output is converted again. Changing ``ImageOptions`` does not redo
existing outputs: use a new ``out_dir`` for that. Work is spread over worker processes in chunks; the parent only
ever holds small per-row metadata, never pixels.

Sources are read defensively (``curation.inputs``): only regular files up to ``max_bytes``, images above
``max_pixels`` refused from their header, and wide greyscale images (16-bit, 32-bit integer, float) scaled to 8 bits
a strip of rows at a time (a 7000x7000 16-bit PNG converts in well under 400 MB). ``hash_curated`` hashes the
curated files and re-converts, from their sources, any that fail to decode.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
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

from curation.inputs import DANGLING, DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, InputRefused, read_regular, to_8bit
from curation.inputs import NOT_A_FILE as NOT_A_FILE  # re-exported: reason codes of the rejected table too
from curation.inputs import TOO_LARGE as TOO_LARGE
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
# and NOT_A_FILE ("not_a_file": FIFO, device, directory...), TOO_LARGE ("too_large": over max_bytes) from inputs.

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
    """Conversion settings. ``max_pixels`` is the decompression-bomb limit (checked from the header, before decoding);
    ``max_bytes`` the largest source file read."""

    jpeg_quality: int = 90
    min_side: int = 64
    max_pixels: int = DEFAULT_MAX_PIXELS
    background: tuple[int, int, int] = (255, 255, 255)  # alpha is composited on this colour
    chunk_size: int = 32  # rows per worker task
    max_bytes: int = DEFAULT_MAX_BYTES


def image_id_for(identity_id: str, sha256: str) -> str:
    """Stable id of one photo of one identity: the same content under two identities gets two ids."""
    return hashlib.sha256(f"{identity_id}\x00{sha256}".encode()).hexdigest()[:24]


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _to_rgb(img: Any, background: tuple[int, int, int]) -> Any:
    """RGB version of ``img`` (``img`` itself when already RGB): alpha (RGBA, LA, palette transparency) composited on
    ``background``; CMYK, palette and wide greyscale (16-bit, 32-bit integer, float: ``to_8bit``) converted."""
    from PIL import Image

    if img.mode == "P" and "transparency" in img.info or img.mode in ("PA", "LA", "La", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        canvas = Image.new("RGB", img.size, background)
        canvas.paste(img, mask=img.getchannel("A"))
        return canvas
    img = to_8bit(img)
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
        if img.getexif().get(0x0112, 1) != 1:  # exif_transpose without an orientation would copy the image
            ImageOps.exif_transpose(img, in_place=True)
        img = to_8bit(img)  # drops a wide (16-bit...) original before the RGB copy exists
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


def _read_source(src: str, options: ImageOptions) -> bytes | dict[str, str]:
    """The source's bytes, or the {reason, detail} of why it cannot be used."""
    try:
        data = read_regular(src, options.max_bytes)
    except FileNotFoundError:
        return {"reason": MISSING_FILE, "detail": f"no such file: {src}"}
    except InputRefused as exc:
        return {"reason": MISSING_FILE if exc.reason == DANGLING else exc.reason, "detail": str(exc)}
    except OSError as exc:
        return {"reason": MISSING_FILE, "detail": f"cannot read {src}: {exc}"}
    if not data:
        return {"reason": ZERO_BYTES, "detail": f"{src} is empty"}
    return data


def _inspect(path: str | os.PathLike[str]) -> tuple[tuple[int, int] | None, str | None]:
    """((width, height), None) when ``path`` looks like a complete image, else (None, why not). Cheap: the header is
    parsed and a JPEG must end with its end-of-image marker (a truncated file does not); other formats are
    ``verify()``-ed (PNG chunk CRCs). Nothing is decoded."""
    from PIL import Image

    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return None, "not a regular file"
        if st.st_size == 0:
            return None, "empty file"
        with open(path, "rb") as fh:
            if fh.read(3) == b"\xff\xd8\xff":
                fh.seek(max(0, st.st_size - 64))
                if not fh.read().rstrip(b"\x00").endswith(b"\xff\xd9"):
                    return None, "truncated JPEG (no end-of-image marker)"
            fh.seek(0)
            with Image.open(fh) as img:
                size = img.size
                if img.format != "JPEG":
                    img.verify()
    except FileNotFoundError:
        return None, "missing"
    except Exception as exc:  # noqa: BLE001 - any failure to parse means the file is not usable
        return None, f"cannot be read as an image: {type(exc).__name__}: {exc}"
    return size, None


def image_ok(path: str | os.PathLike[str]) -> str | None:
    """``None`` when ``path`` is an intact-looking image file (see ``_inspect``: cheap, no decode); else why not."""
    return _inspect(path)[1]


def _process_one(src: str, out_dir: str, options: ImageOptions) -> dict[str, Any]:
    """Result dict for one source file: either {sha256, path, width, height, src_format, reused} or {reason, detail}."""
    from PIL import Image

    data = _read_source(src, options)
    if isinstance(data, dict):
        return data
    sha = hashlib.sha256(data).hexdigest()
    target = content_path(out_dir, sha, ".jpg")
    if target.exists():  # converted by an earlier run: two headers and the end marker, no decode or encode
        size, problem = _inspect(target)
        if problem is None:
            try:
                with Image.open(io.BytesIO(data)) as original:
                    return {"sha256": sha, "path": str(target), "width": size[0], "height": size[1],
                            "src_format": original.format or "unknown", "reused": True}
            except Exception:  # noqa: BLE001 - the source no longer parses: _convert below reports why
                pass
        target.unlink(missing_ok=True)  # a damaged earlier output is simply redone
    try:
        jpeg, width, height, fmt = _convert(data, options)
    except _Reject as rej:
        return {"reason": rej.reason, "detail": rej.detail}
    atomic_write_bytes(target, jpeg)
    return {"sha256": sha, "path": str(target), "width": width, "height": height, "src_format": fmt, "reused": False}


def _decoder_settings(options: ImageOptions) -> None:
    from PIL import Image, ImageFile

    Image.MAX_IMAGE_PIXELS = options.max_pixels  # also guards decoders that allocate before our header check
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file must fail, whatever the parent process set


def _process_chunk(args: tuple[list[tuple[str, str]], str, ImageOptions]) -> list[dict[str, Any]]:
    from PIL import Image

    items, out_dir, options = args
    _decoder_settings(options)
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


_KEPT_COLUMNS = ("path", "image_id", "sha256", "width", "height", "src_format", "reused")  # of each accepted result
_KEPT_TYPES = {"path": pa.string(), "reused": pa.bool_(), **{f.name: f.type for f in ADDED_FIELDS}}


class _Rejections:
    """The rejected table's rows, in the order they are found."""

    def __init__(self, catalogue: pa.Table) -> None:
        self.catalogue = catalogue
        self.columns: dict[str, list[Any]] = {name: [] for name in REJECTED_SCHEMA.names}

    def __len__(self) -> int:
        return len(self.columns["reason"])

    def add(self, row: int, reason: str, detail: str) -> None:
        """Reject catalogue row ``row``."""
        values = (self.catalogue.column("identity_id")[row].as_py(), self.catalogue.column("source")[row].as_py(),
                  self.catalogue.column("path")[row].as_py(), reason, detail)
        for name, value in zip(REJECTED_SCHEMA.names, values):
            self.columns[name].append(value)

    def table(self) -> pa.Table:
        return pa.Table.from_pydict(self.columns, schema=REJECTED_SCHEMA)


def _check_catalogue(catalogue: pa.Table) -> None:
    missing = {"identity_id", "source", "path"} - set(catalogue.column_names)
    if missing:
        raise ValueError(f"catalogue lacks columns {sorted(missing)}")


def _collect(
    results: Iterable[dict[str, Any]], rejections: _Rejections
) -> tuple[np.ndarray, dict[str, pa.ChunkedArray]]:
    """Split the per-row results (catalogue order) into rejections and the accepted rows: their catalogue row numbers
    and their ``_KEPT_COLUMNS``."""
    buffer: dict[str, list[Any]] = {name: [] for name in _KEPT_COLUMNS}
    flushed: dict[str, list[pa.Array]] = {name: [] for name in _KEPT_COLUMNS}
    keep = array("q")  # accepted catalogue rows

    def flush() -> None:  # Python strings → Arrow buffers, so memory per accepted row stays ~200 bytes
        for name in _KEPT_COLUMNS:
            flushed[name].append(pa.array(buffer[name], _KEPT_TYPES[name]))
            buffer[name].clear()

    for row, result in enumerate(results):
        if "reason" in result:
            rejections.add(row, result["reason"], result["detail"])
            continue
        keep.append(row)
        for name in _KEPT_COLUMNS:
            buffer[name].append(result[name])
        if len(buffer["path"]) >= _SLICE:
            flush()
    flush()
    kept = {name: pa.chunked_array(flushed[name], _KEPT_TYPES[name]) for name in _KEPT_COLUMNS}
    rows = np.frombuffer(keep, dtype=np.int64) if len(keep) else np.empty(0, np.int64)
    return rows, kept


def _drop_repeats(catalogue: pa.Table, rows: np.ndarray, kept: dict[str, pa.ChunkedArray],
                  rejections: _Rejections) -> tuple[np.ndarray, dict[str, pa.ChunkedArray]]:
    """The same bytes twice under one identity share an image_id: keep the first, reject the others."""
    codes = np.asarray(pc.dictionary_encode(kept["image_id"].combine_chunks()).indices, dtype=np.int64)
    first_of = np.full(len(codes) and codes.max() + 1, -1, np.int64)
    first_of[codes[::-1]] = np.arange(len(codes))[::-1]
    repeated = np.flatnonzero(first_of[codes] != np.arange(len(codes)))
    for k in repeated.tolist():
        first_src = catalogue.column("path")[int(rows[first_of[codes[k]]])].as_py()
        identity = catalogue.column("identity_id")[int(rows[k])].as_py()
        rejections.add(int(rows[k]), DUPLICATE_IN_IDENTITY, f"same bytes as {first_src} in {identity}")
    if len(repeated):
        unique = np.ones(len(rows), bool)
        unique[repeated] = False
        rows = rows[unique]
        kept = {name: column.filter(pa.array(unique)) for name, column in kept.items()}
    return rows, kept


def _images_table(catalogue: pa.Table, rows: np.ndarray, kept: dict[str, pa.ChunkedArray], counts: dict[str, int],
                  options: ImageOptions) -> pa.Table:
    """The accepted catalogue rows with ``path`` = the converted JPEG, ``ADDED_FIELDS`` appended (replacing any of
    the same name) and the stats metadata."""
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
    return images.replace_schema_metadata(metadata)


def process_images(
    catalogue: pa.Table, out_dir: Path, options: ImageOptions = ImageOptions(), workers: int | None = None
) -> tuple[pa.Table, pa.Table]:
    """Convert every catalogue photo to an oriented RGB JPEG at ``out_dir/ab/<sha256 of source>.jpg``.

    Returns ``(images, rejected)``. ``images`` keeps the catalogue columns (``path`` = the converted JPEG) and adds
    ``src_path``, ``image_id``, ``sha256`` (of the source bytes), ``width``, ``height``, ``src_format``; its schema
    metadata ``petid.process_images`` holds JSON counts (``converted``, ``reused``, ``rejected``). ``rejected`` has
    ``identity_id, source, src_path, reason, detail``; reasons: zero_bytes, truncated, not_an_image, too_small,
    decompression_bomb, missing_file, decode_error, not_a_file (FIFO, device...), too_large (over ``max_bytes``),
    duplicate_in_identity (the same bytes twice under one identity).
    """
    _check_catalogue(catalogue)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = default_workers() if workers is None else max(1, int(workers))
    rejections = _Rejections(catalogue)
    rows, kept = _collect(_run_chunks(catalogue, str(out_dir), options, workers), rejections)
    rows, kept = _drop_repeats(catalogue, rows, kept, rejections)
    reused = int(pc.sum(kept["reused"]).as_py() or 0)
    counts = {"converted": len(rows) - reused, "reused": reused, "rejected": len(rejections)}
    return _images_table(catalogue, rows, kept, counts, options), rejections.table()


def process_stats(images: pa.Table) -> dict[str, int]:
    """The counts ``process_images`` stored in the schema metadata (converted, reused, rejected)."""
    raw = (images.schema.metadata or {}).get(STATS_METADATA_KEY)
    if not raw:
        return {}
    return {k: v for k, v in json.loads(raw).items() if isinstance(v, int)}


RECONVERTED_METADATA_KEY = b"petid.reconverted"


def _reconvert(src: str | None, target: str, sha256: str | None, options: ImageOptions) -> str | None:
    """Convert ``src`` again into ``target`` (overwriting it); ``None`` on success, else ``reason: detail``."""
    if not src:
        return "missing_file: no src_path"
    data = _read_source(src, options)
    if isinstance(data, dict):
        return f"{data['reason']}: {data['detail']}"
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        return f"source_changed: {src} no longer has sha256 {sha256}"
    _decoder_settings(options)
    try:
        jpeg, _, _, _ = _convert(data, options)
    except _Reject as rej:
        return f"{rej.reason}: {rej.detail}"
    atomic_write_bytes(target, jpeg)
    return None


def hash_curated(
    images: pa.Table, options: ImageOptions = ImageOptions(), workers: int | None = None, fast: bool = True
) -> pa.Table:
    """``curation.hashing.hash_images`` of the curated ``path``s of ``images`` (``process_images`` output), except
    that a file that fails to hash is converted again from its ``src_path`` (when the source still has the same
    ``sha256``) and hashed again. Rows line up with ``images``; a row that still fails keeps null hashes and an
    ``error`` saying why the re-conversion failed too. The schema metadata ``petid.reconverted`` counts the files
    that were redone."""
    from curation.hashing import hash_images

    if "path" not in images.column_names:
        raise ValueError("images table lacks column 'path'")
    paths = images.column("path").to_pylist()
    hashes = hash_images(paths, workers=workers, fast=fast, max_bytes=options.max_bytes, max_pixels=options.max_pixels)
    failed = [r for r, e in enumerate(hashes.column("error").to_pylist()) if e is not None]
    redone = 0
    if failed:
        srcs = images.column("src_path").to_pylist() if "src_path" in images.column_names else [None] * len(paths)
        shas = images.column("sha256").to_pylist() if "sha256" in images.column_names else [None] * len(paths)
        errors = hashes.column("error").to_pylist()
        problems = {r: _reconvert(srcs[r], paths[r], shas[r], options) for r in failed}
        retry = [r for r in failed if problems[r] is None]
        phash, dhash = hashes.column("phash").to_pylist(), hashes.column("dhash").to_pylist()
        if retry:
            again = hash_images([paths[r] for r in retry], workers=1, fast=fast, max_bytes=options.max_bytes,
                                max_pixels=options.max_pixels)
            for r, p, d, e in zip(retry, again.column("phash").to_pylist(), again.column("dhash").to_pylist(),
                                  again.column("error").to_pylist()):
                phash[r], dhash[r], errors[r] = p, d, e
                redone += e is None
        for r in failed:
            if problems[r] is not None:
                errors[r] = f"{errors[r]}; re-conversion failed: {problems[r]}"
        hashes = pa.table({"path": hashes.column("path"), "phash": pa.array(phash, pa.uint64()),
                           "dhash": pa.array(dhash, pa.uint64()), "error": pa.array(errors, pa.string())},
                          schema=hashes.schema)
    metadata = dict(hashes.schema.metadata or {})
    metadata[RECONVERTED_METADATA_KEY] = str(redone).encode()
    return hashes.replace_schema_metadata(metadata)
