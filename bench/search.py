"""Search latency: p50/p95 of one query over 100 k and 1 M synthetic L2-normalised gallery vectors (D = 512).

Exact backend with float32 (BLAS GEMV) and float16 storage (PyTorch half matmul), top-10 via argpartition; the
recall of float16 against the float32 ranking (top-10 overlap); usearch HNSW (build time, latency, recall@10
against exact) where building it takes reasonable time. Prints one JSON object.
Usage: uv run python bench/search.py [--sizes 100000 1000000] [--queries 50] [--usearch-max 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from evaluation.ann import ExactBackend, UsearchBackend


def _gallery(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    vectors = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, 100_000):  # fill in chunks to avoid a float64 temporary of the whole matrix
        block = rng.standard_normal((min(100_000, n - lo), dim), dtype=np.float32)
        vectors[lo:lo + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return vectors


def _latency(search, queries: np.ndarray) -> dict[str, float]:
    search(queries[0])  # warm-up (page-in, lazy init)
    times = []
    for q in queries:
        t = time.perf_counter()
        search(q)
        times.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": round(float(np.percentile(times, 50)), 2), "p95_ms": round(float(np.percentile(times, 95)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--usearch-max", type=int, default=200_000, help="build usearch only up to this size")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    import torch

    result: dict = {"dim": args.dim, "k": args.k, "queries": args.queries, "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "results": []}
    for n in args.sizes:
        vectors = _gallery(n, args.dim, rng)
        # planted queries: a gallery vector plus noise (a second photo of the same animal)
        planted = vectors[rng.choice(n, args.queries, replace=False)] + 0.05 * rng.standard_normal(
            (args.queries, args.dim), dtype=np.float32) / np.sqrt(args.dim)
        planted /= np.linalg.norm(planted, axis=1, keepdims=True)
        row: dict = {"n": n}
        exact32 = ExactBackend(vectors)
        row["exact_float32"] = _latency(lambda q: exact32.search(q, args.k), planted)
        exact16 = ExactBackend(vectors.astype(np.float16))
        row["exact_float16"] = _latency(lambda q: exact16.search(q, args.k), planted)
        overlap = [len(set(exact32.search(q, args.k)[0]) & set(exact16.search(q, args.k)[0])) / args.k
                   for q in planted[:20]]
        row["float16_recall_at_k_vs_float32"] = round(float(np.mean(overlap)), 4)
        del exact16
        if n <= args.usearch_max:
            t = time.perf_counter()
            ann = UsearchBackend.build(vectors)
            row["usearch_build_s"] = round(time.perf_counter() - t, 1)
            row["usearch_f16"] = _latency(lambda q: ann.search(q, args.k), planted)
            recall = [len(set(exact32.search(q, args.k)[0]) & set(ann.search(q, args.k)[0])) / args.k
                      for q in planted]
            row["usearch_recall_at_k_vs_exact"] = round(float(np.mean(recall)), 4)
            del ann
        result["results"].append(row)
        del vectors, exact32
    print(json.dumps(result))


if __name__ == "__main__":
    main()
