"""Search latency and recall over 100 k and 1 M synthetic L2-normalised gallery vectors (D = 512).

Per size: p50/p95 of one top-10 query for exact float32 (BLAS GEMV), exact float16 (PyTorch half matmul) and the
binary backend (sign-bit Hamming scan + exact float16 re-rank of the best ``candidates``); recall@10 of binary vs
exact float32 on (a) a purely random gallery with random queries (the worst case: no structure, the true top-10
barely stand out) and (b) a realistic gallery (identity centres, several noisy photos each; the query is another
noisy photo of a gallery identity), where it also reports how often the true identity is ranked 1st / in the top 10.
usearch HNSW (build time, latency, recall) only up to ``--usearch-max`` (default 0: its build takes minutes on 2
cores). Reports the load average, since other processes on a shared machine inflate latencies. Prints one JSON
object. Usage: uv run python bench/search.py [--sizes 100000 1000000] [--queries 50] [--candidates 1000 2000 4000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np

from evaluation.ann import BinaryRerankBackend, ExactBackend, UsearchBackend


def _normalised(block: np.ndarray) -> np.ndarray:
    return (block / np.linalg.norm(block, axis=1, keepdims=True)).astype(np.float32)


def _random_gallery(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    vectors = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, 100_000):  # fill in chunks to avoid a float64 temporary of the whole matrix
        vectors[lo:lo + 100_000] = _normalised(rng.standard_normal((min(100_000, n - lo), dim), dtype=np.float32))
    return vectors


def _identity_gallery(n: int, dim: int, per: int, noise: float, rng: np.random.Generator):
    """``n`` photos of ``n // per`` animals: unit centre + noise of norm ≈ ``noise`` (same-animal cosine ≈
    1 / (1 + noise²)); returns centres, photo identities and photos."""
    centres = _random_gallery(n // per, dim, rng)
    ids = np.repeat(np.arange(len(centres)), per)
    vectors = np.empty((len(ids), dim), dtype=np.float32)
    for lo in range(0, len(ids), 100_000):
        hi = min(lo + 100_000, len(ids))
        jitter = rng.standard_normal((hi - lo, dim), dtype=np.float32) * (noise / np.sqrt(dim))
        vectors[lo:hi] = _normalised(centres[ids[lo:hi]] + jitter)
    return centres, ids, vectors


def _latency(search, queries: np.ndarray) -> dict[str, float]:
    search(queries[0])  # warm-up (page-in, lazy init)
    times = []
    for q in queries:
        t = time.perf_counter()
        search(q)
        times.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": round(float(np.percentile(times, 50)), 2), "p95_ms": round(float(np.percentile(times, 95)), 2)}


def _recall(reference: list[np.ndarray], found: list[np.ndarray], k: int) -> float:
    return round(float(np.mean([len(set(r[:k]) & set(f[:k])) / k for r, f in zip(reference, found)])), 4)


def _bench_random(n: int, args, rng: np.random.Generator) -> dict:
    vectors = _random_gallery(n, args.dim, rng)
    # planted latency queries: a gallery vector plus noise (a second photo of the same animal)
    planted = _normalised(vectors[rng.choice(n, args.queries, replace=False)]
                          + 0.05 * rng.standard_normal((args.queries, args.dim), dtype=np.float32) / np.sqrt(args.dim))
    random_queries = _random_gallery(args.recall_queries, args.dim, rng)
    row: dict = {"n": n}
    exact32 = ExactBackend(vectors)
    row["exact_float32"] = _latency(lambda q: exact32.search(q, args.k), planted)
    truth = [exact32.search(q, args.k)[0] for q in random_queries]
    half = vectors.astype(np.float16)
    if n <= args.usearch_max:
        t = time.perf_counter()
        ann = UsearchBackend.build(vectors)
        row["usearch_build_s"] = round(time.perf_counter() - t, 1)
        row["usearch_f16"] = _latency(lambda q: ann.search(q, args.k), planted)
        row["usearch_recall_at_k_random"] = _recall(truth, [ann.search(q, args.k)[0] for q in random_queries], args.k)
        del ann
    del vectors, exact32
    exact16 = ExactBackend(half)
    row["exact_float16"] = _latency(lambda q: exact16.search(q, args.k), planted)
    row["float16_recall_at_k_random"] = _recall(truth, [exact16.search(q, args.k)[0] for q in random_queries], args.k)
    del exact16
    t = time.perf_counter()
    binary = BinaryRerankBackend(half, candidates=args.default_candidates)
    row["binary_codes_build_s"] = round(time.perf_counter() - t, 2)
    row["binary"] = _latency(lambda q: binary.search(q, args.k), planted)
    row["binary_recall_at_k_random_by_candidates"] = {}
    for candidates in args.candidates:
        binary.candidates = candidates
        found = [binary.search(q, args.k)[0] for q in random_queries]
        row["binary_recall_at_k_random_by_candidates"][str(candidates)] = _recall(truth, found, args.k)
        row.setdefault("binary_latency_by_candidates", {})[str(candidates)] = _latency(
            lambda q: binary.search(q, args.k), planted[:20])
    row["binary_recall_at_k_planted"] = None  # filled by the identity gallery below
    return row


def _bench_identities(n: int, args, rng: np.random.Generator, row: dict) -> None:
    centres, ids, vectors = _identity_gallery(n, args.dim, args.per_identity, args.noise, rng)
    targets = rng.choice(len(centres), args.recall_queries, replace=False)
    queries = _normalised(centres[targets] + rng.standard_normal((len(targets), args.dim), dtype=np.float32)
                          * (args.noise / np.sqrt(args.dim)))  # another photo of the animal, not in the gallery
    exact32 = ExactBackend(vectors)
    truth = [exact32.search(q, args.k)[0] for q in queries]
    same = float(np.mean([vectors[ids == t][0] @ q for t, q in zip(targets[:20], queries[:20])]))
    del exact32
    binary = BinaryRerankBackend(vectors.astype(np.float16), candidates=args.default_candidates)
    del vectors
    found = [binary.search(q, args.k)[0] for q in queries]

    def hits(results: list[np.ndarray], depth: int) -> float:
        return round(float(np.mean([t in set(ids[r[:depth]]) for t, r in zip(targets, results)])), 4)

    row["identity_gallery"] = {
        "photos_per_identity": args.per_identity, "noise": args.noise,
        "mean_same_identity_cosine": round(same, 3),
        "exact_identity_top1": hits(truth, 1), "exact_identity_top10": hits(truth, 10),
        "binary_identity_top1": hits(found, 1), "binary_identity_top10": hits(found, 10),
        "binary_recall_at_k_vs_exact": _recall(truth, found, args.k),
    }
    del row["binary_recall_at_k_planted"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=50, help="latency queries")
    parser.add_argument("--recall-queries", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--candidates", type=int, nargs="+", default=[1000, 2000, 4000])
    parser.add_argument("--default-candidates", type=int, default=4000)
    parser.add_argument("--per-identity", type=int, default=4)
    parser.add_argument("--noise", type=float, default=0.8, help="per-photo noise norm (same-animal cos ≈ 0.6)")
    parser.add_argument("--usearch-max", type=int, default=0, help="build usearch only up to this size")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    import torch

    started = time.perf_counter()
    result: dict = {"dim": args.dim, "k": args.k, "queries": args.queries, "recall_queries": args.recall_queries,
                    "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "default_candidates": args.default_candidates,
                    "load_average_start": [round(x, 2) for x in os.getloadavg()], "results": []}
    for n in args.sizes:
        row = _bench_random(n, args, rng)
        _bench_identities(n, args, rng, row)
        result["results"].append(row)
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    result["total_s"] = round(time.perf_counter() - started, 1)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
