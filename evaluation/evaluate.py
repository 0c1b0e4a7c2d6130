"""Evaluate a model beside the frozen baseline: identification, verification, McNemar, per-group breakdowns.

``evaluate`` is what the ``evaluation_report`` asset and ``petid evaluate`` call. Every identity in ``frame`` is
treated as unseen (the caller passes the ``test`` split of a manifest, or a dataset the model never saw).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluation.embeddings import PhotoEmbedder, embed_frame, load_photo_embedder, photo_frame
from evaluation.identification import IdentificationResult, identify
from evaluation.mcnemar import mcnemar
from evaluation.verification import Pairs, VerificationResult, make_pairs, verify
from petid.errors import UserError

EmbedderFactory = Callable[[str, Any], PhotoEmbedder]
HEADLINE = ("top1", "top5", "top10", "map", "roc_auc", "eer")  # the numbers every report, table and gate quotes


class EvaluationError(UserError, ValueError):
    """The evaluation frame cannot be evaluated (missing columns, too few identities or photos)."""


@dataclass
class ModelEvaluation:
    """Everything measured for one model on one frame."""

    model: str
    identification: IdentificationResult
    verification: VerificationResult

    def metrics(self) -> dict[str, float | int]:
        ident = self.identification
        return {
            "top1": ident.top1,
            "top5": ident.top5,
            "top10": ident.top10,
            "map": ident.map,
            **self.verification.metrics(),
            "n_queries": ident.n_queries,
        }


def prepare_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with ``path``, ``identity_id``, ``source``, ``species`` (``unknown`` where missing), index reset."""
    frame = photo_frame(frame, EvaluationError, "evaluation")
    for column in ("source", "species"):
        values = frame[column] if column in frame else pd.Series([None] * len(frame), index=frame.index)
        frame[column] = values.where(values.notna(), "unknown").astype(str)
    frame["path"] = frame["path"].astype(str)
    frame = frame.reset_index(drop=True)
    counts = frame["identity_id"].value_counts()
    if len(counts) < 2 or int((counts >= 2).sum()) < 1:
        raise EvaluationError(
            f"need at least 2 identities and one with 2+ photos to evaluate; got {len(counts)} identities, "
            f"{len(frame)} photos"
        )
    return frame


def evaluate_embeddings(
    frame: pd.DataFrame, embeddings: np.ndarray, model: str, pairs: Pairs, phash_threshold: int = 8
) -> ModelEvaluation:
    """Identification and verification of one model's embeddings of ``frame`` (already prepared)."""
    ident = identify(embeddings, frame["identity_id"].to_numpy(), phashes=_phashes(frame),
                     phash_threshold=phash_threshold)
    return ModelEvaluation(model=model, identification=ident, verification=verify(embeddings, pairs))


def _phashes(frame: pd.DataFrame) -> list | None:
    phashes = frame["phash"].tolist() if "phash" in frame else None
    if phashes is not None and any(v is None or (isinstance(v, float) and math.isnan(v)) for v in phashes):
        phashes = None  # a partial hash column cannot exclude duplicates reliably; fall back to excluding self
    return phashes


def score_embeddings(frame: pd.DataFrame, embeddings: np.ndarray, seed: int = 0,
                     phash_threshold: int = 8) -> dict[str, float]:
    """The headline metrics of one model's embeddings of ``frame`` under the report's protocol: training-time
    validation, the promotion gate and cross-validation call this, so their numbers compare with the report's."""
    frame = prepare_frame(frame)
    pairs = make_pairs(frame["identity_id"].to_numpy(), seed=seed)
    if pairs.n_pos == 0:
        raise EvaluationError("no verification pairs could be formed (every identity has a single photo?)")
    metrics = evaluate_embeddings(frame, embeddings, "model", pairs, phash_threshold).metrics()
    return {k: float(metrics[k]) for k in HEADLINE}


def breakdown(frame: pd.DataFrame, column: str, model: ModelEvaluation, baseline: ModelEvaluation) -> dict:
    """Per-group (``source`` or ``species`` of the query) identification metrics, model and baseline."""
    ident, base = model.identification, baseline.identification
    groups = frame[column].to_numpy()[ident.query_index]
    out: dict[str, dict[str, float | int]] = {}
    for group in sorted(set(groups.tolist())):
        sel = groups == group
        out[group] = {
            "n_queries": int(sel.sum()),
            "n_identities": int(frame.loc[ident.query_index[sel], "identity_id"].nunique()),
            "top1": float(np.mean(ident.ranks[sel] <= 1)),
            "top5": float(np.mean(ident.ranks[sel] <= 5)),
            "top10": float(np.mean(ident.ranks[sel] <= 10)),
            "map": float(np.mean(ident.average_precision[sel])),
            "baseline_top1": float(np.mean(base.ranks[sel] <= 1)),
            "baseline_map": float(np.mean(base.average_precision[sel])),
        }
    return out


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def evaluate(
    frame: pd.DataFrame,
    model_ref: str,
    registry_root: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None,
    baseline_ref: str = "baseline",
    embedder_factory: EmbedderFactory | None = None,
    batch_size: int = 32,
    seed: int = 0,
    phash_threshold: int = 8,
    candidate_ref: str | None = None,
    n_boot: int = 1000,
    hard_negatives: Sequence[tuple[str, str]] = (),
    listing_photos: pd.DataFrame | None = None,
    variants: Mapping[str, str] | None = None,
    known_pairs: Sequence[tuple[str, str]] = (),
) -> dict:
    """Evaluate ``model_ref`` and ``baseline_ref`` on ``frame``; write report.json/.md/.html, plots and the
    verification pairs (``pairs.csv``, with every model's score) to ``out_dir``.

    ``frame``: ``path``, ``identity_id``, optional ``source``, ``species``, ``phash``. Returns the report dict:
    headline metrics of the model with ``intervals`` (95 %, bootstrap over identities), ``baseline`` (same keys),
    ``delta_intervals`` (model − baseline, paired), ``mcnemar`` (top-1 hits, model = A vs baseline = B),
    ``per_source``/``per_species``, ``queries`` (per-query ``path``, ``identity``, ``hit1``, ``rank``) and, with
    ``candidate_ref`` (a trained version the gate kept out of production), ``candidate`` measured the same way.
    ``hard_negatives``: listing pairs reviewers said are different animals, scored listing to listing by every
    model on their photos in ``listing_photos`` (``identity_id``, ``path``; any split) — ``hard_negatives`` in the
    report: how high each model still scores them. ``variants`` (label → model ref): more models measured on the
    same queries and pairs, e.g. text-only and fused ones — ``variants`` in the report, each with intervals and
    McNemar against the baseline, and ``fusion_vs_image``: McNemar between the best fused variant and the
    image-only trained model (the candidate, else the model). ``known_pairs``: (lost, found) listings known to
    be one animal; where both are in ``frame``, ``cross_listing`` measures every model with the animal as the
    identity and a query's own listing left out of its gallery (a finder's photo and description against the
    owner's listing, never the listing's own shared text), with McNemar between the best fused and image-only.
    """
    from evaluation.intervals import bootstrap_intervals
    from evaluation.report import write_report

    factory = embedder_factory or load_photo_embedder
    frame = prepare_frame(frame)
    pairs = make_pairs(frame["identity_id"].to_numpy(), seed=seed)
    if pairs.n_pos == 0:
        raise EvaluationError("no verification pairs could be formed (every identity has a single photo?)")
    refs = {"model": model_ref, "baseline": baseline_ref}
    if candidate_ref is not None and candidate_ref not in (model_ref, baseline_ref):
        refs["candidate"] = candidate_ref
    for label, ref in (variants or {}).items():
        refs[f"variant:{label}"] = ref
    embedders: dict[str, PhotoEmbedder] = {}
    evaluations: dict[str, ModelEvaluation] = {}
    vectors: dict[str, np.ndarray] = {}
    for name, ref in refs.items():
        same = next((embedders[n] for n, r in refs.items() if n in embedders and r == ref), None)
        embedders[name] = same or factory(ref, registry_root)
        vectors[name] = embed_frame(frame, embedders[name], cache_dir, batch_size=batch_size)
        evaluations[name] = evaluate_embeddings(frame, vectors[name], embedders[name].model_id, pairs,
                                                phash_threshold)
    model, baseline = evaluations["model"], evaluations["baseline"]
    ident = model.identification
    if any(not np.array_equal(ident.query_index, e.identification.query_index) for e in evaluations.values()):
        raise EvaluationError("models were evaluated on different queries")  # protocol invariant
    intervals = bootstrap_intervals(frame["identity_id"].to_numpy(), pairs, evaluations, n_boot=n_boot, seed=seed)
    report: dict[str, Any] = {
        **model.metrics(),
        "n_identities": int(frame["identity_id"].nunique()),
        "n_images": int(len(frame)),
        "model": model.model,
        "model_ref": str(model_ref),
        "intervals": intervals["model"],
        "baseline": {**baseline.metrics(), "model": baseline.model, "model_ref": str(baseline_ref),
                     "intervals": intervals["baseline"]},
        "delta_intervals": intervals["delta:baseline"],
        "interval_method": {k: intervals[k] for k in ("level", "n_boot", "unit")},
        "mcnemar": mcnemar(ident.hits(1), baseline.identification.hits(1)),
        "per_source": breakdown(frame, "source", model, baseline),
        "per_species": breakdown(frame, "species", model, baseline),
        "protocol": {
            "seed": seed,
            "phash_threshold": phash_threshold if "phash" in frame else None,
            "max_pairs_per_image": 5,
            "max_pos_per_identity": 15,
        },
        "queries": [
            {
                "path": frame.at[int(q), "path"],
                "identity": frame.at[int(q), "identity_id"],
                "hit1": bool(r <= 1),
                "rank": int(r),
                "baseline_hit1": bool(br <= 1),
            }
            for q, r, br in zip(ident.query_index, ident.ranks, baseline.identification.ranks)
        ],
    }
    if "candidate" in evaluations:
        candidate = evaluations["candidate"]
        report["candidate"] = {**candidate.metrics(), "model": candidate.model, "model_ref": str(candidate_ref),
                               "intervals": intervals["candidate"],
                               "mcnemar_vs_baseline": mcnemar(candidate.identification.hits(1),
                                                              baseline.identification.hits(1))}
    report.update(_variant_sections(evaluations, embedders, refs, intervals))
    for entry in report.get("variants", []):  # the finder's photo alone against listings that carry text
        name = f"variant:{entry['name']}"
        if entry["modality"] == "fused":
            entry["photo_only_query"] = _photo_only_query(frame, embedders[name], vectors[name], evaluations,
                                                          phash_threshold)
    cross = cross_listing(frame, known_pairs, vectors, embedders, phash_threshold)
    if cross:
        report["cross_listing"] = cross
    if hard_negatives:
        report["hard_negatives"] = score_hard_negatives(hard_negatives, listing_photos, embedders, cache_dir,
                                                        batch_size)
    report = _clean(report)
    write_report(report, Path(out_dir), frame, model, baseline)
    write_pairs(Path(out_dir) / "pairs.csv", frame, pairs, evaluations)
    return report


def modality(embedder: Any) -> str:
    """``image``, ``text`` or ``fused``: what an embedder reads (``training.embedder.Embedder.modality``)."""
    return str(getattr(embedder, "modality", "image"))


def _image_reference(evaluations: Mapping[str, Any]) -> str:
    """The image-only trained model of an evaluation: the candidate when the gate kept it out, else the model."""
    return "candidate" if "candidate" in evaluations else "model"


def cross_listing(frame: pd.DataFrame, known_pairs: Sequence[tuple[str, str]], vectors: Mapping[str, np.ndarray],
                  embedders: Mapping[str, PhotoEmbedder], phash_threshold: int = 8) -> dict[str, Any] | None:
    """Identification across listings of one animal (see ``evaluate``); None without a known pair in ``frame``."""
    from curation.decisions import connected_components

    listings = frame["identity_id"].astype(str).to_numpy()
    present = set(listings)
    pairs = [(a, b) for a, b in known_pairs if a in present and b in present and a != b]
    if not pairs:
        return None
    animal_of = connected_components(pairs)
    animals = np.array([animal_of.get(x, x) for x in listings], dtype=object)
    models: dict[str, Any] = {}
    results: dict[str, IdentificationResult] = {}
    for name, matrix in vectors.items():
        results[name] = identify(matrix, animals, phashes=_phashes(frame), phash_threshold=phash_threshold,
                                 exclude_groups=listings)
        ident = results[name]
        models[name.partition(":")[2] or name] = {
            "model": embedders[name].model_id, "modality": modality(embedders[name]), "top1": ident.top1,
            "top5": ident.top5, "map": ident.map, "n_queries": ident.n_queries}
    out: dict[str, Any] = {"n_pairs": len(pairs), "n_queries": results["model"].n_queries, "models": models}
    fused = [n for n in vectors if modality(embedders[n]) == "fused"]
    image = _image_reference(vectors)
    if fused and modality(embedders[image]) == "image" and results[image].n_queries:
        best = max(fused, key=lambda n: (results[n].top1, results[n].map))
        a, b = results[best], results[image]
        out["fusion_vs_image"] = {"fused": best.partition(":")[2], "top1_fused": a.top1, "top1_image": b.top1,
                                  "top1_gain": a.top1 - b.top1, "mcnemar": mcnemar(a.hits(1), b.hits(1))}
    return out


def other_listings_identification(frame: pd.DataFrame, embeddings: np.ndarray,
                                  phash_threshold: int = 8) -> IdentificationResult | None:
    """Identification where a query never sees its own listing's photos, so only another listing of its animal
    can answer: ``frame`` holds known lost/found pairs merged into one identity, each row's own listing in
    ``merged_from`` (``curation.decisions.apply_identity_merges``). None when no row was merged. The promotion
    gate measures fused models this way on validation, as the report's ``cross_listing`` does on test."""
    if "merged_from" not in frame or not frame["merged_from"].notna().any():
        return None
    listings = frame["merged_from"].where(frame["merged_from"].notna(), frame["identity_id"]).astype(str).to_numpy()
    return identify(embeddings, frame["identity_id"].to_numpy(), phashes=_phashes(frame),
                    phash_threshold=phash_threshold, exclude_groups=listings)


def photo_only_identification(frame: pd.DataFrame, embedder: PhotoEmbedder, gallery: np.ndarray,
                              phash_threshold: int = 8) -> IdentificationResult:
    """Identification by a text-reading model whose queries carry no text while the gallery (``gallery``: its
    embeddings of ``frame`` with their text) keeps it: a finder with only a photo. The promotion gate and the
    report both measure fused models this way."""
    queries = embed_frame(frame.assign(text=None), embedder, None)
    return identify(gallery, frame["identity_id"].to_numpy(), phashes=_phashes(frame),
                    phash_threshold=phash_threshold, query_embeddings=queries)


def _photo_only_query(frame: pd.DataFrame, embedder: PhotoEmbedder, gallery: np.ndarray,
                      evaluations: dict[str, ModelEvaluation], phash_threshold: int) -> dict[str, Any]:
    """``photo_only_identification`` with McNemar against the image-only trained model on the same queries."""
    ident = photo_only_identification(frame, embedder, gallery, phash_threshold)
    image = evaluations[_image_reference(evaluations)].identification
    out = {"top1": ident.top1, "top5": ident.top5, "map": ident.map, "n_queries": ident.n_queries}
    if np.array_equal(ident.query_index, image.query_index):
        out["mcnemar_vs_image"] = mcnemar(ident.hits(1), image.hits(1))
    return out


def _variant_sections(evaluations: dict[str, ModelEvaluation], embedders: dict[str, PhotoEmbedder],
                      refs: dict[str, str], intervals: dict[str, Any]) -> dict[str, Any]:
    """``variants`` (one entry per variant model) and ``fusion_vs_image`` (best fused vs image-only trained)."""
    names = [n for n in evaluations if n.startswith("variant:")]
    if not names:
        return {}
    baseline = evaluations["baseline"].identification.hits(1)
    image = evaluations[_image_reference(evaluations)].identification.hits(1)
    variants = [{"name": n.partition(":")[2], "modality": modality(embedders[n]), "model": evaluations[n].model,
                 "model_ref": str(refs[n]), **evaluations[n].metrics(), "intervals": intervals[n],
                 "mcnemar_vs_baseline": mcnemar(evaluations[n].identification.hits(1), baseline),
                 "mcnemar_vs_image": mcnemar(evaluations[n].identification.hits(1), image)} for n in names]
    out: dict[str, Any] = {"variants": variants}
    fused = [n for n in names if modality(embedders[n]) == "fused"]
    image = _image_reference(evaluations)
    if fused and modality(embedders[image]) == "image":
        best = max(fused, key=lambda n: (evaluations[n].identification.top1, evaluations[n].identification.map))
        a, b = evaluations[best].identification, evaluations[image].identification
        out["fusion_vs_image"] = {"fused": best.partition(":")[2], "fused_model": evaluations[best].model,
                                  "image_model": evaluations[image].model, "top1_fused": a.top1, "top1_image": b.top1,
                                  "top1_gain": a.top1 - b.top1, "mcnemar": mcnemar(a.hits(1), b.hits(1))}
    return out


def score_hard_negatives(pairs: Sequence[tuple[str, str]], photos: pd.DataFrame | None,
                         embedders: dict[str, PhotoEmbedder], cache_dir: str | os.PathLike[str] | None,
                         batch_size: int = 32) -> list[dict[str, Any]]:
    """Each rejected pair's listing-level score (mean of all photo pairs, as matching scores it) per model; pairs
    without photos on both sides are listed with null scores."""
    from evaluation.matching import listing_similarity

    wanted = {i for pair in pairs for i in pair}
    photos = (photos[photos["identity_id"].isin(wanted)].reset_index(drop=True) if photos is not None
              else pd.DataFrame(columns=["identity_id", "path"]))
    vectors = {name: embed_frame(photos, e, cache_dir, batch_size=batch_size) if len(photos) else None
               for name, e in embedders.items()}
    rows = []
    for a, b in pairs:
        ia, ib = (photos.index[photos["identity_id"] == x].to_numpy() for x in (a, b))
        row: dict[str, Any] = {"listing_a": a, "listing_b": b}
        for name, v in vectors.items():
            row[f"score_{name}"] = (float(listing_similarity(v[ia], v[ib])) if len(ia) and len(ib) else None)
        rows.append(row)
    return rows


def write_pairs(path: Path, frame: pd.DataFrame, pairs: Pairs, evaluations: dict[str, ModelEvaluation]) -> Path:
    """The verification pairs the report used, one row each, with every model's cosine score, so ROC AUC and EER
    can be recomputed by anyone (``same`` is the label)."""
    a, b = pairs.pairs[:, 0], pairs.pairs[:, 1]
    table = pd.DataFrame({
        "path_a": frame["path"].to_numpy()[a], "path_b": frame["path"].to_numpy()[b],
        "identity_a": frame["identity_id"].to_numpy()[a], "identity_b": frame["identity_id"].to_numpy()[b],
        "same": pairs.labels,
        **{f"score_{name}": np.round(e.verification.scores, 6) for name, e in evaluations.items()},
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return path
