"""Closed-set identification: every query photo against a gallery of all other photos, ranked by identity.

Protocol: for query ``q`` the gallery is every other photo except ``q``'s near-duplicates (pHash Hamming distance
within ``phash_threshold`` when hashes are given) — otherwise a burst copy would make identification trivial.
Gallery photos are grouped by identity and each identity scores its best photo (max cosine similarity), so several
photos of the same animal count once (the published rank-k protocol). Top-k: the query's identity is among the k
best-scoring identities. mAP: mean over queries of the average precision of the gallery *photo* ranking
(``sklearn.metrics.average_precision_score``), the usual re-identification mAP.

Queries whose animal has no other (non-duplicate) photo in the gallery cannot be identified and are skipped;
``n_queries`` counts the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import average_precision_score

KS = (1, 5, 10)


@dataclass
class IdentificationResult:
    top1: float
    top5: float
    top10: float
    map: float
    n_queries: int
    query_index: np.ndarray  # (n_queries,) row index of each evaluated query in the input
    ranks: np.ndarray  # (n_queries,) 1-based rank of the true identity among gallery identities
    average_precision: np.ndarray  # (n_queries,)
    best_wrong: np.ndarray  # (n_queries,) row index of the best-scoring photo of another identity
    best_wrong_score: np.ndarray  # (n_queries,)
    extra: dict = field(default_factory=dict)

    def hits(self, k: int) -> np.ndarray:
        """Boolean per-query hit vector at rank ``k``."""
        return self.ranks <= k

    def metrics(self) -> dict[str, float | int]:
        return {"top1": self.top1, "top5": self.top5, "top10": self.top10, "map": self.map, "n_queries": self.n_queries}


def _phash_ints(phashes: np.ndarray | list | None, n: int) -> np.ndarray | None:
    """uint64 hashes from ints or hex strings; None when absent or any hash is missing."""
    if phashes is None:
        return None
    values = []
    for value in list(phashes):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        values.append(int(value, 16) if isinstance(value, str) else int(value))
    if len(values) != n:
        raise ValueError(f"{len(values)} phashes for {n} embeddings")
    return np.array(values, dtype=np.uint64)


def near_duplicate_mask(phashes: np.ndarray, rows: np.ndarray, threshold: int) -> np.ndarray:
    """``(len(rows), N)`` True where photo j is within ``threshold`` bits of query ``rows[i]``."""
    from curation.hashing import hamming

    return hamming(phashes[rows][:, None], phashes[None, :]) <= threshold


def identify(
    embeddings: np.ndarray,
    identities: list[str] | np.ndarray,
    phashes: np.ndarray | list | None = None,
    phash_threshold: int = 8,
    chunk: int = 1024,
    query_embeddings: np.ndarray | None = None,
    exclude_groups: np.ndarray | list | None = None,
) -> IdentificationResult:
    """Rank-k identification and mAP over L2-normalised ``embeddings`` with identity labels (see module doc).
    ``query_embeddings`` (same rows): embed each photo differently as a query than as a gallery item (e.g. a
    finder's photo without the listing text the gallery photos carry); default the same. ``exclude_groups`` (one
    label per row): a query never sees gallery photos of its own group, e.g. its own listing when identities are
    animals with several listings; a query whose animal has no photo outside its group is skipped."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    queries = embeddings if query_embeddings is None else np.asarray(query_embeddings, dtype=np.float32)
    if queries.shape != embeddings.shape:
        raise ValueError(f"query embeddings {queries.shape} do not match gallery embeddings {embeddings.shape}")
    n = len(embeddings)
    if n != len(identities):
        raise ValueError(f"{n} embeddings but {len(identities)} identity labels")
    labels, codes = np.unique(np.asarray(identities, dtype=object).astype(str), return_inverse=True)
    hashes = _phash_ints(phashes, n)
    groups = None if exclude_groups is None else np.unique(np.asarray(exclude_groups, dtype=object).astype(str),
                                                           return_inverse=True)[1]
    order = np.argsort(codes, kind="stable")  # gallery sorted by identity → per-identity max via reduceat
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
    sorted_embeddings = embeddings[order]
    kept, ranks, aps, wrong, wrong_score = [], [], [], [], []
    for lo in range(0, n, chunk):
        rows = np.arange(lo, min(n, lo + chunk))
        scores = queries[rows] @ sorted_embeddings.T  # (chunk, N) in identity order
        excluded = order[None, :] == rows[:, None]
        if groups is not None:
            excluded |= groups[order][None, :] == groups[rows][:, None]
        if hashes is not None:
            excluded |= near_duplicate_mask(hashes, rows, phash_threshold)[:, order]
        scores[excluded] = -np.inf
        per_identity = np.maximum.reduceat(scores, starts, axis=1)  # (chunk, n_identities)
        same = codes[order][None, :] == codes[rows][:, None]
        for i, row in enumerate(rows):
            true_score = per_identity[i, codes[row]]
            if not np.isfinite(true_score):
                continue  # no other photo of this animal left in the gallery
            valid = np.isfinite(scores[i])
            kept.append(row)
            ranks.append(1 + int(np.sum(per_identity[i] > true_score)))
            aps.append(average_precision_score(same[i][valid], scores[i][valid]))
            impostor = np.where(same[i] | ~valid, -np.inf, scores[i])
            j = int(np.argmax(impostor))
            wrong.append(int(order[j]))
            wrong_score.append(float(impostor[j]))
    ranks_arr = np.array(ranks, dtype=np.int64)
    aps_arr = np.array(aps, dtype=np.float64)
    n_q = len(ranks_arr)
    top = {k: float(np.mean(ranks_arr <= k)) if n_q else 0.0 for k in KS}
    return IdentificationResult(
        top1=top[1],
        top5=top[5],
        top10=top[10],
        map=float(aps_arr.mean()) if n_q else 0.0,
        n_queries=n_q,
        query_index=np.array(kept, dtype=np.int64),
        ranks=ranks_arr,
        average_precision=aps_arr,
        best_wrong=np.array(wrong, dtype=np.int64),
        best_wrong_score=np.array(wrong_score, dtype=np.float64),
        extra={"n_identities": int(len(labels))},
    )
