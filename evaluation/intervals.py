"""95 % intervals by bootstrapping identities: the unit that was sampled is the animal, not the photo or pair.

Each replicate draws the evaluated identities with replacement; a query (identification) or a pair
(verification, owned by its first photo's identity) counts as often as its identity was drawn. Top-k and mAP are
the weighted means of the per-query hits and average precisions, ROC AUC and EER come from the weighted ROC
(``sklearn.metrics.roc_curve`` with ``sample_weight``). Model and baseline share every replicate, so the interval of
their difference is paired. Percentile intervals; replicates that lose all positive or negative pairs are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

if TYPE_CHECKING:
    from evaluation.evaluate import ModelEvaluation
    from evaluation.verification import Pairs

INTERVAL_METRICS = ("top1", "top5", "map", "roc_auc", "eer")


def weighted_eer(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(labels, scores, sample_weight=weights)
    fnr = 1.0 - tpr
    i = int(np.argmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2.0)


def _replicate(evaluation: ModelEvaluation, query_w: np.ndarray, pair_w: np.ndarray) -> dict[str, float]:
    ident, ver = evaluation.identification, evaluation.verification
    total = query_w.sum()
    out = {"top1": float((query_w * (ident.ranks <= 1)).sum() / total),
           "top5": float((query_w * (ident.ranks <= 5)).sum() / total),
           "map": float((query_w * ident.average_precision).sum() / total)}
    keep = pair_w > 0
    out["roc_auc"] = float(roc_auc_score(ver.labels[keep], ver.scores[keep], sample_weight=pair_w[keep]))
    out["eer"] = weighted_eer(ver.labels[keep], ver.scores[keep], pair_w[keep])
    return out


def bootstrap_intervals(identities: np.ndarray, pairs: Pairs, evaluations: Mapping[str, ModelEvaluation],
                        n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """``{name: {metric: [lo, hi]}}`` for every evaluation, and ``delta:<name>`` (the first evaluation's value
    minus ``name``'s, paired) for every later one. ``identities``: the identity of every row of the evaluated
    frame (queries and pairs index into it); every evaluation must share the queries and the pairs."""
    names = list(evaluations)
    first = evaluations[names[0]]
    labels, codes = np.unique(np.asarray(identities).astype(str), return_inverse=True)
    query_codes = codes[first.identification.query_index]
    pair_codes = codes[pairs.pairs[:, 0]]
    rng = np.random.default_rng(seed)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for _ in range(n_boot):
        drawn = np.bincount(rng.integers(len(labels), size=len(labels)), minlength=len(labels)).astype(np.float64)
        query_w, pair_w = drawn[query_codes], drawn[pair_codes]
        positives = pair_w[pairs.labels].sum()
        negatives = pair_w[~pairs.labels].sum()
        if query_w.sum() == 0 or positives == 0 or negatives == 0:
            continue
        for name in names:
            samples[name].append(_replicate(evaluations[name], query_w, pair_w))
    tail = (1 - level) / 2 * 100
    out: dict[str, Any] = {"level": level, "n_boot": len(samples[names[0]]), "unit": "identity"}

    def bounds(values: list[float]) -> list[float] | None:
        return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))] if values else None

    for name in names:
        out[name] = {m: bounds([s[m] for s in samples[name]]) for m in INTERVAL_METRICS}
    for name in names[1:]:
        out[f"delta:{name}"] = {m: bounds([a[m] - b[m] for a, b in zip(samples[names[0]], samples[name])])
                                for m in INTERVAL_METRICS}
    return out
