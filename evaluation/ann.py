"""Nearest-neighbour backends behind one interface: exact (NumPy/PyTorch) and approximate (usearch HNSW).

Vectors are L2-normalised, similarity is the inner product (= cosine). ``ExactBackend`` computes every score —
one matrix-vector product over a contiguous matrix (BLAS for float32, PyTorch for float16 storage) — which lets
search aggregate per identity exactly; memory bandwidth bounds it (see ``bench/search.py``). ``UsearchBackend``
returns only the nearest photos and is for galleries beyond what a full scan serves in time.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

BACKENDS = ("exact", "usearch")


class Backend(ABC):
    """Top-k inner-product search over a fixed gallery of ``n`` vectors."""

    name: str
    exhaustive: bool  # True: ``scores`` returns every gallery score

    @property
    @abstractmethod
    def size(self) -> int: ...

    @abstractmethod
    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row indices and scores of the ``k`` best gallery vectors, best first."""

    def scores(self, query: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{self.name} backend does not score the whole gallery")

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Persist whatever the backend needs beyond the vectors (nothing for exact search)."""


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest scores, best first, without a full sort (argpartition)."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    part = np.argpartition(scores, -k)[-k:] if k < scores.shape[0] else np.arange(scores.shape[0])
    part = part[np.argsort(-scores[part], kind="stable")]
    return part.astype(np.int64), scores[part]


class ExactBackend(Backend):
    """Brute force over float32 (NumPy BLAS GEMV) or float16 (PyTorch half matmul, half the memory traffic)."""

    name = "exact"
    exhaustive = True

    def __init__(self, vectors: np.ndarray) -> None:
        if vectors.dtype not in (np.float32, np.float16):
            raise ValueError(f"exact backend stores float32 or float16 vectors, got {vectors.dtype}")
        self.vectors = np.ascontiguousarray(vectors)
        self._torch_matrix = None

    @property
    def size(self) -> int:
        return int(self.vectors.shape[0])

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Inner product of ``query`` with every gallery vector, float32 ``(n,)``."""
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if self.vectors.dtype == np.float32:
            return self.vectors @ query
        import torch

        if self._torch_matrix is None:
            self._torch_matrix = torch.from_numpy(self.vectors)  # shares memory, no copy
        q = torch.from_numpy(query.astype(np.float16))
        return (self._torch_matrix @ q).float().numpy()

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return top_k(self.scores(query), k)


class UsearchBackend(Backend):
    """usearch HNSW index (inner product), stored as ``usearch.index`` beside the vectors."""

    name = "usearch"
    exhaustive = False
    FILE = "usearch.index"

    def __init__(self, index) -> None:
        self.index = index

    @classmethod
    def build(cls, vectors: np.ndarray, dtype: str = "f16", connectivity: int = 16, threads: int = 0) -> UsearchBackend:
        from usearch.index import Index

        index = Index(ndim=vectors.shape[1], metric="ip", dtype=dtype, connectivity=connectivity)
        if len(vectors):
            index.add(np.arange(len(vectors), dtype=np.uint64), np.asarray(vectors, dtype=np.float32), threads=threads)
        return cls(index)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> UsearchBackend:
        from usearch.index import Index

        path = Path(directory) / cls.FILE
        if not path.exists():
            raise FileNotFoundError(f"no usearch index at {path}: rebuild the index with --backend usearch")
        return cls(Index.restore(str(path)))

    @property
    def size(self) -> int:
        return len(self.index)

    def save(self, directory: str | os.PathLike[str]) -> None:
        self.index.save(str(Path(directory) / self.FILE))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.size)
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        matches = self.index.search(np.asarray(query, dtype=np.float32).reshape(-1), k)
        keys = np.asarray(matches.keys, dtype=np.int64)
        scores = 1.0 - np.asarray(matches.distances, dtype=np.float32)  # usearch "ip" distance = 1 − dot
        return keys, scores


def make_backend(name: str, vectors: np.ndarray, directory: str | os.PathLike[str] | None = None) -> Backend:
    """``exact`` over ``vectors``; ``usearch`` loaded from ``directory`` when saved there, else built."""
    if name == "exact":
        return ExactBackend(vectors)
    if name == "usearch":
        if directory is not None and (Path(directory) / UsearchBackend.FILE).exists():
            return UsearchBackend.load(directory)
        return UsearchBackend.build(vectors)
    raise ValueError(f"unknown search backend {name!r}: choose one of {BACKENDS}")
