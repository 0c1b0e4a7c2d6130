"""Listing models that read text: ``text`` (the listing text alone) and ``fused`` (photo + text, ``training.fusion``).

``MultimodalModel(images, text_ids) → (B, D)`` float32 L2-normalised, like ``EmbeddingModel(images)``. The image
branch *is* an ``EmbeddingModel`` (same backbone, freezing, pooling, projection head and its PCA/whitening
initialisation), so a fused model differs from its image-only twin only by what it adds. ``backbone`` and ``head``
name the image branch's, which is what the trainer's head initialisation and learning-rate groups use.
``branches`` holds the last forward's text embedding (fused models): the trainer adds the same metric loss on it
(``text_aux_weight``), so a text encoder learning from scratch is not starved by a gate that still trusts the
image.
An image tensor with no pixels (``images.numel() == 0``, what the text-only datasets yield) or a row of zeros in
``has_image`` means no photo.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from training.config import TrainConfig
from training.fusion import build_fusion
from training.model import EmbeddingModel, build_backbone
from training.text_encoders import build_text_encoder, pooled


class MultimodalModel(nn.Module):
    uses_text = True

    def __init__(self, image: EmbeddingModel | None, text: nn.Module, embedding_dim: int,
                 fusion: str | None = None) -> None:
        super().__init__()
        self.image, self.text, self.embedding_dim = image, text, embedding_dim
        self.text_head = nn.Linear(text.dim, embedding_dim)
        self.fusion_name = fusion
        patch_dim = image.backbone.num_features if image is not None else 0
        self.fusion = build_fusion(fusion, embedding_dim, text.dim, patch_dim) if fusion else None
        self.branches: dict[str, torch.Tensor] = {}

    @property
    def backbone(self) -> nn.Module | None:
        return self.image.backbone if self.image is not None else None

    @property
    def head(self) -> nn.Module:
        return self.image.head if self.image is not None else self.text_head

    @property
    def tokenizer(self):
        return self.text.tokenizer

    def _image(self, images: torch.Tensor, patches: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        backbone = self.image.backbone
        if patches:
            fmap = backbone.forward_features(images)
            features, tokens = backbone.forward_head(fmap), fmap.flatten(2).transpose(1, 2).float()
        else:
            features, tokens = backbone(images), None
        features = F.normalize(features.float(), dim=1)
        return F.normalize(self.image.head(features).float(), dim=1), tokens

    def forward(self, images: torch.Tensor, text_ids: torch.Tensor, has_image: torch.Tensor | None = None) -> torch.Tensor:
        tokens, mask = self.text(text_ids)
        has_text = mask.any(1)
        text = F.normalize(self.text_head(pooled(tokens, mask)).float(), dim=1)
        self.branches = {"text": text, "has_text": has_text}
        if self.fusion is None:  # text-only
            return text
        batch = text.shape[0]
        if images.numel() == 0:
            image, patches = text.new_zeros(batch, self.embedding_dim), None
            has_image = torch.zeros(batch, dtype=torch.bool, device=text.device)
        else:
            image, patches = self._image(images, self.fusion_name == "cross_attention")
            has_image = torch.ones(batch, dtype=torch.bool, device=text.device) if has_image is None else has_image.bool()
        if patches is None and self.fusion_name == "cross_attention":
            patches = text.new_zeros(batch, 1, self.image.backbone.num_features)
        fused = self.fusion(image, text, has_image, has_text, patches=patches, tokens=tokens, token_mask=mask)
        return F.normalize(fused.float(), dim=1)

    def train(self, mode: bool = True) -> MultimodalModel:
        super().train(mode)  # the image branch's own train() keeps its frozen BatchNorms in eval mode
        return self


def build_multimodal(config: TrainConfig, pretrained: str | None = None) -> MultimodalModel:
    """The ``config.modality`` model (``text`` or ``fused``) with ``config.text_encoder`` and ``config.fusion``;
    the image branch is ``training.model.build_model``'s (frozen but for the last ``unfreeze_blocks``)."""
    from training.freeze import freeze_backbone

    text = build_text_encoder(config.text_encoder, config.text_dim, config.text_buckets)
    if config.modality == "text":
        return MultimodalModel(None, text, config.embedding_dim)
    backbone = build_backbone(config, pretrained)
    freeze_backbone(backbone, config.unfreeze_blocks)
    image = EmbeddingModel(backbone, config.embedding_dim, config.freeze_bn)
    return MultimodalModel(image, text, config.embedding_dim, config.fusion)
