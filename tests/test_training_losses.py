"""Losses on hand-made 2-D embeddings, and the P×K sampler's invariants."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from training.losses import CombinedLoss, IntraPairVarianceLoss, TripletLoss, recipe_loss
from training.samplers import BalancedIdentitySampler, SamplerError

# a=(1,0), p=(0.6,0.8) are identity 0; n=(0,1), m=(-1,0) are identity 1 (all unit vectors)
EMB = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
LABELS = torch.tensor([0, 0, 1, 1])
D_AP, D_AN, D_AM = math.sqrt(0.8), math.sqrt(2), 2.0
D_PN, D_PM, D_NM = math.sqrt(0.4), math.sqrt(3.2), math.sqrt(2)
M = 0.45


def relu(x: float) -> float:
    return max(0.0, x)


def test_batch_hard_triplet_by_hand() -> None:
    expected = (relu(D_AP - min(D_AN, D_AM) + M) + relu(D_AP - min(D_PN, D_PM) + M)
                + relu(D_NM - min(D_AN, D_PN) + M) + relu(D_NM - min(D_AM, D_PM) + M)) / 4
    assert expected == pytest.approx(0.504772, abs=1e-6)
    assert float(TripletLoss(M, "batch_hard")(EMB, LABELS)) == pytest.approx(expected, abs=1e-5)


def test_semi_hard_triplet_by_hand() -> None:
    # (a,p): nearest negative beyond d_ap is n; (p,a): only m is beyond; (n,m): none beyond → farthest (a);
    # (m,n): both beyond → nearest (p)
    expected = (relu(D_AP - D_AN + M) + relu(D_AP - D_PM + M) + relu(D_NM - D_AN + M) + relu(D_NM - D_PM + M)) / 4
    assert expected == pytest.approx((0.45 + (math.sqrt(2) - math.sqrt(3.2) + 0.45)) / 4, abs=1e-9)
    assert float(TripletLoss(M, "semi_hard")(EMB, LABELS)) == pytest.approx(expected, abs=1e-5)


def test_triplet_zero_when_separated_and_without_negatives() -> None:
    far = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    assert float(TripletLoss(M)(far, LABELS)) == 0.0
    one_identity = TripletLoss(M)(EMB.clone().requires_grad_(True), torch.zeros(4, dtype=torch.long))
    assert float(one_identity.detach()) == 0.0 and one_identity.requires_grad


def test_intra_pair_variance_by_hand() -> None:
    # cosine: positives a·p=0.6, n·m=0 (mean 0.3); negatives a·n=0, a·m=-1, p·n=0.8, p·m=-0.6 (mean -0.2)
    pos = ((0.0) ** 2 + (0.99 * 0.3 - 0.0) ** 2) / 2
    neg = ((0 + 0.202) ** 2 + 0.0 + (0.8 + 0.202) ** 2 + 0.0) / 4
    value = float(IntraPairVarianceLoss(epsilon=0.01)(EMB, LABELS))
    assert value == pytest.approx(pos + neg, abs=1e-6)
    assert value == pytest.approx(0.3053065, abs=1e-6)


def test_combined_loss_weights_and_parts() -> None:
    combined = CombinedLoss({"triplet": TripletLoss(M), "intra_pair_variance": IntraPairVarianceLoss(0.01)},
                            {"triplet": 1.0, "intra_pair_variance": 0.5})
    value = float(combined(EMB, LABELS))
    assert value == pytest.approx(0.504772 + 0.5 * 0.3053065, abs=1e-5)
    assert combined.last_parts["triplet"] == pytest.approx(0.504772, abs=1e-5)
    assert float(recipe_loss()(EMB, LABELS)) == pytest.approx(0.504772 + 0.3053065, abs=1e-5)
    with pytest.raises(ValueError, match="no weight"):
        CombinedLoss({"triplet": TripletLoss()}, {})


def test_losses_give_gradients() -> None:
    emb = EMB.clone().requires_grad_(True)
    recipe_loss()(emb, LABELS).backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0


def _labels() -> list[str]:
    # 10 identities with 1..5 photos (identity "i" has 1 + i % 5 photos)
    return [f"id{i}" for i in range(10) for _ in range(1 + i % 5)]


@pytest.mark.parametrize("policy", ["exclude", "replace"])
def test_sampler_batches_are_p_by_k(policy: str) -> None:
    labels = _labels()
    sampler = BalancedIdentitySampler(labels, p=3, k=2, seed=1, small_identities=policy)
    batches = list(sampler)
    assert len(batches) == len(sampler) >= 1
    for batch in batches:
        counts = Counter(labels[i] for i in batch)
        assert len(batch) == 6 and len(counts) == 3 and set(counts.values()) == {2}
        if policy == "exclude":
            assert len(set(batch)) == 6  # distinct photos
            assert not {"id0", "id5"} & set(counts)  # single-photo identities never appear
    if policy == "exclude":
        assert sampler.excluded == ["id0", "id5"]
    else:
        assert sampler.excluded == [] and len(sampler.groups) == 10


def test_sampler_is_seeded_and_epochs_differ() -> None:
    labels = _labels()
    a, b = BalancedIdentitySampler(labels, 3, 2, seed=7), BalancedIdentitySampler(labels, 3, 2, seed=7)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)


def test_sampler_ranks_are_disjoint_shares() -> None:
    labels = [f"id{i}" for i in range(12) for _ in range(4)]
    full = list(BalancedIdentitySampler(labels, 3, 2, seed=0))
    shares = [list(BalancedIdentitySampler(labels, 3, 2, seed=0, rank=r, world_size=2)) for r in range(2)]
    assert shares[0] + shares[1] != [] and all(len(s) == len(full) // 2 for s in shares)
    assert sorted(map(tuple, shares[0] + shares[1])) == sorted(map(tuple, full[: len(full) // 2 * 2]))


def test_sampler_rejects_too_few_identities() -> None:
    with pytest.raises(SamplerError, match="p=58"):
        BalancedIdentitySampler(_labels(), p=58, k=2)
    with pytest.raises(ValueError, match="small_identities"):
        BalancedIdentitySampler(_labels(), p=2, k=2, small_identities="drop")
