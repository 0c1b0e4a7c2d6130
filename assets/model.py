"""Model group: train and register a re-identification model, evaluate it beside the frozen baseline, and build
the photo-search index. Training and evaluation code live in ``training`` and ``evaluation``; checkpoints,
reports and indexes are files under the storage root, addressed by model version."""


import dataclasses
import os

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from assets._metadata import markdown_table
from dagster_project.resources import ModelRegistryResource, SampleSourceResource, StorageResource

HEADLINE = ("top1", "top5", "top10", "map", "roc_auc", "eer")


class TrainRunConfig(Config):
    """``preset``: ``recipe`` (the published recipe: 58×2 batches, 10 epochs, 224 px), ``demo`` (CPU-sized), or
    ``auto`` (demo on the sample source, recipe otherwise). ``config_file`` is a YAML TrainConfig that wins."""

    preset: str = os.environ.get("PETID_TRAIN_PRESET", "auto")
    config_file: str | None = None
    epochs: int | None = None
    max_steps: int | None = None
    force: bool = False


def _train_config(run: TrainRunConfig, sample_enabled: bool):
    from training.config import TrainConfig

    if run.config_file:
        config = TrainConfig.from_yaml(run.config_file)
    elif run.preset == "demo" or (run.preset == "auto" and sample_enabled):
        config = TrainConfig.demo()
    elif run.preset in ("recipe", "auto"):
        config = TrainConfig()
    else:
        raise ValueError(f"unknown training preset {run.preset!r}: use recipe, demo or auto")
    overrides = {k: v for k, v in {"epochs": run.epochs, "max_steps": run.max_steps}.items() if v is not None}
    return dataclasses.replace(config, **overrides) if overrides else config


@asset(group_name="model", kinds={"pytorch"}, code_version="1")
def reid_model(
    context: AssetExecutionContext,
    config: TrainRunConfig,
    dataset_splits: pa.Table,
    registry: ModelRegistryResource,
    sample: SampleSourceResource,
) -> MaterializeResult:
    """A versioned identity-embedding model trained on the ``train`` split (validated on ``val``) and registered
    under ``models/<version>`` (version = hash of data manifest, config and code); identical inputs reuse the
    existing version instead of training again."""
    from training.train import train_model

    frame = dataset_splits.filter(pc.is_in(dataset_splits.column("split"), pa.array(["train", "val"]))).to_pandas()
    train_config = _train_config(config, sample.enabled)
    result = train_model(frame, train_config, registry.path, force=config.force, log=context.log.info)
    metrics = {
        k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    return MaterializeResult(
        metadata={
            "version_id": result.version_id,
            "path": MetadataValue.path(str(result.path)),
            "reused": result.reused,
            "train_images": int(pc.sum(pc.equal(dataset_splits.column("split"), "train")).as_py() or 0),
            "device": str((result.metrics or {}).get("device", "cpu")),
            **{k: float(v) for k, v in metrics.items()},
        }
    )


def _latest_version(registry: ModelRegistryResource) -> str:
    from training.registry import ModelRegistry

    return ModelRegistry(registry.path).resolve("latest").name


@asset(group_name="model", kinds={"pytorch", "html"}, code_version="1", deps=["reid_model"])
def evaluation_report(
    context: AssetExecutionContext,
    dataset_splits: pa.Table,
    storage: StorageResource,
    registry: ModelRegistryResource,
) -> MaterializeResult:
    """Identification (Top-1/5/10, mAP) and verification (ROC AUC, EER) on test identities never seen in
    training, with the frozen pretrained backbone evaluated beside it and a McNemar test between them; report
    JSON, Markdown/HTML and plots under ``reports/<version>``."""
    from evaluation.evaluate import evaluate

    version = _latest_version(registry)
    test = dataset_splits.filter(pc.equal(dataset_splits.column("split"), "test")).to_pandas()
    out_dir = storage.layout.reports / version
    report = evaluate(test, version, registry.path, out_dir, storage.layout.cache / "embeddings")
    rows = [
        {"model": name, **{k: (source or {}).get(k) for k in HEADLINE}}
        for name, source in (("trained " + version[:12], report), ("baseline", report.get("baseline")))
    ]
    return MaterializeResult(
        metadata={
            **{k: float(report[k]) for k in HEADLINE if report.get(k) is not None},
            "model": version,
            "n_identities": int(report.get("n_identities", 0)),
            "n_images": int(report.get("n_images", 0)),
            "mcnemar_p": float((report.get("mcnemar") or {}).get("p_value", 1.0)),
            "headline": MetadataValue.md(markdown_table(rows)),
            "report": MetadataValue.path(str(out_dir / "report.html")),
        }
    )


@asset(group_name="model", kinds={"pytorch", "numpy"}, code_version="1", deps=["reid_model"])
def search_index(
    context: AssetExecutionContext,
    identity_manifest: pa.Table,
    image_manifest: pa.Table,
    storage: StorageResource,
    registry: ModelRegistryResource,
) -> MaterializeResult:
    """Gallery embeddings of every curated photo with its animal's metadata (source, species, lost/found, date,
    listing URL), the index behind ``petid search``."""
    from evaluation.search import build_index

    version = _latest_version(registry)
    frame = image_manifest.to_pandas()
    out_dir = storage.layout.index / version
    info = build_index(frame, version, registry.path, out_dir)
    return MaterializeResult(
        metadata={
            "model": version,
            "path": MetadataValue.path(str(out_dir)),
            "photos": int(info.get("n_vectors", len(frame))),
            "identities": int(identity_manifest.num_rows),
        }
    )
