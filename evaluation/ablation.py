"""``petid ablate``: the published study's table — image-only, text-only and every fused model, same data.

Each model is trained with ``training.train.train_model`` on the same ``train``/``val`` identities (the text and
fused ones from the image model's config with ``modality``/``text_encoder``/``fusion`` changed), then all of them
are measured by ``evaluation.evaluate.evaluate`` on the same ``test`` queries and pairs: intervals, McNemar
against the image-only model, and — with known lost/found pairs — the cross-listing protocol, the one where the
listing text is not shared between query and answer.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from evaluation.evaluate import EvaluationError, evaluate

ABLATION_COLUMNS = ("top1", "top5", "map", "roc_auc", "eer")


def check_ablation(encoders: Sequence[str], fusions: Sequence[str]) -> None:
    """Unknown fusions and unavailable encoders fail before anything trains (one line each)."""
    from training.fusion import FUSIONS
    from training.text_encoders import HASHED, build_text_encoder

    unknown = [f for f in fusions if f not in FUSIONS]
    if unknown:
        raise EvaluationError(f"unknown fusion(s) {', '.join(unknown)}: use {', '.join(FUSIONS)}")
    if not encoders:
        raise EvaluationError("no text encoder given (--encoders)")
    for encoder in encoders:
        if encoder != HASHED:
            build_text_encoder(encoder)


def ablation_configs(base: Any, encoders: Sequence[str], fusions: Sequence[str], text_only: bool = True) -> dict:
    """``{label: TrainConfig}``: ``image``, then per encoder ``text <encoder>`` and ``<fusion> <encoder>``."""
    check_ablation(encoders, fusions)
    configs = {"image": base}
    for encoder in encoders:
        if text_only:
            configs[f"text {encoder}"] = dataclasses.replace(base, modality="text", text_encoder=encoder)
        for fusion in fusions:
            configs[f"{fusion} {encoder}"] = dataclasses.replace(base, modality="fused", text_encoder=encoder,
                                                                 fusion=fusion)
    return configs


def run_ablation(frame: pd.DataFrame, configs: dict[str, Any], registry_root: str | os.PathLike[str],
                 out_dir: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None,
                 known_pairs: Sequence[tuple[str, str]] = (), log: Callable[[str], Any] = print,
                 seed: int = 0) -> dict[str, Any]:
    """Train every config (``image`` first) on ``frame``'s train/val rows, evaluate all on its test rows; returns
    ``{"rows": [...], "report": <evaluate's report>}`` and writes ``ablation.md`` beside the report."""
    from training.train import train_model

    if "split" not in frame or not (frame["split"] == "test").any():
        raise EvaluationError("ablation needs train/val/test splits (a curated manifest, or a dataset split with "
                              "`--split`)")
    trained: dict[str, Any] = {}
    for label, config in configs.items():
        log(f"ablation: training {label}")
        trained[label] = train_model(frame, config, registry_root, log=log)
    image = trained["image"]
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    variants = {label: result.version_id for label, result in trained.items() if label != "image"}
    report = evaluate(test, image.version_id, registry_root, out_dir, cache_dir, baseline_ref=image.baseline_id,
                      variants=variants, known_pairs=known_pairs, seed=seed)
    rows = ablation_rows(report)
    Path(out_dir, "ablation.md").write_text(ablation_markdown(rows) + "\n", encoding="utf-8")
    return {"rows": rows, "report": report}


def ablation_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model: the headline metrics, Top-1 interval, McNemar p against the image-only model, and the
    cross-listing Top-1 where it was measured."""
    cross = (report.get("cross_listing") or {}).get("models", {})
    rows = [{"model": "frozen backbone", "modality": "image", **{k: report["baseline"][k] for k in ABLATION_COLUMNS},
             "top1_ci": report["baseline"]["intervals"]["top1"], "mcnemar_p_vs_image": None,
             "cross_listing_top1": (cross.get("baseline") or {}).get("top1")},
            {"model": "image", "modality": "image", **{k: report[k] for k in ABLATION_COLUMNS},
             "top1_ci": report["intervals"]["top1"], "mcnemar_p_vs_image": None,
             "cross_listing_top1": (cross.get("model") or {}).get("top1")}]
    for v in report.get("variants") or []:
        rows.append({"model": v["name"], "modality": v["modality"], **{k: v[k] for k in ABLATION_COLUMNS},
                     "top1_ci": v["intervals"]["top1"], "mcnemar_p_vs_image": (v.get("mcnemar_vs_image") or {}).get("p_value"),
                     "cross_listing_top1": (cross.get(v["name"]) or {}).get("top1")})
    return rows


def ablation_markdown(rows: list[dict[str, Any]]) -> str:
    from petid.tables import markdown_table

    header = ["model", "modality", *ABLATION_COLUMNS, "Top-1 95% CI", "McNemar p vs image", "cross-listing Top-1"]
    body = [[r["model"], r["modality"], *(r[k] for k in ABLATION_COLUMNS),
             f"[{r['top1_ci'][0]:.3f}, {r['top1_ci'][1]:.3f}]" if r["top1_ci"] else None, r["mcnemar_p_vs_image"],
             r["cross_listing_top1"]] for r in rows]
    return markdown_table(header, body, align=["l", "l", *["r"] * (len(header) - 2)])

