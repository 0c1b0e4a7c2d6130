"""``petid train``: train (or reuse) a model version outside Dagster with the same ``train_model`` as the asset;
``petid model-promote``: point the ``production`` alias at a version."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_commands(sub: Any) -> None:
    train = sub.add_parser("train", help="train a re-identification model and print its version id")
    train.add_argument("--dataset", required=True, help="FORMAT:PATH (identity-folders:DIR, csv:FILE, ...) or manifest")
    train.add_argument("--config", help="YAML TrainConfig (preset: demo|recipe plus any field)")
    train.add_argument("--demo", action="store_true", help="start from the CPU-sized demo config")
    train.add_argument("--epochs", type=int)
    train.add_argument("--max-steps", type=int)
    train.add_argument("--image-size", type=int)
    train.add_argument("--registry", help="registry root (default <PETID_HOME>/models)")
    train.add_argument("--val-fraction", type=float, default=0.2, help="val identities when the dataset has no split")
    train.add_argument("--force", action="store_true", help="retrain even when this version is registered")
    train.set_defaults(func=_train)

    promote = sub.add_parser("model-promote", help="point the production alias at a model version")
    promote.add_argument("ref", help="version id, alias or version directory")
    promote.add_argument("--alias", default="production")
    promote.add_argument("--registry")
    promote.set_defaults(func=_promote)


def _registry_root(value: str | None) -> Path:
    from petid.settings import Layout, petid_home

    return Path(value) if value else Layout(petid_home()).models


def identity_split(frame: Any, val_fraction: float = 0.2, seed: int = 0) -> Any:
    """Add an identity-disjoint ``split`` column: the ``round(n · val_fraction)`` identities (at least 2 when there
    are 4 or more) with the smallest seeded hash are ``val``, the rest ``train``; independent of row order."""
    import hashlib

    identities = sorted(set(map(str, frame["identity_id"])),
                        key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    n_val = round(len(identities) * val_fraction)
    if len(identities) >= 4 and val_fraction > 0:
        n_val = max(2, n_val)
    val = set(identities[:n_val])
    frame = frame.copy()
    frame["split"] = ["val" if str(i) in val else "train" for i in frame["identity_id"]]
    return frame


def _train(args: argparse.Namespace) -> int:
    from petid.datasets import load_dataset
    from training.config import TrainConfig
    from training.train import replace_config, train_model

    config = TrainConfig.from_yaml(args.config) if args.config else (TrainConfig.demo() if args.demo else TrainConfig())
    config = replace_config(config, epochs=args.epochs, max_steps=args.max_steps, image_size=args.image_size)
    frame = load_dataset(args.dataset)
    if "split" not in frame:
        frame = identity_split(frame, args.val_fraction, config.seed)
    result = train_model(frame, config, _registry_root(args.registry), force=args.force,
                         log=lambda message: print(message, file=__import__("sys").stderr))
    print(result.version_id)
    return 0


def _promote(args: argparse.Namespace) -> int:
    from training.registry import ModelRegistry

    print(ModelRegistry(_registry_root(args.registry)).promote(args.ref, args.alias))
    return 0
