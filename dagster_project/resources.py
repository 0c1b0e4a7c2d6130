"""Dagster resources: thin, configurable handles on the libraries' settings. No business logic lives here."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from dagster import ConfigurableResource, EnvVar
from pydantic import Field, field_validator

from petid.settings import Layout, petid_home
from scrapers.http import DEFAULT_USER_AGENT


class StorageResource(ConfigurableResource):
    """The storage root (env ``PETID_HOME``, default ``./data``) and its directory layout: the one root that the
    IO manager, the model registry and the libraries all receive; and, where machines share work, the object store
    (env ``PETID_OBJECT_STORE``) that the IO manager also writes tables to."""

    root: str | None = Field(default=None, description="Storage root; unset = PETID_HOME at execution, else ./data.")
    object_store: str | None = Field(default=None, description="Shared object store (s3://BUCKET/PREFIX) for tables, "
                                                              "published models and reports; unset = local only.")
    s3_endpoint: str | None = Field(default=None, description="S3-compatible endpoint (MinIO, Ceph); unset = AWS.")

    @property
    def layout(self) -> Layout:
        return Layout(self.root or petid_home())

    def objects(self) -> Any:
        """The ``petid.objectstore.ObjectStore`` at ``object_store``, or None when there is none."""
        if not self.object_store:
            return None
        from petid.objectstore import ObjectStore

        return ObjectStore(self.object_store, endpoint_url=self.s3_endpoint)


class HttpClientResource(ConfigurableResource):
    """Where the listing site is and how petid talks to it: politeness and safety settings for every request.

    ``crawl_config`` is the one place these settings become the crawler's ``CrawlConfig``."""

    base_url: str = Field(default="https://pet911.ru", description="The listing site's origin.")
    user_agent: str = Field(default=DEFAULT_USER_AGENT, description="Sent with every request.")
    rate_limit_per_s: float = Field(default=1.0, description="Requests per second to one host (before jitter).")
    timeout_s: float = Field(default=20.0, description="Seconds one socket read may take.")
    max_retries: int = Field(default=4, description="Retries on 429/5xx/timeouts, with backoff and Retry-After.")
    max_response_bytes: int = Field(default=20_000_000, description="Larger responses are refused.")
    deadline_s: float = Field(default=60.0, description="Total wall time of one exchange, however slowly the "
                                                        "server drips bytes.")
    max_crawl_delay_s: float = Field(default=60.0, description="Cap on a robots.txt Crawl-delay (which only ever "
                                                               "slows its own host).")
    allowed_photo_hosts: list[str] = Field(default=["pet911.ru", "cdn.pet911.ru"],
                                           description="Photos only from these host[:port] entries.")
    private_hosts: list[str] = Field(default=[], description="host:port entries allowed to resolve to private or "
                                                             "loopback addresses (a trusted local site only).")
    routes: dict[str, str] = Field(default={}, description="host:port -> host:port actually dialled (like curl "
                                                           "--resolve), so stored URLs keep one stable origin.")

    def settings(self) -> dict[str, Any]:
        """The crawler settings of this deployment (subclasses add what they serve at execution time)."""
        return {
            "base_url": self.base_url, "user_agent": self.user_agent, "rate_limit_per_s": self.rate_limit_per_s,
            "timeout_s": self.timeout_s, "max_retries": self.max_retries,
            "max_response_bytes": self.max_response_bytes, "deadline_s": self.deadline_s,
            "max_crawl_delay_s": self.max_crawl_delay_s, "allowed_photo_hosts": list(self.allowed_photo_hosts),
            "private_hosts": list(self.private_hosts), "routes": dict(self.routes),
        }

    def crawl_config(self, **run: Any) -> Any:
        """A ``scrapers.pet911.crawl.CrawlConfig``: these settings, then the run's own (``run`` wins)."""
        from scrapers.pet911.crawl import CrawlConfig

        return CrawlConfig(**{**self.settings(), **run})


class TelegramResource(ConfigurableResource):
    """Telegram access. Credentials come only from the environment (``EnvVar``) and are never logged.

    ``channels`` are read live with Telethon when credentials are set; ``export_dirs`` are Telegram Desktop
    exports imported offline.
    """

    api_id: str | None = Field(default=None, description="Telegram API id (EnvVar only).")
    api_hash: str | None = Field(default=None, description="Telegram API hash (EnvVar only).")
    session: str | None = Field(default=None, description="Telethon StringSession (EnvVar only).")
    channels: list[str] = Field(default=[], description="Public channels read live (needs credentials).")
    export_dirs: list[str] = Field(default=[], description="Telegram Desktop export folders imported offline.")
    max_messages_per_channel: int = Field(default=5000, description="Newest messages read per live channel.")
    flood_wait_cap_s: int = Field(default=300, description="Longest FloodWait honoured before giving up a channel.")

    def exports(self) -> list[str]:
        """Every export folder to import this run."""
        return list(self.export_dirs)

    @property
    def has_credentials(self) -> bool:
        return bool(self.api_id and self.api_hash and self.session)

    def client(self) -> Any:
        from scrapers.telegram.live import make_client

        return make_client(self.api_id, self.api_hash, self.session)


class DetectorResource(ConfigurableResource):
    """The animal detector for crops. Off (``weights=None``) unless configured, e.g. ``PETID_DETECTOR=yolo11n.pt``
    online or the path of a local ``.pt`` file or exported model folder offline."""

    weights: str | None = Field(default=None, description="YOLO weights: a .pt file or exported model folder.")
    confidence: float = Field(default=0.25, description="Boxes below this confidence are ignored.")
    image_size: int = Field(default=640, description="Detector input size.")
    batch_size: int = Field(default=16, description="Images per detector call.")
    margin: float = Field(default=0.1, description="Crop margin around the box, as a fraction of its side.")
    min_box_side: int = Field(default=32, description="Smaller boxes are not cropped.")

    def detector(self) -> Any:
        if not self.weights:
            return None
        from curation.crops import YoloDetector

        return YoloDetector(self.weights, conf=self.confidence, imgsz=self.image_size, batch=self.batch_size)


def known_preset(name: str) -> str:
    """``name`` if it is a training preset; a one-line error naming the presets otherwise."""
    from training.config import PRESETS

    if name not in PRESETS:
        raise ValueError(f"unknown training preset {name!r}: use one of {', '.join(PRESETS)}")
    return name


class TrainingResource(ConfigurableResource):
    """The deployment's training defaults; a run's ``reid_model`` config overrides them. ``launcher`` says where
    ``train_model`` runs: in the step's own process, or as a separate process through Dagster Pipes
    (``dagster_project.pipes_training``, ``docs/training-pipes.md``) behind ``command_prefix``."""

    preset: str = Field(default="auto", description="auto: the published recipe from 1000 training animals on, "
                                                    "the small-data winner below; small | recipe | demo force one.")
    launcher: Literal["in_process", "subprocess"] = Field(
        default="in_process", description="in_process: train inside the step; subprocess: run "
                                          "`<command_prefix> -m training.pipes_entry <job dir>` through Dagster "
                                          "Pipes (logs and metrics stream back; same model version).")
    command_prefix: list[str] = Field(
        default=[], description="What runs the entry module with the subprocess launcher, e.g. "
                                "[torchrun, --standalone, --nproc_per_node=2]; empty = this Python interpreter.")

    variants: list[str] = Field(
        default=[], description="Listing models trained beside the image model on the same splits and evaluated in "
                                "the same report: text (the listing text alone), fused (photo + text, gated) or "
                                "fused:<concat|scalar|gated|cross_attention>.")

    def entry_prefix(self) -> list[str]:
        """``command_prefix``, or this interpreter when it is empty (``... -m training.pipes_entry`` follows)."""
        import sys

        return list(self.command_prefix) or [sys.executable]

    @field_validator("preset", mode="before")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        return value if isinstance(value, EnvVar) else known_preset(value)  # an EnvVar is checked once resolved


class DatasetsResource(ConfigurableResource):
    """Published re-identification datasets this deployment imports, as ``FORMAT:PATH`` specs."""

    specs: list[str] = Field(default=[], description="e.g. identity-folders:/data/dogs; csv:/data/list.csv")


class AlertsResource(ConfigurableResource):
    """Where new lost ↔ found candidates are posted (a JSON webhook: Telegram/Slack bridges, ticket queues)."""

    webhook_url: str | None = Field(default=None, description="POST target for candidate alerts; unset = no alerts.")
    min_score: float = Field(default=0.8, description="Only candidates scoring at least this are posted.")
    timeout_s: float = Field(default=10.0, description="Seconds the webhook may take to answer.")


class MatchingResource(ConfigurableResource):
    """How lost ↔ found candidates are chosen (``evaluation.matching.MatchConfig``) and which pairs are known to be
    true, so every run reports recall (confirmed ``same`` decisions count too)."""

    top_n: int = Field(default=10, description="Candidates kept per new listing.")
    max_km: float = Field(default=30.0, description="Radius when both listings have coordinates.")
    window_days: int = Field(default=60, description="The found date may be at most this many days after the loss.")
    slack_days: int = Field(default=3, description="... and at most this many days before it.")
    aggregation: str = Field(default="mean", description="Listing score from photo pairs: mean | max | top<k>mean.")
    keep_unlocated: bool = Field(default=True, description="Keep (marked no-location) pairs no place can check.")
    known_matches_csv: str | None = Field(default=None, description="CSV of true pairs (lost_identity_id, "
                                                                   "found_identity_id) to measure recall on.")

    def match_config(self) -> Any:
        from evaluation.matching import MatchConfig

        return MatchConfig(aggregation=self.aggregation, top_n=self.top_n, max_km=self.max_km,
                           window_days=self.window_days, slack_days=self.slack_days,
                           keep_unlocated=self.keep_unlocated)

    def known_pairs(self) -> list[tuple[str, str]]:
        """(lost, found) identity ids of the configured true pairs (rows with a ``role`` other than ``match`` are
        decoys or twins, not pairs)."""
        if not self.known_matches_csv:
            return []
        import pandas as pd

        frame = pd.read_csv(self.known_matches_csv, dtype=str)
        if "role" in frame:
            frame = frame[frame["role"] == "match"]
        return list(zip(frame["lost_identity_id"], frame["found_identity_id"]))


class ModelRegistryResource(ConfigurableResource):
    """The versioned model registry, ``<storage root>/models``."""

    storage: StorageResource

    @property
    def path(self) -> Path:
        return self.storage.layout.models
