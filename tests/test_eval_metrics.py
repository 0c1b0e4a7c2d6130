"""Identification, verification and McNemar metrics: hand-computed cases and cross-checks with sklearn/scipy."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy.stats import binomtest, chi2
from sklearn.metrics import average_precision_score, roc_auc_score

from evaluation.identification import identify
from evaluation.mcnemar import compare_reports, mcnemar
from evaluation.verification import make_pairs, verification_metrics, verify


def _unit(*angles_deg: float) -> np.ndarray:
    a = np.deg2rad(np.array(angles_deg))
    return np.stack([np.cos(a), np.sin(a)], axis=1).astype(np.float32)


def test_topk_ranks_gallery_identities_not_photos() -> None:
    # Query 0 (A, 0°). Gallery: B has three photos closer than A's other photo; per identity B counts once,
    # so A is rank 2 (photo rank would be 4).
    emb = _unit(0, 30, 5, 6, 7, 90)
    ids = ["A", "A", "B", "B", "B", "C"]
    res = identify(emb, ids)
    q0 = int(np.flatnonzero(res.query_index == 0)[0])
    assert res.ranks[q0] == 2
    assert not res.hits(1)[q0] and res.hits(5)[q0]
    # C has a single photo: it cannot be identified and is not a query.
    assert 5 not in res.query_index and res.n_queries == 5
    # AP of query 0 over the photo ranking: A's photo at position 4 → precision 1/4.
    assert res.average_precision[q0] == pytest.approx(0.25)
    assert res.best_wrong[q0] == 2  # B's 5° photo is its most confident false match


def test_map_matches_sklearn_and_topk_monotone() -> None:
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((6, 16))
    ids = np.repeat(np.arange(6), 4)
    emb = centres[ids] + 0.9 * rng.standard_normal((24, 16))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    res = identify(emb, ids.astype(str))
    sims = emb @ emb.T
    expected = []
    for q in range(24):
        keep = np.arange(24) != q
        expected.append(average_precision_score(ids[keep] == ids[q], sims[q, keep]))
    assert res.map == pytest.approx(np.mean(expected), abs=1e-6)
    # brute-force per-identity rank
    for q, rank in zip(res.query_index, res.ranks):
        best = {i: max(sims[q, j] for j in range(24) if j != q and ids[j] == i) for i in range(6)}
        assert rank == 1 + sum(v > best[ids[q]] for v in best.values())
    assert 0 <= res.top1 <= res.top5 <= res.top10 <= 1
    assert res.top10 == 1.0  # only 6 identities


def test_near_duplicates_of_the_query_leave_the_gallery() -> None:
    emb = _unit(0, 0.5, 40, 10, 80)
    ids = ["A", "A", "A", "B", "C"]
    phash = [0b0, 0b1, 0xFFFF, 0xFF00FF, 0xF0F0F0F0]  # photo 1 is within 1 bit of photo 0: a burst copy
    plain = identify(emb, ids)
    dedup = identify(emb, ids, phashes=phash, phash_threshold=8)
    q_plain = int(np.flatnonzero(plain.query_index == 0)[0])
    q_dedup = int(np.flatnonzero(dedup.query_index == 0)[0])
    assert plain.ranks[q_plain] == 1  # the copy at 0.5° wins
    assert dedup.ranks[q_dedup] == 2  # without it, B (10°) beats A's 40° photo
    # hex-string hashes work the same way
    hexed = identify(emb, ids, phashes=[format(p, "016x") for p in phash])
    assert np.array_equal(hexed.ranks, dedup.ranks)


def test_verification_hand_computed_and_sklearn() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([1, 1, 0, 1, 0, 0], dtype=bool)
    res = verification_metrics(scores, labels)
    assert res.roc_auc == pytest.approx(8 / 9)
    assert res.roc_auc == pytest.approx(roc_auc_score(labels, scores))
    assert res.eer == pytest.approx(1 / 3)
    assert res.eer_threshold == pytest.approx(0.7)
    assert res.best_acc == pytest.approx(5 / 6)
    assert res.best_acc_threshold in (pytest.approx(0.8), pytest.approx(0.6))
    perfect = verification_metrics(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0], dtype=bool))
    assert perfect.roc_auc == 1.0 and perfect.eer == 0.0 and perfect.best_acc == 1.0
    with pytest.raises(ValueError, match="positive and negative"):
        verification_metrics(np.array([0.3, 0.4]), np.array([True, True]))


def test_eer_agrees_with_roc_on_random_scores() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(400) < 0.5
    scores = rng.normal(labels.astype(float), 1.0)
    res = verification_metrics(scores, labels)
    assert res.roc_auc == pytest.approx(roc_auc_score(labels, scores))
    # at the EER threshold the error rates (score >= t → same) are about equal
    far = np.mean(scores[~labels] >= res.eer_threshold)
    frr = np.mean(scores[labels] < res.eer_threshold)
    assert abs(far - frr) < 0.02 and res.eer == pytest.approx((far + frr) / 2, abs=0.01)
    acc = np.mean((scores >= res.best_acc_threshold) == labels)
    assert acc == pytest.approx(res.best_acc)


@pytest.mark.parametrize("sizes", [[40, 3, 2, 25, 1, 7, 12], [2] * 30, [60, 60]])
def test_pairs_respect_the_published_constraints(sizes: list[int]) -> None:
    ids = np.array([f"id{i}" for i, n in enumerate(sizes) for _ in range(n)])
    pairs = make_pairs(ids, seed=1)
    assert pairs.n_pos == pairs.n_neg > 0
    per_image = Counter(pairs.pairs.reshape(-1).tolist())
    assert max(per_image.values()) <= 5
    same = ids[pairs.pairs[:, 0]] == ids[pairs.pairs[:, 1]]
    assert np.array_equal(same, pairs.labels)
    pos_per_identity = Counter(ids[pairs.pairs[pairs.labels, 0]].tolist())
    assert max(pos_per_identity.values()) <= 15
    assert all(a != b for a, b in pairs.pairs.tolist())
    assert len({tuple(sorted(p)) for p in pairs.pairs.tolist()}) == len(pairs.pairs)  # no pair twice
    again = make_pairs(ids, seed=1)
    assert np.array_equal(again.pairs, pairs.pairs)  # seeded
    assert not np.array_equal(make_pairs(ids, seed=2).pairs, pairs.pairs)


def test_verify_scores_are_cosine() -> None:
    emb = _unit(0, 10, 90, 100)
    pairs = make_pairs(["A", "A", "B", "B"], seed=0)
    res = verify(emb, pairs)
    for (a, b), s in zip(pairs.pairs, res.scores):
        assert s == pytest.approx(float(emb[a] @ emb[b]), abs=1e-6)
    assert res.roc_auc == 1.0


def test_mcnemar_exact_and_chi_square_match_scipy() -> None:
    a = np.array([1] * 10 + [1] * 6 + [0] * 2 + [0] * 5, dtype=bool)
    b = np.array([1] * 10 + [0] * 6 + [1] * 2 + [0] * 5, dtype=bool)
    small = mcnemar(a, b)
    assert (small["b"], small["c"], small["n"]) == (6, 2, 23)
    assert small["method"] == "exact binomial"
    assert small["p_value"] == pytest.approx(binomtest(6, 8, 0.5).pvalue)
    assert small["p_value"] == pytest.approx(2 * (1 + 8 + 28) / 256)  # hand: 2·P(X ≤ 2), X ~ Bin(8, ½)

    rng = np.random.default_rng(0)
    x, y = rng.random(500) < 0.7, rng.random(500) < 0.6
    big = mcnemar(x, y)
    bb, cc = int(np.sum(x & ~y)), int(np.sum(~x & y))
    assert big["method"].startswith("chi-square") and bb + cc >= 25
    stat = (abs(bb - cc) - 1) ** 2 / (bb + cc)
    assert big["statistic"] == pytest.approx(stat)
    assert big["p_value"] == pytest.approx(chi2.sf(stat, 1))
    assert mcnemar(x, x)["p_value"] == 1.0
    with pytest.raises(ValueError, match="same queries"):
        mcnemar(x, y[:-1])


def test_compare_reports_uses_shared_queries_only() -> None:
    ra = {"model": "a", "queries": [{"path": p, "hit1": h} for p, h in [("x", True), ("y", True), ("z", False)]]}
    rb = {"model": "b", "queries": [{"path": p, "hit1": h} for p, h in [("y", False), ("z", False), ("w", True)]]}
    out = compare_reports(ra, rb)
    assert (out["n_shared"], out["b"], out["c"]) == (2, 1, 0)
    with pytest.raises(ValueError, match="share no query"):
        compare_reports(ra, {"queries": [{"path": "q", "hit1": True}]})
