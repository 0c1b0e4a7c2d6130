"""The nightly cadence as Dagster sees it: per-group automation conditions and freshness policies, a stopped
automation sensor, what a 03:00 tick requests, and content data versions that keep a night with nothing new from
marking anything stale."""

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dagster import AssetKey, DagsterInstance, DefaultSensorStatus, evaluate_automation_conditions, materialize
from dagster._utils.test.data_versions import get_stale_status_resolver

from dagster_project.definitions import defs

MOSCOW = ZoneInfo("Europe/Moscow")


def test_every_asset_has_its_groups_cadence() -> None:
    from dagster_project.automation import CONDITIONS, FRESHNESS

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.automation_condition is not None and node.freshness_policy is not None, key
        assert node.automation_condition.get_label() == CONDITIONS[node.group_name].get_label(), key
        assert node.freshness_policy == FRESHNESS[node.group_name], key
    assert graph.get(AssetKey("pet911_listings")).automation_condition.get_label().startswith("on_cron(0 3 * * *")
    assert graph.get(AssetKey("reid_model")).automation_condition.get_label() == "eager"
    sensor = defs.resolve_sensor_def("petid_automation")
    assert sensor.default_status == DefaultSensorStatus.STOPPED
    assert defs.resolve_job_def("nightly_refresh").executor_def.name == "in_process"


def test_the_nightly_tick_requests_ingest_and_everything_downstream() -> None:
    """Before 03:00 nothing is due; the first evaluation after 03:00 requests the ingest assets, and the eager
    downstream assets follow in the same tick (their inputs will be updated)."""
    with DagsterInstance.ephemeral() as instance:
        first = evaluate_automation_conditions(defs, instance, evaluation_time=datetime(2026, 12, 1, 2, 0, tzinfo=MOSCOW))
        assert first.total_requested == 0
        early = evaluate_automation_conditions(defs, instance, cursor=first.cursor,
                                               evaluation_time=datetime(2026, 12, 1, 2, 59, tzinfo=MOSCOW))
        assert early.total_requested == 0
        tick = evaluate_automation_conditions(defs, instance, cursor=early.cursor,
                                              evaluation_time=datetime(2026, 12, 1, 3, 1, tzinfo=MOSCOW))
        requested = {key for key in ("pet911_listings", "telegram_posts", "external_datasets", "images",
                                     "image_manifest", "reid_model", "search_index")
                     if tick.get_num_requested(AssetKey(key)) == 1}
        assert requested == {"pet911_listings", "telegram_posts", "external_datasets", "images", "image_manifest",
                             "reid_model", "search_index"}
        assert tick.total_requested == len(list(defs.resolve_asset_graph().get_all_asset_keys()))


@pytest.mark.slow
def test_a_night_with_nothing_new_marks_nothing_stale(tmp_path: Path) -> None:
    """Rematerializing the crawl over the same site keeps the photos FRESH (same content data version); a site
    with other listings marks the photos STALE — and only what is downstream of the crawl."""
    from assets.ingest import pet911_listings, pet911_photos, telegram_posts
    from dagster_project.deployments import demo_resources

    slice_ = [pet911_listings, pet911_photos, telegram_posts]
    with DagsterInstance.ephemeral() as instance:
        resources = demo_resources(home=str(tmp_path), n_animals=8)
        assert materialize(slice_, resources=resources, instance=instance).success
        assert materialize([pet911_listings], resources=resources, instance=instance).success

        def status(key: str) -> str:
            return get_stale_status_resolver(instance, slice_).get_status(AssetKey(key)).value

        assert status("pet911_photos") == "FRESH"
        other_site = demo_resources(home=str(tmp_path), n_animals=8, seed=1)
        assert materialize([pet911_listings], resources=other_site, instance=instance).success
        assert status("pet911_photos") == "STALE"
        assert status("telegram_posts") == "FRESH"
