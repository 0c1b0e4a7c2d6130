"""The identity-embedding model: timm backbone → pooled features → linear projection → L2 normalisation.

This module is torch through and through, so it imports torch at the top; the cheap entry points (``config``,
``train``, ``registry``, ``embedder``, ``cli``) import it lazily.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from training.config import TrainConfig
from training.freeze import freeze_backbone, set_frozen_batchnorm_eval


class EmbeddingModel(nn.Module):
    """``backbone`` (headless timm model returning pooled features) + ``head`` (Linear to ``embedding_dim``);
    ``forward`` returns float32 L2-normalised embeddings. ``train()`` keeps fully frozen BatchNorms in eval mode."""

    def __init__(self, backbone: nn.Module, embedding_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.num_features, embedding_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.backbone(images)).float(), dim=1)

    def train(self, mode: bool = True) -> EmbeddingModel:
        super().train(mode)
        if mode:
            set_frozen_batchnorm_eval(self.backbone)
        return self


def build_model(config: TrainConfig, pretrained: str | None = None) -> EmbeddingModel:
    """Backbone (weights from ``pretrained`` or ``config.pretrained``), frozen except the last
    ``config.unfreeze_blocks`` blocks (see ``training.freeze``), plus the projection head."""
    from training.pretrained import create_backbone

    backbone = create_backbone(config.backbone, config.pretrained if pretrained is None else pretrained)
    freeze_backbone(backbone, config.unfreeze_blocks)
    return EmbeddingModel(backbone, config.embedding_dim)
