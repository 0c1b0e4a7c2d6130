"""Raw page archive: every fetched page gzip-compressed and content-addressed (``pages/ab/<sha256>.html.gz``)."""

from __future__ import annotations

import gzip
from pathlib import Path

from petid.paths import atomic_write_bytes, content_path, sha256_bytes

PAGE_SUFFIX = ".html.gz"


def archive_page(raw_dir: Path, body: bytes) -> str:
    """Store ``body`` under ``raw_dir/pages`` (deterministic gzip, so equal bodies give equal files); returns its
    sha256 (of the uncompressed bytes). An existing file is left alone."""
    digest = sha256_bytes(body)
    path = content_path(Path(raw_dir) / "pages", digest, PAGE_SUFFIX)
    if not path.exists():
        atomic_write_bytes(path, gzip.compress(body, compresslevel=6, mtime=0))
    return digest


def read_page(raw_dir: Path, digest: str) -> bytes:
    """The archived bytes of page ``digest``; raises FileNotFoundError naming the missing file."""
    path = content_path(Path(raw_dir) / "pages", digest, PAGE_SUFFIX)
    if not path.exists():
        raise FileNotFoundError(f"archived page {digest} missing: {path}")
    return gzip.decompress(path.read_bytes())


def archived_digests(raw_dir: Path) -> list[str]:
    """Every archived page digest, sorted."""
    root = Path(raw_dir) / "pages"
    return sorted(p.name[: -len(PAGE_SUFFIX)] for p in root.glob(f"*/*{PAGE_SUFFIX}")) if root.exists() else []
