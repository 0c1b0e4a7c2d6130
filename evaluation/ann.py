"""Nearest-neighbour backends behind one interface: exact (NumPy/PyTorch), binary + re-rank, usearch HNSW.

Vectors are L2-normalised, similarity is the inner product (= cosine). ``ExactBackend`` computes every score —
one matrix-vector product over a contiguous matrix (BLAS for float32, PyTorch for float16 storage) — which lets
search aggregate per identity exactly; memory bandwidth bounds it (see ``bench/search.py``). ``UsearchBackend``
returns only the nearest photos and is for galleries beyond what a full scan serves in time.
``BinaryRerankBackend`` scans 1-bit sign codes (32× less memory traffic than float16) by Hamming distance, keeps the
best ``candidates`` and re-ranks them exactly; :func:`choose_backend` makes it the default above
``BINARY_THRESHOLD`` vectors, where a float scan no longer meets the 50 ms target on 2 cores.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

BACKENDS = ("exact", "usearch", "binary")
BINARY_THRESHOLD = 200_000  # above this many vectors "auto" picks the binary backend


def choose_backend(n_vectors: int, requested: str | None = None) -> str:
    """``requested`` unless it is ``None``/``"auto"``: then ``binary`` above ``BINARY_THRESHOLD`` vectors, else
    ``exact``."""
    if requested not in (None, "auto"):
        if requested not in BACKENDS:
            raise ValueError(f"unknown search backend {requested!r}: choose one of {BACKENDS} or 'auto'")
        return requested
    return "binary" if n_vectors > BINARY_THRESHOLD else "exact"


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

    # Rows inserted one thread at a time before parallel insertion starts. Concurrent inserts into a young graph
    # leave poorly linked nodes: on 900 vectors with 16 threads, 1–2 % of queries missed their true nearest
    # neighbour (top-1 score 0.38 instead of 0.96); with a serial seed none did, and large builds stay parallel.
    SERIAL_SEED = 4096

    @classmethod
    def build(cls, vectors: np.ndarray, dtype: str = "f16", connectivity: int = 16, threads: int = 0) -> UsearchBackend:
        from usearch.index import Index

        index = Index(ndim=vectors.shape[1], metric="ip", dtype=dtype, connectivity=connectivity)
        keys = np.arange(len(vectors), dtype=np.uint64)
        rows = np.asarray(vectors, dtype=np.float32)
        seed = min(len(rows), cls.SERIAL_SEED)
        if seed:
            index.add(keys[:seed], rows[:seed], threads=1)
        if len(rows) > seed:
            index.add(keys[seed:], rows[seed:], threads=threads)
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


def sign_codes(vectors: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Sign bits of each row packed into uint64 words, word-major: ``(ceil(D / 64), n)`` uint64 (bit set where the
    component is > 0; D is zero-padded to a multiple of 64)."""
    n, dim = vectors.shape
    words = -(-dim // 64)
    codes = np.empty((words, n), dtype=np.uint64)
    for lo in range(0, n, chunk):  # chunked: no (n, D) bool temporary
        bits = np.zeros((min(chunk, n - lo), words * 64), dtype=bool)
        bits[:, :dim] = vectors[lo:lo + chunk] > 0
        packed = np.packbits(bits, axis=1, bitorder="little").view("<u8")
        codes[:, lo:lo + len(packed)] = packed.T
    return codes


class BinaryRerankBackend(Backend):
    """Hamming scan over sign codes, then exact inner products for the best ``candidates`` rows.

    The scan runs in ``threads`` row ranges in parallel (NumPy releases the GIL) and in cache-sized chunks; the
    candidate cut uses a histogram of the distances (0..D) instead of a partial sort. Stored as
    ``binary_codes.npy`` beside the vectors.
    """

    name = "binary"
    exhaustive = False
    FILE = "binary_codes.npy"
    CHUNK = 32_768

    def __init__(self, vectors: np.ndarray, codes: np.ndarray | None = None, candidates: int = 4000,
                 threads: int | None = None) -> None:
        if vectors.ndim != 2 or vectors.dtype not in (np.float32, np.float16):
            raise ValueError(f"binary backend needs (n, D) float32/float16 vectors, got {vectors.dtype} "
                             f"{vectors.shape}")
        if candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {candidates}")
        self.vectors = vectors
        self.codes = sign_codes(vectors) if codes is None else np.ascontiguousarray(codes, dtype=np.uint64)
        expected = (-(-vectors.shape[1] // 64), vectors.shape[0])
        if self.codes.shape != expected:
            raise ValueError(f"binary codes have shape {self.codes.shape}, vectors need {expected}: rebuild them")
        self.candidates = candidates
        self.threads = max(1, min(threads or os.cpu_count() or 1, 8))
        self._pool = None

    @classmethod
    def load(cls, directory: str | os.PathLike[str], vectors: np.ndarray, **options) -> BinaryRerankBackend:
        """Codes from ``directory`` when saved there and matching ``vectors``, else computed from them."""
        path = Path(directory) / cls.FILE
        codes = np.load(path) if path.exists() else None
        if codes is not None and codes.shape != (-(-vectors.shape[1] // 64), vectors.shape[0]):
            codes = None  # stale (vectors rewritten): recompute
        return cls(vectors, codes, **options)

    @property
    def size(self) -> int:
        return int(self.vectors.shape[0])

    def save(self, directory: str | os.PathLike[str]) -> None:
        np.save(Path(directory) / self.FILE, self.codes)

    def hamming(self, query: np.ndarray) -> np.ndarray:
        """Hamming distance from the query's sign code to every gallery code, uint16 ``(n,)``."""
        return self._scan(query)[0]

    def _scan(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distances ``(n,)`` and their histogram ``(D_padded + 1,)``, row ranges scanned in parallel."""
        q = sign_codes(np.asarray(query, dtype=np.float32).reshape(1, -1))[:, 0]
        out = np.empty(self.size, dtype=np.uint16)
        bounds = np.linspace(0, self.size, self.threads + 1).astype(np.int64)
        parts = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        if len(parts) <= 1 or self.size < 4 * self.CHUNK:
            return out, self._hamming_range(q, 0, self.size, out)
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="hamming")
        futures = [self._pool.submit(self._hamming_range, q, a, b, out) for a, b in parts]
        return out, np.sum([f.result() for f in futures], axis=0)

    def _hamming_range(self, q: np.ndarray, lo: int, hi: int, out: np.ndarray) -> np.ndarray:
        """Fill ``out[lo:hi]`` in cache-sized chunks; returns the histogram of those distances."""
        step = self.CHUNK
        xor = np.empty(step, np.uint64)
        count = np.empty(step, np.uint8)
        for a in range(lo, hi, step):
            b = min(a + step, hi)
            m, acc = b - a, out[a:b]
            for w in range(self.codes.shape[0]):
                np.bitwise_xor(self.codes[w, a:b], q[w], out=xor[:m])
                np.bitwise_count(xor[:m], out=count[:m])
                if w == 0:
                    acc[:] = count[:m]
                else:
                    acc += count[:m]
        return np.bincount(out[lo:hi], minlength=self.codes.shape[0] * 64 + 1)

    def candidate_rows(self, query: np.ndarray, candidates: int) -> np.ndarray:
        """Rows of the ``candidates`` smallest Hamming distances (ties at the cut broken by row order)."""
        if candidates >= self.size:
            return np.arange(self.size)
        dist, histogram = self._scan(query)
        cumulative = np.cumsum(histogram)
        cut = int(np.searchsorted(cumulative, candidates))  # smallest distance with >= candidates at or below
        rows = np.flatnonzero(dist <= cut)
        if len(rows) > candidates:
            below = dist[rows] < cut
            rows = np.concatenate([rows[below], rows[~below][: candidates - int(below.sum())]])
        return rows

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by exact inner product among the best ``max(candidates, k)`` Hamming candidates."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        rows = self.candidate_rows(query, max(self.candidates, k))
        gathered = self.vectors[rows]
        if gathered.dtype == np.float16:  # NumPy's float16 cast is slow; torch converts and multiplies fast
            import torch

            scores = (torch.from_numpy(gathered).float() @ torch.from_numpy(query)).numpy()
        else:
            scores = gathered @ query
        best, best_scores = top_k(scores, k)
        return rows[best].astype(np.int64), best_scores


def make_backend(name: str, vectors: np.ndarray, directory: str | os.PathLike[str] | None = None) -> Backend:
    """``exact`` over ``vectors``; ``binary``/``usearch`` loaded from ``directory`` when saved there, else built;
    ``auto`` (or ``None``) picks by size (:func:`choose_backend`)."""
    name = choose_backend(len(vectors), name)
    if name == "exact":
        return ExactBackend(vectors)
    if name == "binary":
        if directory is not None:
            return BinaryRerankBackend.load(directory, vectors)
        return BinaryRerankBackend(vectors)
    if name == "usearch":
        if directory is not None and (Path(directory) / UsearchBackend.FILE).exists():
            return UsearchBackend.load(directory)
        return UsearchBackend.build(vectors)
    raise ValueError(f"unknown search backend {name!r}: choose one of {BACKENDS}")
