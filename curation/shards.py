"""Curation in shards: the catalogue split by content-hash prefix, each shard's photos curated into the shared
content-addressed records, so an executor can spread the image work over many workers.

A shard is the photos whose source sha256 falls in one range of 32-bit prefixes (``shard_of``): stable (a photo
stays in its shard however the catalogue grows or is ordered), balanced (sha256 prefixes are uniform) and
independent of ingest order. Identical bytes, wherever they were captured, land in the same shard, so one worker
decodes them once and no two workers write the same output. The digest is taken without reading the photo where
it is already known: from the file name of a content-addressed capture (``<sha256>.<ext>``, how the crawler stores
pet911 photos), else from the curation cache's stat index (every photo curated before). A photo known by neither
(new, and not content-addressed) is placed by the digest of its path instead: reading every new photo in the one
process that plans the shards would serialise the very I/O the shards exist to spread; from its first curation on
it is in the stat index and placed by content.

``process_shard`` is ``process_images`` followed by ``hash_curated`` on the shard's rows: every outcome (a
conversion, a rejection, the perceptual hashes) is recorded by content in ``<out_dir>/.petid-cache/`` as it always
is, each process writing its own segments. A shard that fails keeps what it recorded before the failure (the
session flushes its records on the way out), and its retry reads those instead of decoding again; other shards are
not touched. Afterwards ``process_images`` over the whole catalogue (the ``images`` asset) resolves every photo
from the records, and deduplication still sees the whole corpus at once.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from curation.cache import CACHE_DIRNAME, Cache, stat_or_none, text_key, work_stats
from curation.images import ImageOptions, hash_curated, process_images, process_stats

_CONTENT_NAME = re.compile(r"^([0-9a-f]{64})(\.[A-Za-z0-9]+)?$")


def shard_of(digest: str, n: int) -> int:
    """The shard (0 … ``n`` - 1) of a hex digest: its first 32 bits cut into ``n`` equal ranges, so shard ``k``
    holds one contiguous range of prefixes (with 16 shards, shard ``k`` is the digests starting with hex digit k;
    with 256, exactly the ``images/ab/`` directory ``ab``)."""
    if n < 1:
        raise ValueError(f"shard count must be at least 1, got {n}")
    return (int(digest[:8], 16) * n) >> 32


def _path_digest(path: str) -> str:
    k0, k1 = text_key(path)
    return f"{k0:016x}{k1:016x}"


def source_digests(paths: Sequence[str | None], cache_dir: str | os.PathLike[str]) -> tuple[list[str], dict[str, int]]:
    """The digest each source is sharded by, without reading any photo: the sha256 in a content-addressed file
    name, else the one the stat index of ``cache_dir`` holds for the file's current signature, else the digest of
    the path. Also how many came from each (``by_name``, ``by_index``, ``by_path``)."""
    digests: list[str | None] = [None] * len(paths)
    unnamed = []
    for i, path in enumerate(paths):
        match = _CONTENT_NAME.match(os.path.basename(path or ""))
        if match:
            digests[i] = match.group(1)
        else:
            unnamed.append(i)
    by_index = 0
    if unnamed and Path(cache_dir).is_dir():
        cache = Cache(cache_dir)
        wanted = [paths[i] or "" for i in unnamed]
        for i, sha in zip(unnamed, cache.known(wanted, [stat_or_none(p) for p in wanted])):
            if sha is not None:
                digests[i], by_index = sha, by_index + 1
    by_path = 0
    for i, digest in enumerate(digests):
        if digest is None:
            digests[i], by_path = _path_digest(paths[i] or ""), by_path + 1
    counts = {"by_name": len(paths) - len(unnamed), "by_index": by_index, "by_path": by_path}
    return digests, counts  # type: ignore[return-value]


def plan_shards(catalogue: pa.Table, n: int, out_dir: str | os.PathLike[str]) -> tuple[list[pa.Table], dict[str, int]]:
    """``catalogue`` split into ``n`` shards by content-hash prefix (``shard_of`` of ``source_digests``), each in
    catalogue order, every row in exactly one; ``out_dir`` is where the curated images (and their cache) live.
    Also the digest counts of ``source_digests``."""
    if "path" not in catalogue.column_names:
        raise ValueError("catalogue lacks column 'path'")
    digests, counts = source_digests(catalogue.column("path").to_pylist(), Path(out_dir) / CACHE_DIRNAME)
    shard = np.fromiter((shard_of(d, n) for d in digests), np.int64, len(digests))
    order = np.argsort(shard, kind="stable")
    bounds = np.searchsorted(shard[order], np.arange(n + 1))
    parts = [catalogue.take(pa.array(order[bounds[k]:bounds[k + 1]], pa.int64())) for k in range(n)]
    return parts, counts


def process_shard(catalogue: pa.Table, out_dir: str | os.PathLike[str], options: ImageOptions = ImageOptions(),
                  workers: int = 1) -> dict[str, Any]:
    """Curate one shard's rows into ``out_dir``'s content-addressed images and records (``process_images`` then
    ``hash_curated``); the summary says what was done, where (host, pid) and how long it took. The rows are
    ``process_images``'s to judge: a photo that cannot be used is recorded as rejected, not raised."""
    start = time.perf_counter()
    images, rejected = process_images(catalogue, Path(out_dir), options=options, workers=workers)
    hashes = hash_curated(images, options=options, workers=workers)
    converted = process_stats(images)
    work, hash_work = work_stats(images), work_stats(hashes)
    return {
        "photos": catalogue.num_rows,
        "accepted": images.num_rows,
        "rejected": rejected.num_rows,
        "converted": converted.get("converted", 0),
        "decoded": work.get("decoded", 0),
        "from_records": work.get("from_records", 0),
        "hashed": hash_work.get("hashed", 0),
        "hash_errors": sum(e is not None for e in hashes.column("error").to_pylist()),
        "seconds": round(time.perf_counter() - start, 3),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
