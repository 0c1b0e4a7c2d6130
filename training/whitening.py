"""Closed-form projection heads on frozen features: PCA, or supervised whitening learned from same-identity pairs
(Radenović, Tolias & Chum, "Fine-tuning CNN image retrieval with no human annotation", 2018, §3.3 "learned
whitening"). Whitening divides out the directions in which photos of one animal differ (pose, light,
background) and keeps those in which animals differ — with tens of animals it is a stronger start than any
randomly initialised head. ``shrinkage`` pulls the within-identity covariance towards a scaled identity matrix,
which keeps the inverse square root stable when there are fewer photos than feature dimensions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _inverse_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors / np.sqrt(np.maximum(values, 1e-12))) @ vectors.T


def positive_differences(features: np.ndarray, labels: Sequence[int], max_pairs_per_identity: int = 500,
                         seed: int = 0) -> np.ndarray:
    """``x_i - x_j`` for same-identity pairs (up to ``max_pairs_per_identity`` random pairs per identity)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    diffs = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if len(rows) < 2:
            continue
        i, j = np.triu_indices(len(rows), k=1)
        if len(i) > max_pairs_per_identity:
            keep = rng.choice(len(i), max_pairs_per_identity, replace=False)
            i, j = i[keep], j[keep]
        diffs.append(features[rows[i]] - features[rows[j]])
    return np.concatenate(diffs) if diffs else np.zeros((0, features.shape[1]))


def fit_projection(features: np.ndarray, labels: Sequence[int], out_dim: int, method: str = "whiten",
                   shrinkage: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(weight (out_dim, D), bias (out_dim,))`` float32 so that ``weight @ x + bias`` projects L2-normalised
    features ``x``: ``pca`` (top principal directions) or ``whiten`` (learned whitening). Directions beyond what
    the data spans get zero rows, so they add nothing until fine-tuning grows them."""
    x = np.asarray(features, dtype=np.float64)
    n, dim = x.shape
    if out_dim > dim:
        raise ValueError(f"projection to {out_dim} dimensions from {dim}-dimensional features")
    mean = x.mean(0)
    centred = x - mean
    if method == "pca":
        pre = np.eye(dim)
    elif method == "whiten":
        diffs = positive_differences(x, labels, seed=seed)
        if len(diffs):
            within = diffs.T @ diffs / len(diffs)
            within = (1 - shrinkage) * within + shrinkage * (np.trace(within) / dim) * np.eye(dim)
            pre = _inverse_sqrt(within)
        else:  # no identity with two photos: nothing to whiten against, PCA it is
            pre = np.eye(dim)
    else:
        raise ValueError(f"projection method {method!r} is not pca or whiten")
    projected = centred @ pre.T
    values, vectors = np.linalg.eigh(projected.T @ projected / max(1, n - 1))
    order = np.argsort(values)[::-1][:out_dim]
    weight = vectors[:, order].T @ pre
    weight[values[order] <= values.max() * 1e-9] = 0.0  # directions the training photos do not span
    bias = -weight @ mean
    return weight.astype(np.float32), bias.astype(np.float32)
