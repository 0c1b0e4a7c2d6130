"""Dataset group: Parquet manifests with enforced schemas, Table-2 statistics, identity-disjoint splits."""


import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    Config,
    Definitions,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from assets._metadata import preview
from dagster_project.resources import MatchingResource, StorageResource


class SplitConfig(Config):
    """Identity-disjoint split settings. Assignment hashes the identity id, so splits are stable as data grows."""

    min_photos: int = Field(default=2, description="Identities with fewer photos stay in the manifest as excluded.")
    seed: int = Field(default=0, description="Salt of the identity-id hash that assigns splits.")


OWNERS = ["team:petid-data"]


@asset(group_name="dataset", kinds={"parquet"}, code_version="2", owners=OWNERS)
def image_manifest(
    context: AssetExecutionContext, config: SplitConfig, deduplicated_images: pa.Table, animal_crops: pa.Table,
    match_decisions: pa.Table, matching: MatchingResource,
) -> MaterializeResult:
    """One row per curated image: identity, source, species, paths, size, hashes, detector box/crop and split
    (``excluded`` for identities with fewer than ``min_photos`` photos, which stay in the manifest). Listings a
    reviewer confirmed as the same animal share one identity (the listing's own id kept in ``merged_from``); the
    two listings of a known lost/found pair keep their ids but share a split."""
    from curation.decisions import connected_components, identity_merges
    from curation.identity_stats import split_counts
    from curation.manifest import build_image_manifest

    merges = identity_merges(match_decisions)
    groups = connected_components(matching.known_pairs())
    manifest = build_image_manifest(deduplicated_images, animal_crops, min_photos=config.min_photos, seed=config.seed,
                                    merges=merges, split_groups=groups)
    splits = split_counts(manifest)
    return MaterializeResult(
        value=manifest,
        metadata={
            "images": manifest.num_rows,
            "identities": len(pc.unique(manifest.column("identity_id"))),
            "listings_merged_by_review": sum(1 for k, v in merges.items() if k != v),
            "listings_split_with_their_pair": len(groups),
            "images_per_split": preview(splits, splits.column_names),
            "preview": preview(manifest, ["image_id", "identity_id", "source", "species", "split", "width", "height"]),
        },
    )


@asset(group_name="dataset", kinds={"parquet"}, code_version="1", owners=OWNERS)
def identity_manifest(context: AssetExecutionContext, image_manifest: pa.Table) -> MaterializeResult:
    """One row per animal: source, species, lost/found, date, number of curated photos, text, URL, split."""
    from curation.manifest import build_identity_manifest

    identities = build_identity_manifest(image_manifest)
    return MaterializeResult(
        value=identities,
        metadata={
            "identities": identities.num_rows,
            "preview": preview(identities, ["identity_id", "source", "species", "kind", "n_images", "split"]),
        },
    )


@asset(group_name="dataset", kinds={"parquet"}, code_version="1", owners=OWNERS)
def identity_stats(context: AssetExecutionContext, image_manifest: pa.Table) -> MaterializeResult:
    """Photos per identity per source and in total — identities, photos, min/max/mean/median/std (the seed
    paper's Table 2) — over the identities that enter training/evaluation."""
    from curation.identity_stats import identity_stats as compute_stats
    from curation.identity_stats import stats_markdown

    eligible = image_manifest.filter(pc.not_equal(image_manifest.column("split"), "excluded"))
    stats = compute_stats(eligible)
    return MaterializeResult(value=stats, metadata={"table_2": MetadataValue.md(stats_markdown(stats)),
                                                    "sources": stats.num_rows - 1})


@asset(group_name="dataset", kinds={"parquet", "duckdb"}, code_version="1", owners=OWNERS)
def dataset_splits(context: AssetExecutionContext, image_manifest: pa.Table,
                   storage: StorageResource) -> MaterializeResult:
    """The train/val/test images (identity-disjoint, stratified by source and species); also refreshes the
    DuckDB views over every table so ``petid sql`` and notebooks see the new manifests."""
    from curation.db import refresh_views
    from curation.identity_stats import split_counts

    splits = image_manifest.filter(pc.is_in(image_manifest.column("split"), pa.array(["train", "val", "test"])))
    counts = split_counts(splits)
    views = refresh_views(storage.layout.duckdb_path, storage.layout.tables)
    return MaterializeResult(
        value=splits,
        metadata={
            "images": splits.num_rows,
            "splits": preview(counts, counts.column_names),
            "duckdb": MetadataValue.path(str(storage.layout.duckdb_path)),
            "duckdb_views": ", ".join(views),
        },
    )


def _result(outcome) -> AssetCheckResult:
    return AssetCheckResult(passed=bool(outcome.passed), description=outcome.description, metadata=outcome.metadata)


@asset_check(asset=image_manifest, blocking=True,
             description="Every manifest path (and crop path) exists on disk and is an intact image; blocks "
                         "everything downstream and fails the run when violated.")
def manifest_paths_exist(context: AssetCheckExecutionContext, image_manifest: pa.Table) -> AssetCheckResult:
    from curation import checks

    return _result(checks.manifest_paths_exist(image_manifest))


@asset_check(asset=image_manifest, description="No identity holds the same content twice.")
def no_duplicate_content_within_identity(
    context: AssetCheckExecutionContext, image_manifest: pa.Table
) -> AssetCheckResult:
    from curation import checks

    return _result(checks.no_duplicate_content_within_identity(image_manifest))


@asset_check(asset=image_manifest, description="The manifest matches its enforced schema.")
def image_manifest_schema(context: AssetCheckExecutionContext, image_manifest: pa.Table) -> AssetCheckResult:
    from curation import checks
    from curation.manifest import IMAGE_MANIFEST_SCHEMA

    return _result(checks.schema_matches(image_manifest, IMAGE_MANIFEST_SCHEMA))


@asset_check(asset=identity_manifest, description="The identity manifest matches its enforced schema.")
def identity_manifest_schema(context: AssetCheckExecutionContext, identity_manifest: pa.Table) -> AssetCheckResult:
    from curation import checks
    from curation.manifest import IDENTITY_MANIFEST_SCHEMA

    return _result(checks.schema_matches(identity_manifest, IDENTITY_MANIFEST_SCHEMA))


@asset_check(asset=dataset_splits, blocking=True, description="No identity appears in two splits (blocks training).")
def no_identity_in_two_splits(context: AssetCheckExecutionContext, dataset_splits: pa.Table) -> AssetCheckResult:
    from curation import checks

    return _result(checks.no_identity_in_two_splits(dataset_splits))


@asset_check(asset=dataset_splits, blocking=True,
             description="Every identity in a split has at least 2 photos (blocks training).")
def min_photos_per_identity_in_splits(
    context: AssetCheckExecutionContext, dataset_splits: pa.Table
) -> AssetCheckResult:
    from curation import checks

    return _result(checks.min_photos_per_identity_in_splits(dataset_splits, min_photos=2))


DATASET_CHECKS = [
    manifest_paths_exist,
    no_duplicate_content_within_identity,
    image_manifest_schema,
    identity_manifest_schema,
    no_identity_in_two_splits,
    min_photos_per_identity_in_splits,
]


defs = Definitions(assets=[image_manifest, identity_manifest, identity_stats, dataset_splits],
                   asset_checks=DATASET_CHECKS)
