"""Embed photos with a registered model version or with the frozen pretrained baseline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from training.config import TrainConfig


class Embedder:
    """``embed(paths) -> float32 (n, D)`` L2-normalised embeddings; ``model_id`` is the version id or
    ``baseline:<backbone>``. Eval transforms come from the model's timm data config (with its image size)."""

    def __init__(self, model: Any, data_config: dict[str, Any], model_id: str) -> None:
        import torch

        from training.transforms import eval_transform

        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.data_config = data_config
        self.transform = eval_transform(data_config)
        self.model_id = model_id

    def embed(self, paths: list[str], batch_size: int = 32, num_workers: int = 0) -> np.ndarray:
        """Embeddings of ``paths`` in order; an unreadable photo raises ImageReadError naming it."""
        import torch
        from torch.utils.data import DataLoader

        from training.data import ImageDataset

        if not len(paths):
            return np.zeros((0, self.dim), np.float32)
        dataset = ImageDataset([str(p) for p in paths], [0] * len(paths), self.transform)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
        out = []
        with torch.inference_mode():
            for images, _ in loader:
                vectors = self.model(images.to(self.device)).float()
                out.append(torch.nn.functional.normalize(vectors, dim=1).cpu().numpy())
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)

    @property
    def dim(self) -> int:
        import torch

        with torch.inference_mode():
            size = self.data_config["input_size"]
            return int(self.model(torch.zeros(1, *size, device=self.device)).shape[1])


def baseline_embedder(config: TrainConfig | None = None) -> Embedder:
    """The frozen pretrained backbone (pooled features, L2-normalised, no projection head)."""
    from training.pretrained import create_backbone
    from training.transforms import data_config

    config = config or TrainConfig()
    backbone = create_backbone(config.backbone, config.pretrained)
    return Embedder(backbone, data_config(backbone, config.image_size), f"baseline:{config.backbone}")


def load_embedder(ref: str, registry_root: str | os.PathLike[str], baseline_config: TrainConfig | None = None) -> Embedder:
    """``ref``: ``baseline`` (frozen pretrained ``efficientnet_lite0`` or ``baseline_config``'s backbone),
    ``baseline:<timm name>``, ``latest``, ``production``, another alias, a version id, or a version directory.
    Weights load from safetensors (no unpickling)."""
    from safetensors.torch import load_file

    from training.model import EmbeddingModel
    from training.pretrained import create_backbone
    from training.registry import ModelRegistry

    if ref == "baseline":
        return baseline_embedder(baseline_config)
    if ref.startswith("baseline:"):
        return baseline_embedder(TrainConfig(backbone=ref.partition(":")[2],
                                             pretrained="efficientnet-lite0-pypi" if ref.endswith("efficientnet_lite0") else "timm"))
    path = ModelRegistry(registry_root).resolve(ref)
    import json

    stored = json.loads((Path(path) / "config.json").read_text())
    data_config = stored.pop("data_config")
    stored.pop("code_version", None)
    config = TrainConfig.from_dict(stored)
    model = EmbeddingModel(create_backbone(config.backbone, "none"), config.embedding_dim)
    model.load_state_dict(load_file(str(Path(path) / "weights.safetensors")), strict=True)
    data_config = {k: tuple(v) if isinstance(v, list) else v for k, v in data_config.items()}
    return Embedder(model, data_config, Path(path).name)
