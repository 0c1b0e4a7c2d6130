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
GATE_VERSION = 4  # bump when the decision rule changes: reused versions are then gated again


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


def gate_decision(candidate: Mapping[str, Any] | None, baseline: Mapping[str, Any] | None, margin: float,
                  delta_intervals: Mapping[str, Any] | None = None, n_identities: int | None = None,
                  min_identities: int = 0) -> dict[str, Any]:
    """Promote when the candidate's validation mAP beats the baseline's by more than ``margin`` (a tie is not a
    win) and its Top-1 and EER are no worse. With ``delta_intervals`` (the paired 95 % bootstrap interval of
    candidate − baseline over validation animals) the mAP win must hold at the interval's lower bound: on a
    handful of validation animals no gain is certain, so the frozen backbone stays. Fewer than ``min_identities``
    validation animals (``n_identities``) promote nothing: a bootstrap over two or three animals has only a few
    distinct resamples and cannot tell a gain from luck. Without validation metrics nothing is promoted."""
    keys = ("top1", "map", "eer")
    if not candidate or not baseline or any(candidate.get(k) is None or baseline.get(k) is None for k in keys):
        return {"promoted": False, "margin": margin, "reason": "no validation identities to compare on: the frozen "
                "backbone stays in production", "candidate": dict(candidate or {}), "baseline": dict(baseline or {})}
    gains = {"map": candidate["map"] - baseline["map"], "top1": candidate["top1"] - baseline["top1"],
             "eer": baseline["eer"] - candidate["eer"]}
    map_low = ((delta_intervals or {}).get("map") or [None])[0]
    certain = map_low is None or map_low > margin
    enough = n_identities is None or n_identities >= min_identities
    promoted = gains["map"] > margin and gains["top1"] >= 0 and gains["eer"] >= 0 and certain and enough
    summary = ", ".join(f"{k} {candidate[k]:.3f} vs {baseline[k]:.3f}" for k in keys)
    if map_low is not None:
        summary += f"; mAP gain 95% lower bound {map_low:+.3f}"
    if not enough:
        summary += f"; only {n_identities} validation animals, {min_identities} needed to promote"
    reason = (f"beats the frozen backbone on validation ({summary})" if promoted else
              f"does not beat the frozen backbone on validation by mAP margin {margin} (at the 95% lower bound) "
              f"with no worse Top-1/EER ({summary}): the frozen backbone stays in production")
    return {"promoted": bool(promoted), "margin": margin, "reason": reason, "gains": gains,
            "map_gain_lower_bound": map_low, "delta_intervals": dict(delta_intervals or {}),
            "val_identities": n_identities, "min_val_identities": min_identities,
            "candidate": dict(candidate), "baseline": dict(baseline)}


def validate_gate(val: Any, model: Any, frozen: Any, margin: float, seed: int = 0,
                  min_identities: int = 0, min_pairs: int = 0) -> dict[str, Any]:
    """Score ``model`` and ``frozen`` (embedders) on the validation photos ``val`` with the report's protocol, on
    the same pairs, and decide (``gate_decision`` with the paired bootstrap interval of the difference). A fused
    model also needs ``min_pairs`` known lost/found pairs in ``val`` (see ``_other_listings_rule``)."""
    if len(val) == 0 or val["identity_id"].nunique() < 2:
        return {**gate_decision(None, None, margin), "version": GATE_VERSION, "min_val_pairs": min_pairs}
    from evaluation.embeddings import embed_frame
    from evaluation.evaluate import HEADLINE, evaluate_embeddings, prepare_frame
    from evaluation.intervals import bootstrap_intervals
    from evaluation.verification import make_pairs

    frame = prepare_frame(val)
    pairs = make_pairs(frame["identity_id"].to_numpy(), seed=seed)
    vectors = {"model": embed_frame(frame, model, None), "frozen": embed_frame(frame, frozen, None)}  # text if read
    evaluations = {name: evaluate_embeddings(frame, v, name, pairs) for name, v in vectors.items()}
    delta = bootstrap_intervals(frame["identity_id"].to_numpy(), pairs, evaluations, seed=seed)["delta:frozen"]
    scores = {name: {k: float(e.metrics()[k]) for k in HEADLINE} for name, e in evaluations.items()}
    decision = gate_decision(scores["model"], scores["frozen"], margin, delta, int(frame["identity_id"].nunique()),
                             min_identities)
    if getattr(model, "modality", "") == "fused":
        from evaluation.evaluate import photo_only_identification

        photo_only = photo_only_identification(frame, model, vectors["model"]).top1
        decision = _photo_only_rule(decision, photo_only, evaluations["frozen"].identification.top1)
        decision = _other_listings_rule(decision, frame, vectors, min_pairs)
    elif getattr(model, "modality", "") == "text":
        decision = {**decision, "promoted": False,
                    "reason": "a text-only model is measured for comparison and never promoted: a listing's photos "
                              "share its text, so validation cannot tell matching the text from recognising the "
                              "animal; the frozen backbone stays in production"}
    return {**decision, "version": GATE_VERSION, "min_val_pairs": min_pairs}


def _photo_only_rule(decision: dict[str, Any], photo_only_top1: float, floor: float) -> dict[str, Any]:
    """A fused model must also find the animal from a photo alone (queries without text, listings with it:
    ``evaluation.evaluate.photo_only_identification``) at least as often as the frozen backbone (``floor``): the
    photos of one listing share its text, so validation with text on both sides rewards matching the text, and a
    model that learned only that would fail every finder who has just a photo."""
    decision = {**decision, "photo_only_top1": photo_only_top1, "photo_only_floor": floor}
    if decision["promoted"] and photo_only_top1 < floor:
        decision["promoted"] = False
        decision["reason"] = (f"finds the animal from a photo alone (no query text) less often than the frozen "
                              f"backbone (Top-1 {photo_only_top1:.3f} vs {floor:.3f}), whatever the shared listing "
                              "text adds: the frozen backbone stays in production")
    return decision


def _other_listings_rule(decision: dict[str, Any], frame: Any, vectors: dict[str, Any],
                         min_pairs: int) -> dict[str, Any]:
    """A fused model must also find an animal's other listing (its own listing's photos hidden:
    ``evaluation.evaluate.other_listings_identification``) at least as often as the frozen backbone, on at least
    ``min_pairs`` known lost/found pairs in validation: two people describe one animal in different words, and a
    model that only matches a listing's own text would fail every finder."""
    from evaluation.evaluate import other_listings_identification

    pairs = int(frame["merged_from"].nunique()) if "merged_from" in frame else 0
    decision = {**decision, "other_listings_pairs": pairs}
    model, frozen = (other_listings_identification(frame, vectors[name]) for name in ("model", "frozen"))
    if model is not None and model.n_queries:
        decision.update(other_listings_top1=model.top1, other_listings_floor=frozen.top1,
                        other_listings_queries=model.n_queries)
    if not decision["promoted"]:
        return decision
    if pairs < min_pairs:
        decision["promoted"] = False
        decision["reason"] = (f"only {pairs} known lost/found pair(s) in validation, {min_pairs} needed to promote a "
                              "model that reads the listing text (without them validation cannot tell matching a "
                              "listing's own text from recognising the animal): the frozen backbone stays in production")
    elif "other_listings_top1" in decision and model.top1 < frozen.top1:
        decision["promoted"] = False
        decision["reason"] = (f"finds an animal's other listing (its own listing hidden) less often than the frozen "
                              f"backbone (Top-1 {model.top1:.3f} vs {frozen.top1:.3f} over {model.n_queries} "
                              "validation photos of known lost/found pairs): the frozen backbone stays in production")
    return decision


def is_current(gate: Mapping[str, Any] | None, margin: float, min_identities: int, min_pairs: int = 0) -> bool:
    """A recorded decision still applies: same rule version, margin and minimums of validation animals and pairs."""
    return (gate is not None and gate.get("version") == GATE_VERSION and gate.get("margin") == margin
            and gate.get("min_val_identities") == min_identities and gate.get("min_val_pairs", 0) == min_pairs)


def write_gate(registry: ModelRegistry, version: str, gate: Mapping[str, Any]) -> None:
    from petid.paths import atomic_write_bytes

    atomic_write_bytes(registry.path(version) / GATE_FILE, json.dumps(dict(gate), indent=2, sort_keys=True).encode())


def read_gate(registry: ModelRegistry, version: str) -> dict[str, Any] | None:
    path = registry.path(version) / GATE_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def apply_gate(registry: ModelRegistry, version: str, gate: Mapping[str, Any], suffix: str = "") -> str:
    """Point ``latest`` at ``version`` and ``production`` at it or at the gate's baseline; returns production.
    ``suffix`` names a variant's own pair of aliases (``latest-fused-gated``, ``production-fused-gated``), so a
    text or fused model never moves the image model's."""
    production = version if gate.get("promoted") else str(gate["baseline_version"])
    registry.set_alias(f"latest{suffix}", version)
    registry.set_alias(f"production{suffix}", production)
    return production
