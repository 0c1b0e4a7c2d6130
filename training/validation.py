"""Validation metrics from embeddings: leave-one-out Top-1 identification and verification EER (numpy/sklearn)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def top1_accuracy(embeddings: np.ndarray, labels: Sequence[int]) -> float | None:
    """Each photo queries all others by cosine similarity; hit when the nearest has the same identity. Only photos
    whose identity has another photo count as queries. None when there is no such query."""
    labels = np.asarray(labels)
    sim = embeddings @ embeddings.T
    np.fill_diagonal(sim, -np.inf)
    counts = np.unique(labels, return_counts=True)
    multi = set(counts[0][counts[1] >= 2].tolist())
    queries = np.array([label in multi for label in labels.tolist()])
    if not queries.any():
        return None
    nearest = sim.argmax(1)
    return float((labels[nearest] == labels)[queries].mean())


def equal_error_rate(embeddings: np.ndarray, labels: Sequence[int]) -> float | None:
    """EER over all unordered pairs (cosine similarity scores); None without both genuine and impostor pairs."""
    from sklearn.metrics import roc_curve

    labels = np.asarray(labels)
    i, j = np.triu_indices(len(labels), k=1)
    same = labels[i] == labels[j]
    if same.all() or not same.any():
        return None
    scores = np.einsum("nd,nd->n", embeddings[i], embeddings[j])
    fpr, tpr, _ = roc_curve(same, scores)
    fnr = 1 - tpr
    k = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[k] + fnr[k]) / 2)


def validation_metrics(embeddings: np.ndarray, labels: Sequence[int]) -> dict[str, float | None]:
    return {"top1": top1_accuracy(embeddings, labels), "eer": equal_error_rate(embeddings, labels)}
