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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from petid.errors import UserError
from training.config import TrainConfig
from training.registry import ModelRegistry, manifest_hash, version_id

# operational knobs that do not change what is learned: left out of the version hash
UNHASHED_FIELDS = ("num_workers", "checkpoint_every")


class TrainingDataError(UserError, ValueError):
    """The training frame is unusable (missing columns, unknown split, missing files, too few identities)."""


@dataclass
class TrainResult:
    version_id: str
    path: Path
    reused: bool
    metrics: dict[str, Any] = field(default_factory=dict)


def hashed_config(config: TrainConfig) -> dict[str, Any]:
    return {k: v for k, v in config.to_dict().items() if k not in UNHASHED_FIELDS}


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


def train_model(frame: pd.DataFrame, config: TrainConfig, registry_root: str | Path, force: bool = False,
                log: Callable[[str], Any] = print) -> TrainResult:
    """Train (or reuse) the model version for ``frame`` (columns ``path``, ``identity_id``, ``split`` in
    train/val; other splits ignored) and ``config``; returns ``TrainResult(version_id, path, reused, metrics)``.

    ``force=True`` trains again under ``<version>-r<n>``. An interrupted run resumes from its checkpoint when
    called again with the same inputs. Under torchrun every rank must call this with the same arguments.
    """
    from training.ddp import barrier, broadcast_object, dist_info

    used = check_frame(frame)
    registry = ModelRegistry(registry_root)
    data_hash = manifest_hash(used)
    base_id = version_id(data_hash, hashed_config(config))
    info = dist_info()
    if registry.exists(base_id) and not force:
        registry.set_alias("latest", base_id) if info.is_main else None
        log(f"model version {base_id} already registered: reusing it (force=True retrains)")
        return TrainResult(base_id, registry.path(base_id), True, registry.metrics(base_id))
    vid = base_id
    if registry.exists(base_id) or (force and registry.path(base_id).exists()):
        vid = str(broadcast_object(info, registry.next_forced_id(base_id) if info.is_main else None))
    metrics = _run_training(used, config, registry, vid, data_hash, info, log)
    barrier(info)
    return TrainResult(vid, registry.path(vid), False, metrics)


def _run_training(used: pd.DataFrame, config: TrainConfig, registry: ModelRegistry, vid: str, data_hash: str,
                  info: Any, log: Callable[[str], Any]) -> dict[str, Any]:
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from training.data import ImageDataset, decode_all
    from training.ddp import init_distributed
    from training.losses import recipe_loss
    from training.model import build_model
    from training.samplers import BalancedIdentitySampler
    from training.transforms import (
        cache_size,
        data_config,
        eval_transform,
        train_transform,
    )

    started = time.perf_counter()
    torch.manual_seed(config.seed)
    use_cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{info.local_rank}" if use_cuda else "cpu")
    init_distributed(info, use_cuda)

    train = used[used["split"] == "train"].reset_index(drop=True)
    val = used[used["split"] == "val"].reset_index(drop=True)
    identities = sorted(train["identity_id"].astype(str).unique())
    label_map = {identity: i for i, identity in enumerate(identities)}
    train_labels = [label_map[i] for i in train["identity_id"].astype(str)]
    val_codes = {identity: i for i, identity in enumerate(sorted(val["identity_id"].astype(str).unique()))}
    val_labels = [val_codes[i] for i in val["identity_id"].astype(str)]

    model = build_model(config).to(device)
    dcfg = data_config(model.backbone, config.image_size)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)  # bench/train_throughput.py measures both formats
    cache_train = cache_val = None
    if config.cache_images:
        side = cache_size(dcfg)
        cache_train = decode_all(list(train["path"]), side)
        cache_val = decode_all(list(val["path"]), side) if len(val) else None
    sampler = BalancedIdentitySampler(train_labels, config.p, config.k, config.seed, config.small_identities,
                                      rank=info.rank, world_size=info.world_size)
    if sampler.excluded:
        log(f"{len(sampler.excluded)} identities with fewer than k={config.k} photos excluded from training")
    train_set = ImageDataset(list(train["path"]), train_labels, train_transform(dcfg), cache_train)
    val_set = ImageDataset(list(val["path"]), val_labels, eval_transform(dcfg), cache_val)
    steps_per_epoch = len(sampler)
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    if steps_per_epoch == 0:
        raise TrainingDataError(f"no full P×K batch per rank: {len(sampler.groups)} identities, p={config.p}")

    ddp_model = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ddp_model = DistributedDataParallel(model, device_ids=[device.index] if use_cuda else None)
    loss_fn = recipe_loss(config.margin, config.epsilon, config.mining, config.loss_weights)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)

    work = registry.work_dir(vid)
    state = {"step": 0, "epoch": 0, "history": [], "best": None, "best_state": None, "bad_epochs": 0}
    checkpoint_path = work / "last.pt"
    if checkpoint_path.is_file():
        state = _load_checkpoint(checkpoint_path, model, optimizer)
        log(f"resuming {vid} from step {state['step']} (epoch {state['epoch'] + 1})")
    resumed_from = state["step"]

    def save_checkpoint() -> None:
        if info.is_main:
            _save_checkpoint(checkpoint_path, model, optimizer, state)

    every = max(1, min(config.checkpoint_every, steps_per_epoch))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16_autocast)
    log(f"training {vid}: {len(train)} photos / {len(identities)} identities, {steps_per_epoch} steps per epoch, "
        f"{total_steps} steps, device {device}, world size {info.world_size}")
    stopped_early = False
    images_seen, train_seconds = 0, 0.0
    batches = _Skip(sampler, 0)
    loader = DataLoader(train_set, batch_sampler=batches, num_workers=config.num_workers,
                        persistent_workers=config.num_workers > 0, pin_memory=use_cuda,
                        prefetch_factor=4 if config.num_workers else None)  # workers outlive epochs
    while state["step"] < total_steps and not stopped_early:
        epoch = state["epoch"]
        sampler.set_epoch(epoch)
        batches.skip = state["step"] - epoch * steps_per_epoch  # resuming mid-epoch
        ddp_model.train()
        losses: list[float] = []
        tick = time.perf_counter()
        for images, labels in loader:
            images = images.to(device, non_blocking=True).to(memory_format=memory_format)
            labels = labels.to(device)
            with autocast:
                embeddings = ddp_model(images)
            loss = loss_fn(embeddings.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            state["step"] += 1
            images_seen += len(labels)
            losses.append(float(loss.detach()))
            if state["step"] % every == 0 and state["step"] < (epoch + 1) * steps_per_epoch:
                save_checkpoint()
                log(f"step {state['step']}/{total_steps} loss {np.mean(losses[-every:]):.4f} (checkpoint saved)")
            if state["step"] >= total_steps:
                break
        train_seconds += time.perf_counter() - tick
        row: dict[str, Any] = {"epoch": epoch + 1, "step": state["step"],
                               "train_loss": float(np.mean(losses)) if losses else None, **dict(loss_fn.last_parts)}
        if len(val_set):
            row.update(_validate(model, val_set, device, memory_format, config.num_workers))
        state["history"].append(row)
        if _is_better(row, state["best"]):
            state["best"] = row
            state["best_state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            state["bad_epochs"] = 0
        else:
            state["bad_epochs"] += 1
        patience = config.early_stopping_patience
        if patience is not None and state["bad_epochs"] >= patience:
            stopped_early = True
            log(f"early stopping after epoch {epoch + 1}: no improvement for {patience} epoch(s)")
        if state["step"] >= (epoch + 1) * steps_per_epoch:
            state["epoch"] = epoch + 1
        save_checkpoint()
        log(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()
                                                  if isinstance(v, float)))

    best = state["best"] or (state["history"][-1] if state["history"] else {})
    weights = state["best_state"] or model.state_dict()
    metrics = {
        "val_top1": best.get("top1"), "val_eer": best.get("eer"), "best_epoch": best.get("epoch"),
        "train_loss": state["history"][-1]["train_loss"] if state["history"] else None,
        "steps": state["step"], "epochs_run": len(state["history"]), "resumed_from_step": resumed_from,
        "stopped_early": stopped_early, "train_images": len(train), "train_identities": len(identities),
        "val_images": len(val), "world_size": info.world_size, "device": str(device),
        "images_per_s": round(images_seen / train_seconds, 2) if train_seconds else None,
        "seconds": round(time.perf_counter() - started, 2), "history": state["history"],
        "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in dcfg.items()},
    }
    if info.is_main:
        registry.register(vid, weights, config={**config.to_dict(), "data_config": metrics["data_config"],
                                                "code_version": _code_version()},
                          label_map=label_map, data_hash=data_hash, metrics=metrics,
                          curves_png=_curves_png(state["history"]))
        registry.set_alias("latest", vid)
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        log(f"registered model version {vid} at {registry.path(vid)}")
    return metrics


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
    """Higher val Top-1 wins, then lower EER; without validation the latest epoch is kept."""
    if best is None or row.get("top1") is None:
        return True
    key = lambda r: (r.get("top1") or 0.0, -(r.get("eer") if r.get("eer") is not None else 1.0))  # noqa: E731
    return key(row) > key(best)


def embed_dataset(model: Any, dataset: Any, device: Any, memory_format: Any, num_workers: int = 0,
                  batch_size: int = 64) -> Any:
    """float32 embeddings of every item of ``dataset`` in eval mode."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    model.eval()
    out = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    with torch.inference_mode():
        for images, _ in loader:
            out.append(model(images.to(device).to(memory_format=memory_format)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def _validate(model: Any, val_set: Any, device: Any, memory_format: Any, num_workers: int) -> dict[str, Any]:
    from training.validation import validation_metrics

    embeddings = embed_dataset(model, val_set, device, memory_format, num_workers)
    return {f"{k}": v for k, v in validation_metrics(embeddings, val_set.labels).items()}


def _save_checkpoint(path: Path, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
    """Tensors, numbers and strings only, so ``torch.load(weights_only=True)`` reads it back."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": state["step"],
               "epoch": state["epoch"], "history": state["history"], "best": state["best"],
               "best_state": state["best_state"], "bad_epochs": state["bad_epochs"]}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    from petid.paths import atomic_write_bytes

    atomic_write_bytes(path, buffer.getvalue())


def _load_checkpoint(path: Path, model: Any, optimizer: Any) -> dict[str, Any]:
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    return {k: payload[k] for k in ("step", "epoch", "history", "best", "best_state", "bad_epochs")}


def _curves_png(history: list[dict[str, Any]]) -> bytes:
    """Training loss and validation Top-1/EER per epoch (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.2))
    ax_loss, ax_val = fig.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    ax_loss.plot(epochs, [row.get("train_loss") or math.nan for row in history], marker="o")
    ax_loss.set(title="train loss", xlabel="epoch")
    for key in ("top1", "eer"):
        values = [row.get(key) if row.get(key) is not None else math.nan for row in history]
        ax_val.plot(epochs, values, marker="o", label=f"val {key}")
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
