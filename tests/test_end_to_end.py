"""The whole asset graph materialized through Dagster on the offline sample source, in a temporary PETID_HOME."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("petid_home")
    from petid_app.cli import main

    before = {k: v for k, v in os.environ.items() if k.startswith(("PETID_", "DAGSTER_"))}
    assert main(["demo", "--home", str(home), "--animals", "36"]) == 0
    # the demo chooses its resource set explicitly: it sets no environment for the code it runs
    assert {k: v for k, v in os.environ.items() if k.startswith(("PETID_", "DAGSTER_"))} == before
    return home


def test_demo_writes_manifests_model_and_report(demo_home: Path) -> None:
    tables = demo_home / "tables"
    images = pq.read_table(tables / "image_manifest.parquet").to_pandas()
    identities = pq.read_table(tables / "identity_manifest.parquet").to_pandas()
    assert len(images) > 60 and identities.identity_id.is_unique
    assert set(images.source) == {"pet911", "telegram"}
    assert all(Path(p).exists() for p in images.path)
    # every split is identity-disjoint, and single-photo listings are kept but excluded
    splits = images[images.split.isin(["train", "val", "test"])]
    assert splits.groupby("identity_id").split.nunique().max() == 1
    assert (identities.loc[identities.n_images < 2, "split"] == "excluded").all()
    assert (identities.n_images < 2).any()

    rejected = pq.read_table(tables / "rejected_images.parquet").to_pandas()
    assert len(rejected) >= 1 and rejected.reason.notna().all()  # the planted corrupt photo
    cross = pq.read_table(tables / "cross_identity_duplicates.parquet").to_pandas()
    assert len(cross) >= 1  # the planted cross-listing duplicate

    stats = pq.read_table(tables / "identity_stats.parquet").to_pandas()
    assert "total" in set(stats.source)

    lineage = pq.read_table(tables / "reid_model.parquet").to_pylist()[0]
    trained, production = lineage["trained_version"], lineage["production_version"]
    assert production == (trained if lineage["promoted"] else lineage["baseline_version"])
    assert lineage["baseline_version"].startswith("frozen-")
    registry = demo_home / "models"
    assert (registry / trained / "config.json").exists() and (registry / trained / "gate.json").exists()
    report = json.loads((demo_home / "reports" / trained / "report.json").read_text())
    for key in ("top1", "top5", "top10", "map", "roc_auc", "eer", "eer_threshold", "n_identities", "baseline",
                "intervals", "delta_intervals"):
        assert key in report, key
    assert report["model"] == production and report["baseline"]["model"] == lineage["baseline_version"]
    assert 0.0 <= report["top1"] <= report["top5"] <= report["top10"] <= 1.0
    for source in (report, report["baseline"]):
        low, high = source["intervals"]["top1"]
        assert low <= source["top1"] <= high
    assert (demo_home / "reports" / trained / "report.html").exists()
    assert (demo_home / "reports" / trained / "pairs.csv").exists()
    assert any((demo_home / "index" / production).iterdir())


def test_evaluation_and_index_use_the_version_reid_model_produced(demo_home: Path) -> None:
    """Lineage, not aliases: a later `latest` changes nothing the graph's evaluation and index name."""
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.from_config(str(demo_home / "dagster")) as instance:
        def metadata(key: str) -> dict:
            return instance.get_latest_materialization_event(AssetKey(key)).asset_materialization.metadata

        model = metadata("reid_model")
        production = model["production_version"].value
        assert metadata("evaluation_report")["model"].value == production
        assert metadata("evaluation_report")["trained_version"].value == model["trained_version"].value
        assert metadata("search_index")["model"].value == production
        assert "frozen backbone" in model["validation"].value


def test_demo_run_is_browsable_in_dagster(demo_home: Path) -> None:
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.from_config(str(demo_home / "dagster")) as instance:
        for key in ("pet911_listings", "images", "image_manifest", "identity_stats", "reid_model", "evaluation_report"):
            event = instance.get_latest_materialization_event(AssetKey(key))
            assert event is not None, key
        stats_md = instance.get_latest_materialization_event(AssetKey("identity_stats"))
        metadata = stats_md.asset_materialization.metadata
        assert "| Source |" in metadata["table_2"].value and "**total**" in metadata["table_2"].value
        report_meta = instance.get_latest_materialization_event(AssetKey("evaluation_report")).asset_materialization.metadata
        assert "top1" in report_meta and "headline" in report_meta


def test_demo_passes_every_asset_check(demo_home: Path) -> None:
    from dagster import DagsterInstance
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    from dagster_project.definitions import defs

    check_keys = list(defs.resolve_asset_graph().asset_check_keys)
    assert len(check_keys) >= 5
    with DagsterInstance.from_config(str(demo_home / "dagster")) as instance:
        for key in check_keys:
            records = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
            assert records, key
            assert records[0].status == AssetCheckExecutionRecordStatus.SUCCEEDED, key
            evaluation = records[0].event.dagster_event.event_specific_data
            assert evaluation.passed, key


def test_sql_over_the_demo_manifests(demo_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from petid_app.cli import main

    os.environ["PETID_HOME"] = str(demo_home)
    try:
        assert main(["sql", "SELECT count(*) AS n FROM image_manifest", "--json"]) == 0
    finally:
        os.environ.pop("PETID_HOME", None)
    assert '"n"' in capsys.readouterr().out


def test_a_truncated_curated_photo_fails_the_run(demo_home: Path) -> None:
    """The blocking manifest check reads every file: a photo cut short on disk fails the run, nothing downstream."""
    from dagster import AssetSelection, materialize

    from dagster_project.definitions import build_resources, defs

    manifest = pq.read_table(demo_home / "tables" / "image_manifest.parquet").to_pandas()
    victim = Path(manifest.path.iloc[0])
    original = victim.read_bytes()
    try:
        victim.write_bytes(original[: len(original) // 2])
        resources = build_resources(home=str(demo_home))
        assets = list(defs.assets or [])
        result = materialize([*assets, *(defs.asset_checks or [])], resources=resources, raise_on_error=False,
                             selection=AssetSelection.assets("image_manifest", "identity_manifest"))
        assert not result.success
        evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert evaluations["manifest_paths_exist"] is False
        assert not result.asset_materializations_for_node("identity_manifest")  # blocked downstream
    finally:
        victim.write_bytes(original)
