"""The executor of a deployment (``PETID_EXECUTOR``), chosen once when the ``Definitions`` are built.

- ``in_process`` (default): every step in the run's own process. Most steps are light, and a process start per
  step cost more than the work on one machine (a UI nightly refresh took 134 s for 55 s of steps).
- ``multiprocess``: each step in its own process on the run's host (Dagster's ``multiprocess_executor``).
- ``celery``: each step a task on a Celery queue (``dagster-celery``), picked up by ``dagster-celery worker``
  processes on any host that shares the instance and the storage root. The broker (and result backend, default the
  broker) come from ``PETID_CELERY_BROKER`` / ``PETID_CELERY_BACKEND``; the executor config holds them as ``env:``
  references, so a password in the URL never lands in a job snapshot. Workers must listen on the same broker
  (``deploy/RUNBOOK.md`` §3b).

A bad value is a one-line ``DeploymentError`` when the definitions load, not a failure in the middle of a run.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

from dagster_project.deployments import DeploymentError, env_choice

EXECUTORS = ("in_process", "multiprocess", "celery")
_BROKER_SCHEMES = ("redis://", "rediss://", "amqp://", "amqps://", "pyamqp://", "sqs://")
_BACKEND_SCHEMES = ("redis://", "rediss://", "rpc://", "db+", "file://")  # Celery result backends


def _env(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def _url(name: str, schemes: tuple[str, ...], what: str) -> None:
    value = _env(name) or ""
    if not value.startswith(schemes):
        raise DeploymentError(f"{name}={value!r} is not a Celery {what} URL (expected e.g. redis://host:6379/0)")


def celery_config() -> dict[str, Any]:
    """The ``celery_executor`` config of this environment (``env:`` references, checked here once)."""
    if _env("PETID_CELERY_BROKER") is None:
        raise DeploymentError("PETID_EXECUTOR=celery needs PETID_CELERY_BROKER (e.g. redis://redis.internal:6379/0)")
    _url("PETID_CELERY_BROKER", _BROKER_SCHEMES, "broker")
    backend = "PETID_CELERY_BACKEND" if _env("PETID_CELERY_BACKEND") else "PETID_CELERY_BROKER"
    _url(backend, _BACKEND_SCHEMES if backend == "PETID_CELERY_BACKEND" else _BROKER_SCHEMES, "result backend")
    return {"broker": {"env": "PETID_CELERY_BROKER"}, "backend": {"env": backend}}


def executor_for(name: str | None = None) -> ExecutorDefinition:
    """The executor called ``name`` (else ``PETID_EXECUTOR``, else ``in_process``)."""
    name = name or env_choice("PETID_EXECUTOR", "in_process", EXECUTORS)
    if name not in EXECUTORS:
        raise DeploymentError(f"unknown executor {name!r} (PETID_EXECUTOR): expected one of {', '.join(EXECUTORS)}")
    if name == "in_process":
        return in_process_executor
    if name == "multiprocess":
        return multiprocess_executor
    from dagster_celery import celery_executor  # imports Celery: only for the deployments that use it

    return celery_executor.configured(celery_config(), name="celery")
