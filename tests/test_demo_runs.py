"""The demo's run belongs to its job: it is launched through the code location ``petid``, so the UI lists it
under ``full_pipeline`` and re-executes it (``launchRunReexecution``, ALL_STEPS) over GraphQL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import ui_support
import yaml
from ui_support import graphql

REPO = Path(__file__).resolve().parents[1]
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
REEXECUTION_TIMEOUT_S = 600.0

JOB_RUNS = """query JobRuns($location: String!, $job: String!) {
  pipelineOrError(params: {repositoryLocationName: $location, repositoryName: "__repository__", pipelineName: $job}) {
    __typename ... on Pipeline { runs { runId status parentRunId rootRunId tags { key value } } }
  }
}"""
RUN = """query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename ... on Run { runId status pipelineName parentRunId rootRunId
      repositoryOrigin { repositoryLocationName repositoryName } }
  }
}"""
REEXECUTE = """mutation Reexecute($parentRunId: String!, $strategy: ReexecutionStrategy!) {
  launchRunReexecution(reexecutionParams: {parentRunId: $parentRunId, strategy: $strategy}) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ui_support.demo_home(tmp_path_factory)


@pytest.fixture(scope="module")
def ui(request: pytest.FixtureRequest, home: Path) -> str:
    return ui_support.shared_ui(request, home)


def _job_runs(ui: str, job: str = "full_pipeline") -> list[dict[str, Any]]:
    answer = graphql(ui, JOB_RUNS, {"location": "petid", "job": job})["pipelineOrError"]
    assert answer["__typename"] == "Pipeline", answer
    return answer["runs"]


def _demo_run(ui: str) -> dict[str, Any]:
    from petid_app.demo import DEMO_TAG

    demo_runs = [run for run in _job_runs(ui) if {"key": DEMO_TAG, "value": "petid demo"} in run["tags"]
                 and run["parentRunId"] is None]
    assert len(demo_runs) == 1, demo_runs
    return demo_runs[0]


def test_the_ui_names_the_code_location_as_the_demo_does(tmp_path: Path) -> None:
    """Runs carry their location's name; the UI finds a run's job (and re-executes it) only under that name."""
    from petid_app.demo import LOCATION, prepare_home, ui_command

    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    assert [entry["python_module"]["location_name"] for entry in workspace["load_from"]] == [LOCATION]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'code_location_name = "{LOCATION}"' in pyproject
    _, command = ui_command(prepare_home(str(tmp_path)), 3000, sample=True)
    assert command[:4] == ["dagster", "dev", "-w", str(REPO / "workspace.yaml")]


def test_petid_ui_serves_the_sample_world_the_demo_recorded(tmp_path: Path) -> None:
    from petid_app.demo import demo_settings_path, prepare_home, ui_command

    layout = prepare_home(str(tmp_path))
    assert ui_command(layout, 3000, sample=True)[0]["PETID_SAMPLE_ANIMALS"] == "48"  # nothing recorded: defaults
    demo_settings_path(layout).write_text('{"seed": 3, "animals": 12}\n')
    settings, _ = ui_command(layout, 3000, sample=True)
    assert settings == {"DAGSTER_HOME": str(layout.dagster_home), "PETID_HOME": str(layout.root),
                        "PETID_DEPLOYMENT": "demo", "PETID_SAMPLE_SEED": "3", "PETID_SAMPLE_ANIMALS": "12"}
    assert ui_command(layout, 3000, sample=True, animals=20)[0]["PETID_SAMPLE_ANIMALS"] == "20"


def test_the_instance_has_telemetry_off(tmp_path: Path) -> None:
    from petid_app.demo import prepare_home

    layout = prepare_home(str(tmp_path))
    assert yaml.safe_load((layout.dagster_home / "dagster.yaml").read_text())["telemetry"] == {"enabled": False}


@pytest.mark.slow
def test_the_demo_run_is_listed_under_its_job(ui: str) -> None:
    run = _demo_run(ui)  # Pipeline.runs: the job's runs tab, filtered by the run's repository@location label
    assert run["status"] == "SUCCESS"
    details = graphql(ui, RUN, {"runId": run["runId"]})["runOrError"]
    assert details["pipelineName"] == "full_pipeline"
    assert details["repositoryOrigin"] == {"repositoryLocationName": "petid", "repositoryName": "__repository__"}


@pytest.mark.slow
def test_re_execute_all_from_the_ui_succeeds(ui: str, home: Path) -> None:
    """The UI's "Re-execute all": ALL_STEPS from the demo run, the whole graph again. The daemon of ``dagster dev``
    dequeues it and the UI's code server executes it on the demo's sample world, so training reuses the model the
    demo registered."""
    parent = _demo_run(ui)
    answer = graphql(ui, REEXECUTE, {"parentRunId": parent["runId"], "strategy": "ALL_STEPS"})["launchRunReexecution"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    run_id = answer["run"]["runId"]
    deadline = time.monotonic() + REEXECUTION_TIMEOUT_S
    while (run := graphql(ui, RUN, {"runId": run_id})["runOrError"])["status"] not in FINISHED:
        assert time.monotonic() < deadline, f"the re-execution did not finish in {REEXECUTION_TIMEOUT_S}s: {run}"
        time.sleep(2.0)
    assert run["status"] == "SUCCESS", run
    assert run["parentRunId"] == run["rootRunId"] == parent["runId"]
    assert run_id in {r["runId"] for r in _job_runs(ui)}  # the re-execution belongs to the job too

    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        records = instance.fetch_materializations(AssetKey("reid_model"), limit=2).records
    assert [r.run_id for r in records] == [run_id, parent["runId"]]
    again, first = (r.asset_materialization.metadata for r in records)
    assert again["trained_version"].value == first["trained_version"].value and again["reused"].value is True
