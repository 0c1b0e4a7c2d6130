"""Ingest group: raw listings and photos from pet911.ru, Telegram channels and published datasets.

Every source ends as a catalogue table (``petid.records.CATALOGUE_SCHEMA``): one row per photo file on disk.
Raw captures (pages, photos, exports) are kept under ``<PETID_HOME>/raw`` before anything is parsed.
"""


import pyarrow as pa
from dagster import AssetExecutionContext, Config, Definitions, Failure, MaterializeResult, MetadataValue, asset
from pydantic import Field

from assets._metadata import counts, data_version, preview, records_table
from dagster_project.resources import DatasetsResource, HttpClientResource, StorageResource, TelegramResource
from petid.records import CATALOGUE_SCHEMA, empty_catalogue
from petid.stats import photos_per_identity


PET911_POOL = "pet911"  # one Dagster concurrency pool for every step that talks to pet911.ru: overlapping runs
# queue for it instead of doubling the request rate (`dagster instance concurrency set pet911 1`; deploy/dagster.yaml)


class Pet911CrawlConfig(Config):
    """Run config for the pet911 crawl (the site and politeness settings come from the ``http`` resource)."""

    feeds: list[str] = Field(default=[], description="Catalog feed paths/filters; empty = the lost+found feeds.")
    max_pages: int = Field(default=20, description="Catalog pages walked per feed at most.")
    stop_after_known: int = Field(default=30, description="Stop a feed after this many already-known listings.")
    recheck_open: bool = Field(default=False, description="Re-fetch open listings to catch closures and edits.")


class DatasetsConfig(Config):
    """Run config for the dataset import."""

    specs: list[str] | None = Field(default=None, description="FORMAT:PATH specs for this run; unset = the "
                                                                "deployment's datasets resource (PETID_DATASETS).")


def _run_settings(run: Pet911CrawlConfig) -> dict:
    settings = {"max_pages": run.max_pages, "stop_after_known": run.stop_after_known, "recheck_open": run.recheck_open}
    return {**settings, **({"feeds": list(run.feeds)} if run.feeds else {})}


OWNERS = ["team:petid-data"]
FAILURE_COLUMNS = ["url", "reason"]


@asset(group_name="ingest", kinds={"python", "html"}, code_version="1", pool=PET911_POOL, owners=OWNERS)
def pet911_listings(
    context: AssetExecutionContext,
    config: Pet911CrawlConfig,
    storage: StorageResource,
    http: HttpClientResource,
) -> MaterializeResult:
    """pet911.ru listing records: catalog feeds walked newest first until enough known ids, every page archived
    (gzip, content-addressed) before parsing, detail pages parsed into one row per listing (all captures kept;
    the ≥2-photo filter belongs to the dataset stage). Its data version digests the parsed listings (not the page
    bytes), so a crawl that finds nothing new leaves everything downstream fresh."""
    from scrapers.pet911.crawl import crawl_listings

    crawl = http.crawl_config(**_run_settings(config))
    context.log.info(f"crawling {crawl.base_url} (rate limit {crawl.rate_limit_per_s}/s)")
    result = crawl_listings(crawl, storage.layout.raw / "pet911")
    for failure in result.failures[:20]:
        context.log.warning(f"pet911 failure: {failure}")
    if result.failures and not result.stats.get("pages_fetched"):
        raise Failure(
            description=f"no page of {crawl.base_url} could be fetched ({len(result.failures)} failures, first: "
            f"{result.failures[0]}); nothing was changed — the crawl state resumes on the next run",
            metadata={"failures": records_table(result.failures, FAILURE_COLUMNS)},
        )
    return MaterializeResult(
        value=result.listings,
        data_version=data_version(result.listings, ignore=["page_sha256"]),
        metadata={
            **counts(result.stats),
            "listings": result.listings.num_rows,
            "source": MetadataValue.url(crawl.base_url),
            "failures": records_table(result.failures, FAILURE_COLUMNS),
            "preview": preview(result.listings, ["listing_id", "kind", "species", "city", "date_added", "closed"]),
        },
    )


@asset(group_name="ingest", kinds={"python"}, code_version="1", pool=PET911_POOL, owners=OWNERS)
def pet911_photos(
    context: AssetExecutionContext,
    pet911_listings: pa.Table,
    storage: StorageResource,
    http: HttpClientResource,
) -> MaterializeResult:
    """Photos of every pet911 listing, downloaded only from allowed hosts, checked by magic bytes and stored
    content-addressed under ``raw/pet911/photos``; returned as catalogue rows (one per photo), versioned by their
    content (identities, fields and photo bytes)."""
    from scrapers.pet911.crawl import download_photos

    result = download_photos(pet911_listings, http.crawl_config(), storage.layout.raw / "pet911")
    for failure in result.failures[:20]:
        context.log.warning(f"photo failure: {failure}")
    stats = photos_per_identity(result.catalogue.column("identity_id").to_pylist())
    return MaterializeResult(
        value=result.catalogue,
        data_version=data_version(result.catalogue, files=["path"]),
        metadata={
            **counts(result.stats),
            "photos": result.catalogue.num_rows,
            "photos_per_listing": records_table([stats]),
            "failures": records_table(result.failures, FAILURE_COLUMNS),
        },
    )


@asset(group_name="ingest", kinds={"python"}, code_version="1", owners=OWNERS)
def telegram_posts(
    context: AssetExecutionContext,
    storage: StorageResource,
    telegram: TelegramResource,
) -> MaterializeResult:
    """Animal posts from public Telegram channels (live via Telethon when credentials are set, and Telegram
    Desktop exports), keyword-selected, albums assembled into one animal; catalogue rows with their photos,
    versioned by their content."""
    from scrapers.telegram.export import import_export

    raw = storage.layout.raw / "telegram"
    parts: list[pa.Table] = []
    summary: list[dict] = []
    for export_dir in telegram.exports():
        result = import_export(export_dir, raw)
        parts.append(result.catalogue)
        summary.append({"channel": str(export_dir), "mode": "export", **counts(result.stats)})
    if telegram.channels:
        if not telegram.has_credentials:
            context.log.error(
                "Telegram channels are configured but credentials are missing: set PETID_TELEGRAM_API_ID, "
                "PETID_TELEGRAM_API_HASH and PETID_TELEGRAM_SESSION. Skipping live channels; the rest still runs."
            )
            summary.append({"channel": ",".join(telegram.channels), "mode": "live", "error": "missing credentials"})
        else:
            from scrapers.telegram.live import fetch_channels

            with telegram.client() as client:  # connects (sync Telethon) and disconnects afterwards
                result = fetch_channels(
                    client,
                    list(telegram.channels),
                    raw,
                    max_messages_per_channel=telegram.max_messages_per_channel,
                    flood_wait_cap_s=telegram.flood_wait_cap_s,
                )
            parts.append(result.catalogue)
            summary.append({"channel": ",".join(telegram.channels), "mode": "live", **counts(result.stats)})
    catalogue = pa.concat_tables([p.cast(CATALOGUE_SCHEMA) for p in parts]) if parts else empty_catalogue()
    n_posts = len(set(catalogue.column("identity_id").to_pylist()))
    context.log.info(f"telegram: {n_posts} animal posts, {catalogue.num_rows} photos")
    return MaterializeResult(
        value=catalogue,
        data_version=data_version(catalogue, files=["path"]),
        metadata={
            "posts": n_posts,
            "photos": catalogue.num_rows,
            "sources": records_table(summary),
            "preview": preview(catalogue, ["identity_id", "species", "kind", "date", "text"]),
        },
    )


@asset(group_name="ingest", kinds={"python"}, code_version="1", owners=OWNERS)
def external_datasets(context: AssetExecutionContext, config: DatasetsConfig,
                      datasets: DatasetsResource) -> MaterializeResult:
    """Published re-identification datasets (DogFaceNet, PetFace, LCW, ... or generic ``identity-folders`` /
    ``csv`` layouts) imported from local copies and validated, versioned by their content (photo bytes included);
    none are configured by default."""
    from scrapers.datasets import load_catalogue

    specs = config.specs if config.specs is not None else list(datasets.specs)  # run config > resource
    parts = [load_catalogue(spec).cast(CATALOGUE_SCHEMA) for spec in specs]
    catalogue = pa.concat_tables(parts) if parts else empty_catalogue()
    rows = [{"dataset": spec, **photos_per_identity(part.column("identity_id").to_pylist())}
            for spec, part in zip(specs, parts)]
    if not parts:
        context.log.info("no external datasets configured (set PETID_DATASETS='FORMAT:PATH;...')")
    return MaterializeResult(
        value=catalogue,
        data_version=data_version(catalogue, files=["path"]),
        metadata={"datasets": len(parts), "photos": catalogue.num_rows,
                  "summary": records_table(rows, ["dataset", "n_identities", "n_images", "min", "max", "mean",
                                                       "median", "std"])},
    )


defs = Definitions(assets=[pet911_listings, pet911_photos, telegram_posts, external_datasets])
