"""Dagster resources: thin, configurable handles on the libraries' settings. No business logic lives here."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from petid.settings import Layout, petid_home
from scrapers.http import DEFAULT_USER_AGENT


class StorageResource(ConfigurableResource):
    """The storage root (env ``PETID_HOME``, default ``./data``) and its directory layout: the one root that the
    IO manager, the model registry and the sample source all receive."""

    root: str | None = None

    @property
    def layout(self) -> Layout:
        return Layout(self.root or petid_home())


class HttpClientResource(ConfigurableResource):
    """Politeness and safety settings for every HTTP request petid makes to a listing site."""

    base_url: str = "https://pet911.ru"
    user_agent: str = DEFAULT_USER_AGENT
    rate_limit_per_s: float = 1.0
    timeout_s: float = 20.0
    max_retries: int = 4
    max_response_bytes: int = 20_000_000
    deadline_s: float = 60.0  # total wall time of one request, however slowly the server drips bytes
    max_crawl_delay_s: float = 60.0  # cap on a robots.txt Crawl-delay, which only ever slows its own host
    allowed_photo_hosts: list[str] = ["pet911.ru", "cdn.pet911.ru"]


class SampleSourceResource(ConfigurableResource):
    """The project's own synthetic sample source (pet911-format site + Telegram export), served on 127.0.0.1.

    Enabled with ``PETID_SAMPLE=1`` (or ``enabled=True``). While a run executes, the site is generated once under
    ``<root>/sample`` and served by a real HTTP server on an ephemeral port; scrapers use the same code path as
    for the live site.
    """

    storage: StorageResource
    enabled: bool = False
    seed: int = 0
    n_animals: int = 48

    _base_url: str | None = PrivateAttr(default=None)
    _export_dir: Path | None = PrivateAttr(default=None)
    _stack: contextlib.ExitStack | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        if not self.enabled:
            return
        from petid.sample.pet911_site import serve_site
        from petid.sample.source import ensure_sample

        source = ensure_sample(self.storage.layout.root / "sample", seed=self.seed, n_animals=self.n_animals)
        self._stack = contextlib.ExitStack()
        self._base_url = self._stack.enter_context(serve_site(source.pet911_site_dir))
        self._export_dir = source.telegram_export_dir

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._stack is not None:
            self._stack.close()

    @property
    def base_url(self) -> str | None:
        return self._base_url

    @property
    def telegram_export_dir(self) -> Path | None:
        return self._export_dir

    def rebase(self, url: str) -> str:
        """Point a URL captured from an earlier sample server (another process, another port) at this one."""
        if not self._base_url:
            return url
        parts = urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            return url
        return self._base_url.rstrip("/") + urlunsplit(("", "", parts.path, parts.query, parts.fragment))


class TelegramResource(ConfigurableResource):
    """Telegram access. Credentials come only from the environment (``EnvVar``) and are never logged.

    ``channels`` are read live with Telethon when credentials are set; ``export_dirs`` are Telegram Desktop
    exports imported offline.
    """

    api_id: str | None = None
    api_hash: str | None = None
    session: str | None = None
    channels: list[str] = []
    export_dirs: list[str] = []
    max_messages_per_channel: int = 5000
    flood_wait_cap_s: int = 300

    @property
    def has_credentials(self) -> bool:
        return bool(self.api_id and self.api_hash and self.session)

    def client(self) -> Any:
        from scrapers.telegram.live import make_client

        return make_client(self.api_id, self.api_hash, self.session)


class DetectorResource(ConfigurableResource):
    """The animal detector for crops. Off (``weights=None``) unless configured, e.g. ``PETID_DETECTOR=yolo11n.pt``
    online or the path of a local ``.pt`` file or exported model folder offline."""

    weights: str | None = None
    confidence: float = 0.25
    image_size: int = 640
    batch_size: int = 16
    margin: float = 0.1
    min_box_side: int = 32

    def detector(self) -> Any:
        if not self.weights:
            return None
        from curation.crops import YoloDetector

        return YoloDetector(self.weights, conf=self.confidence, imgsz=self.image_size, batch=self.batch_size)


class ModelRegistryResource(ConfigurableResource):
    """The versioned model registry, ``<storage root>/models``."""

    storage: StorageResource

    @property
    def path(self) -> Path:
        return self.storage.layout.models


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
