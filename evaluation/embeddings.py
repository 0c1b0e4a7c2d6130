"""Embedding extraction with an on-disk cache keyed by (model id, image sha256).

The cache is a folder per model id holding Parquet shards (``sha256``, ``embedding``); each call that embeds new
images appends one shard, so an interrupted run keeps what it finished and re-runs only embed what is missing.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from petid.errors import UserError
from petid.paths import sha256_file

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class PhotoEmbedder(Protocol):
    """What evaluation and search need from a model (``training.embedder.Embedder`` satisfies it). A model with
    ``uses_text`` (a true attribute) is also given each photo's listing text: ``embed(paths, texts=...)``."""

    model_id: str

    def embed(self, paths: list[str], batch_size: int = 32) -> np.ndarray: ...


def uses_text(embedder: object) -> bool:
    return bool(getattr(embedder, "uses_text", False))


def text_key(key: str, text: str | None) -> str:
    """The cache key of a (photo, text) input: the photo's sha256, and the text's when there is one."""
    import hashlib

    return key if text is None else hashlib.sha256(f"{key}\0{text}".encode()).hexdigest()


class EmbeddingError(UserError, ValueError):
    """The frame or the embedder's output is unusable (missing column/file, wrong shape)."""


def content_keys(frame: pd.DataFrame) -> list[str]:
    """sha256 of the file each row's ``path`` points at.

    A content-addressed file name (``ab/<sha256>.jpg``, as curated images and crops are stored) is trusted as is;
    a ``sha256`` column is trusted only when the frame has no ``crop_path``/``src_path`` columns (then it describes
    ``path`` itself, not a source the file was derived from); anything else is hashed.
    """
    if "path" not in frame:
        raise EmbeddingError(f"frame has no 'path' column (columns: {list(frame.columns)})")
    trust_column = "sha256" in frame and "crop_path" not in frame and "src_path" not in frame
    shas = frame["sha256"].tolist() if trust_column else [None] * len(frame)
    keys: list[str] = []
    for path, sha in zip(frame["path"].tolist(), shas):
        stem = Path(str(path)).stem
        if isinstance(sha, str) and _HEX64.match(sha):
            keys.append(sha)
        elif _HEX64.match(stem):
            keys.append(stem)
        else:
            if not os.path.isfile(path):
                raise EmbeddingError(f"image file not found: {path}")
            keys.append(sha256_file(path))
    return keys


def load_photo_embedder(ref: str, registry_root: str | os.PathLike[str] | None) -> PhotoEmbedder:
    """The model ``ref`` names (``baseline``, an alias, a version id or directory), from the training registry."""
    from training.embedder import load_embedder

    return load_embedder(ref, registry_root)


def _model_dir(cache_dir: str | os.PathLike[str], model_id: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("_") or "model"
    return Path(cache_dir) / safe


def load_cache(cache_dir: str | os.PathLike[str], model_id: str) -> dict[str, np.ndarray]:
    """Every cached embedding of ``model_id``: sha256 → float32 vector."""
    directory = _model_dir(cache_dir, model_id)
    cached: dict[str, np.ndarray] = {}
    for shard in sorted(directory.glob("*.parquet")) if directory.exists() else []:
        table = pq.read_table(shard)
        shas = table.column("sha256").to_pylist()
        flat = table.column("embedding").combine_chunks()
        dim = flat.type.list_size
        vectors = flat.flatten().to_numpy().astype(np.float32).reshape(-1, dim)
        cached.update(zip(shas, vectors))
    return cached


def _write_shard(cache_dir: str | os.PathLike[str], model_id: str, shas: list[str], vectors: np.ndarray) -> None:
    directory = _model_dir(cache_dir, model_id)
    directory.mkdir(parents=True, exist_ok=True)
    dim = vectors.shape[1]
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim)
    table = pa.table({"sha256": pa.array(shas, pa.string()), "embedding": column})
    tmp = directory / f".tmp-{uuid.uuid4().hex}.parquet"
    pq.write_table(table, tmp)
    os.replace(tmp, directory / f"shard-{uuid.uuid4().hex}.parquet")


def embed_frame(
    frame: pd.DataFrame,
    embedder: PhotoEmbedder,
    cache_dir: str | os.PathLike[str] | None,
    batch_size: int = 32,
) -> np.ndarray:
    """L2-normalised float32 embeddings ``(len(frame), D)`` in row order; cached by (model id, sha256).

    Identical files are embedded once. ``cache_dir=None`` disables the cache. A text-reading model embeds each
    photo with its row's ``text`` (keyed by photo and text, see ``text_key``).
    """
    from training.embedder import frame_texts

    texts = frame_texts(frame) if uses_text(embedder) else [None] * len(frame)
    keys = [text_key(k, t) for k, t in zip(content_keys(frame), texts)]
    cached = load_cache(cache_dir, embedder.model_id) if cache_dir is not None else {}
    paths = frame["path"].astype(str).tolist()
    missing: dict[str, tuple[str, str | None]] = {}
    for key, path, text in zip(keys, paths, texts):
        if key not in cached and key not in missing:
            if not os.path.isfile(path):
                raise EmbeddingError(f"image file not found: {path}")
            missing[key] = (path, text)
    if missing:
        new_keys = list(missing)
        new_paths = [missing[k][0] for k in new_keys]
        extra = {"texts": [missing[k][1] for k in new_keys]} if uses_text(embedder) else {}
        vectors = np.asarray(embedder.embed(new_paths, batch_size=batch_size, **extra), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(new_keys):
            raise EmbeddingError(
                f"embedder {embedder.model_id} returned shape {vectors.shape} for {len(new_keys)} images"
            )
        vectors = normalise(vectors)
        if cache_dir is not None:
            _write_shard(cache_dir, embedder.model_id, new_keys, vectors)
        cached.update(zip(new_keys, vectors))
    if not keys:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([cached[k] for k in keys]).astype(np.float32, copy=False)


def photo_frame(frame: pd.DataFrame, error: type[Exception], what: str) -> pd.DataFrame:
    """A copy with ``identity`` renamed to ``identity_id`` (both spellings are accepted) and ``path`` and
    ``identity_id`` required; ``error`` is raised naming the missing columns."""
    frame = frame.copy()
    if "identity_id" not in frame and "identity" in frame:
        frame = frame.rename(columns={"identity": "identity_id"})
    missing = [c for c in ("path", "identity_id") if c not in frame]
    if missing:
        raise error(f"{what} frame lacks column(s) {missing} (columns: {list(frame.columns)})")
    frame["identity_id"] = frame["identity_id"].astype(str)
    return frame


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)
