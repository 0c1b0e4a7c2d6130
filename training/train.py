"""``train_model``: the one training entry point (the ``reid_model`` asset and ``petid train`` both call it).

Flow: validate the frame → version id = hash(manifest, config, code) → reuse when registered (unless ``force``) →
P×K batches from worker processes (optional decoded-image cache) → Adam on the combined triplet + intra-pair
variance loss → validation on ``val`` each epoch (Top-1, EER), best epoch kept, optional early stopping →
register weights/config/label map/curves/metrics, point ``latest`` at it. A checkpoint under
``<registry>/.work/<version>/last.pt`` (tensors and numbers only, loaded with ``weights_only=True``) is written
every ``checkpoint_every`` steps and each epoch; a rerun after an interruption resumes from it.
DDP: run under torchrun (see ``training.ddp``).
"""

from __future__ import annotations

import dataclasses
import io
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from petid.errors import UserError
from petid.workers import worker_context
from training.config import TrainConfig
from training.registry import ModelRegistry, manifest_hash, version_id

# operational knobs that do not change what is learned: left out of the version hash
UNHASHED_FIELDS = ("num_workers", "checkpoint_every",  # the gate is re-decided, never retrained:
                   "gate_margin", "gate_min_val_identities", "gate_min_val_pairs")
# what an image-only model ignores: left out of its hash, so its version id is what it was before text existed
TEXT_FIELDS = ("modality", "text_encoder", "fusion", "text_dim", "text_buckets", "text_lr_scale", "text_dropout",
               "text_aux_weight", "text_word_dropout")


class TrainingDataError(UserError, ValueError):
    """The training frame is unusable (missing columns, unknown split, missing files, too few identities)."""


@dataclass
class TrainResult:
    """The trained (or reused) version, the frozen baseline's version, and which of them the gate put in
    ``production``, with the gate's record (``training.gate``)."""

    version_id: str
    path: Path
    reused: bool
    metrics: dict[str, Any] = field(default_factory=dict)
    baseline_id: str | None = None
    production_id: str | None = None
    gate: dict[str, Any] = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        return bool(self.gate.get("promoted"))


def variant_name(config: TrainConfig) -> str:
    """``image``, ``text`` or ``fused-<fusion>``: how reports and aliases name what ``config`` trains."""
    return config.modality if config.modality != "fused" else f"fused-{config.fusion.replace('_', '-')}"


def variant_suffix(config: TrainConfig) -> str:
    """The alias suffix of ``config``'s variant: empty for image models (``latest``/``production``)."""
    return "" if config.modality == "image" else f"-{variant_name(config)}"


def parse_variant(spec: str) -> dict[str, str]:
    """``text``, ``fused`` (gated) or ``fused:<fusion>`` → TrainConfig overrides; a ConfigError names the bad one."""
    from training.config import ConfigError
    from training.fusion import FUSIONS

    modality, _, fusion = spec.strip().partition(":")
    if modality == "text" and not fusion:
        return {"modality": "text"}
    if modality == "fused" and (fusion or "gated") in FUSIONS:
        return {"modality": "fused", "fusion": fusion or "gated"}
    raise ConfigError(f"unknown model variant {spec!r}: use text, fused or fused:<{'|'.join(FUSIONS)}>")


def hashed_config(config: TrainConfig) -> dict[str, Any]:
    skip = UNHASHED_FIELDS + (TEXT_FIELDS if config.modality == "image" else ("fusion",) if config.modality == "text" else ())
    return {k: v for k, v in config.to_dict().items() if k not in skip}


def check_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The ``train``/``val`` rows with ``path``, ``identity_id``, ``split``; raises TrainingDataError naming the
    offending column, split value or file."""
    missing = {"path", "identity_id", "split"} - set(frame.columns)
    if missing:
        raise TrainingDataError(f"training frame lacks column(s) {sorted(missing)} (has {list(frame.columns)})")
    bad = sorted(set(frame["split"].astype(str)) - {"train", "val", "test", "excluded"})
    if bad:
        raise TrainingDataError(f"unknown split value(s) {bad}: expected train/val")
    used = frame[frame["split"].isin(["train", "val"])].reset_index(drop=True)
    if used["path"].isna().any() or used["identity_id"].isna().any():
        row = used[used["path"].isna() | used["identity_id"].isna()].index[0]
        raise TrainingDataError(f"training frame row {row} has an empty path or identity_id")
    absent = [p for p in used["path"] if not Path(p).is_file()]
    if absent:
        raise TrainingDataError(f"{len(absent)} training photo(s) missing, e.g. {absent[0]}")
    if (used["split"] == "train").sum() == 0:
        raise TrainingDataError("training frame has no `train` rows")
    return used


def fit_batch_to_identities(used: pd.DataFrame, config: TrainConfig, log: Callable[[str], Any]) -> TrainConfig:
    """``config`` with P lowered to the usable training identities (logged), checked before any model is built.
    Fewer than 2 usable identities is a TrainingDataError saying what to add."""
    counts = used.loc[used["split"] == "train", "identity_id"].astype(str).value_counts()
    usable = int((counts >= config.k).sum()) if config.small_identities == "exclude" else len(counts)
    if usable < 2:
        raise TrainingDataError(
            f"{usable} training identities with at least k={config.k} photos ({len(counts)} in all): need 2 or more; "
            "add photos or identities, or set small_identities: replace")
    if usable < config.p:
        log(f"warning: {usable} usable training identities < p={config.p}: training with p={usable}")
        config = dataclasses.replace(config, p=usable)
    return config


def train_model(frame: pd.DataFrame, config: TrainConfig, registry_root: str | Path, force: bool = False,
                log: Callable[[str], Any] = print) -> TrainResult:
    """Train (or reuse) the model version for ``frame`` (columns ``path``, ``identity_id``, ``split`` in
    train/val, optional ``phash``; other splits ignored) and ``config``, then gate it against the frozen backbone
    (``training.gate``): ``latest`` names the trained version, ``production`` the winner of the two.

    ``force=True`` trains again under ``<version>-r<n>``. An interrupted run resumes from its checkpoint when
    called again with the same inputs. Under torchrun every rank must call this with the same arguments.
    A text or fused model (``config.modality``) moves its own aliases (``variant_suffix``), never the image's.
    """
    from training.ddp import barrier, broadcast_object, dist_info
    from training.embedder import load_embedder
    from training.gate import (
        apply_gate,
        frozen_version_id,
        is_current,
        read_gate,
        register_frozen,
        validate_gate,
        write_gate,
    )

    used = check_frame(frame)
    config = fit_batch_to_identities(used, config, log)
    registry = ModelRegistry(registry_root)
    info = dist_info()
    baseline_id = register_frozen(config, registry) if info.is_main else frozen_version_id(config)
    data_hash = manifest_hash(used)
    base_id = version_id(data_hash, hashed_config(config))
    if registry.exists(base_id) and not force:
        gate = read_gate(registry, base_id)
        if not is_current(gate, config.gate_margin, config.gate_min_val_identities, config.gate_min_val_pairs) \
                and info.is_main:  # a new margin or rule: decide again
            val = used[used["split"] == "val"].reset_index(drop=True)
            gate = {**(gate or {}), **validate_gate(val, load_embedder(base_id, registry.root),
                                                    load_embedder(baseline_id, registry.root), config.gate_margin,
                                                    config.seed, config.gate_min_val_identities,
                                                    config.gate_min_val_pairs),
                    "baseline_version": baseline_id}
            write_gate(registry, base_id, gate)
            log(f"gate decided again for {base_id}: {gate['reason']}")
        production = apply_gate(registry, base_id, gate, variant_suffix(config)) if info.is_main else None
        log(f"model version {base_id} already registered: reusing it (force=True retrains); production = {production}")
        return TrainResult(base_id, registry.path(base_id), True, registry.metrics(base_id), baseline_id,
                           str(production), gate)
    vid = base_id
    if registry.exists(base_id) or (force and registry.path(base_id).exists()):
        vid = str(broadcast_object(info, registry.next_forced_id(base_id) if info.is_main else None))
    trainer = Trainer(used, config, registry, vid, data_hash, baseline_id, info, log)
    metrics, gate = trainer.run()
    production = apply_gate(registry, vid, gate, variant_suffix(config)) if info.is_main else None
    log(f"gate: {gate['reason']}; production = {production}")
    barrier(info)
    return TrainResult(vid, registry.path(vid), False, metrics, baseline_id, str(production), gate)


class Trainer:
    """One training run: ``setup`` → ``init_head`` → (``train_epoch`` → ``validate`` → ``checkpoint``)* →
    ``register``. Epoch 0 is the model before any optimiser step (its head initialised), so fine-tuning can only
    be chosen when it helped; the frozen backbone is validated beside it for the gate."""

    def __init__(self, used: pd.DataFrame, config: TrainConfig, registry: ModelRegistry, vid: str, data_hash: str,
                 baseline_id: str, info: Any, log: Callable[[str], Any]) -> None:
        self.config, self.registry, self.vid, self.data_hash, self.baseline_id = config, registry, vid, data_hash, baseline_id
        self.info, self.log = info, log
        self.train = used[used["split"] == "train"].reset_index(drop=True)
        self.val = used[used["split"] == "val"].reset_index(drop=True)
        self.identities = sorted(self.train["identity_id"].astype(str).unique())
        self.label_map = {identity: i for i, identity in enumerate(self.identities)}
        self.state: dict[str, Any] = {"step": 0, "epoch": 0, "history": [], "best": None, "best_state": None,
                                      "bad_epochs": 0, "baseline_val": None}

    # -- set-up ----------------------------------------------------------------------------------------------
    def setup(self) -> None:
        import torch

        from training.data import ImageDataset, decode_all
        from training.ddp import init_distributed
        from training.losses import build_loss
        from training.model import build_trained_model
        from training.samplers import BalancedIdentitySampler
        from training.transforms import cache_size, data_config, eval_transform, train_transform

        config, info = self.config, self.info
        torch.manual_seed(config.seed)
        self.use_cuda = torch.cuda.is_available()
        self.device = torch.device(f"cuda:{info.local_rank}" if self.use_cuda else "cpu")
        init_distributed(info, self.use_cuda)
        self.model = build_trained_model(config).to(self.device)
        self.with_images = config.modality != "text"
        self.dcfg = data_config(self.model.backbone if self.with_images else _image_backbone(config), config.image_size)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)  # bench/train_throughput.py measures both
        cache_train = cache_val = None
        if config.cache_images and self.with_images:
            side = cache_size(self.dcfg)
            cache_train = decode_all(list(self.train["path"]), side)
            cache_val = decode_all(list(self.val["path"]), side) if len(self.val) else None
        train_labels = [self.label_map[i] for i in self.train["identity_id"].astype(str)]
        self.sampler = BalancedIdentitySampler(train_labels, config.p, config.k, config.seed, config.small_identities,
                                               rank=info.rank, world_size=info.world_size)
        if self.sampler.excluded:
            self.log(f"{len(self.sampler.excluded)} identities with fewer than k={config.k} photos excluded from training")
        self.train_set = self._dataset(self.train, train_labels, train_transform(self.dcfg, config.augment), cache_train,
                                       config.text_dropout, config.text_word_dropout)
        self.train_eval_set = ImageDataset(list(self.train["path"]), train_labels, eval_transform(self.dcfg), cache_train)
        self.val_images = ImageDataset(list(self.val["path"]), [0] * len(self.val), eval_transform(self.dcfg), cache_val)
        self.val_set = self._dataset(self.val, [0] * len(self.val), eval_transform(self.dcfg), cache_val)
        self.steps_per_epoch = len(self.sampler)
        self.total_steps = config.epochs * self.steps_per_epoch
        if config.max_steps is not None:
            self.total_steps = min(self.total_steps, config.max_steps)
        self.loss_fn = build_loss(config, self.model.head.out_features, len(self.identities)).to(self.device)
        self.ddp_model = self.model
        if info.enabled:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp_model = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.use_cuda else None)
        backbone = [p for p in self.model.backbone.parameters() if p.requires_grad] if self.with_images else []
        # the text side (encoder, projection, fusion) starts from scratch: it learns at lr * text_lr_scale
        text = ([p for name in ("text", "text_head", "fusion") if getattr(self.model, name, None) is not None
                 for p in getattr(self.model, name).parameters()] if config.modality != "image" else [])
        taken = {id(p) for p in backbone + text}
        head = [p for p in self.model.parameters() if p.requires_grad and id(p) not in taken]
        groups = [{"params": head + list(self.loss_fn.parameters()), "lr": config.lr}]
        if backbone and config.backbone_lr_scale > 0:
            groups.append({"params": backbone, "lr": config.lr * config.backbone_lr_scale})
        if text:
            groups.append({"params": text, "lr": config.lr * config.text_lr_scale})
        self.optimizer = torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
        self.checkpoint_path = self.registry.work_dir(self.vid) / "last.pt"

    def _dataset(self, rows: pd.DataFrame, labels: list[int], transform: Any, cache: Any, text_dropout: float = 0.0,
                 word_dropout: float = 0.0) -> Any:
        """Photos for an image model; photos (or not, for ``text``) with their listing text for the others."""
        from training.data import ImageDataset, ListingDataset
        from training.embedder import frame_texts

        if self.config.modality == "image":
            return ImageDataset(list(rows["path"]), labels, transform, cache)
        return ListingDataset(list(rows["path"]), labels, transform, frame_texts(rows), self.model.tokenizer, cache,
                              with_images=self.with_images, text_dropout=text_dropout, word_dropout=word_dropout)

    # -- epoch 0 ---------------------------------------------------------------------------------------------
    def init_head(self) -> None:
        """``head_init``: keep the random projection, or start from PCA / supervised whitening of the frozen
        training features (with their mirror images), computed in closed form."""
        if self.config.head_init == "random" or not self.with_images:
            return
        from training.whitening import fit_projection

        features = self._embed(self.train_eval_set, features=True)
        labels = self.train_eval_set.labels
        weight, bias = fit_projection(features, labels, self.model.head.out_features, self.config.head_init,
                                      self.config.whiten_shrinkage, self.config.seed)
        import torch

        with torch.no_grad():
            self.model.head.weight.copy_(torch.from_numpy(weight))
            self.model.head.bias.copy_(torch.from_numpy(bias))
        self.log(f"projection head initialised by {self.config.head_init} of {len(features)} frozen training features")

    def _embed(self, dataset: Any, features: bool = False) -> Any:
        from training.embedder import Embedder
        from training.model import EmbeddingModel

        # ``features``: the same (shared) backbone without the head, i.e. what the head is fitted on
        module = EmbeddingModel(self.model.backbone, None) if features else self.model
        embedder = Embedder(module, self.dcfg, self.vid, tta_flip=self.config.tta_flip or features)
        return embedder.embed_dataset(dataset, num_workers=min(self.config.num_workers, 2))

    def validate(self, frozen: bool = False) -> dict[str, Any]:
        """The headline metrics on the validation identities (the report's protocol); ``frozen`` measures the
        frozen backbone instead of the model. Empty without validation identities."""
        if len(self.val) == 0 or self.val["identity_id"].nunique() < 2:
            return {}
        from evaluation.evaluate import score_embeddings

        embeddings = self._embed(self.val_set, features=False) if not frozen else self._frozen_val_embeddings()
        return score_embeddings(self.val, embeddings, seed=self.config.seed)

    def _frozen_embedder(self) -> Any:
        from training.embedder import load_embedder

        return load_embedder(self.baseline_id, self.registry.root)

    def _frozen_val_embeddings(self) -> Any:
        return self._frozen_embedder().embed_dataset(self.val_images)

    # -- the loop --------------------------------------------------------------------------------------------
    def train_epoch(self, loader: Any, batches: Any) -> list[float]:
        import numpy as np
        import torch

        state, config = self.state, self.config
        epoch = state["epoch"]
        self.sampler.set_epoch(epoch)
        # the augmentations' randomness from (seed, epoch, rank) alone: what ran before in the process (a cached
        # baseline, an earlier training) or a resume from a checkpoint never changes what is learned
        epoch_seed = (config.seed * 1_000_003 + epoch) * 1_009 + self.info.rank
        torch.manual_seed(epoch_seed)
        random.seed(epoch_seed)  # timm's crop and erasing draw from Python's random
        batches.skip = state["step"] - epoch * self.steps_per_epoch  # resuming mid-epoch
        self.ddp_model.train()
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=config.bf16_autocast)
        every = max(1, min(config.checkpoint_every, self.steps_per_epoch))
        losses: list[float] = []
        for *inputs, labels in loader:
            images, *text = (x.to(self.device, non_blocking=True) for x in inputs)
            if images.dim() == 4:
                images = images.to(memory_format=self.memory_format)
            labels = labels.to(self.device)
            with autocast:
                embeddings = self.ddp_model(images, *text)
            loss = self.loss_fn(embeddings.float(), labels)
            branches = getattr(self.model, "branches", None)
            if config.modality == "fused" and config.text_aux_weight and branches:
                with_text = branches["has_text"]  # rows whose text was dropped teach the text branch nothing
                if int(with_text.sum()) >= 2:
                    loss = loss + config.text_aux_weight * self.loss_fn(branches["text"][with_text].float(),
                                                                        labels[with_text])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            state["step"] += 1
            self.images_seen += len(labels)
            losses.append(float(loss.detach()))
            if state["step"] % every == 0 and state["step"] < (epoch + 1) * self.steps_per_epoch:
                self.checkpoint()
                self.log(f"step {state['step']}/{self.total_steps} loss {np.mean(losses[-every:]):.4f} (checkpoint saved)")
            if state["step"] >= self.total_steps:
                break
        return losses

    def record(self, row: dict[str, Any]) -> bool:
        """Add an epoch's row to the history, keep the best weights; True when patience ran out."""
        state = self.state
        state["history"].append(row)
        if _is_better(row, state["best"]):
            state["best"] = row
            state["best_state"] = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            state["bad_epochs"] = 0
        elif row["epoch"] > 0:
            state["bad_epochs"] += 1
        patience = self.config.early_stopping_patience
        return patience is not None and state["bad_epochs"] >= patience

    def checkpoint(self) -> None:
        if self.info.is_main:
            _save_checkpoint(self.checkpoint_path, self.model, self.optimizer, self.state)

    def run(self) -> tuple[dict[str, Any], dict[str, Any]]:
        from torch.utils.data import DataLoader

        from training.ddp import barrier
        from training.gate import validate_gate

        started = time.perf_counter()
        self.setup()
        barrier(self.info)  # rank 0 has registered the frozen backbone the others validate
        state, config = self.state, self.config
        if self.checkpoint_path.is_file():
            self.state = state = _load_checkpoint(self.checkpoint_path, self.model, self.optimizer)
            self.log(f"resuming {self.vid} from step {state['step']} (epoch {state['epoch'] + 1})")
        resumed_from = state["step"]
        self.images_seen, train_seconds = 0, 0.0
        if not state["history"]:  # epoch 0: the frozen backbone and the model before any step
            state["baseline_val"] = self.validate(frozen=True)
            self.init_head()
            self.record({"epoch": 0, "step": 0, "train_loss": None, **self.validate()})
            self.checkpoint()
            self.log("epoch 0: " + _format_row(state["history"][-1]) + " | frozen backbone: "
                     + _format_row(state["baseline_val"]))
        self.log(f"training {self.vid}: {len(self.train)} photos / {len(self.identities)} identities, "
                 f"{self.steps_per_epoch} steps per epoch, {self.total_steps} steps, device {self.device}, "
                 f"world size {self.info.world_size}")
        batches = _Skip(self.sampler, 0)
        loader = DataLoader(self.train_set, batch_sampler=batches, num_workers=config.num_workers,
                            persistent_workers=config.num_workers > 0, pin_memory=self.use_cuda,
                            prefetch_factor=4 if config.num_workers else None,  # workers outlive epochs
                            multiprocessing_context=worker_context() if config.num_workers else None)
        stopped_early = False
        while state["step"] < self.total_steps and not stopped_early:
            epoch = state["epoch"]
            tick = time.perf_counter()
            losses = self.train_epoch(loader, batches)
            train_seconds += time.perf_counter() - tick
            row: dict[str, Any] = {"epoch": epoch + 1, "step": state["step"],
                                   "train_loss": float(sum(losses) / len(losses)) if losses else None,
                                   **dict(getattr(self.loss_fn, "last_parts", {})), **self.validate()}
            stopped_early = self.record(row)
            if stopped_early:
                self.log(f"early stopping after epoch {epoch + 1}: no improvement for "
                         f"{config.early_stopping_patience} epoch(s)")
            if state["step"] >= (epoch + 1) * self.steps_per_epoch:
                state["epoch"] = epoch + 1
            self.checkpoint()
            self.log(f"epoch {epoch + 1}: {_format_row(row)}")
        best = state["best"] or state["history"][-1]
        if state["best_state"] is not None:
            self.model.load_state_dict(state["best_state"])
        from training.embedder import Embedder

        best_model = Embedder(self.model, self.dcfg, self.vid, config.tta_flip)
        gate = {**validate_gate(self.val, best_model, self._frozen_embedder(), config.gate_margin, config.seed,
                                config.gate_min_val_identities, config.gate_min_val_pairs),
                "baseline_version": self.baseline_id, "best_epoch": best.get("epoch")}
        metrics = {
            **{f"val_{k}": best.get(k) for k in ("top1", "top5", "map", "roc_auc", "eer")},
            **{f"baseline_val_{k}": (state["baseline_val"] or {}).get(k) for k in ("top1", "map", "eer")},
            "best_epoch": best.get("epoch"), "promoted": gate["promoted"],
            "train_loss": state["history"][-1]["train_loss"],
            "steps": state["step"], "epochs_run": len(state["history"]) - 1, "resumed_from_step": resumed_from,
            "stopped_early": stopped_early, "train_images": len(self.train), "train_identities": len(self.identities),
            "val_images": len(self.val), "val_identities": int(self.val["identity_id"].nunique()), "p": config.p,
            "world_size": self.info.world_size, "device": str(self.device),
            "images_per_s": round(self.images_seen / train_seconds, 2) if train_seconds else None,
            "seconds": round(time.perf_counter() - started, 2), "history": state["history"],
            "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in self.dcfg.items()},
        }
        if self.info.is_main:
            self.register(metrics, gate)
        return metrics, gate

    def register(self, metrics: dict[str, Any], gate: dict[str, Any]) -> None:
        import shutil

        from training.gate import write_gate

        weights = self.state["best_state"] or self.model.state_dict()
        self.registry.register(self.vid, weights, config={**self.config.to_dict(), "data_config": metrics["data_config"],
                                                          "code_version": _code_version()},
                               label_map=self.label_map, data_hash=self.data_hash, metrics=metrics,
                               curves_png=_curves_png(self.state["history"], self.state["baseline_val"]))
        write_gate(self.registry, self.vid, gate)
        shutil.rmtree(self.registry.work_dir(self.vid), ignore_errors=True)
        self.log(f"registered model version {self.vid} at {self.registry.path(self.vid)}")


def _image_backbone(config: TrainConfig) -> Any:
    """The configured (frozen) backbone, for a text-only model's data config: the frozen baseline it is gated
    against reads the validation photos with it."""
    from training.model import build_backbone

    return build_backbone(config)


def _format_row(row: dict[str, Any] | None) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in (row or {}).items() if isinstance(v, float)) or "no validation"


def _code_version() -> str:
    from training.registry import CODE_VERSION

    return CODE_VERSION


class _Skip:
    """A batch sampler that skips the first ``skip`` batches of ``inner`` (resuming mid-epoch)."""

    def __init__(self, inner: Any, skip: int) -> None:
        self.inner, self.skip = inner, max(0, skip)

    def __iter__(self):
        for i, batch in enumerate(self.inner):
            if i >= self.skip:
                yield batch

    def __len__(self) -> int:
        return max(0, len(self.inner) - self.skip)


def _is_better(row: dict[str, Any], best: dict[str, Any] | None) -> bool:
    """Higher validation mAP wins (the steadiest of the metrics on few animals), then Top-1, then lower EER; a tie
    keeps the earlier epoch. Without validation the latest epoch is kept."""
    if best is None or row.get("map") is None:
        return True
    key = lambda r: (round(r.get("map") or 0.0, 6), round(r.get("top1") or 0.0, 6), -(r.get("eer") if r.get("eer") is not None else 1.0))  # noqa: E731
    return key(row) > key(best)


def _save_checkpoint(path: Path, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
    """Tensors, numbers and strings only, so ``torch.load(weights_only=True)`` reads it back."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": state["step"],
               "epoch": state["epoch"], "history": state["history"], "best": state["best"],
               "best_state": state["best_state"], "bad_epochs": state["bad_epochs"],
               "baseline_val": state["baseline_val"]}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    from petid.paths import atomic_write_bytes

    atomic_write_bytes(path, buffer.getvalue())


def _load_checkpoint(path: Path, model: Any, optimizer: Any) -> dict[str, Any]:
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    return {k: payload.get(k) for k in ("step", "epoch", "history", "best", "best_state", "bad_epochs", "baseline_val")}


def _curves_png(history: list[dict[str, Any]], baseline: dict[str, Any] | None = None) -> bytes:
    """Training loss and validation Top-1/mAP/EER per epoch, the frozen backbone's as dashed lines (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.2))
    ax_loss, ax_val = fig.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    ax_loss.plot(epochs, [row.get("train_loss") or math.nan for row in history], marker="o")
    ax_loss.set(title="train loss", xlabel="epoch")
    for key in ("top1", "map", "eer"):
        values = [row.get(key) if row.get(key) is not None else math.nan for row in history]
        line, = ax_val.plot(epochs, values, marker="o", label=f"val {key}")
        if (baseline or {}).get(key) is not None:
            ax_val.axhline(baseline[key], color=line.get_color(), linestyle="--", linewidth=1)
    ax_val.set(title="validation", xlabel="epoch", ylim=(0, 1))
    ax_val.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def replace_config(config: TrainConfig, **overrides: Any) -> TrainConfig:
    """``dataclasses.replace`` that ignores None overrides (CLI flags left unset)."""
    values = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(config, **values) if values else config
