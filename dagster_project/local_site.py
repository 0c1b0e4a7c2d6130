"""The demo deployment's resources: production resources pointed at the local sample world.

Nothing here changes what an asset does. The sample world (a pet911-format site and a Telegram Desktop export)
is generated once under ``<root>/sample``; while a run executes, a real HTTP server on 127.0.0.1 serves the site on
an ephemeral port and the site's stable origin ``SAMPLE_ORIGIN`` is *routed* to it (like curl's ``--resolve``), so
every stored listing and photo URL names the origin, never this run's port.
"""

from __future__ import annotations

import contextlib
from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from dagster_project.resources import HttpClientResource, MatchingResource, StorageResource, TelegramResource

SAMPLE_ORIGIN = "http://pet911.sample.invalid"  # .invalid never resolves: without the route nothing is reached


class SampleWorldResource(ConfigurableResource):
    """The synthetic sample world under ``<storage root>/sample``, generated on first use (race-safe, cached)."""

    storage: StorageResource
    seed: int = Field(default=0, description="Seed of the procedurally drawn world.")
    n_animals: int = Field(default=48, description="Animals in the world.")

    def dirs(self) -> Any:
        """``petid_sample.source.SampleDirs``: the site and export folders."""
        from petid_sample.source import ensure_sample

        return ensure_sample(self.storage.layout.root / "sample", seed=self.seed, n_animals=self.n_animals)


class LocalSiteHttpResource(HttpClientResource):
    """``HttpClientResource`` for the local sample site: ``base_url`` is ``SAMPLE_ORIGIN``, served while a run
    executes and opted in (exactly that origin) as a trusted private host."""

    world: SampleWorldResource
    base_url: str = Field(default=SAMPLE_ORIGIN, description="The sample site's stable origin.")
    rate_limit_per_s: float = Field(default=200.0, description="A local server needs no politeness delay.")

    _served: str | None = PrivateAttr(default=None)
    _stack: contextlib.ExitStack | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        from petid_sample.pet911_site import serve_site

        self._stack = contextlib.ExitStack()
        self._served = self._stack.enter_context(serve_site(self.world.dirs().pet911_site_dir))

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._stack is not None:
            self._stack.close()

    def settings(self) -> dict[str, Any]:
        from scrapers.http import origin_entry

        settings = super().settings()
        if self._served is None:
            raise RuntimeError("the local sample site is served only while a run executes")
        origin = origin_entry(self.base_url)
        settings["allowed_photo_hosts"] = [*settings["allowed_photo_hosts"], origin]
        settings["private_hosts"] = [*settings["private_hosts"], origin]
        settings["routes"] = {**settings["routes"], origin: origin_entry(self._served)}
        return settings


class SampleTelegramResource(TelegramResource):
    """``TelegramResource`` that also imports the sample world's Telegram Desktop export."""

    world: SampleWorldResource

    def exports(self) -> list[str]:
        return [*super().exports(), str(self.world.dirs().telegram_export_dir)]


class SampleMatchingResource(MatchingResource):
    """``MatchingResource`` whose known true pairs are the sample world's planted lost → found matches."""

    world: SampleWorldResource

    def known_pairs(self) -> list[tuple[str, str]]:
        from petid_sample import load_planted_matches

        return [(m.lost.identity_id, m.found.identity_id) for m in load_planted_matches(self.world.dirs().root)]
