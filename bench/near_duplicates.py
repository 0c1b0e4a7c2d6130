"""Near-duplicate search at scale: random 64-bit hashes with planted near-duplicates.

    uv run python bench/near_duplicates.py --n 1000000 --threshold 8

Prints one JSON object: n, threshold, seconds, pairs, planted_recall, peak_rss_mb, plus the chunk plan and the
brute-force check on a random subsample (every pair among the subsample found by brute force must be in the full
result, and vice versa).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation.neardup import brute_force_pairs, near_duplicate_pairs, plan_chunks  # noqa: E402


def planted_hashes(n: int, planted: int, threshold: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random hashes; the last ``planted`` rows are copies of earlier rows with 0..threshold bits flipped.
    Returns (hashes, planted pairs as (original, copy) rows)."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    copies = np.arange(n - planted, n)
    originals = rng.integers(0, n - planted, planted)
    flips = rng.integers(0, threshold + 1, planted)
    masks = np.zeros(planted, np.uint64)
    for k in range(planted):
        bits = rng.choice(64, flips[k], replace=False).astype(np.uint64)
        masks[k] = np.bitwise_or.reduce(np.uint64(1) << bits, initial=np.uint64(0))
    hashes[copies] = hashes[originals] ^ masks
    return hashes, np.stack([originals, copies], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--threshold", type=int, default=8)
    parser.add_argument("--planted", type=int, default=10_000)
    parser.add_argument("--subsample", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    hashes, planted = planted_hashes(args.n, min(args.planted, args.n // 2), args.threshold, args.seed)
    start = time.perf_counter()
    pairs = near_duplicate_pairs(hashes, args.threshold)
    seconds = time.perf_counter() - start
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    found = set(zip(pairs["i"].tolist(), pairs["j"].tolist()))
    recall = float(np.mean([(min(a, b), max(a, b)) in found for a, b in planted.tolist()])) if len(planted) else 1.0

    # Brute-force check on a subsample that includes some planted pairs.
    rng = np.random.default_rng(args.seed + 1)
    chosen = np.unique(np.concatenate([planted[: args.subsample // 10].ravel(),
                                       rng.choice(args.n, args.subsample, replace=False)]))
    reference = brute_force_pairs(hashes[chosen], args.threshold)
    reference_set = {(int(chosen[i]), int(chosen[j])) for i, j in zip(reference["i"], reference["j"])}
    in_subsample = np.isin(pairs["i"], chosen) & np.isin(pairs["j"], chosen)
    full_set = set(zip(pairs["i"][in_subsample].tolist(), pairs["j"][in_subsample].tolist()))
    widths, radius = plan_chunks(args.n, args.threshold)
    print(json.dumps({
        "n": args.n,
        "threshold": args.threshold,
        "seconds": round(seconds, 2),
        "pairs": len(pairs),
        "planted_recall": recall,
        "peak_rss_mb": round(peak_rss_mb, 1),
        "planted": len(planted),
        "chunks": widths,
        "probe_radius": radius,
        "subsample": len(chosen),
        "subsample_pairs": len(reference_set),
        "matches_brute_force": reference_set == full_set,
    }))
    if reference_set != full_set or recall < 1.0:
        sys.exit(1)


if __name__ == "__main__":
    main()
