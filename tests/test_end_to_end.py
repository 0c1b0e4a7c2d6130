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


def _planted(demo_home: Path) -> list:
    from petid_sample import load_planted

    (world,) = (demo_home / "sample").glob("v*-seed-0-n36")
    return load_planted(world)


def test_matching_finds_the_planted_pairs_and_the_filters_hold(demo_home: Path) -> None:
    """The planted lost → found pairs are ranked, the far and late twins are filtered out, every candidate obeys the
    configured radius and window, and the run reports recall on the known pairs."""
    from dagster import AssetKey, DagsterInstance

    candidates = pq.read_table(demo_home / "tables" / "match_candidates.parquet").to_pandas()
    planted = _planted(demo_home)
    pairs = {frozenset((c.lost.identity_id, c.found.identity_id)) for c in planted if c.role == "match"}
    twins = {frozenset((c.lost.identity_id, c.found.identity_id)) for c in planted if c.role.endswith("twin")}
    found = {frozenset((q, c)): r for q, c, r in zip(candidates.query_id, candidates.candidate_id, candidates["rank"])}
    assert len(pairs) >= 5 and twins
    assert sum(pair in found and found[pair] <= 5 for pair in pairs) >= len(pairs) - 1
    assert not twins & set(found)  # 100+ km away or 90+ days later: never candidates
    located = candidates[candidates.rule == "distance"]
    assert (located.distance_km <= 30).all() and candidates.day_gap.dropna().between(-3, 60).all()
    with DagsterInstance.from_config(str(demo_home / "dagster")) as instance:
        meta = instance.get_latest_materialization_event(AssetKey("match_candidates")).asset_materialization.metadata
    assert meta["known_pairs"].value == len(pairs) and meta["recall@5"].value >= 0.8
    page = demo_home / "review" / "index.html"
    assert page.exists() and "petid review decide" in page.read_text()


def test_review_decisions_feed_back_into_identities_and_evaluation(demo_home: Path) -> None:
    """`same` merges the two listings into one identity in the next manifests; `different` is a hard negative in
    the next evaluation report; both come from the durable log, so a rerun keeps them."""
    from dagster import AssetSelection, materialize

    from dagster_project.definitions import build_defs
    from petid_app.cli import main

    match, other = [c for c in _planted(demo_home) if c.role == "match"][:2]
    home = str(demo_home)
    assert main(["review", "--home", home, "decide", match.found.identity_id, match.lost.identity_id, "same",
                 "--reviewer", "test"]) == 0
    assert main(["review", "--home", home, "decide", other.found.identity_id, match.lost.identity_id, "different",
                 "--reviewer", "test"]) == 0
    defs = build_defs("demo", home=home, n_animals=36)
    selection = AssetSelection.assets("match_decisions", "image_manifest", "identity_manifest", "dataset_splits",
                                      "evaluation_report")
    for _ in range(2):  # the second run: nothing lost on a rerun
        result = materialize([*defs.assets, *defs.asset_checks], resources=defs.resources, selection=selection)
        assert result.success
        identities = pq.read_table(demo_home / "tables" / "identity_manifest.parquet").to_pandas()
        merged = sorted((match.found.identity_id, match.lost.identity_id))
        assert merged[0] in set(identities.identity_id) and merged[1] not in set(identities.identity_id)
        images = pq.read_table(demo_home / "tables" / "image_manifest.parquet").to_pandas()
        assert set(images.loc[images.identity_id == merged[0], "merged_from"].dropna()) == {merged[1]}
        lineage = pq.read_table(demo_home / "tables" / "reid_model.parquet").to_pylist()[0]
        report = json.loads((demo_home / "reports" / lineage["trained_version"] / "report.json").read_text())
        negatives = {frozenset((n["listing_a"], n["listing_b"])) for n in report["hard_negatives"]}
        assert frozenset((other.found.identity_id, match.lost.identity_id)) in negatives
