"""Persistent records that let a curation rerun skip the work it has already done.

A cache is a directory, ``.petid-cache/`` inside the content-addressed output directory it describes (``images/``
for ``process_images`` and ``hash_curated``, ``crops/`` for ``crop_images``): deleting the outputs deletes their
records with them. It holds record tables, each in its own sub-directory of append-only Parquet segments
(``seg-<time>-<pid>-<random>.parquet``, written atomically; a run adds at most one segment per table, and more than
``MAX_SEGMENTS`` are compacted into one). Every record is keyed by a 128-bit digest, held as two uint64 columns
``k0``, ``k1``:

- ``files``: the stat index — the digest of a path, its stat signature (size, mtime, ctime, inode, device) and the
  sha256 of its bytes. It stands for the file's content only while the signature is unchanged (git's index trick):
  a rewritten, truncated, replaced or re-permissioned file has another signature and is read again. A file changed
  within ``RACY_NS`` of being recorded (a timestamp tick could hide a same-size rewrite) is not recorded at all.
- content records, keyed by a sha256 and the fingerprint of the settings that produced them (a settings change is a
  new table, i.e. no reuse): conversions (``curation.images``), perceptual hashes, detector decisions
  (``curation.crops``), crop files.

A record is only ever a shortcut: a missing, unreadable or foreign-schema segment is ignored (and removed), and a
lookup that fails for any reason is a miss, i.e. the work is done again. Tables are held in memory as key-sorted
Arrow columns (about 60-80 bytes a record) and looked up in batches; a process keeps the last few it read or wrote
while their segments are unchanged on disk (``hash_curated`` right after ``process_images`` reads nothing again).
Worker processes look records up in the parent's tables (inherited on fork, else read) and hand what they add back to
the parent, the only writer.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
import struct
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from petid.paths import atomic_write_parquet

CACHE_DIRNAME = ".petid-cache"
WORK_METADATA_KEY = b"petid.work"  # JSON counts of the work a call did and the work it reused
MAX_SEGMENTS = 8
RACY_NS = 2_000_000_000  # files changed more recently than this are not put in the stat index
SHA = pa.binary(32)

_KEYS = [pa.field("k0", pa.uint64()), pa.field("k1", pa.uint64())]
SCHEMAS: dict[str, pa.Schema] = {
    "files": pa.schema([*_KEYS, pa.field("sig", pa.uint64()), pa.field("sha256", SHA)]),
    "conversions": pa.schema([*_KEYS, pa.field("reason", pa.string()), pa.field("detail", pa.string()),
                              pa.field("width", pa.int32()), pa.field("height", pa.int32()),
                              pa.field("src_format", pa.string()), pa.field("jpeg_sha256", SHA)]),
    "hashes": pa.schema([*_KEYS, pa.field("phash", pa.uint64()), pa.field("dhash", pa.uint64()),
                         pa.field("pixels", pa.int64())]),
    "detections": pa.schema([*_KEYS, pa.field("detections", pa.string())]),
    "crops": pa.schema([*_KEYS, pa.field("crop_sha256", SHA)]),
}
Key = tuple[int, int]


def sha_key(sha256: str) -> Key:
    """The record key of a sha256 hex digest: its first 128 bits."""
    return int(sha256[:16], 16), int(sha256[16:32], 16)


def text_key(text: str | bytes) -> Key:
    """The record key of any string (a path, a composite key): its 128-bit BLAKE2b digest."""
    data = text if isinstance(text, bytes) else os.fsencode(text)
    digest = hashlib.blake2b(data, digest_size=16).digest()
    return int.from_bytes(digest[:8], "big"), int.from_bytes(digest[8:], "big")


def fingerprint(settings: Any) -> str:
    """A short stable name for JSON-able ``settings`` (table names carry it)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def signature(st: os.stat_result) -> int:
    """The stat signature the ``files`` index compares: size, mtime, ctime, inode and device, as one uint64."""
    packed = struct.pack("<QqqQQ", st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
    return int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(), "big")


def settled(st: os.stat_result) -> bool:
    """Whether ``st`` is old enough for its signature to stand for the content (see ``RACY_NS``)."""
    return time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > RACY_NS


def stat_or_none(path: str | os.PathLike[str]) -> os.stat_result | None:
    """The followed ``stat`` of a non-empty regular file; ``None`` for anything else (the caller reads it and reports
    the problem as it always has)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError, TypeError):  # TypeError: no path at all (a null)
        return None
    return st if stat.S_ISREG(st.st_mode) and st.st_size > 0 else None


def work_stats(table: pa.Table) -> dict[str, int]:
    """The work counts a curation call stored in the schema metadata (``WORK_METADATA_KEY``)."""
    raw = (table.schema.metadata or {}).get(WORK_METADATA_KEY)
    try:
        return {k: int(v) for k, v in json.loads(raw).items()} if raw else {}
    except (ValueError, TypeError, AttributeError):
        return {}


def with_work_stats(table: pa.Table, counts: dict[str, int]) -> pa.Table:
    """``table`` with ``counts`` stored under ``WORK_METADATA_KEY``."""
    metadata = dict(table.schema.metadata or {})
    metadata[WORK_METADATA_KEY] = json.dumps(counts).encode()
    return table.replace_schema_metadata(metadata)


class RecordTable:
    """One record table: its segments merged into one key-sorted Arrow table (the latest segment wins a key), plus
    the records added since, which lookups see at once and ``flush`` writes as one new segment."""

    def __init__(self, directory: Path, schema: pa.Schema) -> None:
        self.directory, self.schema = directory, schema
        self.pending: list[dict[str, Any]] = []
        self._added: dict[Key, dict[str, Any]] = {}
        self._segments, table = _load(directory, schema)
        self._use(table)

    def _use(self, table: pa.Table) -> None:
        self._table = table
        self._k0 = table.column("k0").to_numpy()
        self._k1 = table.column("k1").to_numpy()

    def __len__(self) -> int:
        return self._table.num_rows + len(self._added)

    def lookup(self, keys: Sequence[Key]) -> list[dict[str, Any] | None]:
        """The record of each key (a dict of the value columns), or ``None``."""
        out: list[dict[str, Any] | None] = [self._added.get(k) for k in keys]
        rows = self._find([k for k, o in zip(keys, out) if o is None])
        found = rows[rows >= 0]
        records = iter(self._table.take(pa.array(found, pa.int64())).to_pylist()) if len(found) else iter(())
        misses = iter(rows.tolist())
        for i, record in enumerate(out):
            if record is None and next(misses) >= 0:
                out[i] = next(records)
        return out

    def get(self, key: Key) -> dict[str, Any] | None:
        return self.lookup([key])[0]

    def add(self, key: Key, **values: Any) -> None:
        """Record ``values`` under ``key`` (visible to lookups now, on disk after ``flush``)."""
        record = {"k0": key[0], "k1": key[1], **values}
        self._added[key] = record
        self.pending.append(record)

    def flush(self) -> None:
        """Write the pending records as a new segment; compact when there are too many segments. Never raises for
        an unwritable cache (the records are only lost)."""
        if not self.pending:
            return
        try:
            table = pa.Table.from_pylist(self.pending, schema=self.schema)
            self._segments.append(atomic_write_parquet(table, _segment_name(self.directory)))
            self.pending = []
            self._use(_merge([self._table, table]))
            if len(self._segments) > MAX_SEGMENTS:
                self._compact()
            _remember(self.directory, self._segments, self._table)
        except OSError:
            self.pending = []

    def _find(self, keys: Sequence[Key]) -> np.ndarray:
        if not keys or not len(self._k0):
            return np.full(len(keys), -1, np.int64)
        q0 = np.fromiter((k[0] for k in keys), np.uint64, len(keys))
        q1 = np.fromiter((k[1] for k in keys), np.uint64, len(keys))
        pos = np.minimum(np.searchsorted(self._k0, q0), len(self._k0) - 1)
        hit = (self._k0[pos] == q0) & (self._k1[pos] == q1)  # a (rare) shared k0 may miss: the work is redone
        return np.where(hit, pos, -1).astype(np.int64)

    def _compact(self) -> None:
        old, merged = _read_segments(self.directory, self.schema)
        self._segments = [atomic_write_parquet(merged, _segment_name(self.directory))]
        for path in old:
            path.unlink(missing_ok=True)
        self._use(merged)


# The tables this process read or wrote last, by directory, with the segments (name, size, mtime) they hold: a later
# call (hash_curated after process_images) whose directory still lists exactly those segments uses them instead of
# reading them again; any other segment, or a rewritten one, means reading them all.
_MEMO: OrderedDict[str, tuple[tuple[tuple[str, int, int], ...], pa.Table]] = OrderedDict()
MEMO_TABLES = 4


def _listing(segments: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
    found = []
    for path in segments:
        try:
            st = path.stat()
        except OSError:
            continue
        found.append((path.name, st.st_size, st.st_mtime_ns))
    return tuple(sorted(found))


def _load(directory: Path, schema: pa.Schema) -> tuple[list[Path], pa.Table]:
    """``_read_segments``, or the memo of the same segments."""
    listing = _listing(directory.glob("seg-*.parquet")) if directory.is_dir() else ()
    memo = _MEMO.get(str(directory))
    if memo is not None and memo[0] == listing and memo[1].schema.equals(schema):
        _MEMO.move_to_end(str(directory))
        return [directory / name for name, _, _ in listing], memo[1]
    paths, table = _read_segments(directory, schema)
    _remember(directory, paths, table)
    return paths, table


def _remember(directory: Path, segments: list[Path], table: pa.Table) -> None:
    _MEMO[str(directory)] = (_listing(segments), table)
    _MEMO.move_to_end(str(directory))
    while len(_MEMO) > MEMO_TABLES:
        _MEMO.popitem(last=False)


def _segment_name(directory: Path) -> Path:
    return directory / f"seg-{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.parquet"


def _read_segments(directory: Path, schema: pa.Schema) -> tuple[list[Path], pa.Table]:
    """The readable segments of ``directory`` (oldest first) and their records merged: sorted by key, the latest
    segment's record for a key kept. Unreadable or foreign segments are removed."""
    import pyarrow.parquet as pq

    paths, tables = [], []
    for path in sorted(directory.glob("seg-*.parquet")) if directory.is_dir() else []:
        try:
            table = pq.ParquetFile(path).read(use_threads=False)  # read_table's dataset layer costs more
            if not table.schema.equals(schema, check_metadata=False):
                raise ValueError(f"unexpected schema {table.schema}")
        except Exception:  # noqa: BLE001 - a damaged cache segment only costs the work it would have saved
            path.unlink(missing_ok=True)
            continue
        paths.append(path)
        tables.append(table)
    return paths, _merge(tables) if tables else schema.empty_table()


def _merge(tables: list[pa.Table]) -> pa.Table:
    """``tables`` (oldest first) as one table sorted by key, the latest record of a key kept."""
    merged = pa.concat_tables(tables)
    k0, k1 = merged.column("k0").to_numpy(), merged.column("k1").to_numpy()
    order = np.lexsort((np.arange(len(k0)), k1, k0))  # by key, then by age
    s0, s1 = k0[order], k1[order]
    last = np.ones(len(order), bool)
    last[:-1] = (s0[1:] != s0[:-1]) | (s1[1:] != s1[:-1])
    return merged.take(pa.array(order[last], pa.int64())).combine_chunks()


class Cache:
    """The record tables of one cache directory, opened on first use."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.existed = self.directory.is_dir()
        self._tables: dict[str, RecordTable] = {}
        self._pid = os.getpid()

    @classmethod
    def beside(cls, out_dir: str | os.PathLike[str]) -> Cache:
        """The cache of the content-addressed directory ``out_dir``."""
        return cls(Path(out_dir) / CACHE_DIRNAME)

    def table(self, kind: str, settings: Any = None) -> RecordTable:
        """The ``kind`` table (a key of ``SCHEMAS``) for ``settings`` (``None``: one table for all)."""
        name = kind if settings is None else f"{kind}-{fingerprint(settings)}"
        if name not in self._tables:
            self._tables[name] = RecordTable(self.directory / name, SCHEMAS[kind])
        return self._tables[name]

    def known(self, paths: Sequence[str], stats: Sequence[os.stat_result | None]) -> list[str | None]:
        """The sha256 the stat index holds for each path whose stat signature is unchanged (else ``None``)."""
        files = self.table("files")
        wanted = [i for i, st in enumerate(stats) if st is not None]
        out: list[str | None] = [None] * len(paths)
        for i, record in zip(wanted, files.lookup([text_key(paths[i]) for i in wanted])):
            if record is not None and record["sig"] == signature(stats[i]):
                out[i] = record["sha256"].hex()
        return out

    def note_file(self, path: str, st: os.stat_result | None, sha256: str, own: bool = False,
                  unchanged_since: bool = False) -> None:
        """Put ``path`` in the stat index with the sha256 of its bytes, read while it had ``st``: unless it changed
        too recently (``own``: a file this process has just written atomically, which is not racy) or, with
        ``unchanged_since``, its signature is no longer ``st``'s (it changed while being read)."""
        if st is None or not (own or settled(st)):
            return
        if unchanged_since and ((now := stat_or_none(path)) is None or signature(now) != signature(st)):
            return
        self.table("files").add(text_key(path), sig=signature(st), sha256=bytes.fromhex(sha256))

    def content_sha(self, path: str, max_bytes: int) -> str | None:
        """The sha256 of ``path``'s bytes: from the stat index, else read (and recorded); ``None`` when it cannot be
        read as a regular file of at most ``max_bytes``."""
        from curation.inputs import read_regular

        st = stat_or_none(path)
        if st is None or st.st_size > max_bytes:
            return None
        known = self.known([path], [st])[0]
        if known is not None:
            return known
        try:
            data = read_regular(path, max_bytes)
        except (OSError, ValueError):
            return None
        sha = hashlib.sha256(data).hexdigest()
        self.note_file(path, st, sha, unchanged_since=True)
        return sha

    def adopt_process(self) -> None:
        """In a forked worker, drop the parent's pending records (the parent writes them, not us)."""
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            for table in self._tables.values():
                table.pending = []

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        """The records added since the last drain, by table name (a worker process hands them to the parent)."""
        out = [(name, record) for name, table in self._tables.items() for record in table.pending]
        for table in self._tables.values():
            table.pending = []
        return out

    def absorb(self, records: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Add records a worker drained."""
        for name, record in records:
            if name not in self._tables:
                self._tables[name] = RecordTable(self.directory / name, SCHEMAS[name.split("-")[0]])
            values = {k: v for k, v in record.items() if k not in ("k0", "k1")}
            self._tables[name].add((record["k0"], record["k1"]), **values)

    def flush(self) -> None:
        for table in self._tables.values():
            table.flush()


_OPEN: dict[str, Cache] = {}  # the caches of the current call, inherited by forked workers


def register(cache: Cache) -> Cache:
    """Make ``cache`` the one ``for_worker`` returns for its directory (in this process and forked children)."""
    _OPEN[str(cache.directory)] = cache
    return cache


@contextmanager
def session(cache: Cache) -> Iterator[Cache]:
    """``cache`` registered for the workers of one call, its records flushed and the registration dropped when the
    call ends (also on error)."""
    register(cache)
    try:
        yield cache
    finally:
        try:
            cache.flush()
        finally:
            _OPEN.pop(str(cache.directory), None)


def for_worker(directory: str) -> Cache:
    """The cache a worker uses: the parent's (inherited on fork, its pending records dropped), else read anew."""
    cache = _OPEN.get(directory)
    if cache is None:
        cache = _OPEN[directory] = Cache(directory)
    cache.adopt_process()
    return cache
