"""Validate, orient and convert every catalogue photo into an RGB JPEG under a content-addressed path.

Every input ends up either in ``images`` (converted) or in ``rejected`` (with a short reason code): nothing is dropped
silently. The output file is keyed by the sha256 of the *source bytes*. Each source is decoded once: validation,
conversion and both perceptual hashes of the written JPEG (hashed from its encoded bytes in memory, exactly as
``hash_images`` would hash the file) come from that one decode.

Reruns cost what is new (``curation.cache``, records in ``out_dir/.petid-cache/``): every outcome — the conversion
(size, source format, the JPEG's sha256), the JPEG's hashes, a rejection for what the bytes are — is recorded under
the source's sha256 and a fingerprint of the options, and the stat index maps a file's stat signature to the sha256
of its bytes. A photo whose source and output signatures are both in the index costs two ``stat`` calls; a source
that changed on disk (or is new) is read and hashed, and decoded only when no record of its bytes under the same
options exists or its output no longer holds the recorded JPEG (a damaged output is converted again). Changing
``ImageOptions`` means new records: outputs are converted again. Outputs left by a run from before the records (no
cache directory yet) are taken when intact (headers and the JPEG end-of-image marker checked, no decode). Work is
spread over worker processes in chunks, started only when there is enough to decode; the parent only ever holds
small per-row metadata, never pixels.

Sources are read defensively (``curation.inputs``): only regular files up to ``max_bytes``, images above
``max_pixels`` refused from their header, and wide greyscale images (16-bit, 32-bit integer, float) scaled to 8 bits
a strip of rows at a time (a 7000x7000 16-bit PNG converts in well under 400 MB). ``hash_curated`` hashes the
curated files (reusing the hash records) and re-converts, from their sources, any that fail to decode.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import warnings
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.cache import Cache, for_worker, session, sha_key, stat_or_none, with_work_stats
from curation.hashing import HASH_SCHEMA
from curation.inputs import (
    DANGLING,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    InputRefused,
    printable,
    read_regular,
    to_8bit,
)
from curation.inputs import NOT_A_FILE as NOT_A_FILE  # re-exported: reason codes of the rejected table too
from curation.inputs import TOO_LARGE as TOO_LARGE
from petid.paths import atomic_write_bytes, content_path
from petid.workers import worker_context

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


@dataclass(frozen=True)
class _Job:
    """What a worker needs for one call: where outputs and records go, and the options."""

    out_dir: str
    options: ImageOptions
    cache_dir: str


CONVERSION_VERSION = 1  # bump when the conversion itself changes: old conversion records are then not reused


def conversion_settings(options: ImageOptions) -> dict[str, Any]:
    """What a conversion record depends on: the options (less ``chunk_size``), this code and Pillow's version."""
    import PIL

    settings = {k: v for k, v in asdict(options).items() if k != "chunk_size"}
    return {**settings, "version": CONVERSION_VERSION, "pillow": PIL.__version__}


def hash_settings(fast: bool) -> dict[str, Any]:
    """What a perceptual-hash record depends on (``curation.hashing`` decoding shortcuts and Pillow's version)."""
    import PIL

    from curation.hashing import FAST_MIN_SIDE, HASH_SIZE, webp_available

    return {"fast": fast, "hash_size": HASH_SIZE, "fast_min_side": FAST_MIN_SIDE, "pillow": PIL.__version__,
            "webp_luma": fast and webp_available()}


def _target(out_dir: str, sha: str) -> str:
    """``str(content_path(out_dir, sha, ".jpg"))`` without pathlib (the hot path of a rerun)."""
    return os.path.join(out_dir, sha[:2], f"{sha}.jpg")


def _accepted(sha: str, target: str | Path, record: dict[str, Any], reused: bool) -> dict[str, Any]:
    return {"sha256": sha, "path": str(target), "width": record["width"], "height": record["height"],
            "src_format": record["src_format"], "reused": reused}


def _holds(target: Path, jpeg_sha: str, cache: Cache) -> bool:
    """Whether ``target`` still holds the JPEG with sha256 ``jpeg_sha`` (stat index, else its bytes)."""
    return cache.content_sha(str(target), 1 << 62) == jpeg_sha


def _from_record(sha: str, job: _Job, cache: Cache) -> dict[str, Any] | None:
    """The result the conversion record of ``sha`` gives (a rejection, or an intact earlier output), else ``None``."""
    record = cache.table("conversions", conversion_settings(job.options)).get(sha_key(sha))
    if record is None:
        return None
    if record["reason"] is not None:
        return {"reason": record["reason"], "detail": record["detail"]}
    target = content_path(job.out_dir, sha, ".jpg")
    return _accepted(sha, target, record, True) if _holds(target, record["jpeg_sha256"].hex(), cache) else None


def _adopt(sha: str, data: bytes, job: _Job, cache: Cache) -> dict[str, Any] | None:
    """An output left by a run from before the records existed (no cache directory yet), taken as it is when intact:
    two headers and the end marker checked, nothing decoded. Recorded, so later runs need not read it."""
    from PIL import Image

    target = content_path(job.out_dir, sha, ".jpg")
    if cache.existed or not target.exists():
        return None
    size, problem = _inspect(target)
    jpeg_sha = None if problem else cache.content_sha(str(target), 1 << 62)
    if jpeg_sha is None:
        return None
    try:
        with Image.open(io.BytesIO(data)) as original:
            fmt = original.format or "unknown"
    except Exception:  # noqa: BLE001 - the source no longer parses: the conversion reports why
        return None
    record = {"reason": None, "detail": None, "width": size[0], "height": size[1], "src_format": fmt,
              "jpeg_sha256": bytes.fromhex(jpeg_sha)}
    cache.table("conversions", conversion_settings(job.options)).add(sha_key(sha), **record)
    return _accepted(sha, target, record, True)


def _convert_new(sha: str, data: bytes, job: _Job, cache: Cache) -> dict[str, Any]:
    """Decode ``data`` once: validate, convert, write the JPEG and hash it (from the encoded bytes in memory, so the
    hashes are ``hash_images``'s for the written file); every outcome is recorded."""
    from curation.hashing import HashError, hash_bytes

    conversions = cache.table("conversions", conversion_settings(job.options))
    try:
        jpeg, width, height, fmt = _convert(data, job.options)
    except _Reject as rej:
        conversions.add(sha_key(sha), reason=rej.reason, detail=rej.detail)
        return {"reason": rej.reason, "detail": rej.detail}
    target = content_path(job.out_dir, sha, ".jpg")
    atomic_write_bytes(target, jpeg)
    jpeg_sha = hashlib.sha256(jpeg).hexdigest()
    cache.note_file(str(target), stat_or_none(target), jpeg_sha, own=True)
    record = {"reason": None, "detail": None, "width": width, "height": height, "src_format": fmt,
              "jpeg_sha256": bytes.fromhex(jpeg_sha)}
    conversions.add(sha_key(sha), **record)
    try:
        phash, dhash = hash_bytes(jpeg, True, job.options.max_pixels)
        cache.table("hashes", hash_settings(True)).add(sha_key(jpeg_sha), phash=phash, dhash=dhash,
                                                        pixels=width * height)
    except HashError:  # cannot happen for a JPEG just encoded; hash_curated would report it
        pass
    return _accepted(sha, target, record, False)


def _process_one(src: str, job: _Job, cache: Cache, work: Counter[str]) -> dict[str, Any]:
    """Result dict for one source file: either {sha256, path, width, height, src_format, reused} or {reason, detail}.
    The source is read and hashed; it is decoded only when no record or earlier output of its bytes serves."""
    before = stat_or_none(src)
    data = _read_source(src, job.options)
    if isinstance(data, dict):
        return data
    work["read"] += 1
    sha = hashlib.sha256(data).hexdigest()
    cache.note_file(src, before, sha, unchanged_since=True)
    found = _from_record(sha, job, cache) or _adopt(sha, data, job, cache)
    if found is not None:
        return found
    content_path(job.out_dir, sha, ".jpg").unlink(missing_ok=True)  # a damaged or foreign earlier output is redone
    work["decoded"] += 1
    return _convert_new(sha, data, job, cache)


def _decoder_settings(options: ImageOptions) -> None:
    from PIL import Image, ImageFile

    Image.MAX_IMAGE_PIXELS = options.max_pixels  # also guards decoders that allocate before our header check
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file must fail, whatever the parent process set


_Item = tuple[int, str, str]  # catalogue row, source path, identity
_Rows = list[tuple[int, dict[str, Any]]]


def _with_id(result: dict[str, Any], identity: str) -> dict[str, Any]:
    if "sha256" in result:
        result["image_id"] = image_id_for(identity, result["sha256"])
    return result


def _process_items(items: list[_Item], job: _Job, cache: Cache, work: Counter[str]) -> _Rows:
    from PIL import Image

    _decoder_settings(job.options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return [(row, _with_id(_process_one(src, job, cache, work), identity)) for row, src, identity in items]


def _process_chunk(args: tuple[list[_Item], _Job]) -> tuple[_Rows, list[tuple[str, dict[str, Any]]], Counter[str]]:
    """A worker task: the rows' results, the records they added (for the parent to write) and the work done."""
    items, job = args
    cache, work = for_worker(job.cache_dir), Counter()
    return _process_items(items, job, cache, work), cache.drain(), work


def _resolve(srcs: list[str], job: _Job, cache: Cache) -> dict[int, dict[str, Any]]:
    """The results that the records give without reading a byte, by position in ``srcs``: a source whose stat
    signature is in the index with a sha256 that has a conversion record, and (accepted ones) whose output's
    signature is in the index with the recorded JPEG's sha256."""
    stats = [stat_or_none(src) for src in srcs]
    shas = cache.known(srcs, stats)
    usable = [i for i, sha in enumerate(shas) if sha is not None and stats[i].st_size <= job.options.max_bytes]
    records = cache.table("conversions", conversion_settings(job.options)).lookup([sha_key(shas[i]) for i in usable])
    resolved: dict[int, dict[str, Any]] = {}
    accepted = []
    for i, record in zip(usable, records):
        if record is not None and record["reason"] is not None:
            resolved[i] = {"reason": record["reason"], "detail": record["detail"]}
        elif record is not None:
            accepted.append((i, _target(job.out_dir, shas[i]), record))
    targets = [target for _, target, _ in accepted]
    held = cache.known(targets, [stat_or_none(t) for t in targets])
    for (i, target, record), jpeg_sha in zip(accepted, held):
        if jpeg_sha is not None and jpeg_sha == record["jpeg_sha256"].hex():
            resolved[i] = _accepted(shas[i], target, record, True)
    return resolved


def _run_chunks(
    catalogue: pa.Table, job: _Job, workers: int, cache: Cache, work: Counter[str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(catalogue row, result) for every row, in no particular order: what the records resolve, straight away;
    the rest read (and decoded where needed) here when few, else in worker processes started only then."""
    pool: ProcessPoolExecutor | None = None
    pending: deque[Future[Any]] = deque()
    size = job.options.chunk_size
    try:
        for start in range(0, catalogue.num_rows, _SLICE):
            part = catalogue.slice(start, _SLICE)
            srcs, identities = part.column("path").to_pylist(), part.column("identity_id").to_pylist()
            resolved = _resolve(srcs, job, cache)
            work["from_records"] += len(resolved)
            yield from ((start + i, _with_id(r, identities[i])) for i, r in resolved.items())
            misses = [(start + i, srcs[i], identities[i]) for i in range(len(srcs)) if i not in resolved]
            step = min(size, max(4, -(-len(misses) // (4 * workers))))  # a few misses: small chunks, no idle worker
            chunks = [misses[o : o + step] for o in range(0, len(misses), step)]
            if pool is None and (workers <= 1 or len(misses) <= size):
                for chunk in chunks:
                    yield from _process_items(chunk, job, cache, work)
                continue
            pool = pool or ProcessPoolExecutor(max_workers=workers, mp_context=worker_context())
            for chunk in chunks:  # at most 4 tasks per worker in flight; small dicts only: pixels never leave one
                pending.append(pool.submit(_process_chunk, (chunk, job)))
                while len(pending) >= workers * 4:
                    yield from _absorb(pending.popleft().result(), cache, work)
        while pending:
            yield from _absorb(pending.popleft().result(), cache, work)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _absorb(done: tuple[_Rows, list[tuple[str, dict[str, Any]]], Counter[str]], cache: Cache,
            work: Counter[str]) -> _Rows:
    rows, records, counts = done
    cache.absorb(records)
    work.update(counts)
    return rows


def bounded_map(fn: Callable[[T], R], tasks: Iterable[T], workers: int, ahead: int = 4) -> Iterator[R]:
    """``fn`` over ``tasks`` in ``workers`` processes, results in task order, at most ``ahead`` tasks per worker
    in flight (``Executor.map`` would submit every task at once)."""
    with ProcessPoolExecutor(max_workers=workers, mp_context=worker_context()) as pool:
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
    results: Iterable[tuple[int, dict[str, Any]]], rejections: _Rejections
) -> tuple[np.ndarray, dict[str, pa.ChunkedArray]]:
    """Split the (catalogue row, result) pairs (any order) into rejections and the accepted rows, both in catalogue
    order: the accepted rows' catalogue row numbers and their ``_KEPT_COLUMNS``."""
    buffer: dict[str, list[Any]] = {name: [] for name in _KEPT_COLUMNS}
    flushed: dict[str, list[pa.Array]] = {name: [] for name in _KEPT_COLUMNS}
    keep = array("q")  # accepted catalogue rows

    def flush() -> None:  # Python strings → Arrow buffers, so memory per accepted row stays ~200 bytes
        for name in _KEPT_COLUMNS:
            flushed[name].append(pa.array(buffer[name], _KEPT_TYPES[name]))
            buffer[name].clear()

    rejected: list[tuple[int, str, str]] = []
    for row, result in results:
        if "reason" in result:
            rejected.append((row, result["reason"], result["detail"]))
            continue
        keep.append(row)
        for name in _KEPT_COLUMNS:
            buffer[name].append(result[name])
        if len(buffer["path"]) >= _SLICE:
            flush()
    flush()
    for row, reason, detail in sorted(rejected):
        rejections.add(row, reason, detail)
    kept = {name: pa.chunked_array(flushed[name], _KEPT_TYPES[name]) for name in _KEPT_COLUMNS}
    rows = np.frombuffer(keep, dtype=np.int64) if len(keep) else np.empty(0, np.int64)
    order = np.argsort(rows, kind="stable")
    if len(rows) and np.any(order != np.arange(len(rows))):  # back to catalogue order
        rows, kept = rows[order], {name: column.take(pa.array(order)) for name, column in kept.items()}
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
    duplicate_in_identity (the same bytes twice under one identity). The metadata ``petid.work``
    (``curation.cache.work_stats``) counts the rows the records resolved without reading (``from_records``), the
    sources read (``read``) and decoded (``decoded``).
    """
    _check_catalogue(catalogue)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = default_workers() if workers is None else max(1, int(workers))
    rejections = _Rejections(catalogue)
    work: Counter[str] = Counter({"from_records": 0, "read": 0, "decoded": 0})
    with session(Cache.beside(out_dir)) as cache:
        for kind, settings in (("files", None), ("conversions", conversion_settings(options)),
                               ("hashes", hash_settings(True))):
            cache.table(kind, settings)  # read before any worker is forked, which then inherits them
        job = _Job(str(out_dir), options, str(cache.directory))
        rows, kept = _collect(_run_chunks(catalogue, job, workers, cache, work), rejections)
    rows, kept = _drop_repeats(catalogue, rows, kept, rejections)
    reused = int(pc.sum(kept["reused"]).as_py() or 0)
    counts = {"converted": len(rows) - reused, "reused": reused, "rejected": len(rejections)}
    return with_work_stats(_images_table(catalogue, rows, kept, counts, options), dict(work)), rejections.table()


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
    that were redone.

    Hashes are reused by content through the cache beside the curated files (``curation.cache``; ``hash_curated``
    never creates one): a file's sha256 comes from the stat index (no read) or from its bytes (read, not decoded),
    and when that sha256 has a hash record (``process_images`` makes one for every JPEG it writes) the record is its
    row. A damaged file has other bytes, so it is hashed, fails and is converted again as before. The metadata
    ``petid.work`` counts ``hashed`` (decoded here) and ``reused`` rows."""
    if "path" not in images.column_names:
        raise ValueError("images table lacks column 'path'")
    paths = images.column("path").to_pylist()
    cache = _curated_cache(paths)
    known = _known_hashes(paths, cache, options, fast) if cache is not None else [None] * len(paths)
    misses = [r for r, k in enumerate(known) if k is None]
    redone = 0
    if misses:
        fresh = _hash_and_repair(images.take(pa.array(misses, pa.int64())), options, workers, fast)
        redone = int(fresh.schema.metadata[RECONVERTED_METADATA_KEY])
        for r, p, d, e in zip(misses, *(fresh.column(c).to_pylist() for c in ("phash", "dhash", "error"))):
            known[r] = (p, d, e)
            if cache is not None and e is None:
                _record_hash(cache, paths[r], p, d, options, fast)
    if cache is not None:
        cache.flush()
    phash, dhash, errors = zip(*known) if known else ((), (), ())
    hashes = pa.table({"path": pa.array([printable(p) for p in paths], pa.string()),
                       "phash": pa.array(phash, pa.uint64()), "dhash": pa.array(dhash, pa.uint64()),
                       "error": pa.array(errors, pa.string())}, schema=HASH_SCHEMA)
    metadata = dict(hashes.schema.metadata or {})
    metadata[RECONVERTED_METADATA_KEY] = str(redone).encode()
    hashes = hashes.replace_schema_metadata(metadata)
    return with_work_stats(hashes, {"hashed": len(misses), "reused": len(paths) - len(misses)})


def _curated_cache(paths: list[str]) -> Cache | None:
    """The cache beside the curated files (that of the first path's content-addressed directory), if there is one:
    ``hash_curated`` never creates one."""
    if not paths or not paths[0]:
        return None
    cache = Cache.beside(os.path.dirname(os.path.dirname(paths[0])))
    return cache if cache.existed else None


def _known_hashes(paths: list[str], cache: Cache, options: ImageOptions,
                  fast: bool) -> list[tuple[int, int, None] | None]:
    """(phash, dhash, None) of each path the records hash without decoding it, else ``None``: its sha256 from the
    stat index, else from its bytes."""
    stats = [stat_or_none(p) for p in paths]
    shas = [sha or (cache.content_sha(p, options.max_bytes) if st is not None else None)
            for p, st, sha in zip(paths, stats, cache.known(paths, stats))]
    wanted = [r for r, sha in enumerate(shas) if sha is not None and stats[r].st_size <= options.max_bytes]
    records = cache.table("hashes", hash_settings(fast)).lookup([sha_key(shas[r]) for r in wanted])
    known: list[tuple[int, int, None] | None] = [None] * len(paths)
    for r, record in zip(wanted, records):
        if record is not None and record["pixels"] <= options.max_pixels:
            known[r] = (record["phash"], record["dhash"], None)
    return known


def _record_hash(cache: Cache, path: str, phash: int, dhash: int, options: ImageOptions, fast: bool) -> None:
    """Record the hashes of the file at ``path`` (just hashed) under the sha256 of its bytes."""
    from PIL import Image

    sha = cache.content_sha(path, options.max_bytes)
    try:
        with Image.open(path) as img:
            pixels = img.size[0] * img.size[1]
    except Exception:  # noqa: BLE001 - it hashed a moment ago; if it no longer opens, record nothing
        return
    if sha is not None:
        cache.table("hashes", hash_settings(fast)).add(sha_key(sha), phash=phash, dhash=dhash, pixels=pixels)


def _hash_and_repair(images: pa.Table, options: ImageOptions, workers: int | None, fast: bool) -> pa.Table:
    """``hash_images`` of the curated paths, a file that fails converted again from its source and hashed again
    (``hash_curated`` without the records)."""
    from curation.hashing import hash_images

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
