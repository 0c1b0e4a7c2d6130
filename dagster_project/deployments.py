"""Deployments as resource sets, chosen once when the ``Definitions`` are built (``PETID_DEPLOYMENT``).

- ``production``: the live site, Telegram, datasets and detector as the environment configures them.
- ``demo``: the same resources pointed at the local sample world (``dagster_project.local_site``) — production
  code against a local site; no asset body knows which set it runs with.

Every knob has one precedence rule: **run config > resource config > environment > default**. A run's config
(``reid_model``'s ``preset``, ``external_datasets``' ``specs``, the crawl's ``max_pages``…) wins; otherwise the
deployment's resource config (the demo sets its own site, preset and exports); otherwise the environment
variable in ``ENVIRONMENT`` (strings and integers are passed to Dagster as ``EnvVar`` and resolved at execution,
secrets are never copied); otherwise the resource field's default.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import EnvVar

from dagster_project.io_managers import ParquetIOManager
from dagster_project.local_site import (
    LocalSiteHttpResource,
    SampleMatchingResource,
    SampleTelegramResource,
    SampleWorldResource,
)
from dagster_project.resources import (
    AlertsResource,
    DatasetsResource,
    DetectorResource,
    HttpClientResource,
    MatchingResource,
    ModelRegistryResource,
    StorageResource,
    TelegramResource,
    TrainingResource,
)
from petid.errors import UserError

DEPLOYMENTS = ("production", "demo")
LAUNCHERS = ("in_process", "subprocess")  # TrainingResource.launcher

# variable -> (resource.field it configures, what it means); the README's configuration table is this one
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "PETID_DEPLOYMENT": ("(the resource set)", "production (default) or demo"),
    "PETID_HOME": ("storage.root", "storage root shared by the IO manager, registry and libraries (./data)"),
    "PETID_OBJECT_STORE": ("storage.object_store", "s3://BUCKET/PREFIX shared by machines: tables, published models, "
                                                   "reports; unset = local files only"),
    "PETID_S3_ENDPOINT": ("storage.s3_endpoint", "S3-compatible endpoint URL (MinIO, Ceph); unset = AWS S3"),
    "PETID_PET911_URL": ("http.base_url", "listing site origin (https://pet911.ru)"),
    "PETID_RATE_LIMIT": ("http.rate_limit_per_s", "requests per second to one host (1.0)"),
    "PETID_TELEGRAM_API_ID": ("telegram.api_id", "Telethon credentials (secret, EnvVar only)"),
    "PETID_TELEGRAM_API_HASH": ("telegram.api_hash", "Telethon credentials (secret, EnvVar only)"),
    "PETID_TELEGRAM_SESSION": ("telegram.session", "Telethon StringSession (secret, EnvVar only)"),
    "PETID_TELEGRAM_CHANNELS": ("telegram.channels", "comma-separated public channels read live"),
    "PETID_TELEGRAM_EXPORTS": ("telegram.export_dirs", "comma-separated Telegram Desktop export folders"),
    "PETID_DATASETS": ("datasets.specs", "';'-separated FORMAT:PATH published datasets"),
    "PETID_DETECTOR": ("detector.weights", "YOLO weights (file or exported folder); unset = no crops"),
    "PETID_TRAIN_PRESET": ("training.preset", "auto | small | recipe | demo"),
    "PETID_KNOWN_MATCHES": ("matching.known_matches_csv", "CSV of true lost/found pairs to report recall on"),
    "PETID_ALERT_WEBHOOK": ("alerts.webhook_url", "JSON webhook for new lost/found candidates; unset = no alerts"),
    "PETID_ALERT_MIN_SCORE": ("alerts.min_score", "minimum candidate score posted (0.8)"),
    "PETID_TRAIN_VARIANTS": ("training.variants", "comma-separated listing models beside the image one: text, "
                             "fused, fused:<concat|scalar|gated|cross_attention> (none)"),
    "PETID_TRAIN_LAUNCHER": ("training.launcher", "in_process | subprocess (Dagster Pipes; docs/training-pipes.md)"),
    "PETID_EXECUTOR": ("(the executor)", "in_process (default) | multiprocess | celery (dagster_project/executors.py)"),
    "PETID_CELERY_BROKER": ("celery executor broker", "Celery broker URL, redis://HOST:6379/0 (needed by celery)"),
    "PETID_CELERY_BACKEND": ("celery executor backend", "Celery result backend URL (default: the broker)"),
    "PETID_SAMPLE_SEED": ("sample.seed", "demo only: seed of the sample world (0)"),
    "PETID_SAMPLE_ANIMALS": ("sample.n_animals", "demo only: animals in the sample world (48)"),
}


class DeploymentError(UserError):
    """An unknown deployment or an environment value of the wrong type."""


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def env_str(name: str, default: Any = None) -> Any:
    """``EnvVar(name)`` when the variable is set (Dagster resolves it at execution), else ``default``."""
    return EnvVar(name) if _env(name) else default


def env_int(name: str, default: int) -> Any:
    if (value := _env(name)) is None:
        return default
    if not value.lstrip("-").isdigit():
        raise DeploymentError(f"{name}={value!r} is not an integer")
    return EnvVar.int(name)


def env_float(name: str, default: float) -> float:
    """Floats have no ``EnvVar`` form in Dagster's config system: parsed here, once, with a clear error."""
    if (value := _env(name)) is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise DeploymentError(f"{name}={value!r} is not a number") from None


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """A value from a fixed set (a ``Literal`` field, which takes no ``EnvVar``): checked here, once."""
    value = _env(name) or default
    if value not in choices:
        raise DeploymentError(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return value


def _env_checked(name: str, check_name: str) -> Any:
    """``name``'s value checked once by ``petid.objectstore.<check_name>`` (a one-line DeploymentError naming the
    variable), then passed on as an ``EnvVar``; None when unset."""
    if (value := _env(name)) is None:
        return None
    from petid import objectstore

    try:
        getattr(objectstore, check_name)(value)
    except objectstore.ObjectStoreError as exc:
        raise DeploymentError(f"{name}: {exc}") from None
    return EnvVar(name)


def env_object_store(name: str) -> Any:
    """An object-store URL (its form checked by ``petid.objectstore.parse_url``), as an ``EnvVar``."""
    return _env_checked(name, "parse_url")


def env_endpoint(name: str) -> Any:
    """An S3 endpoint URL (``http(s)://HOST[:PORT]``, checked by ``petid.objectstore.check_endpoint``)."""
    return _env_checked(name, "check_endpoint")


def env_list(name: str, sep: str = ",") -> list[str]:
    return [item.strip() for item in (_env(name) or "").split(sep) if item.strip()]


def production_resources(home: str | None = None) -> dict[str, Any]:
    """The production set. One storage root (``home``, else ``PETID_HOME`` at execution, else ``./data``) is
    shared by the IO manager, the registry and every resource that writes files."""
    storage = StorageResource(root=home, object_store=env_object_store("PETID_OBJECT_STORE"),
                              s3_endpoint=env_endpoint("PETID_S3_ENDPOINT"))
    return {
        "io_manager": ParquetIOManager(storage=storage),
        "storage": storage,
        "registry": ModelRegistryResource(storage=storage),
        "http": HttpClientResource(base_url=env_str("PETID_PET911_URL", "https://pet911.ru"),
                                   rate_limit_per_s=env_float("PETID_RATE_LIMIT", 1.0)),
        "telegram": TelegramResource(
            api_id=env_str("PETID_TELEGRAM_API_ID"), api_hash=env_str("PETID_TELEGRAM_API_HASH"),
            session=env_str("PETID_TELEGRAM_SESSION"), channels=env_list("PETID_TELEGRAM_CHANNELS"),
            export_dirs=env_list("PETID_TELEGRAM_EXPORTS")),
        "datasets": DatasetsResource(specs=env_list("PETID_DATASETS", ";")),
        "detector": DetectorResource(weights=env_str("PETID_DETECTOR")),
        "training": TrainingResource(preset=env_str("PETID_TRAIN_PRESET", "auto"),
                                     launcher=env_choice("PETID_TRAIN_LAUNCHER", "in_process", LAUNCHERS),
                                     variants=env_list("PETID_TRAIN_VARIANTS")),
        "matching": MatchingResource(known_matches_csv=env_str("PETID_KNOWN_MATCHES")),
        "alerts": AlertsResource(webhook_url=env_str("PETID_ALERT_WEBHOOK"),
                                 min_score=env_float("PETID_ALERT_MIN_SCORE", 0.8)),
    }


def demo_resources(home: str | None = None, seed: int | None = None, n_animals: int | None = None) -> dict[str, Any]:
    """The production set pointed at the local sample world: its site instead of pet911.ru, its Telegram export
    beside any configured one, and the demo training preset (a resource config, so it wins over the env)."""
    resources = production_resources(home)
    storage = resources["storage"]
    world = SampleWorldResource(storage=storage,
                                seed=seed if seed is not None else env_int("PETID_SAMPLE_SEED", 0),
                                n_animals=n_animals if n_animals is not None else env_int("PETID_SAMPLE_ANIMALS", 48))
    telegram: TelegramResource = resources["telegram"]
    return {
        **resources,
        "http": LocalSiteHttpResource(world=world),
        "telegram": SampleTelegramResource(world=world, **{k: getattr(telegram, k) for k in TelegramResource.model_fields}),
        "training": TrainingResource(preset="demo", variants=["text", "fused:gated"]),
        "matching": SampleMatchingResource(world=world),
    }


def resources_for(deployment: str | None = None, **options: Any) -> dict[str, Any]:
    """The resource set of ``deployment`` (else ``PETID_DEPLOYMENT``, else production)."""
    name = (deployment or _env("PETID_DEPLOYMENT") or "production").lower()
    if name not in DEPLOYMENTS:
        raise DeploymentError(f"unknown deployment {name!r} (PETID_DEPLOYMENT): expected one of {', '.join(DEPLOYMENTS)}")
    return demo_resources(**options) if name == "demo" else production_resources(**options)
