"""``reid_model``'s ``subprocess`` launcher: ``train_model`` in another process through Dagster Pipes.

The asset writes the training inputs under the storage root (``jobs/reid_model/<run id>/``: the frame as Parquet,
the TrainConfig as JSON), runs ``training.pipes_entry`` on them with ``PipesSubprocessClient`` (behind the
training resource's ``command_prefix``: ``python`` by default, ``torchrun ...`` for DDP), and reads back the
``TrainResult`` the process wrote, so the lineage row is the same as in-process training's. The child's progress
lines arrive as the run's log events and its metrics as materialization metadata. A Kubernetes pod would run the
same entry point with ``dagster_k8s.PipesK8sClient`` (``docs/training-pipes.md``; untested here).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, Failure, MetadataValue, PipesSubprocessClient


def job_dir(storage_root: str | Path, run_id: str) -> Path:
    """Where one run's training inputs and result live (under the storage root, so a pod on shared storage
    sees them at the same path)."""
    return Path(storage_root) / "jobs" / "reid_model" / run_id


def train_in_subprocess(context: AssetExecutionContext, frame: Any, config: Any, registry_root: str | Path,
                        storage_root: str | Path, command_prefix: Sequence[str],
                        force: bool = False) -> tuple[Any, dict[str, Any]]:
    """Train through ``training.pipes_entry`` in a child process; ``(TrainResult, the child's metadata)``.

    A failed process fails the step with a one-line ``Failure`` (the child's own reason when it wrote one); the
    inputs are then kept for a rerun by hand (``python -m training.pipes_entry <dir>``)."""
    from training.pipes_entry import read_result, write_job
    from training.train import TrainResult

    folder = write_job(job_dir(storage_root, context.run_id), frame, config, registry_root, force=force)
    command = [*command_prefix, "-m", "training.pipes_entry", str(folder)]
    context.log.info(f"training in a separate process: {' '.join(command)}")
    try:
        invocation = PipesSubprocessClient().run(context=context, command=command)
    except Exception as exc:  # a non-zero exit (DagsterPipesExecutionError, not public), or no such command
        reason = (read_result(folder) or {}).get("error")
        if reason is None:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            reason = f"{first} before reporting a result (command: {' '.join(command)})"
        raise _failure(f"training process failed: {reason}; inputs kept in {folder}", folder, command) from None
    record = read_result(folder)
    if not record or "version_id" not in record:
        raise _failure(f"training process exited without a result in {folder} "
                       f"({(record or {}).get('error', 'no result.json')})", folder, command)
    metadata = dict(invocation.get_materialize_result().metadata or {})
    shutil.rmtree(folder, ignore_errors=True)
    result = TrainResult(**{**record, "path": Path(record["path"])})
    return result, {**metadata, "launcher": "subprocess"}


def _failure(reason: str, folder: Path, command: Sequence[str]) -> Failure:
    """A one-line step failure naming the kept inputs and the command that ran."""
    return Failure(description=reason, metadata={"job_dir": MetadataValue.path(str(folder)),
                                                 "command": " ".join(command)}, allow_retries=False)
