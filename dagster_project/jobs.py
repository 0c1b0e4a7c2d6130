"""Jobs: the nightly data refresh (scrape → curation → manifests), train + evaluate, and curation's image stages
fanned out in shards (``curation_shards``, an op job: ``assets/curation_shards.py``)."""

from dagster import AssetSelection, define_asset_job

from assets.curation_shards import curation_shards_job

REFRESH_GROUPS = ("ingest", "curation", "dataset")
CRAWL_TAGS = {"petid/crawl": "pet911"}  # runs that crawl: deploy/dagster.yaml queues at most one at a time

nightly_refresh_job = define_asset_job(
    name="nightly_refresh",
    selection=AssetSelection.groups(*REFRESH_GROUPS),
    tags=CRAWL_TAGS,
    description="Scrape new listings and posts, curate their photos and rebuild the manifests and splits.",
)

train_evaluate_job = define_asset_job(
    name="train_and_evaluate",
    selection=AssetSelection.groups("model", "matching"),
    description="Train (or reuse) the re-identification model, evaluate it beside the baseline, rebuild search, match lost and found listings.",
)

full_pipeline_job = define_asset_job(
    name="full_pipeline",
    selection=AssetSelection.all(),
    tags=CRAWL_TAGS,
    description="Everything, end to end (what `petid demo` runs with the demo deployment).",
)

__all__ = ["curation_shards_job", "full_pipeline_job", "nightly_refresh_job", "train_evaluate_job"]
