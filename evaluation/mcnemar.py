"""McNemar's test between two models on the same queries (paired per-query hit/miss outcomes).

``b`` = queries model A gets right and model B gets wrong, ``c`` = the reverse. With few discordant queries
(``b + c < exact_below``, default 25) the exact test is used: two-sided binomial test of ``b`` successes in ``b + c``
trials at p = 0.5 (``scipy.stats.binomtest``), statistic = ``min(b, c)``. Otherwise the chi-square approximation
with Edwards' continuity correction: statistic = (|b − c| − 1)² / (b + c), p from χ²(1) (``scipy.stats.chi2``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import binomtest, chi2


def mcnemar(hits_a: Sequence[bool] | np.ndarray, hits_b: Sequence[bool] | np.ndarray, exact_below: int = 25) -> dict:
    """``{b, c, n, statistic, p_value, method, acc_a, acc_b}`` for paired boolean outcomes of models A and B."""
    a = np.asarray(hits_a, dtype=bool)
    b_hits = np.asarray(hits_b, dtype=bool)
    if a.shape != b_hits.shape:
        raise ValueError(f"McNemar needs the same queries: {a.shape[0]} outcomes for A, {b_hits.shape[0]} for B")
    b = int(np.sum(a & ~b_hits))
    c = int(np.sum(~a & b_hits))
    n = b + c
    if n == 0:
        statistic, p_value, method = 0.0, 1.0, "none (no discordant queries)"
    elif n < exact_below:
        statistic, p_value, method = float(min(b, c)), float(binomtest(b, n, 0.5).pvalue), "exact binomial"
    else:
        statistic = (abs(b - c) - 1) ** 2 / n
        p_value, method = float(chi2.sf(statistic, df=1)), "chi-square with continuity correction"
    return {
        "b": b,
        "c": c,
        "n": int(a.size),
        "statistic": float(statistic),
        "p_value": min(1.0, p_value),
        "method": method,
        "acc_a": float(a.mean()) if a.size else 0.0,
        "acc_b": float(b_hits.mean()) if b_hits.size else 0.0,
    }


def compare_reports(report_a: dict[str, Any], report_b: dict[str, Any], exact_below: int = 25) -> dict:
    """McNemar on top-1 hits of two ``report.json`` contents, over the queries (by ``path``) both evaluated."""
    def hits(report: dict[str, Any], name: str) -> dict[str, bool]:
        queries = report.get("queries")
        if not queries:
            raise ValueError(f"report {name} has no per-query results ('queries'); re-run petid evaluate")
        return {q["path"]: bool(q["hit1"]) for q in queries}

    a, b = hits(report_a, "A"), hits(report_b, "B")
    shared = sorted(set(a) & set(b))
    if not shared:
        raise ValueError("the two reports share no query photos: they were evaluated on different data")
    result = mcnemar([a[p] for p in shared], [b[p] for p in shared], exact_below=exact_below)
    result.update({"model_a": report_a.get("model"), "model_b": report_b.get("model"), "n_shared": len(shared)})
    return result
