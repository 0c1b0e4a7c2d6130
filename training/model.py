"""The identity-embedding model: timm backbone → pooled features (avg or GeM) → L2 → linear projection → L2.

Without a head (``head=False``) the same class is the frozen baseline: pooled, L2-normalised backbone features.
This module is torch through and through, so it imports torch at the top; the cheap entry points (``config``,
``train``, ``registry``, ``embedder``, ``cli``) import it lazily.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from training.config import TrainConfig
from training.freeze import freeze_backbone, set_batchnorm_eval


class GeM(nn.Module):
    """Generalised-mean pooling (Radenović et al.): ``mean(x^p)^(1/p)`` over space, ``p`` fixed at 3."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p, self.eps = p, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=self.eps).pow(self.p).mean((-2, -1)).pow(1.0 / self.p)


class EmbeddingModel(nn.Module):
    """``backbone`` (headless timm model returning pooled features) + optional ``head`` (Linear to
    ``embedding_dim``); ``forward`` returns float32 L2-normalised embeddings. ``train()`` keeps frozen BatchNorms
    (or all of them, with ``freeze_bn``) in eval mode."""

    def __init__(self, backbone: nn.Module, embedding_dim: int | None, freeze_bn: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.num_features, embedding_dim) if embedding_dim else None
        self.freeze_bn = freeze_bn

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised pooled backbone features (what the frozen baseline embeds)."""
        return F.normalize(self.backbone(images).float(), dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.features(images)
        return features if self.head is None else F.normalize(self.head(features).float(), dim=1)

    def train(self, mode: bool = True) -> EmbeddingModel:
        super().train(mode)
        if mode:
            set_batchnorm_eval(self.backbone, only_frozen=not self.freeze_bn)
        return self


def set_pooling(backbone: nn.Module, pooling: str) -> nn.Module:
    """Replace a timm backbone's global pool with GeM (``pooling="gem"``); ``avg`` keeps timm's own."""
    if pooling == "gem":
        backbone.global_pool = nn.Sequential(GeM(), nn.Flatten(1))
    return backbone


def build_backbone(config: TrainConfig, pretrained: str | None = None) -> nn.Module:
    """The configured timm backbone with its pretrained weights and pooling."""
    from training.pretrained import create_backbone

    backbone = create_backbone(config.backbone, config.pretrained if pretrained is None else pretrained)
    return set_pooling(backbone, config.pooling)


def build_model(config: TrainConfig, pretrained: str | None = None) -> EmbeddingModel:
    """Backbone (weights from ``pretrained`` or ``config.pretrained``), frozen except the last
    ``config.unfreeze_blocks`` blocks (see ``training.freeze``), plus the projection head."""
    backbone = build_backbone(config, pretrained)
    freeze_backbone(backbone, config.unfreeze_blocks)
    return EmbeddingModel(backbone, config.embedding_dim, config.freeze_bn)


def build_frozen(config: TrainConfig, pretrained: str | None = None) -> EmbeddingModel:
    """The frozen baseline for ``config``: the same backbone and pooling, no head, nothing trainable."""
    model = EmbeddingModel(build_backbone(config, pretrained), None)
    model.requires_grad_(False)
    return model.eval()


def build_trained_model(config: TrainConfig, pretrained: str | None = None) -> nn.Module:
    """What ``config.modality`` trains: ``build_model`` for ``image``, ``training.multimodal`` for ``text``/``fused``."""
    if config.modality == "image":
        return build_model(config, pretrained)
    from training.multimodal import build_multimodal

    return build_multimodal(config, pretrained)
