"""The one ``Definitions`` object: assets, checks, jobs, schedules, sensors, resources and the IO manager.

Loading it is cheap: the libraries' heavy imports (torch, timm, ultralytics, telethon) happen inside asset
bodies. Environment variables: ``PETID_HOME`` (storage root), ``PETID_SAMPLE=1`` (use the offline sample source),
``PETID_DETECTOR`` (YOLO weights), ``PETID_TELEGRAM_*`` (credentials and channels), ``PETID_DATASETS``.
"""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar

from assets import curation, dataset, ingest, model
from dagster_project.io_managers import ParquetIOManager
from dagster_project.jobs import full_pipeline_job, nightly_refresh_job, train_evaluate_job
from dagster_project.resources import (
    DetectorResource,
    HttpClientResource,
    ModelRegistryResource,
    SampleSourceResource,
    StorageResource,
    TelegramResource,
    env_flag,
)
from dagster_project.schedules import nightly_refresh_schedule
from dagster_project.sensors import retrain_on_new_splits


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _secret(name: str) -> EnvVar | None:
    """Credentials are referenced through ``EnvVar`` (never copied into config) and only when set."""
    return EnvVar(name) if os.environ.get(name) else None


def build_resources(home: str | None = None) -> dict[str, object]:
    """The deployment's resources. One storage root (``home``, else ``PETID_HOME``, else ``./data``) is shared by
    the IO manager, the registry and the sample source."""
    storage = StorageResource(root=home)
    return {
        "io_manager": ParquetIOManager(storage=storage),
        "storage": storage,
        "http": HttpClientResource(
            base_url=os.environ.get("PETID_PET911_URL", "https://pet911.ru"),
            rate_limit_per_s=float(os.environ.get("PETID_RATE_LIMIT", "1.0")),
        ),
        "sample": SampleSourceResource(
            storage=storage,
            enabled=env_flag("PETID_SAMPLE"),
            seed=int(os.environ.get("PETID_SAMPLE_SEED", "0")),
            n_animals=int(os.environ.get("PETID_SAMPLE_ANIMALS", "48")),
        ),
        "telegram": TelegramResource(
            api_id=_secret("PETID_TELEGRAM_API_ID"),
            api_hash=_secret("PETID_TELEGRAM_API_HASH"),
            session=_secret("PETID_TELEGRAM_SESSION"),
            channels=_env_list("PETID_TELEGRAM_CHANNELS"),
            export_dirs=_env_list("PETID_TELEGRAM_EXPORTS"),
        ),
        "detector": DetectorResource(weights=os.environ.get("PETID_DETECTOR") or None),
        "registry": ModelRegistryResource(storage=storage),
    }


def build_defs() -> Definitions:
    """Build the definitions from the current environment (``petid demo`` calls this after setting it): each asset
    group's own ``defs`` (assets and checks), merged with the jobs, schedules, sensors and resources."""
    return Definitions.merge(
        ingest.defs,
        curation.defs,
        dataset.defs,
        model.defs,
        Definitions(
            jobs=[nightly_refresh_job, train_evaluate_job, full_pipeline_job],
            schedules=[nightly_refresh_schedule],
            sensors=[retrain_on_new_splits],
            resources=build_resources(),
        ),
    )


defs = build_defs()
