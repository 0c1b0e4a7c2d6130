"""Two crawl runs that overlap stay under the polite per-host rate together, because every step that talks to pet911
is in one Dagster concurrency pool (``PET911_POOL``) and the instance limits each pool to one step at a time
(``concurrency.pools.default_limit: 1``).

One loopback server serves a sample pet911-format site and records the arrival time and User-Agent of every
request. Two processes, released at the same instant, each materialize the real ``pet911_listings`` and
``pet911_photos`` assets (each with its own storage root, so each does a full crawl) against **one** Dagster
instance: ``deploy/dagster.yaml`` as shipped, on a real PostgreSQL server started for the test (the production
storage). Op-level pool slots are claimed and freed by the run's executor in the instance's event-log storage
(``InstanceConcurrencyContext``); no daemon takes part, so none is started. The daemon's run queue and its
``petid/crawl`` tag limit are a second, run-level guard that this test does not need. On SQLite the same test
failed 2 of 3 fresh-clone CI runs: two processes claimed the one slot at the same moment (Dagster's own test
suite does not trust SQLite for op concurrency across processes either), so production uses Postgres.

With the pool limit, the combined requests in any one-second window never exceed the rate (plus a small edge
tolerance) and the two runs' crawl steps never overlap; without it, the same two runs together exceed the rate —
so the test can fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from test_postgres_instance import PostgresServer, postgres  # noqa: F401  (the server fixture)

DEPLOY_YAML = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"
RATE_PER_S = 8.0  # each run's own per-host limit (HttpClientResource.rate_limit_per_s)
# PoliteClient spaces one client's requests >= 1/rate apart, so a closed one-second window holds at most rate + 1 of
# them; one more may arrive when a step hands the pool slot over (the next step's fresh client has no memory of the
# last request). Without the pool two runs send about twice the rate.
TOLERANCE = 2
RUNS = ("run-a", "run-b")
START_TIMEOUT_S = 60  # both run processes imported and ready
RUN_TIMEOUT_S = 90  # both crawls finished after the release


def _dagster_yaml(pools: bool) -> str:
    """``deploy/dagster.yaml`` as shipped, or without its pool settings."""
    config = yaml.safe_load(DEPLOY_YAML.read_text())
    production = config["concurrency"]["pools"]
    assert production.get("default_limit") == 1 and production.get("granularity", "op") == "op", production
    if not pools:
        del config["concurrency"]["pools"]
    return yaml.safe_dump(config)


@dataclass
class Crawls:
    requests: list[tuple[float, str, str]]  # (monotonic arrival time, path, User-Agent), as the server saw them
    results: dict[str, dict]  # per run: success, run_id
    dagster_home: Path

    def times(self, agent: str | None = None) -> list[float]:
        return sorted(t for t, _, a in self.requests if agent is None or a == f"petid-test/{agent}")

    def max_in_window(self, window_s: float = 1.0) -> int:
        """The most requests that arrived within any ``window_s`` (closed) span."""
        times, best, first = self.times(), 0, 0
        for last, t in enumerate(times):
            while t - times[first] > window_s:
                first += 1
            best = max(best, last - first + 1)
        return best

    def step_spans(self) -> dict[tuple[str, str], tuple[float, float]]:
        """(run, step) -> (first, last) request time. A step is known by what it fetches (photos are /uploads/);
        each step's client reads /robots.txt first, which belongs to the step of that run's next request."""
        spans: dict[tuple[str, str], tuple[float, float]] = {}
        for name in RUNS:
            mine = sorted((t, path) for t, path, agent in self.requests if agent == f"petid-test/{name}")
            kind = "listings"
            for i in range(len(mine) - 1, -1, -1):  # backwards: robots.txt takes the kind of what follows it
                t, path = mine[i]
                kind = "photos" if path.startswith("/uploads/") else kind if path == "/robots.txt" else "listings"
                lo, hi = spans.get((name, kind), (t, t))
                spans[(name, kind)] = (min(lo, t), max(hi, t))
        return spans

    def overlapping_steps(self) -> list[tuple]:
        spans = sorted(self.step_spans().items(), key=lambda item: item[1])
        return [(a, b) for (a, (_, a_end)), (b, (b_start, _)) in zip(spans, spans[1:]) if b_start < a_end]


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from petid_sample.pet911_site import write_site
    from petid_sample.world import build_world

    world = build_world(seed=3, n_animals=8)
    site = tmp_path_factory.mktemp("pet911") / "site"
    write_site(sorted(world.listings, key=lambda item: (item.date_added, item.listing_id), reverse=True), site)
    return site


def _overlapping_crawls(tmp_path: Path, site_dir: Path, pools: bool, server: PostgresServer,
                        monkeypatch: pytest.MonkeyPatch) -> Crawls:
    from petid_sample.pet911_site import Faults, serve_site

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(_dagster_yaml(pools))
    database = f"crawl_{'pools' if pools else 'nopools'}"
    admin = server.connect("postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{database}"')
    admin.close()
    for name, value in {**server.environment(), "DAGSTER_PG_DB": database, "DAGSTER_HOME": str(home)}.items():
        monkeypatch.setenv(name, value)  # this process's instance reads them; the run processes inherit them
    _create_instance(home)
    go = tmp_path / "go"
    faults = Faults()  # no faults: it only records every request
    env = dict(os.environ)
    env.pop("PETID_OBJECT_STORE", None)
    started = time.monotonic()
    with serve_site(site_dir, faults) as base:
        procs = {name: subprocess.Popen([sys.executable, __file__, name, base, str(tmp_path / name), str(go)],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for name in RUNS}
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not all((tmp_path / name / "ready").exists() for name in RUNS):
                for name, proc in procs.items():
                    if proc.poll() is not None:
                        pytest.fail(f"{name} exited before the release: {proc.stdout.read()[-3000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"the run processes were not ready within {START_TIMEOUT_S} s")
                time.sleep(0.05)
            go.touch()  # both runs start now
            released = time.monotonic()
            outputs = {name: proc.communicate(timeout=RUN_TIMEOUT_S)[0] for name, proc in procs.items()}
            print(f"pools={pools}: processes ready in {released - started:.1f} s, both runs done "
                  f"{time.monotonic() - released:.1f} s after the release")
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)
    results = {}
    for name in RUNS:
        result_file = tmp_path / name / "result.json"
        assert result_file.exists(), f"{name} wrote no result:\n{outputs[name][-3000:]}"
        results[name] = json.loads(result_file.read_text())
        assert results[name]["success"], f"{name} failed:\n{outputs[name][-3000:]}"
    return Crawls(list(faults.requests), results, home)


def _create_instance(home: Path) -> None:
    """Create the instance's tables once, before the runs start — as a deployment migrates its instance once — and
    the ``pet911`` pool's limit from the configured default (deploy/RUNBOOK.md: ``dagster instance concurrency
    set pet911 1``) rather than on the first claim, where two runs starting together could both create it."""
    from dagster import DagsterInstance

    from assets.ingest import PET911_POOL

    with DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
        instance.event_log_storage.get_concurrency_keys()
        instance.all_instigator_state()
        instance.event_log_storage.initialize_concurrency_limit_to_default(PET911_POOL)


def _runs_in_instance(home: Path) -> dict[str, str]:
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        return {run.run_id: run.status.value for run in instance.get_runs()}


def _assert_both_crawled_everything(crawls: Crawls) -> None:
    per_run = {name: len(crawls.times(name)) for name in RUNS}
    assert min(per_run.values()) >= 30 and per_run["run-a"] == per_run["run-b"], per_run  # a full crawl each
    assert sorted(_runs_in_instance(crawls.dagster_home).values()) == ["SUCCESS", "SUCCESS"]
    assert set(_runs_in_instance(crawls.dagster_home)) == {r["run_id"] for r in crawls.results.values()}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_overlapping_crawls_in_one_pool_stay_under_the_rate(tmp_path: Path, site_dir: Path, postgres: PostgresServer,  # noqa: F811
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    crawls = _overlapping_crawls(tmp_path, site_dir, True, postgres, monkeypatch)
    _assert_both_crawled_everything(crawls)
    one_s, two_s = crawls.max_in_window(1.0), crawls.max_in_window(2.0)
    print(f"with the pool: at most {one_s} requests in 1 s, {two_s} in 2 s (rate {RATE_PER_S}/s)")
    assert one_s <= RATE_PER_S + TOLERANCE, (one_s, crawls.step_spans())
    assert two_s <= 2 * RATE_PER_S + TOLERANCE, (two_s, crawls.step_spans())
    # the pool held one crawl step at a time across both runs: their request spans never interleave
    assert len(crawls.step_spans()) == 4 and crawls.overlapping_steps() == [], crawls.step_spans()
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(crawls.dagster_home)) as instance:
        info = instance.event_log_storage.get_concurrency_info("pet911")
        assert info.slot_count == 1 and info.active_slot_count == 0  # the limit applied, and every slot was freed


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_without_the_pool_limit_the_same_crawls_exceed_the_rate(tmp_path: Path, site_dir: Path,
                                                                 postgres: PostgresServer,  # noqa: F811
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    crawls = _overlapping_crawls(tmp_path, site_dir, False, postgres, monkeypatch)
    _assert_both_crawled_everything(crawls)
    print(f"without the pool: at most {crawls.max_in_window(1.0)} requests in 1 s, {crawls.max_in_window(2.0)} in 2 s")
    assert crawls.overlapping_steps(), crawls.step_spans()  # the two runs crawled at the same time...
    assert crawls.max_in_window(1.0) > RATE_PER_S + TOLERANCE  # ...and together faster than the polite rate
    assert crawls.max_in_window(2.0) > 2 * RATE_PER_S + TOLERANCE


# -- one crawl run (its own process; the test starts two) ---------------------------------------------------------
def _crawl_run(name: str, base: str, root: str, go: str) -> None:
    """Materialize pet911_listings and pet911_photos against the instance in DAGSTER_HOME, released by ``go``."""
    from dagster import DagsterInstance, materialize

    from assets.ingest import pet911_listings, pet911_photos
    from dagster_project.io_managers import ParquetIOManager
    from dagster_project.jobs import CRAWL_TAGS
    from dagster_project.resources import HttpClientResource, StorageResource

    site = urlsplit(base).netloc  # exactly this loopback site is trusted
    storage = StorageResource(root=root)
    resources = {
        "storage": storage,
        "io_manager": ParquetIOManager(storage=storage),
        "http": HttpClientResource(base_url=base, rate_limit_per_s=RATE_PER_S, user_agent=f"petid-test/{name}",
                                   allowed_photo_hosts=[site], private_hosts=[site], max_retries=1, timeout_s=10.0),
    }
    Path(root).mkdir(parents=True, exist_ok=True)
    with DagsterInstance.get() as instance:
        (Path(root) / "ready").touch()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not Path(go).exists():
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: never released")
            time.sleep(0.005)
        result = materialize([pet911_listings, pet911_photos], resources=resources, instance=instance,
                             tags={**CRAWL_TAGS, "petid/test-run": name}, raise_on_error=False)
    (Path(root) / "result.json").write_text(json.dumps({"success": result.success, "run_id": result.run_id}))


if __name__ == "__main__":
    _crawl_run(*sys.argv[1:5])
