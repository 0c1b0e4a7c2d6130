"""Content-addressed file names and hashing helpers shared by every library."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

_CHUNK = 1 << 20

if TYPE_CHECKING:
    import pyarrow as pa


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_path(root: str | os.PathLike[str], digest: str, suffix: str) -> Path:
    """``root/ab/abcdef….suffix``: two-level fan-out keeps directories small at millions of files."""
    return Path(root) / digest[:2] / f"{digest}{suffix}"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write via a temporary file and rename, so a killed process never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_parquet(table: "pa.Table", path: str | os.PathLike[str], compression: str = "zstd") -> Path:
    """Write ``table`` as Parquet straight into a temporary file beside ``path``, then rename: atomic, and the file
    is never held whole in memory."""
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".parquet")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression=compression)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def store_content(root: str | os.PathLike[str], data: bytes, suffix: str) -> tuple[str, Path]:
    """Store bytes under their sha256; an existing file is left alone. Returns (digest, path)."""
    digest = sha256_bytes(data)
    path = content_path(root, digest, suffix)
    if not path.exists():
        atomic_write_bytes(path, data)
    return digest, path
