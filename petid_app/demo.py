"""``petid demo`` (the whole graph through Dagster against the offline sample source) and ``petid ui``.

The demo launches its run the way the UI does: a code server for the code location ``petid``
(``dagster_project.definitions``, the demo deployment chosen by the code server's environment), a run created
from that location's job (so it carries its remote job origin: listed under its job, re-executable from the UI),
launched with the instance's run launcher, and followed through the run's event log.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from petid.settings import Layout, petid_home

if TYPE_CHECKING:
    from dagster import DagsterInstance, DagsterRun
    from dagster._core.workspace.context import WorkspaceProcessContext

REPO = Path(__file__).resolve().parents[1]
MODULE = "dagster_project.definitions"
LOCATION = "petid"  # the code location's name, as in workspace.yaml and pyproject's [tool.dagster]
JOB = "full_pipeline"
DEMO_TAG = "petid/launched_by"
RUN_CONFIG: dict[str, Any] = {
    "ops": {"images": {"config": {"workers": 2}}, "image_hashes": {"config": {"workers": 2}}},
    "loggers": {"console": {"config": {"log_level": "WARNING"}}},
}
INSTANCE_CONFIG = """\
# Dagster instance for petid: default SQLite storage in this folder.
telemetry:
  enabled: false
"""
_OLD_INSTANCE_CONFIG = "# Dagster instance for petid: default SQLite storage in this folder.\n"


def add_commands(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="materialize the whole asset graph on the offline sample source")
    demo.add_argument("--home", help="storage root (default: $PETID_HOME or ./data)")
    demo.add_argument("--animals", type=int, default=48, help="animals in the synthetic sample world")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=run_demo)

    ui = sub.add_parser("ui", help="open the Dagster UI on this storage root (dagster dev)")
    ui.add_argument("--home", help="storage root (default: $PETID_HOME or ./data)")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--host", default="127.0.0.1", help="address the UI listens on")
    ui.add_argument("--sample", action="store_true", help="the demo deployment: the assets read the local sample world")
    ui.add_argument("--animals", type=int, help="with --sample: the sample world's size (default: the one in --home)")
    ui.add_argument("--seed", type=int, help="with --sample: the sample world's seed (default: the one in --home)")
    ui.set_defaults(func=run_ui)


def prepare_home(home: str | None) -> Layout:
    """The storage root and Dagster's SQLite instance inside it (``<root>/dagster``, telemetry off)."""
    layout = Layout(home or petid_home())
    layout.dagster_home.mkdir(parents=True, exist_ok=True)
    instance_config = layout.dagster_home / "dagster.yaml"
    if not instance_config.exists() or instance_config.read_text() == _OLD_INSTANCE_CONFIG:
        instance_config.write_text(INSTANCE_CONFIG)
    return layout


def demo_environment(layout: Layout, seed: int, n_animals: int) -> dict[str, str]:
    """The variables (``dagster_project.deployments.ENVIRONMENT``) that make a code server serve the demo
    deployment on ``layout``'s storage root and sample world; given to subprocesses, never set here."""
    return {"DAGSTER_HOME": str(layout.dagster_home), "PETID_HOME": str(layout.root), "PETID_DEPLOYMENT": "demo",
            "PETID_SAMPLE_SEED": str(seed), "PETID_SAMPLE_ANIMALS": str(n_animals)}


@contextlib.contextmanager
def code_server(instance: DagsterInstance, env: Mapping[str, str], startup_timeout_s: int = 180,
                log_level: str = "warning") -> Iterator[WorkspaceProcessContext]:
    """A ``dagster api grpc`` code server for the location ``petid`` in its own process group, with ``env`` on
    top of this process's environment, and a workspace on it. The server shuts itself down when the heartbeats
    stop (this process died); on exit it is shut down, and killed if it does not go."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import GrpcServerTarget
    from dagster._grpc.client import DagsterGrpcClient, client_heartbeat_thread
    from dagster._grpc.server import wait_for_grpc_server
    from dagster._serdes import serialize_value

    with tempfile.TemporaryDirectory(prefix="petid-code-server-") as tmp:
        socket = str(Path(tmp) / "grpc.sock")
        command = [sys.executable, "-m", "dagster", "api", "grpc", "--socket", socket, "-m", MODULE,
                   "-d", str(REPO), "--location-name", LOCATION, "--log-level", log_level,
                   "--heartbeat", "--heartbeat-timeout", "60", "--instance-ref", serialize_value(instance.get_ref())]
        server_env = {"YOLO_CONFIG_DIR": str(Path(env["PETID_HOME"]) / "cache" / "ultralytics"), **os.environ, **env}
        process = subprocess.Popen(command, cwd=REPO, env=server_env, start_new_session=True)
        client = DagsterGrpcClient(socket=socket, host="localhost")
        stop_heartbeat = threading.Event()
        try:
            wait_for_grpc_server(process, client, command[:12], timeout=startup_timeout_s)
            threading.Thread(target=client_heartbeat_thread, args=(client, stop_heartbeat), daemon=True).start()
            target = GrpcServerTarget(host="localhost", port=None, socket=socket, location_name=LOCATION)
            with WorkspaceProcessContext(instance, target, read_only=False) as workspace:
                yield workspace
        finally:
            stop_heartbeat.set()
            if process.poll() is None:
                with contextlib.suppress(Exception):
                    client.shutdown_server()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, 9)
                    process.wait(timeout=10)


def create_job_run(instance: DagsterInstance, workspace: WorkspaceProcessContext, job_name: str,
                   run_config: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> DagsterRun:
    """A run of ``job_name`` created from the code location ``petid``, as the UI's launchpad creates one: with
    the job's snapshot, execution plan and remote origin (so the UI lists it under its job and re-executes it)."""
    from dagster._core.definitions.selector import JobSubsetSelector

    location = workspace.create_request_context().get_code_location(LOCATION)
    (repository,) = location.get_repositories().values()
    remote_job = location.get_job(JobSubsetSelector(location_name=LOCATION, repository_name=repository.name,
                                                    job_name=job_name, op_selection=None))
    plan = location.get_execution_plan(remote_job, dict(run_config), step_keys_to_execute=None, known_state=None,
                                       instance=instance).execution_plan_snapshot
    return instance.create_run(
        job_name=job_name, run_id=None, run_config=dict(run_config), status=None,
        tags={**remote_job.tags, **(tags or {})}, root_run_id=None, parent_run_id=None,
        step_keys_to_execute=plan.step_keys_to_execute, execution_plan_snapshot=plan,
        job_snapshot=remote_job.job_snapshot, parent_job_snapshot=remote_job.parent_job_snapshot,
        asset_selection=None, asset_check_selection=None, resolved_op_selection=remote_job.resolved_op_selection,
        op_selection=None, remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(), asset_graph=repository.asset_graph)


def follow_run(instance: DagsterInstance, run_id: str, total: int, started: float, poll_s: float = 0.5,
               alive: Callable[[], bool] | None = None) -> DagsterRun:
    """Print one line per finished step from the run's event log until the run ends; return the run.
    ``alive()`` (when given) says whether the process executing the run still exists: a run whose process is
    gone (three answers in a row) while it is not finished is marked failed."""
    from dagster import DagsterEventType

    kinds = {DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}
    cursor: str | None = None
    done = misses = 0
    while True:
        run = instance.get_run_by_id(run_id)
        finished = run is not None and run.is_finished
        connection = instance.get_records_for_run(run_id, cursor=cursor, of_type=kinds)
        cursor = connection.cursor
        for record in connection.records:
            event = record.event_log_entry.dagster_event
            if event is None:
                continue
            if event.event_type == DagsterEventType.STEP_SUCCESS:
                done += 1
                print(f"  [{done:>2}/{total}] {event.step_key:<28} done at {time.monotonic() - started:6.1f}s",
                      flush=True)
            elif event.event_type == DagsterEventType.STEP_FAILURE:
                error = event.step_failure_data.error
                print(f"  FAILED {event.step_key}: {error.message.strip() if error else event.message}",
                      file=sys.stderr, flush=True)
            else:
                print(f"  run failed: {record.event_log_entry.message}", file=sys.stderr, flush=True)
        if connection.has_more:
            continue
        if finished:
            assert run is not None
            return run
        misses = 0 if alive is None or alive() else misses + 1
        if misses >= 3 and (run := instance.get_run_by_id(run_id)) is not None and not run.is_finished:
            print("  the process executing the run is gone", file=sys.stderr, flush=True)
            instance.report_run_failed(run, "the process executing the run disappeared")
        time.sleep(poll_s)


def failed_asset_checks(instance: DagsterInstance, run_id: str) -> list[str]:
    from dagster import DagsterEventType

    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
    evaluations = [r.event_log_entry.dagster_event.event_specific_data for r in records
                   if r.event_log_entry.dagster_event is not None]
    return [e.check_name for e in evaluations if not e.passed]


def run_demo(args: argparse.Namespace) -> int:
    layout = prepare_home(args.home)
    print(f"petid demo — storage root {layout.root}")
    print("The sample source is SYNTHETIC: procedurally drawn animals served by a local pet911-format site and a")
    print("Telegram Desktop export, scraped through the same code paths as the live sources.\n")

    from dagster import DagsterInstance, DagsterRunStatus

    started = time.monotonic()
    demo_settings_path(layout).write_text(json.dumps({"seed": args.seed, "animals": args.animals}) + "\n")
    with DagsterInstance.from_config(str(layout.dagster_home)) as instance, \
            code_server(instance, demo_environment(layout, args.seed, args.animals)) as workspace:
        run = create_job_run(instance, workspace, JOB, RUN_CONFIG, tags={DEMO_TAG: "petid demo"})
        total = len(run.step_keys_to_execute or [])
        print(f"materializing {total} steps (ingest → curation → dataset → model), run {run.run_id}:", flush=True)
        instance.launch_run(run.run_id, workspace.create_request_context())
        client = workspace.create_request_context().get_code_location(LOCATION).client  # type: ignore[attr-defined]

        def executing() -> bool:
            from dagster._grpc.types import GetCurrentRunsResult
            from dagster._serdes import deserialize_value

            with contextlib.suppress(Exception):
                return run.run_id in deserialize_value(client.get_current_runs(), GetCurrentRunsResult).current_runs
            return False

        try:
            run = follow_run(instance, run.run_id, total, started, alive=executing)
        except KeyboardInterrupt:
            instance.run_launcher.terminate(run.run_id)
            raise
        failed_checks = failed_asset_checks(instance, run.run_id)
        succeeded = run.status == DagsterRunStatus.SUCCESS
    if not succeeded:
        print(f"\nthe demo run failed ({run.status.value}); see the errors above", file=sys.stderr)
        return 1
    print(f"\nall steps succeeded in {time.monotonic() - started:.1f}s; asset checks failed: {failed_checks or 'none'}")
    print_summary(layout)
    print(f"\nBrowse what ran: uv run petid ui --sample --home {layout.root}")
    return 0 if not failed_checks else 1


def print_summary(layout: Layout) -> None:
    import pyarrow.parquet as pq

    from curation.identity_stats import stats_markdown

    print("\nIdentity statistics (photos per identity, identities in splits):")
    print(stats_markdown(pq.read_table(layout.table("identity_stats"))))
    lineage = pq.read_table(layout.table("reid_model")).to_pylist()[0]
    trained, production = lineage["trained_version"], lineage["production_version"]
    print(f"\nModel {trained}: {'promoted to production' if lineage['promoted'] else 'kept out of production'}"
          f" — {lineage['reason']}")
    report_path = layout.reports / trained / "report.json"
    report = json.loads(report_path.read_text())
    from evaluation.evaluate import HEADLINE as headline

    print(f"\nEvaluation on unseen test identities (production = {production}; 95 % intervals, "
          "bootstrap over animals):")
    print("| model | " + " | ".join(headline) + " | Top-1 95% CI | EER 95% CI |\n|---|" + "---|" * (len(headline) + 2))
    rows = [("production", report), ("frozen backbone", report.get("baseline", {}))]
    if report.get("candidate"):
        rows.append(("trained (not promoted)", report["candidate"]))
    for name, values in rows:
        cis = [values.get("intervals", {}).get(k) for k in ("top1", "eer")]
        print(f"| {name} | " + " | ".join(f"{values.get(k, float('nan')):.3f}" for k in headline) + " | "
              + " | ".join(f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "—" for ci in cis) + " |")
    print(f"\nReport: {report_path.parent / 'report.html'}\n        {report_path}\n"
          f"Pairs:  {report_path.parent / 'pairs.csv'}")
    print_matching(layout)


def print_matching(layout: Layout) -> None:
    """The matching headline: planted lost → found pairs found at rank 1 / within the top 5, pairs reviewed."""
    import pyarrow.parquet as pq

    from curation.decisions import DecisionLog
    from evaluation.match_run import recall_at
    from petid_sample import load_planted_matches
    from petid_sample.source import ensure_sample

    candidates = pq.read_table(layout.table("match_candidates"))
    seed, animals = recorded_sample(layout) or (0, 48)
    planted = load_planted_matches(ensure_sample(layout.root / "sample", seed=seed, n_animals=animals).root)
    recall = recall_at(candidates, [(m.lost.identity_id, m.found.identity_id) for m in planted])
    reviewed = DecisionLog(layout.decisions).latest().num_rows
    found_1, found_5 = (round((recall[k] or 0) * recall["n"]) for k in ("recall@1", "recall@5"))
    print(f"\nLost ↔ found matching: {candidates.num_rows} candidate pairs; planted pairs found at rank 1: "
          f"{found_1}/{recall['n']}, within the top 5: {found_5}/{recall['n']}; pairs reviewed: {reviewed}")
    print(f"Review page: {layout.review / 'index.html'}   (record a decision: petid review decide A B same --reviewer "
          "YOU)")


def demo_settings_path(layout: Layout) -> Path:
    """Where ``petid demo`` records the sample world it ran on (``petid ui --sample`` serves the same one)."""
    return layout.root / "demo.json"


def recorded_sample(layout: Layout) -> tuple[int, int] | None:
    """(seed, animals) of the last ``petid demo`` on this storage root, if it recorded them."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        settings = json.loads(demo_settings_path(layout).read_text())
        return int(settings["seed"]), int(settings["animals"])
    return None


def ui_command(layout: Layout, port: int, host: str = "127.0.0.1", sample: bool = False, seed: int | None = None,
               animals: int | None = None) -> tuple[dict[str, str], list[str]]:
    """The environment and ``dagster dev`` command of ``petid ui``: the workspace file names the location
    ``petid`` (the name the demo's runs carry, so the UI re-executes them), ``--sample`` the demo deployment on
    the sample world the last ``petid demo`` recorded in the storage root (its seed and size, unless given)."""
    settings = {"DAGSTER_HOME": str(layout.dagster_home), "PETID_HOME": str(layout.root)}
    if sample:
        found = recorded_sample(layout) or (0, 48)
        settings.update(demo_environment(layout, found[0] if seed is None else seed,
                                         found[1] if animals is None else animals))
    else:
        settings["PETID_DEPLOYMENT"] = os.environ.get("PETID_DEPLOYMENT", "production")
    return settings, ["dagster", "dev", "-w", str(REPO / "workspace.yaml"), "-h", host, "-p", str(port)]


def run_ui(args: argparse.Namespace) -> int:
    layout = prepare_home(args.home)
    settings, command = ui_command(layout, args.port, args.host, args.sample, args.seed, args.animals)
    print(" ".join(f"{k}={shlex.quote(v)}" for k, v in settings.items()) + " " + shlex.join(command), flush=True)
    quiet = ["-W", "ignore:Function `dev_command` is superseded"]  # `dagster dev` still works; `dg` is not installed
    return subprocess.call([sys.executable, *quiet, "-m", *command], cwd=REPO, env={**os.environ, **settings})
