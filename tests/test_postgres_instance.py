"""The production instance (``deploy/dagster.yaml``) on a real PostgreSQL server: a throwaway cluster is created
with ``initdb`` in a temporary folder, started with ``pg_ctl`` on a free loopback port (its unix socket inside that
folder), and stopped with ``pg_ctl stop -m fast`` when the module ends. The ingest group of petid's real graph is
materialized against it and read back by a second instance object and by plain SQL.

The two server tests are ``slow`` (about 10 s each). They skip, with the reason, only when the PostgreSQL server
binaries are absent (``.ci/run`` installs them with apt-get).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
SUBPROCESS_TIMEOUT_S = 60
PG_USER = "petid"
PG_PASSWORD = "petid-test-secret"
PG_DB = "dagster"
CRAWL_TAG = "petid/crawl"


def _server_bindir() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``: on PATH, else Debian's versioned folders."""
    if (initdb := shutil.which("initdb")) and shutil.which("pg_ctl"):
        return Path(initdb).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                        if Path(p).parent.name.isdigit() else 0)
    for folder in reversed(candidates):
        if all((Path(folder) / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def _server_user() -> str | None:
    """The account the server runs as: ``postgres`` (else ``nobody``) when we are root, since initdb refuses root;
    ``None`` (this process's own user) otherwise."""
    if os.geteuid() != 0:
        return None
    if not shutil.which("runuser"):
        pytest.skip("running as root (initdb refuses root) and runuser (util-linux) is not available to drop to "
                    "another account")
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name).pw_name
    pytest.skip("running as root and neither a 'postgres' nor a 'nobody' account exists to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class PostgresServer:
    bindir: Path
    root: Path
    port: int
    user: str | None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def server_command(self, *args: str) -> list[str]:
        """``args`` run as the server's account (``runuser`` when we are root)."""
        return (["runuser", "-u", self.user, "--"] if self.user else []) + list(args)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A server tool as the server's account, bounded, its output in the error when it fails."""
        result = subprocess.run(self.server_command(*args), capture_output=True, text=True, cwd=self.root,
                                timeout=SUBPROCESS_TIMEOUT_S, env={**os.environ, "LC_ALL": "C"})
        if result.returncode != 0:
            log_file = self.root / "server.log"
            log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            output = result.stdout + result.stderr
            raise RuntimeError(f"{Path(args[0]).name} failed ({result.returncode}): {output}{log}")
        return result

    def environment(self) -> dict[str, str]:
        """The variables ``deploy/dagster.yaml`` reads, pointing at this server over TCP with the password."""
        return {"DAGSTER_PG_USERNAME": PG_USER, "DAGSTER_PG_PASSWORD": PG_PASSWORD, "DAGSTER_PG_HOST": "127.0.0.1",
                "DAGSTER_PG_DB": PG_DB, "DAGSTER_PG_PORT": str(self.port)}

    def connect(self, db_name: str = PG_DB) -> Any:
        """A psycopg2 connection to ``db_name`` as the superuser, over TCP with the password."""
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=PG_USER, password=PG_PASSWORD,
                                dbname=db_name, connect_timeout=10)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A fresh cluster (superuser ``petid``, password auth over TCP), started on a free loopback port and stopped
    with ``pg_ctl stop -m fast`` (then ``-m immediate`` if that fails) however the tests end."""
    bindir = _server_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in "
                    "/usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql; .ci/run does)")
    user = _server_user()
    # a short path (the socket's name must fit in 107 bytes) the server's account can reach: as root, TMPDIR may sit
    # under a folder only root can enter
    root = Path(tempfile.mkdtemp(prefix="petid-pg-", dir="/tmp" if user and os.path.isdir("/tmp") else None))
    (root / "sock").mkdir()
    (root / "pwfile").write_text(PG_PASSWORD + "\n")
    if user:
        for path in (root, root / "sock", root / "pwfile"):
            shutil.chown(path, user=user)
    server = PostgresServer(bindir=bindir, root=root, port=_free_port(), user=user)
    started = False
    try:
        server.run(str(bindir / "initdb"), "-D", str(server.data), "-U", PG_USER, f"--pwfile={root / 'pwfile'}",
                   "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync")
        options = (f"-p {server.port} -k {server.socket_dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        server.run(str(bindir / "pg_ctl"), "-D", str(server.data), "-l", str(root / "server.log"), "-o", options,
                   "-w", "-t", str(SUBPROCESS_TIMEOUT_S - 10), "start")
        started = True
        admin = server.connect("postgres")
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{PG_DB}"')
        admin.close()
        yield server
    finally:
        if started:
            pg_ctl = str(bindir / "pg_ctl")
            try:
                server.run(pg_ctl, "-D", str(server.data), "-m", "fast", "-w", "-t", "30", "stop")
            except (RuntimeError, subprocess.TimeoutExpired):
                server.run(pg_ctl, "-D", str(server.data), "-m", "immediate", "-w", "-t", "30", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def dagster_home(postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME holding ``deploy/dagster.yaml`` as shipped, with the environment pointing it at ``postgres``."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    for name, value in postgres.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def test_the_deploy_config_keeps_credentials_in_the_environment() -> None:
    """Every ``postgres_db`` field is an ``env:`` reference and telemetry is off (no live server needed)."""
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    db = config["storage"]["postgres"]["postgres_db"]
    fields = {"username", "password", "hostname", "db_name", "port"}
    assert fields <= set(db) and all(set(db[name]) == {"env"} for name in fields), db
    assert db["scheme"] == "postgresql+psycopg2"  # the driver dagster-postgres installs
    assert config["telemetry"] == {"enabled": False}
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": CRAWL_TAG, "limit": 1} in limits
    assert config["concurrency"]["pools"]["default_limit"] == 1  # the pet911 pool: one crawl step at a time


def test_the_deploy_workspace_names_the_petid_code_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._core.workspace.config_schema import process_workspace_config

    monkeypatch.setenv("DAGSTER_CODE_SERVER_HOST", "code.internal")
    monkeypatch.setenv("DAGSTER_CODE_SERVER_PORT", "4000")
    config = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    result = process_workspace_config(config)
    assert result.success, result.errors
    [entry] = config["load_from"]
    assert entry["grpc_server"]["location_name"] == "petid"  # as in workspace.yaml and [tool.dagster]


@pytest.mark.slow
def test_ingest_materializes_into_postgres_and_reads_back(postgres: PostgresServer, dagster_home: Path,
                                                          tmp_path: Path) -> None:
    """The ingest group (the demo deployment's crawl of the local sample site, Telegram export, no datasets) runs
    against the Postgres instance; a second instance object on the same database sees the run, its tag and every
    materialization with its data version, the rows are in Postgres' own tables, and nothing went to SQLite."""
    from dagster import AssetKey, DagsterInstance, DagsterRunStatus, materialize
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    from assets import ingest
    from dagster_project.deployments import demo_resources

    keys = ["pet911_listings", "pet911_photos", "telegram_posts", "external_datasets"]
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {"key": CRAWL_TAG, "limit": 1} in limits
        resources = demo_resources(home=str(tmp_path / "petid_home"), n_animals=8)
        result = materialize(ingest.defs.assets, instance=instance, resources=resources, tags={CRAWL_TAG: "pet911"})
        assert result.success
        run_id = result.run_id

    with DagsterInstance.from_config(str(dagster_home)) as reader:  # a new instance object, same database
        [record] = reader.get_run_records()
        assert record.dagster_run.run_id == run_id
        assert record.dagster_run.status == DagsterRunStatus.SUCCESS
        assert record.dagster_run.tags[CRAWL_TAG] == "pet911"
        for key in keys:
            event = reader.get_latest_materialization_event(AssetKey(key))
            assert event is not None and event.run_id == run_id, key
            assert event.asset_materialization.tags.get("dagster/data_version"), key
        photos = reader.get_latest_materialization_event(AssetKey("pet911_photos")).asset_materialization
        assert photos.metadata["photos"].value > 0

    with postgres.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT run_id, status FROM runs")
        assert cursor.fetchall() == [(run_id, "SUCCESS")]
        cursor.execute("SELECT asset_key FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
        assert sorted(row[0] for row in cursor.fetchall()) == sorted(AssetKey(k).to_string() for k in keys)
    connection.close()
    assert not list(dagster_home.rglob("*.db")), "the instance wrote SQLite files"


@pytest.mark.slow
def test_dagster_instance_migrate_runs_against_the_deploy_config(postgres: PostgresServer, dagster_home: Path) -> None:
    """The RUNBOOK's upgrade step, ``dagster instance migrate``, and ``dagster instance info`` work on the config."""
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    migrate = subprocess.run([sys.executable, "-m", "dagster", "instance", "migrate"], capture_output=True, text=True,
                             env=env, timeout=180)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    info = subprocess.run([sys.executable, "-m", "dagster", "instance", "info"], capture_output=True, text=True,
                          env=env, timeout=180)
    assert info.returncode == 0, info.stdout + info.stderr
    for line in ("run_storage: PostgresRunStorage", "event_log_storage: PostgresEventLogStorage",
                 "schedule_storage: PostgresScheduleStorage"):
        assert line in info.stdout, info.stdout
    schema = yaml.safe_load(info.stdout.split("Storage schema state:")[1].split("\n", 2)[2])["schema"]
    assert {name: state["current"] == state["latest"] for name, state in schema.items()} == {
        "event_log_storage": True, "run_storage": True, "schedule_storage": True}, schema
    assert PG_PASSWORD not in info.stdout + info.stderr
