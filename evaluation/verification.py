"""Verification: are two photos the same animal? Pairs under the published constraints, ROC AUC and EER.

Pair sampling (seeded, deterministic):
- every image takes part in at most ``max_pairs_per_image`` (5) pairs, positives and negatives together;
- every identity has at most ``max_pos_per_identity`` (15) positive pairs; positives use at most 3 of an
  image's 5 slots, leaving room for negatives;
- negatives are drawn under the same limits: each identity anchors at most as many negatives as it has
  positives (so at most 15), partners come from other identities, every image still in at most 5 pairs;
- balanced: if fewer negatives than positives could be drawn, positives are dropped at random until equal.
Scores are cosine similarities; metrics come from ``sklearn.metrics.roc_curve``/``roc_auc_score``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


@dataclass
class Pairs:
    pairs: np.ndarray  # (n, 2) row indices
    labels: np.ndarray  # (n,) bool: same identity

    @property
    def n_pos(self) -> int:
        return int(self.labels.sum())

    @property
    def n_neg(self) -> int:
        return int((~self.labels).sum())


def make_pairs(
    identities: list[str] | np.ndarray,
    max_pairs_per_image: int = 5,
    max_pos_per_identity: int = 15,
    seed: int = 0,
) -> Pairs:
    """Balanced positive/negative pairs of row indices under the constraints in the module doc."""
    labels = np.asarray(identities, dtype=object).astype(str)
    rng = np.random.default_rng(seed)
    usage = np.zeros(len(labels), dtype=np.int64)
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    names = sorted(groups)
    rng.shuffle(names)
    # Positives may use only part of an image's budget so negatives can still be drawn under the same cap.
    pos_cap = max_pairs_per_image - max_pairs_per_image // 2
    positives: list[tuple[int, int]] = []
    pos_count: dict[str, int] = {}
    for name in names:
        members = list(rng.permutation(groups[name]))
        count = 0
        # Walk pairs in a round-robin order (i, i+d) so the per-image cap spreads pairs over many images.
        for gap in range(1, len(members)):
            for i in range(len(members) - gap):
                if count >= max_pos_per_identity:
                    break
                a, b = members[i], members[i + gap]
                if usage[a] < pos_cap and usage[b] < pos_cap:
                    positives.append((a, b))
                    usage[a] += 1
                    usage[b] += 1
                    count += 1
        pos_count[name] = count
    negatives: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    n = len(labels)
    for name in names:
        for _ in range(pos_count[name]):
            anchors = [i for i in groups[name] if usage[i] < max_pairs_per_image]
            if not anchors:
                break
            a = int(rng.choice(anchors))
            b = -1
            for _attempt in range(64):  # rejection sampling is O(1) per draw on large galleries
                cand = int(rng.integers(n))
                key = (min(a, cand), max(a, cand))
                if labels[cand] != name and usage[cand] < max_pairs_per_image and key not in seen:
                    b = cand
                    break
            if b < 0:  # nearly exhausted: look at every remaining candidate once
                free = [int(c) for c in np.flatnonzero((labels != name) & (usage < max_pairs_per_image))
                        if (min(a, int(c)), max(a, int(c))) not in seen]
                if not free:
                    break
                b = int(rng.choice(free))
            seen.add((min(a, b), max(a, b)))
            negatives.append((a, b))
            usage[a] += 1
            usage[b] += 1
    if len(negatives) < len(positives):
        keep = np.sort(rng.choice(len(positives), size=len(negatives), replace=False))
        positives = [positives[i] for i in keep]
    all_pairs = positives + negatives
    return Pairs(
        pairs=np.array(all_pairs, dtype=np.int64).reshape(-1, 2),
        labels=np.array([True] * len(positives) + [False] * len(negatives), dtype=bool),
    )


@dataclass
class VerificationResult:
    roc_auc: float
    eer: float
    eer_threshold: float
    best_acc: float
    best_acc_threshold: float
    n_pairs_pos: int
    n_pairs_neg: int
    scores: np.ndarray
    labels: np.ndarray
    fpr: np.ndarray
    tpr: np.ndarray

    def metrics(self) -> dict[str, float | int]:
        return {
            "roc_auc": self.roc_auc,
            "eer": self.eer,
            "eer_threshold": self.eer_threshold,
            "best_acc": self.best_acc,
            "best_acc_threshold": self.best_acc_threshold,
            "n_pairs_pos": self.n_pairs_pos,
            "n_pairs_neg": self.n_pairs_neg,
        }


def verification_metrics(scores: np.ndarray, labels: np.ndarray) -> VerificationResult:
    """ROC AUC, EER (+ threshold) and best accuracy (+ threshold) for similarity ``scores``; label True = same.

    EER is read at the ROC point where |FNR − FPR| is smallest (their mean there); a pair is called "same" when
    its score is >= the threshold.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"verification needs both positive and negative pairs (got {n_pos} pos, {n_neg} neg)")
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    finite = np.isfinite(thresholds)
    fnr = 1.0 - tpr
    i = int(np.argmin(np.where(finite, np.abs(fnr - fpr), np.inf)))
    accuracy = (tpr * n_pos + (1.0 - fpr) * n_neg) / (n_pos + n_neg)
    j = int(np.argmax(np.where(finite, accuracy, -np.inf)))
    return VerificationResult(
        roc_auc=float(roc_auc_score(labels, scores)),
        eer=float((fpr[i] + fnr[i]) / 2.0),
        eer_threshold=float(thresholds[i]),
        best_acc=float(accuracy[j]),
        best_acc_threshold=float(thresholds[j]),
        n_pairs_pos=n_pos,
        n_pairs_neg=n_neg,
        scores=scores,
        labels=labels,
        fpr=fpr,
        tpr=tpr,
    )


def verify(embeddings: np.ndarray, pairs: Pairs) -> VerificationResult:
    """Cosine similarity of each pair of L2-normalised embeddings, then :func:`verification_metrics`."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    a, b = pairs.pairs[:, 0], pairs.pairs[:, 1]
    scores = np.einsum("ij,ij->i", embeddings[a], embeddings[b])
    return verification_metrics(scores, pairs.labels)


