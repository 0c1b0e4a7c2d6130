"""``petid demo`` (the whole graph through Dagster against the offline sample source) and ``petid ui``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from petid.settings import Layout, petid_home


def add_commands(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="materialize the whole asset graph on the offline sample source")
    demo.add_argument("--home", help="storage root (default: $PETID_HOME or ./data)")
    demo.add_argument("--animals", type=int, default=48, help="animals in the synthetic sample world")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=run_demo)

    ui = sub.add_parser("ui", help="open the Dagster UI on this storage root (dagster dev)")
    ui.add_argument("--home", help="storage root (default: $PETID_HOME or ./data)")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--sample", action="store_true", help="the demo deployment: the assets read the local sample world")
    ui.set_defaults(func=run_ui)


def prepare_home(home: str | None) -> Layout:
    """The storage root and Dagster's SQLite instance inside it (``<root>/dagster``)."""
    layout = Layout(home or petid_home())
    layout.dagster_home.mkdir(parents=True, exist_ok=True)
    instance_config = layout.dagster_home / "dagster.yaml"
    if not instance_config.exists():  # an explicit (empty) config: SQLite storage under DAGSTER_HOME
        instance_config.write_text("# Dagster instance for petid: default SQLite storage in this folder.\n")
    return layout


def run_demo(args: argparse.Namespace) -> int:
    layout = prepare_home(args.home)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(layout.cache / "ultralytics"))  # when PETID_DETECTOR is set
    print(f"petid demo — storage root {layout.root}")
    print("The sample source is SYNTHETIC: procedurally drawn animals served by a local pet911-format site and a")
    print("Telegram Desktop export, scraped through the same code paths as the live sources.\n")

    from dagster import DagsterInstance, HookContext, failure_hook, success_hook

    from dagster_project import definitions

    started = time.monotonic()
    defs = definitions.build_defs("demo", home=str(layout.root), seed=args.seed, n_animals=args.animals)
    job = defs.resolve_job_def("full_pipeline")
    total = len(job.graph.node_defs)
    done: list[str] = []

    @success_hook
    def progress(context: HookContext) -> None:
        done.append(context.op.name)
        print(f"  [{len(done):>2}/{total}] {context.op.name:<28} done at {time.monotonic() - started:6.1f}s", flush=True)

    @failure_hook
    def failed(context: HookContext) -> None:
        print(f"  FAILED {context.op.name}: {context.op_exception}", file=sys.stderr, flush=True)

    run_config = {
        "ops": {"images": {"config": {"workers": 2}}, "image_hashes": {"config": {"workers": 2}}},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    print(f"materializing {total} steps (ingest → curation → dataset → model):", flush=True)
    with DagsterInstance.from_config(str(layout.dagster_home)) as instance:
        result = job.with_hooks({progress, failed}).execute_in_process(
            instance=instance, run_config=run_config, raise_on_error=False
        )
    if not result.success:
        print("\nthe demo run failed; see the errors above", file=sys.stderr)
        return 1
    failed_checks = [
        evaluation.check_name
        for evaluation in result.get_asset_check_evaluations()
        if not evaluation.passed
    ]
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

    print(f"\nEvaluation on unseen test identities (production = {production}; 95 % intervals, bootstrap over animals):")
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


def run_ui(args: argparse.Namespace) -> int:
    layout = prepare_home(args.home)
    command = ["dagster", "dev", "-m", "dagster_project.definitions", "-p", str(args.port)]
    settings = {"DAGSTER_HOME": str(layout.dagster_home), "PETID_HOME": str(layout.root),
                "PETID_DEPLOYMENT": "demo" if args.sample else os.environ.get("PETID_DEPLOYMENT", "production")}
    print(" ".join(f"{k}={v}" for k, v in settings.items()) + " " + " ".join(command))
    return subprocess.call(command, cwd=Path(__file__).resolve().parents[1], env={**os.environ, **settings})
