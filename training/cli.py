"""``petid train``: train (or reuse) a model version outside Dagster with the same ``train_model`` as the asset;
``petid model-promote``: point the ``production`` alias at a version."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.config import PRESETS


def add_commands(sub: Any) -> None:
    train = sub.add_parser("train", help="train a re-identification model and print its version id")
    train.add_argument("--dataset", required=True, help="FORMAT:PATH (identity-folders:DIR, csv:FILE, ...) or manifest")
    train.add_argument("--config", help="YAML TrainConfig (preset: small|recipe|demo plus any field)")
    train.add_argument("--preset", choices=PRESETS, default="auto",
                       help="auto (default): the published recipe from 1000 training animals on, the small-data "
                            "winner below; small | recipe | demo")
    train.add_argument("--demo", action="store_true", help="same as --preset demo")
    train.add_argument("--epochs", type=int)
    train.add_argument("--max-steps", type=int)
    train.add_argument("--image-size", type=int)
    train.add_argument("--registry", help="registry root (default <PETID_HOME>/models)")
    train.add_argument("--val-fraction", type=float, default=0.2, help="val identities when the dataset has no split")
    train.add_argument("--force", action="store_true", help="retrain even when this version is registered")
    train.add_argument("--cv", type=int, metavar="K",
                       help="instead of one model: K-fold identity-disjoint cross-validation against the frozen "
                            "backbone (prints a Markdown table; --json for the rows)")
    train.add_argument("--json", action="store_true", help="with --cv: print the rows and summary as JSON")
    train.set_defaults(func=_train)

    promote = sub.add_parser("model-promote", help="point the production alias at a model version")
    promote.add_argument("ref", help="version id, alias or version directory")
    promote.add_argument("--alias", default="production")
    promote.add_argument("--registry")
    promote.set_defaults(func=_promote)


def _registry_root(value: str | None) -> Path:
    from petid.settings import Layout, petid_home

    return Path(value) if value else Layout(petid_home()).models


def _train(args: argparse.Namespace) -> int:
    import sys

    from curation.frames import load_dataset
    from training.config import TrainConfig
    from training.cv import identity_split
    from training.train import replace_config, train_model

    frame = load_dataset(args.dataset)
    if "split" not in frame:
        frame = identity_split(frame, args.val_fraction)
    n_train = int(frame.loc[frame["split"] == "train", "identity_id"].nunique())
    preset = "demo" if args.demo else args.preset
    config = TrainConfig.from_yaml(args.config) if args.config else TrainConfig.preset(preset, n_identities=n_train)
    config = replace_config(config, epochs=args.epochs, max_steps=args.max_steps, image_size=args.image_size)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    if args.cv:
        return _cross_validate(args, frame, config, log)
    result = train_model(frame, config, _registry_root(args.registry), force=args.force, log=log)
    print(f"{'reused' if result.reused else 'registered'} {result.version_id}; production = {result.production_id} "
          f"({'promoted' if result.promoted else 'frozen backbone kept'})", file=sys.stderr)
    print(result.version_id)
    return 0


def _cross_validate(args: argparse.Namespace, frame: Any, config: Any, log: Any) -> int:
    import json

    from training.cv import cross_validate, markdown_summary, with_phash

    frame = with_phash(frame.drop(columns="split"))
    result = cross_validate(frame, {"config": config}, _registry_root(args.registry).parent / "cv", folds=args.cv,
                            val_fraction=args.val_fraction, log=log)
    print(json.dumps(result, indent=1) if args.json else markdown_summary(result["summary"]))
    return 0


def _promote(args: argparse.Namespace) -> int:
    from training.registry import ModelRegistry

    print(ModelRegistry(_registry_root(args.registry)).promote(args.ref, args.alias))
    return 0
