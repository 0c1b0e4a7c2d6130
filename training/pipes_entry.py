"""``python -m training.pipes_entry JOB_DIR``: ``train_model`` in its own process, for ``reid_model``'s
``subprocess`` launcher (Dagster Pipes; ``docs/training-pipes.md``).

``JOB_DIR`` holds what the asset wrote: ``frame.parquet`` (the train/val rows) and ``job.json`` (``config``: the
TrainConfig as a dict, ``registry``: the registry root, ``force``). The same call runs under ``python``,
``torchrun --nproc_per_node=N -m training.pipes_entry JOB_DIR`` or in a Kubernetes pod, as long as ``JOB_DIR``,
the registry and the photos are at the same paths there (shared storage).

Rank 0, launched by Dagster, opens Dagster Pipes: progress lines stream to the run's event log
(``pipes.log.info``), the run's metrics (per-epoch history included) come back as the materialization's
metadata, and ``result.json`` (the ``TrainResult``, or ``{"error": <one line>}``) is written to ``JOB_DIR`` for the
asset to build its lineage row from. Other ranks, and a run by hand, log to stderr.

This is the one module of the libraries that imports a ``dagster_*`` package: ``dagster_pipes``, the dependency-free
protocol half of Pipes, not the orchestrator (``tests/test_layout.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

JOB_FILE, FRAME_FILE, RESULT_FILE = "job.json", "frame.parquet", "result.json"


def write_job(job_dir: str | Path, frame: Any, config: Any, registry_root: str | Path, force: bool = False) -> Path:
    """Write the inputs of one training process to ``job_dir`` (the asset's side); returns ``job_dir``."""
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(job_dir / FRAME_FILE, index=False)
    job = {"config": config.to_dict(), "registry": str(Path(registry_root).resolve()), "force": bool(force)}
    (job_dir / JOB_FILE).write_text(json.dumps(job, indent=1), encoding="utf-8")
    (job_dir / RESULT_FILE).unlink(missing_ok=True)
    return job_dir


def read_result(job_dir: str | Path) -> dict[str, Any] | None:
    """The ``result.json`` a training process left in ``job_dir``, or None when it wrote none."""
    path = Path(job_dir) / RESULT_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def one_line(exc: BaseException, limit: int = 400) -> str:
    """``exc`` as one line: a UserError's message as it is, anything else prefixed with its type."""
    from petid.errors import UserError

    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text if isinstance(exc, UserError) else f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_job(job_dir: Path, log: Callable[[str], Any]) -> Any:
    """``train_model`` on the job's frame and config; the ``TrainResult``."""
    import pandas as pd

    from training.config import TrainConfig
    from training.train import train_model

    job = json.loads((job_dir / JOB_FILE).read_text(encoding="utf-8"))
    frame = pd.read_parquet(job_dir / FRAME_FILE)
    config = TrainConfig.from_dict(job["config"])
    return train_model(frame, config, job["registry"], force=bool(job.get("force")), log=log)


def result_record(result: Any) -> dict[str, Any]:
    """A ``TrainResult`` as the JSON ``result.json`` holds."""
    return {"version_id": result.version_id, "path": str(result.path), "reused": result.reused,
            "metrics": result.metrics, "baseline_id": result.baseline_id, "production_id": result.production_id,
            "gate": result.gate}


def child_metadata(result: Any) -> dict[str, Any]:
    """What the materialization shows from the training process: its headline metrics, effort, host and the
    per-epoch history (Pipes metadata: raw values, or ``{"raw_value", "type"}``)."""
    import socket

    metrics = result.metrics or {}
    values: dict[str, Any] = {key: metrics.get(key) for key in ("val_top1", "val_map", "val_eer", "steps",
                                                                "epochs_run", "best_epoch", "images_per_s",
                                                                "world_size")}
    values["train_seconds"] = metrics.get("seconds")
    metadata: dict[str, Any] = {key: value for key, value in values.items() if value is not None}
    metadata["trained_on"] = socket.gethostname()
    metadata["epoch_history"] = {"raw_value": metrics.get("history") or [], "type": "json"}
    return metadata


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.pipes_entry", description=__doc__.split("\n\n")[0])
    parser.add_argument("job_dir", type=Path, help="folder with job.json and frame.parquet (written by reid_model)")
    job_dir = parser.parse_args(argv).job_dir
    from training.ddp import dist_info

    main_rank = dist_info().is_main
    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

    if not (main_rank and PipesEnvVarParamsLoader().is_dagster_pipes_process()):
        try:
            result = run_job(job_dir, _stderr)
        except Exception as exc:
            if main_rank:
                _write_json(job_dir / RESULT_FILE, {"error": one_line(exc)})
            raise
        if main_rank:
            _write_json(job_dir / RESULT_FILE, result_record(result))
            print(result.version_id)
        return 0
    with open_dagster_pipes() as pipes:
        try:
            result = run_job(job_dir, pipes.log.info)
        except Exception as exc:  # the asset reads the one line; Pipes still gets the full exception
            _write_json(job_dir / RESULT_FILE, {"error": one_line(exc)})
            pipes.log.error(f"training failed: {one_line(exc)}")
            raise
        _write_json(job_dir / RESULT_FILE, result_record(result))
        pipes.report_asset_materialization(metadata=child_metadata(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
