"""Identity-disjoint cross-validation of training settings against the frozen backbone.

Each fold's animals are never seen by training; the rest is split again into train and validation animals (the
gate's), every setting trains through the ordinary ``train_model`` (so the promotion gate runs too), and the fold's
test animals are scored with ``evaluation.evaluate.score_embeddings`` — the test report's own protocol — for the
trained model, the model the gate put in production, and the frozen backbone. ``petid train --cv K`` and
``bench/cross_validate.py`` print the summary: mean ± standard deviation over folds, and in how many folds the
trained model beat the frozen backbone on both Top-1 and EER.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from curation.splits import unit_hash
from training.config import TrainConfig
from training.train import TrainingDataError

REPORTED = ("top1", "top5", "map", "roc_auc", "eer")


def _ranked(identities: Any, seed: int) -> list[str]:
    return sorted(set(map(str, identities)), key=lambda i: (unit_hash(i, seed), i))


def identity_split(frame: pd.DataFrame, val_fraction: float = 0.2, seed: int = 0) -> pd.DataFrame:
    """Add an identity-disjoint ``split`` column: the ``round(n · val_fraction)`` identities (at least 2 when there
    are 4 or more) with the smallest seeded hash are ``val``, the rest ``train``; independent of row order."""
    identities = _ranked(frame["identity_id"], seed)
    n_val = round(len(identities) * val_fraction)
    if len(identities) >= 4 and val_fraction > 0:
        n_val = max(2, n_val)
    val = set(identities[:n_val])
    return frame.assign(split=["val" if str(i) in val else "train" for i in frame["identity_id"]])


def identity_folds(identities: Any, k: int, seed: int = 0) -> list[list[str]]:
    """``k`` disjoint groups of identities of near-equal size (hash-ranked, dealt round robin)."""
    ranked = _ranked(identities, seed)
    if not 2 <= k <= len(ranked):
        raise TrainingDataError(f"--cv {k}: need 2 ≤ K ≤ the number of identities ({len(ranked)})")
    return [ranked[i::k] for i in range(k)]


def cross_validate(frame: pd.DataFrame, settings: Mapping[str, TrainConfig], work_dir: str | os.PathLike[str],
                   folds: int = 5, seed: int = 0, val_fraction: float = 0.2,
                   log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Per-fold rows and a per-setting summary (see the module doc). ``frame``: ``path``, ``identity_id``, optional
    ``phash`` (near-duplicate exclusion, as in the report). Versions and embedding caches live under ``work_dir``
    and are reused by a rerun."""
    from evaluation.embeddings import embed_frame
    from evaluation.evaluate import score_embeddings
    from training.embedder import load_embedder
    from training.train import train_model

    work = Path(work_dir)
    frame = frame.reset_index(drop=True).assign(identity_id=lambda f: f["identity_id"].astype(str))
    rows: list[dict[str, Any]] = []
    for fold, test_ids in enumerate(identity_folds(frame["identity_id"], folds, seed)):
        is_test = frame["identity_id"].isin(test_ids)
        test = frame[is_test].reset_index(drop=True)
        rest = identity_split(frame[~is_test].reset_index(drop=True), val_fraction, seed)
        for name, config in settings.items():
            log(f"fold {fold + 1}/{folds} ({len(test_ids)} test animals): {name}")
            result = train_model(rest, config, work / "models", log=lambda m: None)
            refs = {"trained": result.version_id, "production": result.production_id, "frozen": result.baseline_id}
            for model, ref in refs.items():
                embedder = load_embedder(str(ref), work / "models")
                vectors = embed_frame(test, embedder, work / "embeddings")
                scores = score_embeddings(test, vectors, seed=seed)
                rows.append({"fold": fold, "setting": name, "model": model, "version": ref,
                             "promoted": result.promoted, **{k: scores[k] for k in REPORTED}})
            row = {r["model"]: r for r in rows[-3:]}
            log(f"  trained top1 {row['trained']['top1']:.3f} map {row['trained']['map']:.3f} "
                f"eer {row['trained']['eer']:.3f} | frozen top1 {row['frozen']['top1']:.3f} "
                f"map {row['frozen']['map']:.3f} eer {row['frozen']['eer']:.3f} | promoted {result.promoted}")
    return {"folds": folds, "seed": seed, "identities": int(frame["identity_id"].nunique()),
            "photos": len(frame), "rows": rows, "summary": summarise(rows)}


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std (population) over folds per (setting, model), and fold wins of trained over frozen."""
    table = pd.DataFrame(rows)
    out = []
    for (setting, model), group in table.groupby(["setting", "model"], sort=False):
        entry: dict[str, Any] = {"setting": setting, "model": model, "folds": len(group)}
        for key in REPORTED:
            entry[key] = float(group[key].mean())
            entry[f"{key}_std"] = float(group[key].std(ddof=0))
        if model == "trained":
            frozen = table[(table.setting == setting) & (table.model == "frozen")].set_index("fold")
            mine = group.set_index("fold")
            both = (mine["top1"] > frozen["top1"]) & (mine["eer"] < frozen["eer"])
            entry["folds_beating_frozen"] = int(both.sum())
            entry["folds_promoted"] = int(mine["promoted"].sum())
        out.append(entry)
    return out


def markdown_summary(summary: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table (mean ± std over folds)."""
    from petid.tables import markdown_table

    header = ["setting", "model", *REPORTED, "trained beats frozen (Top-1 & EER)", "promoted"]
    rows = [[e["setting"], e["model"], *(f"{e[k]:.3f} ± {e[k + '_std']:.3f}" for k in REPORTED),
             f"{e['folds_beating_frozen']}/{e['folds']}" if "folds_beating_frozen" in e else "",
             f"{e['folds_promoted']}/{e['folds']}" if "folds_promoted" in e else ""] for e in summary]
    return markdown_table(header, rows)


def with_phash(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``phash`` column (hashing the photos when it has none), so near-duplicate bursts are
    excluded from identification exactly as in the report."""
    if "phash" in frame and frame["phash"].notna().all():
        return frame
    from curation.hashing import hash_images

    hashes = hash_images(list(frame["path"].astype(str)), workers=1).to_pandas()
    by_path = dict(zip(hashes["path"].astype(str), hashes["phash"]))
    return frame.assign(phash=[by_path.get(str(p)) for p in frame["path"]])


