"""Curation throughput through the Celery executor: the ``curation_shards`` job on a real Redis broker with 1, 2
and 4 real ``dagster-celery`` worker processes, beside the in-process executor running the same job and the
unsharded ``process_images`` (the ``images`` asset's own process pool) as peers.

    uv run python bench/celery_curation.py [--photos 400] [--side 640] [--shards 16] [--workers 1,2,4] [--repeat 1]

Every configuration starts from empty records (its own storage root) over the same photos (photo-like synthetic
images, ½ content-addressed pet911-style captures, ½ plain file names), runs the job with ``dagster job execute``
against a throwaway SQLite instance shared with the workers, and reads the step timings back from the event log.
Prints one JSON object: photos/s end to end (the run's wall time, from the run's start to its end), over the
shard phase (first shard start to last shard end) and inside the shard steps (photos over the summed step times:
one task slot's rate, without the task hand-off and each worker's first load of the code), the shard steps each
Celery worker ran, and the machine's CPU count.

The harness (``Redis``, ``Workers``, ``write_corpus``, ``execute``, ``run_report``) is also what
``tests/test_celery_executor.py`` drives.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BIN = Path(sys.executable).parent
WORKER_CONFIG = REPO / "deploy" / "celery-worker.yaml"
JOB = "curation_shards"
PRELOAD = "dagster_project.definitions"  # imported once by each worker before it forks its task processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server() -> str | None:
    return shutil.which("redis-server") or next((p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server")
                                                 if os.access(p, os.X_OK)), None)


class Redis:
    """A throwaway ``redis-server`` on a free loopback port, its files in ``directory``, no persistence; stopped
    (and killed if it must be) on exit, and never alive longer than ``lifetime_s``."""

    def __init__(self, directory: Path, lifetime_s: float = 600) -> None:
        self.directory, self.lifetime_s = Path(directory), lifetime_s
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Redis:
        server = redis_server()
        if server is None:
            raise FileNotFoundError("redis-server is not installed (Debian package redis-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        # `timeout` bounds its life even if this process dies without cleaning up
        self.process = subprocess.Popen(
            ["timeout", "-s", "KILL", str(int(self.lifetime_s)), server, "--port", str(self.port), "--bind",
             "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(self.directory),
             "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: "
                                   f"{(self.directory / 'redis.log').read_text(errors='replace')[-500:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return self
            time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("redis-server did not answer PING within 10 s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


def stop(process: subprocess.Popen[Any], grace_s: float = 10) -> None:
    """SIGTERM to the process's group (it was started in a session of its own), SIGKILL after ``grace_s``."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def environment(dagster_home: Path, petid_home: Path, broker: str | None, executor: str) -> dict[str, str]:
    """The environment every process of the deployment shares: instance, storage root, executor and broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PETID_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(dagster_home), PETID_HOME=str(petid_home), PETID_EXECUTOR=executor,
               PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    if broker:
        env.update(PETID_CELERY_BROKER=f"{broker}/0", PETID_CELERY_BACKEND=f"{broker}/1")
    return env


def instance_home(directory: Path) -> Path:
    """A DAGSTER_HOME with an SQLite instance (the default storage) that the run and its workers share (one
    machine; across machines the instance is Postgres, ``deploy/dagster.yaml``)."""
    from dagster import DagsterInstance

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # create its databases once, here: processes that open a fresh SQLite instance at the same moment race on the
    # schema (two alembic heads); a Postgres instance is migrated once too (deploy/RUNBOOK.md §6)
    DagsterInstance.from_config(str(directory)).dispose()
    return directory


class Workers:
    """``dagster-celery worker start`` processes (node ``<name>@<host>``), each with ``concurrency`` task slots,
    logging to ``log_dir``; stopped on exit."""

    def __init__(self, names: Sequence[str], env: dict[str, str], log_dir: Path, concurrency: int = 1) -> None:
        self.names, self.env, self.log_dir, self.concurrency = list(names), env, Path(log_dir), concurrency
        self.processes: list[subprocess.Popen[bytes]] = []
        self.nodes = [f"{name}@{socket.gethostname()}" for name in self.names]

    def __enter__(self) -> Workers:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for name in self.names:
                log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
                self.processes.append(subprocess.Popen(
                    [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y",
                     str(WORKER_CONFIG), "-n", name, "-l", "INFO", "-i", PRELOAD, "--",
                     f"--concurrency={self.concurrency}",
                     "--without-gossip", "--without-mingle"],
                    cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
                log.close()
            self.wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def wait_ready(self, timeout_s: float = 60) -> None:
        """Until every node answers a broadcast ping."""
        from celery import Celery

        app = Celery("petid-bench", broker=self.env["PETID_CELERY_BROKER"], backend=self.env["PETID_CELERY_BACKEND"])
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                for name, process in zip(self.names, self.processes):
                    if process.poll() is not None:
                        raise RuntimeError(f"worker {name} exited with {process.returncode}: {self.log(name)[-800:]}")
                replies = app.control.ping(timeout=0.5) or []
                if set(self.nodes) <= {node for reply in replies for node in reply}:
                    return
            raise RuntimeError(f"workers {self.nodes} not all up within {timeout_s} s")
        finally:
            app.close()

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            stop(process)
        self.processes = []


def write_corpus(photos_dir: Path, count: int, side: int = 320) -> list[dict[str, Any]]:
    """``count`` photo-like images, half stored as content-addressed captures (``ab/<sha256>.jpg``, as the crawler
    stores pet911 photos), half under plain names; every 20th is not an image (a rejection). Catalogue rows."""
    import io

    from petid_sample.images import photo

    rows = []
    for k in range(count):
        if k % 20 == 19:
            data = b"this is not an image " + str(k).encode()
        else:
            buffer = io.BytesIO()
            photo(k, (side, side * 3 // 4)).save(buffer, "JPEG" if k % 3 else "PNG", quality=90)
            data = buffer.getvalue()
        if k % 2:
            sha = hashlib.sha256(data).hexdigest()
            path = photos_dir / "pet911" / sha[:2] / f"{sha}.jpg"
        else:
            path = photos_dir / "telegram" / f"photo_{k:05d}.{'png' if k % 3 == 0 else 'jpg'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        rows.append({"identity_id": f"{'pet911' if k % 2 else 'telegram'}:{k // 3}",
                     "source": "pet911" if k % 2 else "telegram", "path": str(path), "position": k % 3})
    return rows


def write_catalogue(petid_home: Path, rows: Sequence[dict[str, Any]]) -> None:
    """The ingest assets' tables as the IO manager stores them (what ``curation_shard_plan`` reads)."""
    import pyarrow.parquet as pq

    from petid.records import catalogue_table, empty_catalogue

    tables = petid_home / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    by_source = {"pet911": [r for r in rows if r["source"] == "pet911"],
                 "telegram": [r for r in rows if r["source"] == "telegram"]}
    pq.write_table(catalogue_table(by_source["pet911"]), tables / "pet911_photos.parquet")
    pq.write_table(catalogue_table(by_source["telegram"]), tables / "telegram_posts.parquet")
    pq.write_table(empty_catalogue(), tables / "external_datasets.parquet")


def execute(env: dict[str, str], work_dir: Path, shards: int, timeout_s: float = 300) -> subprocess.CompletedProcess:
    """``dagster job execute`` of ``curation_shards`` with ``shards`` shards, in a process of its own (the run's
    orchestrator; with the celery executor it submits the steps and waits)."""
    config = work_dir / "run_config.yaml"
    config.write_text(json.dumps({"ops": {"curation_shard_plan": {"config": {"shards": shards}}}}))
    return subprocess.run([str(BIN / "dagster"), "job", "execute", "-m", "dagster_project.definitions", "-j", JOB,
                           "-c", str(config)], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)


def run_report(dagster_home: Path) -> dict[str, Any]:
    """The latest run of the instance: status, wall time, shard-phase time, per step its Celery worker (from the
    executor's "Executing steps … in celery worker" engine event), attempts and summary output."""
    from dagster import DagsterEventType, DagsterInstance

    instance = DagsterInstance.from_config(str(dagster_home))
    try:
        run = instance.get_runs(limit=1)[0]
        records = instance.all_logs(run.run_id)
        steps: dict[str, dict[str, Any]] = {}
        run_start = run_end = None
        for record in records:
            event = record.dagster_event
            if event is None:
                continue
            if event.event_type == DagsterEventType.RUN_START:
                run_start = record.timestamp
            if event.event_type in (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE):
                run_end = record.timestamp
            if not event.step_key:
                continue
            step = steps.setdefault(event.step_key, {"workers": [], "starts": [], "ends": [], "retries": 0})
            if event.event_type == DagsterEventType.ENGINE_EVENT:
                worker = (event.engine_event_data.metadata or {}).get("Celery worker")
                if worker is not None:
                    step["workers"].append(worker.value)
            elif event.event_type in (DagsterEventType.STEP_START, DagsterEventType.STEP_RESTARTED):
                step["starts"].append(record.timestamp)
            elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                step["ends"].append(record.timestamp)
            elif event.event_type == DagsterEventType.STEP_UP_FOR_RETRY:
                step["retries"] += 1
        shard_steps = {k: v for k, v in steps.items() if k.startswith("curate_shard[")}
        phase = ((max(e for v in shard_steps.values() for e in v["ends"]) -
                  min(s for v in shard_steps.values() for s in v["starts"])) if shard_steps else None)
        return {"run_id": run.run_id, "status": run.status.value, "steps": steps,
                "wall_s": (run_end - run_start) if run_start and run_end else None, "shard_phase_s": phase}
    finally:
        instance.dispose()


def step_outputs(petid_home: Path, run_id: str) -> dict[str, Any]:
    """The JSON step outputs ``ShardIOManager`` wrote for ``run_id`` (shard summaries, the plan, the summary)."""
    out = {}
    for path in sorted((petid_home / "steps" / run_id).rglob("*.json")):
        out[str(path.relative_to(petid_home / "steps" / run_id).with_suffix(""))] = json.loads(path.read_text())
    return out


@contextlib.contextmanager
def deployment(root: Path, executor: str, broker: str | None) -> Iterator[tuple[dict[str, str], Path, Path]]:
    """A fresh instance and storage root under ``root``: (env, DAGSTER_HOME, PETID_HOME)."""
    dagster_home = instance_home(root / "dagster")
    petid_home = root / "home"
    petid_home.mkdir(parents=True, exist_ok=True)
    yield environment(dagster_home, petid_home, broker, executor), dagster_home, petid_home


def _measure(root: Path, rows: list[dict[str, Any]], executor: str, broker: str | None, workers: int,
             shards: int) -> dict[str, Any]:
    load = os.getloadavg()[0]
    with deployment(root, executor, broker) as (env, dagster_home, petid_home):
        write_catalogue(petid_home, rows)
        names = [f"w{i + 1}" for i in range(workers)] if executor == "celery" else []
        with Workers(names, env, root / "logs") if names else contextlib.nullcontext():
            start = time.perf_counter()
            done = execute(env, root, shards)
            elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{executor} x{workers}: dagster job execute failed: {done.stderr[-2000:]}")
        report = run_report(dagster_home)
    per_worker: dict[str, int] = {}
    busy = 0.0  # seconds inside shard steps (STEP_START to STEP_SUCCESS: the job loaded, resources up)
    for key, step in report["steps"].items():
        if key.startswith("curate_shard["):
            busy += step["ends"][-1] - step["starts"][-1]
            for worker in step["workers"][-1:]:
                per_worker[worker] = per_worker.get(worker, 0) + 1
    photos = len(rows)
    return {"executor": executor, "workers": workers, "status": report["status"],
            "run_wall_s": round(report["wall_s"], 2), "command_s": round(elapsed, 2),
            "shard_phase_s": round(report["shard_phase_s"], 2),
            "photos_per_s_run": round(photos / report["wall_s"], 1),
            "photos_per_s_shards": round(photos / report["shard_phase_s"], 1),
            "photos_per_s_in_steps": round(photos / busy, 1),  # one task slot's rate inside its steps
            "shard_steps_per_worker": per_worker, "loadavg_1min_before": round(load, 2)}


def _unsharded(root: Path, rows: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    """``process_images`` over the whole catalogue with its own process pool (the ``images`` asset's path), in a
    fresh interpreter: this one has threads by now (Celery's control client, the instance), and a pool forked
    from it can deadlock on a lock one of them held."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "rows.json").write_text(json.dumps(rows))
    done = subprocess.run([sys.executable, __file__, "--peer", str(root), "--peer-workers", str(workers)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"unsharded peer failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def _peer(root: Path, workers: int) -> dict[str, Any]:
    from curation.images import process_images
    from petid.records import catalogue_table

    rows = json.loads((root / "rows.json").read_text())
    catalogue = catalogue_table(rows)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    process_images(catalogue, root / "images", workers=workers)
    elapsed = time.perf_counter() - start
    return {"executor": "none (process_images, the images asset's pool)", "workers": workers,
            "seconds": round(elapsed, 2), "photos_per_s": round(len(rows) / elapsed, 1),
            "loadavg_1min_before": round(load, 2)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--side", type=int, default=640, help="long side of the photos, px")
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--workers", default="1,2,4", help="Celery worker counts (one task slot each)")
    parser.add_argument("--repeat", type=int, default=1, help="passes over every configuration (interleaved)")
    parser.add_argument("--peer", type=Path, help=argparse.SUPPRESS)  # internal: the unsharded peer's process
    parser.add_argument("--peer-workers", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer:
        print(json.dumps(_peer(args.peer, args.peer_workers)))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a terminated bench still stops its servers
    counts = [int(n) for n in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="petid-celery-bench-") as tmp:
        tmp = Path(tmp)
        rows = write_corpus(tmp / "photos", args.photos, args.side)
        results: dict[str, Any] = {"photos": args.photos, "side_px": args.side, "shards": args.shards,
                                   "cpus": os.cpu_count(), "runs": []}
        with Redis(tmp / "redis", lifetime_s=3600) as redis:
            for p in range(args.repeat):  # interleaved, so a burst of load elsewhere hits every configuration
                results["runs"].append(_unsharded(tmp / f"unsharded-{p}", rows, workers=min(2, os.cpu_count() or 1)))
                results["runs"].append(_measure(tmp / f"in_process-{p}", rows, "in_process", None, 1, args.shards))
                for n in counts:
                    results["runs"].append(_measure(tmp / f"celery-{n}-{p}", rows, "celery", redis.url, n,
                                                    args.shards))
        results["summary"] = _summary(results["runs"])
    print(json.dumps(results, indent=2))


def _summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per configuration: the median and range of each photos/s figure over the passes."""
    import statistics

    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["executor"], run["workers"]), []).append(run)
    out = []
    for (executor, workers), group in groups.items():
        row: dict[str, Any] = {"executor": executor, "workers": workers, "passes": len(group)}
        for key in ("photos_per_s", "photos_per_s_run", "photos_per_s_shards", "photos_per_s_in_steps"):
            values = [r[key] for r in group if key in r]
            if values:
                row[key] = {"median": round(statistics.median(values), 1), "min": min(values), "max": max(values)}
        out.append(row)
    return out


if __name__ == "__main__":
    main()
