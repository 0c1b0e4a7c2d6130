"""``reid_model`` with the ``subprocess`` launcher: a tiny CPU training in a child process through Dagster Pipes
streams its log lines into the run's event log, returns its metrics as materialization metadata, and registers
the same model version the in-process path does; a failing child fails the step with one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from petid_sample.identities import make_identity_set

pytestmark = [
    pytest.mark.timeout(420),  # two tiny trainings and a few process starts; never a hang
    pytest.mark.filterwarnings("ignore::dagster.PreviewWarning"),  # raised inside PipesSubprocessClient itself
]

TINY_YAML = ("preset: recipe\nbackbone: test_efficientnet\npretrained: none\nembedding_dim: 16\np: 4\nk: 2\n"
             "epochs: 1\nmax_steps: 2\nimage_size: 48\nnum_workers: 0\ncache_images: false\nunfreeze_blocks: 99\n")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return make_identity_set(tmp_path_factory.mktemp("synthetic"), n_identities=12, photos_per_identity=4, size=64)


def _materialize(home: Path, frame: pd.DataFrame, config_file: Path, **training: object) -> tuple:
    """``reid_model`` (and its gate check) on ``frame`` as ``dataset_splits``; (result, instance)."""
    from dagster import DagsterInstance, asset, materialize

    from assets.model import production_beats_frozen_backbone, reid_model
    from dagster_project.definitions import build_resources
    from dagster_project.resources import TrainingResource

    @asset(name="dataset_splits")
    def dataset_splits() -> pa.Table:
        return pa.Table.from_pandas(frame, preserve_index=False)

    instance = DagsterInstance.ephemeral()
    result = materialize(
        [dataset_splits, reid_model, production_beats_frozen_backbone], instance=instance, raise_on_error=False,
        resources={**build_resources(home=str(home)), "training": TrainingResource(**training)},
        run_config={"ops": {"reid_model": {"config": {"config_file": str(config_file)}}}},
    )
    return result, instance


def _messages(result, instance) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(result.run_id)]


def _failure(result) -> str:
    failures = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    assert [event.step_key for event in failures] == ["reid_model"], failures
    return failures[0].step_failure_data.error.message.strip()


def test_subprocess_training_streams_logs_and_metrics_and_registers_the_in_process_version(
        synthetic: pd.DataFrame, tmp_path: Path) -> None:
    from training.registry import ModelRegistry

    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(TINY_YAML)
    child, instance = _materialize(tmp_path / "child", synthetic, config_file, launcher="subprocess")
    assert child.success, [m for m in _messages(child, instance) if "rror" in m][-3:]

    messages = _messages(child, instance)
    assert any("-m training.pipes_entry" in m for m in messages)  # the launch is logged with its command
    # the child's own progress lines, streamed through Pipes into the run's event log
    assert any(m.startswith("training ") and "steps per epoch" in m for m in messages), messages
    assert any(m.startswith("registered model version") for m in messages), messages
    meta = child.asset_materializations_for_node("reid_model")[0].metadata
    assert meta["launcher"].value == "subprocess" and meta["trained_on"].value
    assert meta["steps"].value == 2 and meta["epochs_run"].value == 1 and meta["world_size"].value == 1
    assert 0.0 <= meta["val_top1"].value <= 1.0 and meta["train_seconds"].value > 0
    history = meta["epoch_history"].value
    assert [row["epoch"] for row in history] == [0, 1] and "map" in history[-1]
    assert not (tmp_path / "child" / "jobs" / "reid_model" / child.run_id).exists()  # inputs cleaned up
    check = child.get_asset_check_evaluations()
    assert [c.passed for c in check] == [True]

    in_process, _ = _materialize(tmp_path / "in_process", synthetic, config_file)
    assert in_process.success
    rows = {}
    for name in ("child", "in_process"):
        table = pd.read_parquet(tmp_path / name / "tables" / "reid_model.parquet")
        rows[name] = table.iloc[0].to_dict()
        registry = ModelRegistry(tmp_path / name / "models")
        assert registry.exists(rows[name]["trained_version"]) and registry.exists(rows[name]["baseline_version"])
        assert registry.aliases()["production"] == rows[name]["production_version"]
    keys = ("trained_version", "baseline_version", "production_version", "promoted", "reused")
    assert {k: rows["child"][k] for k in keys} == {k: rows["in_process"][k] for k in keys}
    assert not rows["child"]["reused"]


def test_a_failing_child_fails_the_step_with_one_line(synthetic: pd.DataFrame, tmp_path: Path) -> None:
    config_file = tmp_path / "bad.yaml"
    config_file.write_text(TINY_YAML.replace("test_efficientnet", "no_such_backbone"))
    result, instance = _materialize(tmp_path / "home", synthetic, config_file, launcher="subprocess")
    assert not result.success
    message = _failure(result)
    assert "\n" not in message and "training process failed" in message and "no_such_backbone" in message, message
    kept = tmp_path / "home" / "jobs" / "reid_model" / result.run_id
    assert str(kept) in message and (kept / "job.json").is_file()  # kept for a rerun by hand
    assert any("training failed" in m for m in _messages(result, instance))  # the child said so too


def test_a_child_that_dies_before_pipes_opens_fails_the_step(synthetic: pd.DataFrame, tmp_path: Path) -> None:
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(TINY_YAML)
    result, _ = _materialize(tmp_path / "home", synthetic, config_file, launcher="subprocess",
                             command_prefix=[sys.executable, "-c", "import sys; sys.exit(3)"])
    assert not result.success
    message = _failure(result)
    assert "\n" not in message and "code 3 before reporting a result" in message, message


def test_the_launcher_is_checked_and_in_process_by_default() -> None:
    from pydantic import ValidationError

    from dagster_project.resources import TrainingResource

    assert TrainingResource().launcher == "in_process" and TrainingResource().entry_prefix() == [sys.executable]
    assert TrainingResource(command_prefix=["torchrun", "--nproc_per_node=2"]).entry_prefix()[0] == "torchrun"
    with pytest.raises(ValidationError, match="in_process"):
        TrainingResource(launcher="kubernetes")
