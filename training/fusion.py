"""Image + text fusion, the four schemes of the published study, each a small module with one signature.

``forward(image, text, has_image, has_text, patches=None, tokens=None, token_mask=None) → (B, D)`` (not yet
normalised): ``image`` (B, D) is the L2-normalised image embedding, ``text`` (B, D) the L2-normalised pooled text
embedding projected to D; ``has_image`` / ``has_text`` (B,) bool say which are real. A missing side is zeroed and,
where a scheme weighs the sides, gets no weight, so a photo without text embeds as its image alone (and a text
without a photo as its text alone).

``concat``, ``scalar`` and ``cross_attention`` start as the image embedding (the text path's output weights start
at zero), so epoch 0 of such a model is its image model. ``gated`` starts as the even mix: a gate that started at
95 % image (bias 3) stayed shut through a short run (60 Adam steps at lr 1e-3 move a bias by about 0.06; the
listing-text test set's validation Top-1 was 0.13–0.38 in five seeds against 0.94–0.96 from the even start).
Photo-only queries are unaffected: a missing text gets no weight, so they embed as the image alone.

- ``concat``: ``W [image; text]`` (the study's concatenation of projected embeddings).
- ``scalar``: ``W [image; w · text]`` with one learnable scalar ``w``.
- ``gated``: an MLP on ``[image; text]`` with a softmax over two outputs weighing image and text.
- ``cross_attention``: the text's word tokens query the image's patch tokens; the attended patches, pooled over
  the words, are added to the image embedding through ``W``.
"""

from __future__ import annotations

import torch
from torch import nn

from training.text_encoders import pooled

FUSIONS = ("concat", "scalar", "gated", "cross_attention")


def _identity_then_zero(linear: nn.Linear, dim: int) -> None:
    """``linear`` over ``[a; b]`` starts as ``a``: weight ``[I | 0]``, zero bias."""
    with torch.no_grad():
        linear.weight.zero_()
        linear.weight[:, :dim].copy_(torch.eye(dim))
        linear.bias.zero_()


def _present(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return x * mask.unsqueeze(-1).to(x.dtype)


class ConcatFusion(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out = nn.Linear(2 * dim, dim)
        _identity_then_zero(self.out, dim)

    def forward(self, image, text, has_image, has_text, **_) -> torch.Tensor:
        return self.out(torch.cat([_present(image, has_image), _present(text, has_text)], 1))


class ScalarFusion(ConcatFusion):
    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        with torch.no_grad():
            self.out.weight[:, dim:].copy_(torch.eye(dim))  # [I | I]: the scalar decides how much text enters...
        self.weight = nn.Parameter(torch.tensor(0.0))  # ...and starts at none

    def forward(self, image, text, has_image, has_text, **_) -> torch.Tensor:
        return self.out(torch.cat([_present(image, has_image), self.weight * _present(text, has_text)], 1))


class GatedFusion(nn.Module):
    """``softmax(MLP([image; text]))`` weighs image and text; a missing side's weight is forced to zero."""

    def __init__(self, dim: int, hidden: int = 128, image_bias: float = 0.0) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), nn.Linear(hidden, 2))
        with torch.no_grad():
            self.gate[2].weight.zero_()
            self.gate[2].bias.copy_(torch.tensor([image_bias, 0.0]))  # 0: starts as the even mix
        self.last_weights: torch.Tensor | None = None

    def forward(self, image, text, has_image, has_text, **_) -> torch.Tensor:
        image, text = _present(image, has_image), _present(text, has_text)
        logits = self.gate(torch.cat([image, text], 1))
        present = torch.stack([has_image, has_text], 1)
        logits = logits.masked_fill(~present, float("-inf"))
        weights = torch.softmax(logits, 1).nan_to_num(0.0)  # neither side: zeros
        self.last_weights = weights.detach()
        return weights[:, :1] * image + weights[:, 1:] * text


class CrossAttentionFusion(nn.Module):
    """Text tokens (queries) attend over image patch tokens (keys/values); pooled over the words."""

    def __init__(self, dim: int, token_dim: int, patch_dim: int, heads: int = 4) -> None:
        super().__init__()
        self.query = nn.Linear(token_dim, dim)
        self.key_value = nn.Linear(patch_dim, dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.out = nn.Linear(2 * dim, dim)
        _identity_then_zero(self.out, dim)

    def forward(self, image, text, has_image, has_text, patches=None, tokens=None, token_mask=None) -> torch.Tensor:
        if patches is None or tokens is None or token_mask is None:
            raise ValueError("cross_attention fusion needs image patches and text tokens")
        queries = self.query(tokens)
        memory = self.key_value(patches)
        attended, _ = self.attention(queries, memory, memory, need_weights=False)
        mask = token_mask & has_image.unsqueeze(1)
        return self.out(torch.cat([_present(image, has_image), _present(pooled(attended, mask), has_text)], 1))


def build_fusion(name: str, dim: int, token_dim: int, patch_dim: int) -> nn.Module:
    if name == "concat":
        return ConcatFusion(dim)
    if name == "scalar":
        return ScalarFusion(dim)
    if name == "gated":
        return GatedFusion(dim)
    if name == "cross_attention":
        return CrossAttentionFusion(dim, token_dim, patch_dim)
    raise ValueError(f"unknown fusion {name!r}: use one of {', '.join(FUSIONS)}")
