"""The ``curation_shards`` job: the image stages of curation fanned out over the executor's workers.

``curation_shard_plan`` reads the catalogue (the three ingest assets, as the ``images`` asset does) and emits one
dynamic output per non-empty shard (``curation.shards``: content-hash prefix ranges). Each ``curate_shard`` step
decodes, validates, converts and hashes its photos into the content-addressed records under
``<storage>/images/.petid-cache/``, with a ``RetryPolicy``: a failed shard is retried alone and keeps what it had
recorded. ``curation_shards_summary`` checks that every catalogue photo went through a shard and reports what each
did and where. The curation assets (``images``, ``image_hashes``, ``deduplicated_images``) then read the warm
records for the whole corpus: the near-duplicate index stays global.

Step outputs (the shard tables, the summaries) go through ``ShardIOManager``, files under the storage root, which
every worker of a distributed executor must share anyway (``docs/deploy.md``).
"""


import json
from pathlib import Path
from typing import Any

import pyarrow as pa
from dagster import (
    AssetKey,
    Backoff,
    Config,
    ConfigurableIOManager,
    DynamicOut,
    DynamicOutput,
    Failure,
    InputContext,
    MetadataValue,
    OpExecutionContext,
    Out,
    Output,
    OutputContext,
    PythonObjectDagsterType,
    RetryPolicy,
    build_input_context,
    job,
    op,
)
from pydantic import Field

from assets._metadata import records_table
from assets.curation import ImageConfig
from dagster_project.resources import StorageResource
from petid.paths import atomic_write_bytes, atomic_write_parquet
from petid.records import CATALOGUE_SCHEMA

CATALOGUE_ASSETS = ("pet911_photos", "telegram_posts", "external_datasets")  # what `images` concatenates
ARROW_TABLE = PythonObjectDagsterType(pa.Table, name="ArrowTable")
SHARD_IO = "curation_shards_io"
SHARD_RETRIES = RetryPolicy(max_retries=2, delay=2, backoff=Backoff.EXPONENTIAL)


class ShardIOManager(ConfigurableIOManager):
    """Step outputs of ``curation_shards`` as files under ``<storage root>/steps/<run id>/<step>/<output>``:
    tables as Parquet, summaries as JSON. A re-execution reads its parent run's files (Dagster's identifiers)."""

    storage: StorageResource

    def _path(self, context: InputContext | OutputContext) -> Path:
        return self.storage.layout.root.joinpath("steps", *context.get_identifier())

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        path = self._path(context)
        if isinstance(obj, pa.Table):
            atomic_write_parquet(obj, path.with_suffix(".parquet"))
        else:
            atomic_write_bytes(path.with_suffix(".json"), json.dumps(obj, sort_keys=True).encode())

    def load_input(self, context: InputContext) -> Any:
        import pyarrow.parquet as pq

        path = self._path(context)
        if path.with_suffix(".parquet").exists():
            return pq.read_table(path.with_suffix(".parquet"))
        if path.with_suffix(".json").exists():
            return json.loads(path.with_suffix(".json").read_text())
        raise FileNotFoundError(f"step output {path} is missing: the storage root must be shared by every worker")


class ShardPlanConfig(Config):
    """How finely the catalogue is split."""

    shards: int = Field(default=16, ge=1, le=4096, description="Shards (content-hash prefix ranges); a few per "
                                                              "worker process keeps every worker busy.")


class ShardConfig(ImageConfig):
    """``ImageConfig`` (the same options as the ``images`` asset, so its records are the ones it looks up), with one
    decoding process per shard: the executor's workers are the parallelism."""

    workers: int = Field(default=1, description="Decoding processes within one shard (1 under Celery's prefork "
                                                "pool, whose children may not start processes).")


def _catalogue(context: OpExecutionContext) -> pa.Table:
    """The catalogue the ``images`` asset curates: the ingest assets' tables, read through the deployment's IO
    manager (local Parquet, or the object store's copy)."""
    tables = []
    for name in CATALOGUE_ASSETS:
        loading = build_input_context(name=name, asset_key=AssetKey(name), dagster_type=ARROW_TABLE,
                                      step_context=context.get_step_execution_context())
        tables.append(context.resources.io_manager.load_input(loading).cast(CATALOGUE_SCHEMA))
    return pa.concat_tables(tables)


@op(
    out={"shards": DynamicOut(pa.Table, io_manager_key=SHARD_IO), "plan": Out(dict, io_manager_key=SHARD_IO)},
    required_resource_keys={"io_manager", "storage"},
    tags={"kind": "python"},
)
def curation_shard_plan(context: OpExecutionContext, config: ShardPlanConfig):
    """The catalogue's photos (the ingest assets' tables), one dynamic output per non-empty content-hash shard."""
    from curation.shards import plan_shards

    catalogue = _catalogue(context)
    parts, digests = plan_shards(catalogue, config.shards, context.resources.storage.layout.images)
    sizes = {f"s{k:04d}": part.num_rows for k, part in enumerate(parts) if part.num_rows}
    context.log.info(f"{catalogue.num_rows} photos in {len(sizes)} non-empty shards of {config.shards}; "
                     f"shard digests: {digests}")
    for k, part in enumerate(parts):
        if part.num_rows:
            yield DynamicOutput(part, output_name="shards", mapping_key=f"s{k:04d}")
    plan = {"photos": catalogue.num_rows, "shards": config.shards, "sizes": sizes, **digests}
    yield Output(plan, output_name="plan", metadata={"photos": catalogue.num_rows, "non_empty_shards": len(sizes),
                                                     **digests})


@op(out=Out(dict, io_manager_key=SHARD_IO), retry_policy=SHARD_RETRIES, tags={"kind": "python"})
def curate_shard(context: OpExecutionContext, config: ShardConfig, storage: StorageResource, shard: pa.Table) -> dict:
    """Decode, validate, convert and hash one shard's photos into the content-addressed records."""
    from curation.shards import process_shard

    summary = process_shard(shard, storage.layout.images, options=config.options(), workers=config.worker_count())
    summary = {"shard": context.get_mapping_key(), "attempt": context.retry_number + 1, **summary}
    context.add_output_metadata({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
    context.log.info(f"shard {summary['shard']}: {summary}")
    return summary


@op(out=Out(dict, io_manager_key=SHARD_IO), tags={"kind": "python"})
def curation_shards_summary(context: OpExecutionContext, plan: dict, summaries: list) -> dict:
    """Every planned shard came back, and together they hold every catalogue photo; what each did and where."""
    done = {s["shard"]: s for s in summaries}
    missing = sorted(set(plan["sizes"]) - set(done))
    wrong = sorted(k for k, n in plan["sizes"].items() if k in done and done[k]["photos"] != n)
    if missing or wrong:
        raise Failure(f"curation shards incomplete: missing {missing}, wrong photo counts {wrong}")
    totals = {key: sum(s[key] for s in summaries) for key in ("photos", "accepted", "rejected", "decoded",
                                                              "from_records", "hashed", "hash_errors")}
    if totals["photos"] != plan["photos"]:
        raise Failure(f"shards hold {totals['photos']} photos, the catalogue {plan['photos']}")
    workers = sorted({f"{s['host']}:{s['pid']}" for s in summaries})
    rows = [{k: s[k] for k in ("shard", "photos", "decoded", "rejected", "seconds", "host", "pid", "attempt")}
            for s in sorted(summaries, key=lambda s: s["shard"])]
    context.add_output_metadata({**totals, "shards": len(summaries), "worker_processes": len(workers),
                                 "per_shard": records_table(rows, list(rows[0]) if rows else ["shard"], limit=256),
                                 "workers": MetadataValue.json(workers)})
    return {**totals, "shards": rows, "workers": workers}


@job(
    name="curation_shards",
    description="Curation's image stages fanned out: the catalogue split by content-hash prefix, each shard "
                "decoded, converted and hashed into the shared records (retried alone on failure); the curation "
                "assets then read the warm records for the whole corpus.",
    tags={"petid/fan-out": "curation"},
)
def curation_shards_job():
    plan_outputs = curation_shard_plan()
    shards, plan = plan_outputs
    curation_shards_summary(plan, shards.map(curate_shard).collect())
