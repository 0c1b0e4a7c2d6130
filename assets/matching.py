"""Matching group: the pipeline's product — lost ↔ found candidate pairs every night, a review page, and the
reviewers' decisions fed back (``same`` merges two listings into one identity, ``different`` is a hard negative).

The work lives in ``evaluation.matching`` (filters, listing-level scores), ``evaluation.calibration`` (readable
scores), ``evaluation.review`` (the page) and ``curation.decisions`` (the decision log).
"""

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext, Config, Definitions, MaterializeResult, MetadataValue, asset
from pydantic import Field

from assets._images import photo_grid
from assets._metadata import counts, data_version, metric, preview
from dagster_project.resources import MatchingResource, ModelRegistryResource, StorageResource

OWNERS = ["team:petid-ml"]


@asset(group_name="ingest", kinds={"sqlite", "parquet"}, code_version="1", owners=["team:petid-data"])
def match_decisions(context: AssetExecutionContext, storage: StorageResource) -> MaterializeResult:
    """The reviewers' decisions on candidate pairs (the latest per pair from the durable log that ``petid review``
    writes): an input like any other source, with a content data version, so a new decision re-runs exactly the
    manifests, evaluation and matching that use it."""
    from curation.decisions import DecisionLog

    log = DecisionLog(storage.layout.decisions)
    latest = log.latest()
    verdicts = latest.column("decision").to_pylist()
    return MaterializeResult(
        value=latest,
        data_version=data_version(latest, ignore=["decided_at"]),
        metadata={"decisions": latest.num_rows, **{v: verdicts.count(v) for v in ("same", "different", "unsure")},
                  "log": MetadataValue.path(str(log.path)), "recorded": log.history().num_rows},
    )


class MatchRunConfig(Config):
    """Run config for ``match_candidates``."""

    rematch_all: bool = Field(default=False, description="Rank every open listing again, not only the new ones.")


def _calibration(lineage: dict, dataset_splits: pa.Table, registry: ModelRegistryResource, storage: StorageResource,
                 aggregation: str):
    """Listing-level genuine/impostor scores of the production model on the test animals (never trained on),
    from the embedding cache the evaluation filled."""
    from curation.frames import model_frame
    from evaluation.calibration import CalibrationError, listing_calibration
    from evaluation.embeddings import embed_frame, load_photo_embedder

    test = model_frame(dataset_splits, splits=("test",))
    embedder = load_photo_embedder(lineage["production_version"], registry.path)
    vectors = embed_frame(test, embedder, storage.layout.cache / "embeddings")
    try:
        return listing_calibration(test, vectors, lineage["production_version"], aggregation)
    except CalibrationError:
        return None


@asset(group_name="matching", kinds={"numpy", "parquet"}, code_version="1", owners=OWNERS,
       deps=["search_index", "evaluation_report"])
def match_candidates(
    context: AssetExecutionContext,
    config: MatchRunConfig,
    reid_model: pa.Table,
    identity_manifest: pa.Table,
    dataset_splits: pa.Table,
    pet911_listings: pa.Table,
    match_decisions: pa.Table,
    storage: StorageResource,
    registry: ModelRegistryResource,
    matching: MatchingResource,
) -> MaterializeResult:
    """For every new found listing, the open lost listings that could show the same animal (and the reverse for
    new lost listings): same species, dates within the window, within the radius (or the same city), ranked by
    the production model's listing-level score from all photo pairs, top N each, with a calibrated statement
    ("only 1 in N unrelated pairs scores this high"), distance, day gap, both URLs and the best photo pair.
    Listings ranked by an earlier run with the same model and settings keep their candidates."""
    import pyarrow.parquet as pq

    from evaluation.match_run import recall_at, run_matching
    from scrapers.pet911.crawl import listing_places

    lineage = reid_model.to_pylist()[0]
    version = lineage["production_version"]
    calibration = _calibration(lineage, dataset_splits, registry, storage, matching.aggregation)
    previous_path = storage.layout.table("match_candidates")  # this asset's own last value (the IO manager's file)
    previous = None if config.rematch_all or not previous_path.exists() else pq.read_table(previous_path)
    result = run_matching(identity_manifest.to_pandas(), listing_places(pet911_listings).to_pandas(),
                          storage.layout.index / version, version, matching.match_config(), calibration,
                          decisions=match_decisions, previous=previous)
    known = list(dict.fromkeys([*matching.known_pairs(), *result.confirmed_pairs]))
    recall = recall_at(result.candidates, known)
    if recall["missed"]:
        context.log.info(f"known pairs not within the top 5: {recall['missed'][:10]}")
    top = result.candidates.filter(pc.equal(result.candidates.column("rank"), 1)).to_pylist()[:6]
    return MaterializeResult(
        value=result.candidates,
        metadata={
            **counts(result.stats),
            "model": version,
            "candidates": result.candidates.num_rows,
            "known_pairs": recall["n"],
            "recall@1": metric(recall["recall@1"]),
            "recall@5": metric(recall["recall@5"]),
            "calibration": calibration.source if calibration else "none (too few test animals)",
            "preview": preview(result.candidates, ["query_id", "candidate_id", "rank", "score", "statement",
                                                   "distance_km", "day_gap", "rule"]),
            "best_pairs": photo_grid("Rank-1 candidates: new listing | candidate",
                                     [([r["query_photo"], r["candidate_photo"]], f"{r['score']:.2f} {r['rule']}")
                                      for r in top], empty="no candidates"),
        },
    )


@asset(group_name="matching", kinds={"html"}, code_version="1", owners=OWNERS)
def review_page(
    context: AssetExecutionContext,
    match_candidates: pa.Table,
    identity_manifest: pa.Table,
    image_manifest: pa.Table,
    pet911_listings: pa.Table,
    match_decisions: pa.Table,
    storage: StorageResource,
) -> MaterializeResult:
    """A static, self-contained HTML page of this run's candidate pairs side by side (photos, titles,
    descriptions, dates, distance, score, links to both listings) with the ``petid review decide`` command for
    each, or the decision already recorded; ``review/index.html`` is always the latest."""
    from evaluation.match_run import review_cards
    from evaluation.review import write_review_page
    from scrapers.pet911.crawl import listing_places

    cards = review_cards(identity_manifest.to_pandas(), image_manifest.to_pandas(),
                         listing_places(pet911_listings).to_pandas())
    decisions = dict(zip(match_decisions.column("pair_id").to_pylist(), match_decisions.column("decision").to_pylist()))
    rows = match_candidates.to_pylist()
    page = write_review_page(rows, cards, storage.layout.review, decisions=decisions,
                             subtitle=f"{len(rows)} candidate pairs, {sum(r['pair_id'] in decisions for r in rows)} "
                                      "decided")
    return MaterializeResult(metadata={"page": MetadataValue.path(str(page)), "pairs": len(rows),
                                       "page_url": MetadataValue.url(page.absolute().as_uri())})


defs = Definitions(assets=[match_decisions, match_candidates, review_page])
