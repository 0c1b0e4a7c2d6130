"""Metric-learning losses over a batch of L2-normalised embeddings and integer labels (pytorch-metric-learning
style: each loss is ``loss(embeddings, labels) -> scalar``; ``CombinedLoss`` takes a weighted sum).

Imports torch at the top: it is only imported by the training code paths.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F


def pairwise_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """Euclidean distance matrix (numerically safe gradient at zero distance)."""
    squared = (embeddings.unsqueeze(1) - embeddings.unsqueeze(0)).pow(2).sum(-1)
    return torch.sqrt(squared.clamp_min(1e-12)) * (squared > 1e-12)


def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


class TripletLoss(nn.Module):
    """Triplet margin loss on Euclidean distances: ``relu(d(a,p) - d(a,n) + margin)``.

    ``batch_hard``: per anchor, its farthest positive and nearest negative; mean over anchors that have both.
    ``semi_hard``: per positive pair (a,p), the nearest negative farther than d(a,p) (FaceNet); when none exists,
    the farthest negative; mean over positive pairs. A batch without any valid triplet gives 0.
    """

    def __init__(self, margin: float = 0.45, mining: str = "batch_hard") -> None:
        super().__init__()
        if mining not in ("batch_hard", "semi_hard"):
            raise ValueError(f"mining {mining!r} is not batch_hard or semi_hard")
        self.margin, self.mining = margin, mining

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        dist = pairwise_distances(embeddings)
        pos, neg = _masks(labels)
        valid = pos.any(1) & neg.any(1)
        if not valid.any():
            return embeddings.sum() * 0.0
        if self.mining == "batch_hard":
            hardest_pos = torch.where(pos, dist, torch.zeros_like(dist)).max(1).values
            hardest_neg = torch.where(neg, dist, torch.full_like(dist, float("inf"))).min(1).values
            return F.relu(hardest_pos - hardest_neg + self.margin)[valid].mean()
        a_idx, p_idx = torch.nonzero(pos & valid.unsqueeze(1), as_tuple=True)
        d_ap = dist[a_idx, p_idx].unsqueeze(1)
        d_an = dist[a_idx]
        neg_rows = neg[a_idx]
        outside = neg_rows & (d_an > d_ap)
        nearest_outside = torch.where(outside, d_an, torch.full_like(d_an, float("inf"))).min(1).values
        farthest = torch.where(neg_rows, d_an, torch.full_like(d_an, -float("inf"))).max(1).values
        chosen = torch.where(outside.any(1), nearest_outside, farthest)
        return F.relu(d_ap.squeeze(1) - chosen + self.margin).mean()


class IntraPairVarianceLoss(nn.Module):
    """Intra-pair variance regularisation on cosine similarities (as pytorch-metric-learning's
    IntraPairVarianceLoss): positives below ``(1 - ε)·mean(pos sim)`` and negatives above ``(1 + ε)·mean(neg sim)``
    are penalised quadratically; ``mean(relu(.)²)`` per side, sides summed. Pairs are unordered i < j."""

    def __init__(self, epsilon: float = 0.01, neg_epsilon: float | None = None) -> None:
        super().__init__()
        self.pos_eps = epsilon
        self.neg_eps = epsilon if neg_epsilon is None else neg_epsilon

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        sim = F.normalize(embeddings, dim=1) @ F.normalize(embeddings, dim=1).T
        pos, neg = _masks(labels)
        upper = torch.triu(torch.ones_like(pos), diagonal=1)
        loss = embeddings.sum() * 0.0
        pos_sims, neg_sims = sim[pos & upper], sim[neg & upper]
        if pos_sims.numel():
            loss = loss + F.relu((1 - self.pos_eps) * pos_sims.mean() - pos_sims).pow(2).mean()
        if neg_sims.numel():
            loss = loss + F.relu(neg_sims - (1 + self.neg_eps) * neg_sims.mean()).pow(2).mean()
        return loss


class CombinedLoss(nn.Module):
    """Weighted sum of named losses; ``last_parts`` holds the unweighted value of each part from the last call."""

    def __init__(self, losses: Mapping[str, nn.Module], weights: Mapping[str, float]) -> None:
        super().__init__()
        missing = sorted(set(losses) - set(weights))
        if missing:
            raise ValueError(f"no weight for loss(es) {missing}")
        self.parts = nn.ModuleDict(dict(losses))
        self.weights = dict(weights)
        self.last_parts: dict[str, float] = {}

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        total = embeddings.sum() * 0.0
        for name, loss_fn in self.parts.items():
            value = loss_fn(embeddings, labels)
            self.last_parts[name] = float(value.detach())
            total = total + self.weights[name] * value
        return total


def recipe_loss(margin: float = 0.45, epsilon: float = 0.01, mining: str = "batch_hard",
                weights: Mapping[str, float] | None = None) -> CombinedLoss:
    """The published objective: triplet (margin 0.45) + intra-pair variance (ε 0.01), weighted."""
    weights = dict(weights or {"triplet": 1.0, "intra_pair_variance": 1.0})
    available = {"triplet": TripletLoss(margin, mining), "intra_pair_variance": IntraPairVarianceLoss(epsilon)}
    return CombinedLoss({k: available[k] for k in weights}, weights)


class ArcFaceLoss(nn.Module):
    """Additive angular margin loss (Deng et al. 2019) over learnable class centres; ``subcenters`` > 1 gives
    sub-center ArcFace (each identity keeps the nearest of several centres, robust to odd photos). As used by
    wildlife-tools' MegaDescriptor, which found it better than triplet loss for animal re-identification."""

    def __init__(self, embedding_dim: int, n_classes: int, scale: float = 30.0, margin: float = 0.3,
                 subcenters: int = 1) -> None:
        super().__init__()
        self.scale, self.margin, self.subcenters, self.n_classes = scale, margin, subcenters, n_classes
        self.centres = nn.Parameter(torch.empty(n_classes * subcenters, embedding_dim))
        nn.init.xavier_uniform_(self.centres)
        self.last_parts: dict[str, float] = {}

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cosine = F.normalize(embeddings, dim=1) @ F.normalize(self.centres, dim=1).T
        cosine = cosine.view(len(embeddings), self.n_classes, self.subcenters).max(2).values
        theta = torch.acos(cosine.clamp(-1 + 1e-7, 1 - 1e-7))
        target = F.one_hot(labels, self.n_classes).bool()
        logits = self.scale * torch.where(target, torch.cos(theta + self.margin), cosine)
        loss = F.cross_entropy(logits, labels)
        self.last_parts = {"arcface": float(loss.detach())}
        return loss


def build_loss(config, embedding_dim: int, n_classes: int) -> nn.Module:
    """The loss ``config.loss`` names: the recipe's triplet (+ intra-pair variance) or (sub-center) ArcFace."""
    if config.loss == "arcface":
        return ArcFaceLoss(embedding_dim, n_classes, config.arcface_scale, config.arcface_margin,
                           config.arcface_subcenters)
    return recipe_loss(config.margin, config.epsilon, config.mining, config.loss_weights)
