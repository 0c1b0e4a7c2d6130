"""Image transforms from the backbone's timm data config (input size, mean/std, interpolation: never hard-coded)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from torch import nn


def data_config(backbone: nn.Module, image_size: int | None = None) -> dict[str, Any]:
    """``timm.data.resolve_data_config`` for ``backbone``; ``image_size`` overrides only the input size."""
    import timm.data

    config = dict(timm.data.resolve_data_config({}, model=backbone))
    if image_size is not None:
        config["input_size"] = (config["input_size"][0], image_size, image_size)
    return config


AUGMENT = {  # random-resized-crop scale, colour jitter, random-erasing probability
    "standard": dict(scale=(0.6, 1.0), color_jitter=0.3, re_prob=0.0),
    "strong": dict(scale=(0.35, 1.0), color_jitter=0.4, re_prob=0.25),
}


def train_transform(config: dict[str, Any], augment: str = "standard") -> Callable:
    """Random resized crop, horizontal flip, colour jitter (and random erasing when ``strong``), then tensor +
    normalisation from ``config``."""
    import timm.data

    return timm.data.create_transform(
        input_size=config["input_size"], is_training=True, interpolation=config["interpolation"],
        mean=config["mean"], std=config["std"], hflip=0.5, auto_augment=None, **AUGMENT[augment],
    )


def eval_transform(config: dict[str, Any]) -> Callable:
    """Resize + centre crop (``crop_pct`` from the config) + normalisation."""
    import timm.data

    return timm.data.create_transform(
        input_size=config["input_size"], is_training=False, interpolation=config["interpolation"],
        mean=config["mean"], std=config["std"], crop_pct=config.get("crop_pct", 0.875),
        crop_mode=config.get("crop_mode", "center"),
    )


def cache_size(config: dict[str, Any]) -> int:
    """Shorter-side size for the decoded-image cache: large enough for the eval resize (input / crop_pct)."""
    import math

    return int(math.ceil(config["input_size"][-1] / config.get("crop_pct", 0.875)))
