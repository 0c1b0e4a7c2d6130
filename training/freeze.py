"""Partial fine-tuning: freeze a backbone except its last N blocks and everything after them.

A "block" is one residual unit, counted flat across stages:
- EfficientNet/MobileNet (``model.blocks`` = stages of sub-blocks): each inner block (``blocks.<stage>.<i>``) is one
  block; efficientnet_lite0 has 16 (stages of 1, 2, 2, 3, 3, 4, 1), so N=5 unfreezes the last two stages.
- ViT/DeiT (``model.blocks`` = transformer blocks): each transformer block is one block.
- ConvNeXt-style ``model.stages[i].blocks`` and ResNet ``layer1..layer4``: each inner block.
Everything registered after the last block (efficientnet ``conv_head``/``bn2``, ViT ``norm``/``fc_norm``) stays
trainable with it, as does the projection head outside the backbone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from petid.errors import UserError

if TYPE_CHECKING:
    from torch import nn


class UnsupportedBackboneError(UserError, ValueError):
    """The backbone has no recognisable block structure to freeze by."""


def flat_blocks(backbone: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(qualified name, module)`` of every block in forward order (see the module docstring)."""
    from torch import nn

    def children(prefix: str, container: nn.Module) -> list[tuple[str, nn.Module]]:
        return [(f"{prefix}.{name}", child) for name, child in container.named_children()]

    out: list[tuple[str, nn.Module]] = []
    if isinstance(getattr(backbone, "blocks", None), (nn.Sequential, nn.ModuleList)):
        for name, item in children("blocks", backbone.blocks):
            nested = isinstance(item, (nn.Sequential, nn.ModuleList))
            out.extend(children(name, item) if nested else [(name, item)])
    elif isinstance(getattr(backbone, "stages", None), (nn.Sequential, nn.ModuleList)):
        for name, stage in children("stages", backbone.stages):
            inner = getattr(stage, "blocks", stage)
            prefix = f"{name}.blocks" if inner is not stage else name
            out.extend(children(prefix, inner))
    elif all(hasattr(backbone, f"layer{i}") for i in range(1, 5)):
        for i in range(1, 5):
            out.extend(children(f"layer{i}", getattr(backbone, f"layer{i}")))
    if not out:
        raise UnsupportedBackboneError(f"{type(backbone).__name__}: no blocks/stages/layer1-4 to freeze by")
    return out


def freeze_backbone(backbone: nn.Module, unfreeze_blocks: int) -> list[str]:
    """Freeze every backbone parameter except the last ``unfreeze_blocks`` blocks and the parameters registered
    after the last block. ``unfreeze_blocks`` larger than the block count unfreezes everything. Returns the names
    of the trainable backbone parameters."""
    blocks = flat_blocks(backbone)
    names = [name for name, _ in backbone.named_parameters()]
    last_block = blocks[-1][0] + "."
    after_start = max(i for i, n in enumerate(names) if n.startswith(last_block)) + 1
    trainable_prefixes = tuple(f"{name}." for name, _ in blocks[len(blocks) - unfreeze_blocks:]) if unfreeze_blocks else ()
    trainable: list[str] = []
    first_block = min(i for i, n in enumerate(names) if n.startswith(blocks[0][0] + "."))
    for i, (name, param) in enumerate(backbone.named_parameters()):
        on = (bool(trainable_prefixes) and name.startswith(trainable_prefixes)) or i >= after_start
        if unfreeze_blocks >= len(blocks) and i < first_block:
            on = True  # "all blocks" means the whole backbone, stem included
        param.requires_grad_(on)
        if on:
            trainable.append(name)
    return trainable


def set_batchnorm_eval(module: nn.Module, only_frozen: bool = True) -> None:
    """Put BatchNorm layers in eval mode so their running statistics stay fixed: those whose parameters are all
    frozen (``only_frozen``), or every one (small batches of few animals make poor batch statistics)."""
    from torch import nn

    for child in module.modules():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            params = list(child.parameters(recurse=False))
            if not only_frozen or (params and not any(p.requires_grad for p in params)):
                child.eval()
