"""The one ``Definitions`` object: each asset group's ``defs`` merged with the jobs, schedules, sensors and the
deployment's resource set (``dagster_project.deployments``: production, or the demo pointed at the local sample
world; chosen once, here, from ``PETID_DEPLOYMENT``).

Loading it is cheap: the libraries' heavy imports (torch, timm, ultralytics, telethon) happen inside asset
bodies, and environment values reach resources as ``EnvVar`` resolved at execution.
"""

from __future__ import annotations

from typing import Any

from dagster import Definitions

from assets import curation, dataset, ingest, matching, model
from assets.curation_shards import SHARD_IO, ShardIOManager
from dagster_project.automation import apply_cadence
from dagster_project.deployments import production_resources, resources_for
from dagster_project.executors import executor_for
from dagster_project.jobs import curation_shards_job, full_pipeline_job, nightly_refresh_job, train_evaluate_job
from dagster_project.sensors import automation_sensor, match_alerts


def build_resources(home: str | None = None) -> dict[str, Any]:
    """The production resource set (tests point it at a temporary storage root)."""
    return production_resources(home)


def build_defs(deployment: str | None = None, *, executor: str | None = None, **options: Any) -> Definitions:
    """The definitions with ``deployment``'s resources (else ``PETID_DEPLOYMENT``, else production); ``options``
    go to that deployment's resource builder (``home``; for the demo also ``seed``, ``n_animals``).

    Steps run where ``executor`` says (else ``PETID_EXECUTOR``; ``dagster_project.executors``): by default in the
    run's own process, since most steps are light and a process start per step cost more than the work (a UI
    nightly refresh took 134 s for 55 s of steps); ``multiprocess`` or ``celery`` spread them, which pays for the
    fanned-out ``curation_shards`` job."""
    assets = apply_cadence(ingest.defs, curation.defs, dataset.defs, model.defs, matching.defs)
    resources = resources_for(deployment, **options)
    return Definitions.merge(
        assets,
        Definitions(
            jobs=[nightly_refresh_job, train_evaluate_job, full_pipeline_job, curation_shards_job],
            sensors=[automation_sensor, match_alerts],
            resources={**resources, SHARD_IO: ShardIOManager(storage=resources["storage"])},
            executor=executor_for(executor),
        ),
    )


defs = build_defs()
