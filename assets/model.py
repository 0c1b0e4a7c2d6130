"""Model group: train and register a re-identification model, gate it against the frozen backbone, evaluate the
model the gate put in production beside that backbone, and build the photo-search index with it.

Lineage is explicit: ``reid_model`` is a one-row table naming the trained version, the frozen baseline's version
and the production version the gate chose; ``evaluation_report`` and ``search_index`` read exactly those ids,
never a registry alias, so a ``petid train`` run in between changes nothing they use. Training and evaluation code
live in ``training`` and ``evaluation``; checkpoints, reports and indexes are files under the storage root.
"""

from enum import Enum
from pathlib import Path

import pyarrow as pa
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    Config,
    Definitions,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from assets._images import plot
from assets._metadata import markdown_table, metric, records_table
from dagster_project.resources import MatchingResource, ModelRegistryResource, StorageResource, TrainingResource

OWNERS = ["team:petid-ml"]

LINEAGE_SCHEMA = pa.schema([
    ("trained_version", pa.string()), ("baseline_version", pa.string()), ("production_version", pa.string()),
    ("promoted", pa.bool_()), ("reused", pa.bool_()), ("reason", pa.string()),
    ("val_top1", pa.float64()), ("val_map", pa.float64()), ("val_eer", pa.float64()),
    ("baseline_val_top1", pa.float64()), ("baseline_val_map", pa.float64()), ("baseline_val_eer", pa.float64()),
])


class Preset(str, Enum):
    """The training presets (``training.config.PRESETS``); an Enum, so the launchpad offers them as choices."""

    auto = "auto"
    small = "small"
    recipe = "recipe"
    demo = "demo"


class TrainRunConfig(Config):
    """How ``reid_model`` trains."""

    preset: Preset | None = Field(
        default=None, description="auto: the published recipe from 1000 training animals on, the small-data winner "
                                  "below; small | recipe | demo force one; unset = the training resource's preset.")
    config_file: str | None = Field(default=None, description="A YAML TrainConfig; it wins over the preset.")
    epochs: int | None = Field(default=None, description="Override the preset's epochs (0: closed-form head only).")
    max_steps: int | None = Field(default=None, description="Cap optimiser steps over the whole run.")
    gate_margin: float | None = Field(default=None, description="Validation mAP the trained model must gain over the "
                                                                 "frozen backbone to be promoted.")
    force: bool = Field(default=False, description="Train again even when this exact version is registered.")


def _train_config(run: TrainRunConfig, training: TrainingResource, n_identities: int):
    """The run's TrainConfig: a config file, else the run's preset, else the deployment's (run > resource)."""
    from training.config import TrainConfig
    from training.train import replace_config

    if run.config_file:
        config = TrainConfig.from_yaml(run.config_file)
    else:
        config = TrainConfig.preset(run.preset.value if run.preset else training.preset, n_identities=n_identities)
    return replace_config(config, epochs=run.epochs, max_steps=run.max_steps, gate_margin=run.gate_margin)


def _lineage(reid_model: pa.Table) -> dict:
    return reid_model.to_pylist()[0]


def share_versions(registry: ModelRegistryResource, *versions: str | None) -> list[str]:
    """Publish registered versions to the deployment's object store (``storage.object_store``), so evaluation,
    search and matching on other machines use the same files; nothing without a store. Returns what was shared."""
    from training.registry import ModelRegistry

    store = registry.storage.objects()
    if store is None:
        return []
    local = ModelRegistry(registry.path)
    return [local.publish(v, store) for v in dict.fromkeys(v for v in versions if v)]


def fetch_versions(registry: ModelRegistryResource, *versions: str | None) -> None:
    """Make versions trained on another machine local (downloaded from the object store and verified); a no-op
    without a store or when they are already here."""
    from training.registry import ModelRegistry

    store = registry.storage.objects()
    if store is not None:
        local = ModelRegistry(registry.path)
        for version in dict.fromkeys(v for v in versions if v):
            local.fetch(version, store)


def _training_frame(dataset_splits: pa.Table, matching: MatchingResource):
    """The ``train``/``val`` photos, the two listings of each known lost/found pair as one animal: a model is never
    taught that two listings of one animal are different animals (the split already keeps them together)."""
    from curation.decisions import apply_identity_merges, connected_components
    from curation.frames import model_frame

    merges = connected_components(matching.known_pairs())
    table = apply_identity_merges(dataset_splits, merges) if merges else dataset_splits
    return model_frame(table, splits=("train", "val"))


VARIANTS_SCHEMA = pa.schema([
    ("variant", pa.string()), ("modality", pa.string()), ("fusion", pa.string()), ("trained_version", pa.string()),
    ("production_version", pa.string()), ("promoted", pa.bool_()), ("reused", pa.bool_()),
    ("val_top1", pa.float64()), ("val_map", pa.float64()), ("baseline_val_top1", pa.float64()),
    ("baseline_val_map", pa.float64()),
])


@asset(group_name="model", kinds={"pytorch", "parquet"}, code_version="2", owners=OWNERS)
def reid_model(
    context: AssetExecutionContext,
    config: TrainRunConfig,
    dataset_splits: pa.Table,
    registry: ModelRegistryResource,
    training: TrainingResource,
    matching: MatchingResource,
) -> MaterializeResult:
    """The model lineage of this run: a versioned identity-embedding model trained on the ``train`` split (animal
    crops where the detector made them), the frozen backbone it started from, and which of the two the promotion
    gate put in ``production`` (the trained one only if it beats the frozen backbone on the ``val`` animals).
    Identical inputs reuse the registered version instead of training again."""
    from training.train import train_model

    frame = _training_frame(dataset_splits, matching)
    n_train = int(frame.loc[frame["split"] == "train", "identity_id"].nunique())
    train_config = _train_config(config, training, n_train)
    child_metadata: dict = {}
    if training.launcher == "subprocess":  # the same train_model in its own process, through Dagster Pipes
        from dagster_project.pipes_training import train_in_subprocess

        result, child_metadata = train_in_subprocess(context, frame, train_config, registry.path,
                                                     registry.storage.layout.root, training.entry_prefix(),
                                                     force=config.force)
    else:
        result = train_model(frame, train_config, registry.path, force=config.force, log=context.log.info)
    gate = result.gate
    (context.log.info if result.promoted else context.log.warning)(f"promotion gate: {gate.get('reason')}")
    shared = share_versions(registry, result.version_id, result.baseline_id)
    candidate, baseline = gate.get("candidate", {}), gate.get("baseline", {})
    row = {"trained_version": result.version_id, "baseline_version": result.baseline_id,
           "production_version": result.production_id, "promoted": result.promoted, "reused": result.reused,
           "reason": gate.get("reason"), **{f"val_{k}": candidate.get(k) for k in ("top1", "map", "eer")},
           **{f"baseline_val_{k}": baseline.get(k) for k in ("top1", "map", "eer")}}
    comparison = [{"model": name, **{k: metric((values or {}).get(k)) for k in ("top1", "map", "eer")}}
                  for name, values in (("trained " + result.version_id, candidate), ("frozen backbone", baseline))]
    return MaterializeResult(
        value=pa.Table.from_pylist([row], schema=LINEAGE_SCHEMA),
        metadata={
            "trained_version": result.version_id,
            "production_version": str(result.production_id),
            "baseline_version": str(result.baseline_id),
            "promoted": result.promoted,
            "gate": gate.get("reason", ""),
            "validation": MetadataValue.md(markdown_table(comparison, ["model", "top1", "map", "eer"])),
            "training_curves": plot("Training curves", Path(result.path) / "curves.png"),
            "path": MetadataValue.path(str(result.path)),
            "reused": result.reused,
            "train_images": int((frame["split"] == "train").sum()),
            "train_identities": n_train,
            "crops_used": int((frame["path"] != frame["photo_path"]).sum()),
            "device": str((result.metrics or {}).get("device", "cpu")),
            "shared": ", ".join(shared) or "no object store",
            **child_metadata,
        },
    )


@asset(group_name="model", kinds={"pytorch", "parquet"}, code_version="1", owners=OWNERS)
def listing_models(
    context: AssetExecutionContext,
    config: TrainRunConfig,
    dataset_splits: pa.Table,
    registry: ModelRegistryResource,
    training: TrainingResource,
    matching: MatchingResource,
) -> MaterializeResult:
    """The listing models that read text, one row each: the training resource's ``variants`` (text-only, and photo
    + text fused as the published study does), trained with the image model's recipe on the same splits and
    gated the same way against the frozen backbone, each under its own aliases (``production-fused-gated``...), so
    none of them moves the image model's ``production``. Empty when no variant is configured."""
    from training.train import parse_variant, replace_config, train_model, variant_name

    frame = _training_frame(dataset_splits, matching)
    n_train = int(frame.loc[frame["split"] == "train", "identity_id"].nunique())
    base = _train_config(config, training, n_train)
    rows = []
    for spec in training.variants:
        variant_config = replace_config(base, **parse_variant(spec))
        name = variant_name(variant_config)
        context.log.info(f"training the {name} model")
        result = train_model(frame, variant_config, registry.path, force=config.force, log=context.log.info)
        candidate, baseline = result.gate.get("candidate", {}), result.gate.get("baseline", {})
        rows.append({"variant": name, "modality": variant_config.modality,
                     "fusion": variant_config.fusion if variant_config.modality == "fused" else None,
                     "trained_version": result.version_id, "production_version": result.production_id,
                     "promoted": result.promoted, "reused": result.reused,
                     "val_top1": candidate.get("top1"), "val_map": candidate.get("map"),
                     "baseline_val_top1": baseline.get("top1"), "baseline_val_map": baseline.get("map")})
    table = pa.Table.from_pylist(rows, schema=VARIANTS_SCHEMA)
    shared = share_versions(registry, *(r["trained_version"] for r in rows))
    return MaterializeResult(
        value=table,
        metadata={
            "variants": ", ".join(r["variant"] for r in rows) or "none",
            "shared": ", ".join(shared) or "no object store",
            "validation": MetadataValue.md(markdown_table(
                [{"variant": r["variant"], "version": r["trained_version"], "promoted": r["promoted"],
                  **{k: metric(r[k]) for k in ("val_top1", "val_map", "baseline_val_top1", "baseline_val_map")}}
                 for r in rows],
                ["variant", "version", "promoted", "val_top1", "val_map", "baseline_val_top1", "baseline_val_map"])),
        },
    )


@asset_check(asset=reid_model, blocking=True,
             description="Production is the trained version only if the gate's record shows it beat the frozen "
                         "backbone on the validation animals by the margin, with no worse Top-1/EER; otherwise it "
                         "is the frozen backbone. Blocks evaluation and search when violated.")
def production_beats_frozen_backbone(context: AssetCheckExecutionContext, reid_model: pa.Table,
                                     registry: ModelRegistryResource) -> AssetCheckResult:
    from training.gate import read_gate
    from training.registry import ModelRegistry

    row = _lineage(reid_model)
    gate = read_gate(ModelRegistry(registry.path), row["trained_version"])
    problems = []
    if gate is None:
        problems.append(f"no gate record for {row['trained_version']}")
    else:
        expected = row["trained_version"] if gate.get("promoted") else gate.get("baseline_version")
        if row["production_version"] != expected:
            problems.append(f"production is {row['production_version']}, the gate chose {expected}")
        gains = gate.get("gains") or {}
        if gate.get("promoted") and not (gains.get("map", -1) > max(0.0, gate.get("margin", 0.0))
                                         and gains.get("top1", -1) >= 0 and gains.get("eer", -1) >= 0):
            problems.append(f"promoted without beating the frozen backbone: gains {gains}")
        low = gate.get("map_gain_lower_bound")
        if gate.get("promoted") and low is not None and low <= gate.get("margin", 0.0):
            problems.append(f"promoted on an uncertain gain: mAP gain 95% lower bound {low:+.3f}")
    return AssetCheckResult(
        passed=not problems, severity=AssetCheckSeverity.ERROR,
        metadata={"production_version": str(row["production_version"]), "promoted": bool(row["promoted"]),
                  "problems": "; ".join(problems) or "none", "gate": str((gate or {}).get("reason", ""))},
    )


def _interval_text(bounds) -> str:
    return f"[{bounds[0]:.3f}, {bounds[1]:.3f}]" if bounds else "—"


@asset(group_name="model", kinds={"pytorch", "html"}, code_version="3", owners=OWNERS)
def evaluation_report(
    context: AssetExecutionContext,
    reid_model: pa.Table,
    listing_models: pa.Table,
    dataset_splits: pa.Table,
    image_manifest: pa.Table,
    match_decisions: pa.Table,
    storage: StorageResource,
    registry: ModelRegistryResource,
    matching: MatchingResource,
) -> MaterializeResult:
    """Identification (Top-1/5/10, mAP) and verification (ROC AUC, EER) with 95 % intervals on test animals never
    seen in training, for the production model beside the frozen backbone (and the trained candidate when the gate
    kept it out), with a McNemar test, and the listing pairs reviewers rejected as hard negatives; the text-only
    and fused ``listing_models`` are measured on the same queries and pairs, with McNemar between the best fused
    model and the image-only one — also across the two listings of each known lost/found pair among the test
    animals, where no listing text is shared. Report JSON, Markdown/HTML, plots and the verification pairs under
    ``reports/<trained version>``; the plots are shown here, the report itself is linked."""
    from curation.decisions import hard_negatives
    from curation.frames import by_listing, model_frame
    from evaluation.evaluate import HEADLINE, evaluate
    from evaluation.report import FIGURES

    lineage = _lineage(reid_model)
    production, baseline = lineage["production_version"], lineage["baseline_version"]
    test = model_frame(dataset_splits, splits=("test",))
    out_dir = storage.layout.reports / lineage["trained_version"]
    negatives = hard_negatives(match_decisions)
    variants = {row["variant"]: row["trained_version"] for row in listing_models.to_pylist()}
    fetch_versions(registry, production, baseline, lineage["trained_version"], *variants.values())
    report = evaluate(test, production, registry.path, out_dir, storage.layout.cache / "embeddings",
                      baseline_ref=baseline, candidate_ref=lineage["trained_version"], hard_negatives=negatives,
                      listing_photos=by_listing(model_frame(image_manifest)) if negatives else None,
                      variants=variants, known_pairs=matching.known_pairs())
    store = storage.objects()
    if store is not None:  # the report folder, for readers without this machine's disk
        store.put_tree(out_dir, f"reports/{lineage['trained_version']}", overwrite=True)
    entries = [("production " + production, report), ("frozen backbone", report.get("baseline") or {})]
    if report.get("candidate"):
        entries.append(("candidate " + lineage["trained_version"], report["candidate"]))
    entries += [(f"{v['name']} {v['model']}", v) for v in report.get("variants") or []]
    fusion = report.get("fusion_vs_image") or {}
    cross = report.get("cross_listing") or {}
    rows = [{"model": name, **{k: metric(source.get(k)) for k in HEADLINE},
             "top1 95% CI": _interval_text((source.get("intervals") or {}).get("top1")),
             "eer 95% CI": _interval_text((source.get("intervals") or {}).get("eer"))} for name, source in entries]
    return MaterializeResult(
        metadata={
            **{k: metric(float(report[k])) for k in HEADLINE if report.get(k) is not None},
            "model": production,
            "trained_version": lineage["trained_version"],
            "baseline_version": baseline,
            "promoted": bool(lineage["promoted"]),
            "n_identities": int(report.get("n_identities", 0)),
            "n_images": int(report.get("n_images", 0)),
            "mcnemar_p": metric(float((report.get("mcnemar") or {}).get("p_value", 1.0))),
            **({"fused_top1_gain": metric(fusion["top1_gain"]),
                "fused_vs_image_mcnemar_p": metric(float(fusion["mcnemar"]["p_value"]))} if fusion else {}),
            **({"cross_listing_queries": int(cross["n_queries"]),
                "cross_listing_fused_top1_gain": metric(cross["fusion_vs_image"]["top1_gain"]),
                "cross_listing_mcnemar_p": metric(float(cross["fusion_vs_image"]["mcnemar"]["p_value"]))}
               if cross.get("fusion_vs_image") else {}),
            "hard_negatives": len(report.get("hard_negatives") or []),
            "headline": records_table(rows),
            "report": MetadataValue.path(str(out_dir / "report.html")),
            "report_url": MetadataValue.url((out_dir / "report.html").absolute().as_uri()),
            "roc": plot("Verification ROC", out_dir / FIGURES["roc"]),
            "score_histograms": plot("Genuine / impostor scores", out_dir / FIGURES["scores"], max_width=800),
            "worst_false_matches": plot("Worst false matches: query | wrong match", out_dir / FIGURES["worst"],
                                        fmt="JPEG"),
            "pairs": MetadataValue.path(str(out_dir / "pairs.csv")),
        },
    )


@asset(group_name="model", kinds={"pytorch", "numpy"}, code_version="3", owners=OWNERS)
def search_index(
    context: AssetExecutionContext,
    reid_model: pa.Table,
    identity_manifest: pa.Table,
    image_manifest: pa.Table,
    pet911_listings: pa.Table,
    storage: StorageResource,
    registry: ModelRegistryResource,
) -> MaterializeResult:
    """Gallery embeddings of every curated photo (its animal crop where there is one) by the production model,
    with its animal's metadata (source, species, lost/found, date, listing URL, and the listing's coordinates and
    city where it has them): the index behind ``petid search`` and the vectors ``match_candidates`` ranks with.
    Embeddings are cached by content, so a rebuild embeds only new photos."""
    from curation.frames import model_frame
    from evaluation.search import build_index
    from scrapers.pet911.crawl import listing_places

    version = _lineage(reid_model)["production_version"]
    fetch_versions(registry, version)
    frame = model_frame(image_manifest)
    out_dir = storage.layout.index / version
    info = build_index(frame, version, registry.path, out_dir, cache_dir=storage.layout.cache / "embeddings",
                       places=listing_places(pet911_listings).to_pandas())
    return MaterializeResult(
        metadata={
            "model": version,
            "path": MetadataValue.path(str(out_dir)),
            "photos": int(info.get("n_vectors", len(frame))),
            "identities": int(identity_manifest.num_rows),
            "located": int(info.get("n_located", 0)),
        },
    )


MODEL_CHECKS = [production_beats_frozen_backbone]


defs = Definitions(assets=[reid_model, listing_models, evaluation_report, search_index], asset_checks=MODEL_CHECKS)
