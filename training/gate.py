"""The promotion gate: a trained version becomes ``production`` only if it beats the frozen backbone.

Both are measured on the validation identities by the evaluation library's own protocol
(``evaluation.evaluate.score_embeddings``: the same rank-k, mAP and EER code as the test report). The frozen
backbone is registered as a version of its own (``frozen-<hash>``), so "production is the baseline" is an ordinary
alias that evaluation and search resolve like any other. The decision is written to ``gate.json`` in the trained
version's directory and re-applied when the version is reused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from training.config import TrainConfig
from training.registry import ModelRegistry, version_id

FROZEN_FIELDS = ("backbone", "pretrained", "pooling", "image_size", "tta_flip")
GATE_FILE = "gate.json"


def frozen_version_id(config: TrainConfig) -> str:
    """``frozen-<16 hex>``: a hash of what the frozen baseline depends on (backbone, weights, pooling, size, TTA)."""
    return "frozen-" + version_id("frozen", {k: getattr(config, k) for k in FROZEN_FIELDS})


def register_frozen(config: TrainConfig, registry: ModelRegistry) -> str:
    """Register the frozen backbone of ``config`` (weights, data config) unless it is there; returns its id."""
    vid = frozen_version_id(config)
    if registry.exists(vid):
        return vid
    from training.model import build_frozen
    from training.transforms import data_config

    model = build_frozen(config)
    dcfg = {k: list(v) if isinstance(v, tuple) else v for k, v in data_config(model.backbone, config.image_size).items()}
    fields = {k: getattr(config, k) for k in FROZEN_FIELDS}
    try:
        registry.register(vid, model.state_dict(), config={**fields, "kind": "frozen", "data_config": dcfg},
                          label_map={}, data_hash="frozen", metrics={"kind": "frozen"})
    except FileExistsError:  # registered concurrently by another run: same content
        pass
    return vid


def gate_decision(candidate: Mapping[str, Any] | None, baseline: Mapping[str, Any] | None,
                  margin: float) -> dict[str, Any]:
    """Promote when the candidate's validation mAP beats the baseline's by more than ``margin`` (a tie is not a
    win) and its Top-1 and EER are no worse. Without validation metrics nothing is promoted."""
    keys = ("top1", "map", "eer")
    if not candidate or not baseline or any(candidate.get(k) is None or baseline.get(k) is None for k in keys):
        return {"promoted": False, "margin": margin, "reason": "no validation identities to compare on: the frozen "
                "backbone stays in production", "candidate": dict(candidate or {}), "baseline": dict(baseline or {})}
    gains = {"map": candidate["map"] - baseline["map"], "top1": candidate["top1"] - baseline["top1"],
             "eer": baseline["eer"] - candidate["eer"]}
    promoted = gains["map"] > margin and gains["top1"] >= 0 and gains["eer"] >= 0
    summary = ", ".join(f"{k} {candidate[k]:.3f} vs {baseline[k]:.3f}" for k in keys)
    reason = (f"beats the frozen backbone on validation ({summary})" if promoted else
              f"does not beat the frozen backbone on validation by mAP margin {margin} with no worse Top-1/EER "
              f"({summary}): the frozen backbone stays in production")
    return {"promoted": bool(promoted), "margin": margin, "reason": reason, "gains": gains,
            "candidate": dict(candidate), "baseline": dict(baseline)}


def write_gate(registry: ModelRegistry, version: str, gate: Mapping[str, Any]) -> None:
    from petid.paths import atomic_write_bytes

    atomic_write_bytes(registry.path(version) / GATE_FILE, json.dumps(dict(gate), indent=2, sort_keys=True).encode())


def read_gate(registry: ModelRegistry, version: str) -> dict[str, Any] | None:
    path = registry.path(version) / GATE_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def apply_gate(registry: ModelRegistry, version: str, gate: Mapping[str, Any]) -> str:
    """Point ``latest`` at ``version`` and ``production`` at it or at the gate's baseline; returns production."""
    production = version if gate.get("promoted") else str(gate["baseline_version"])
    registry.set_alias("latest", version)
    registry.set_alias("production", production)
    return production
