"""Resources, the Parquet IO manager and run-config plumbing, exercised through Dagster itself."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import asset, materialize

from dagster_project.io_managers import ParquetIOManager
from dagster_project.resources import StorageResource, TelegramResource


def test_parquet_io_manager_round_trips_arrow_and_pandas(tmp_path: Path) -> None:
    @asset
    def numbers() -> pa.Table:
        return pa.table({"n": [1, 2, 3], "name": ["a", "b", "c"]})

    @asset
    def doubled(numbers: pd.DataFrame) -> pd.DataFrame:
        assert isinstance(numbers, pd.DataFrame)
        return numbers.assign(n=numbers.n * 2)

    @asset
    def total(doubled: pa.Table) -> pa.Table:
        assert isinstance(doubled, pa.Table)
        return pa.table({"total": [sum(doubled.column("n").to_pylist())]})

    io_manager = ParquetIOManager(storage=StorageResource(root=str(tmp_path)))
    result = materialize([numbers, doubled, total], resources={"io_manager": io_manager})
    assert result.success
    assert pq.read_table(tmp_path / "tables" / "total.parquet").column("total").to_pylist() == [12]
    meta = result.asset_materializations_for_node("numbers")[0].metadata
    assert meta["dagster/row_count"].value == 3


def test_io_manager_names_the_missing_upstream(tmp_path: Path) -> None:
    @asset
    def upstream() -> pa.Table:
        return pa.table({"x": [1]})

    @asset
    def downstream(upstream: pa.Table) -> pa.Table:
        return upstream

    result = materialize(
        [upstream.to_source_asset(), downstream],
        resources={"io_manager": ParquetIOManager(storage=StorageResource(root=str(tmp_path)))},
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "materialize upstream first" in failure.event_specific_data.error.to_string()


def test_storage_resource_defaults_to_petid_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PETID_HOME", str(tmp_path))
    assert StorageResource().layout.tables == tmp_path / "tables"
    assert StorageResource(root=str(tmp_path / "x")).layout.models == tmp_path / "x" / "models"


def test_telegram_credentials_come_only_from_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster import EnvVar

    import dagster_project.definitions as definitions

    for name in ("PETID_TELEGRAM_API_ID", "PETID_TELEGRAM_API_HASH", "PETID_TELEGRAM_SESSION"):
        monkeypatch.delenv(name, raising=False)
    assert definitions.build_resources()["telegram"].api_hash is None
    monkeypatch.setenv("PETID_TELEGRAM_API_HASH", "secret-hash")
    telegram = definitions.build_resources()["telegram"]
    # the resource holds a reference to the variable, resolved only at execution; never the secret itself
    assert isinstance(telegram.api_hash, EnvVar)
    assert telegram.api_hash.env_var_name == "PETID_TELEGRAM_API_HASH"
    assert "secret-hash" not in repr(telegram)
    assert TelegramResource(api_id="1", api_hash="2", session="3").has_credentials
    assert not TelegramResource(api_id="1", api_hash="2").has_credentials


def test_train_presets() -> None:
    from pydantic import ValidationError

    from assets.model import TrainRunConfig, _train_config
    from dagster_project.resources import TrainingResource

    auto, demo = TrainingResource(), TrainingResource(preset="demo")
    small = _train_config(TrainRunConfig(), auto, n_identities=30)
    recipe = _train_config(TrainRunConfig(), auto, n_identities=5000)
    assert (recipe.p, recipe.k, recipe.margin, recipe.lr, recipe.unfreeze_blocks) == (58, 2, 0.45, 1e-4, 5)
    assert small.backbone == "efficientnet_lite2" and small.head_init == "pca" and small.freeze_bn
    assert _train_config(TrainRunConfig(), demo, n_identities=30).p < recipe.p  # the demo deployment's preset
    # run config beats the resource
    assert _train_config(TrainRunConfig(preset="recipe", epochs=3), demo, n_identities=1).epochs == 3
    assert _train_config(TrainRunConfig(preset="small"), demo, n_identities=30).backbone == "efficientnet_lite2"
    assert _train_config(TrainRunConfig(gate_margin=0.02), auto, 30).gate_margin == 0.02
    with pytest.raises(ValidationError):
        TrainRunConfig(preset="fast")
