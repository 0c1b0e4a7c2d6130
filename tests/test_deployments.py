"""Deployments are resource sets chosen once; one precedence rule (run > resource > environment > default); the
demo is production code pointed at a local site whose stored URLs never name an ephemeral port."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import asset, materialize, mem_io_manager

from assets.model import TrainRunConfig
from dagster_project.deployments import DeploymentError, demo_resources, production_resources, resources_for
from dagster_project.local_site import SAMPLE_ORIGIN, LocalSiteHttpResource, SampleTelegramResource
from dagster_project.resources import HttpClientResource, TrainingResource


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PETID_DEPLOYMENT", "PETID_TRAIN_PRESET", "PETID_RATE_LIMIT", "PETID_PET911_URL", "PETID_SAMPLE_SEED",
                 "PETID_TRAIN_LAUNCHER"):
        monkeypatch.delenv(name, raising=False)


def test_the_deployment_is_chosen_once_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert type(resources_for()["http"]) is HttpClientResource
    monkeypatch.setenv("PETID_DEPLOYMENT", "demo")
    demo = resources_for()
    assert isinstance(demo["http"], LocalSiteHttpResource) and isinstance(demo["telegram"], SampleTelegramResource)
    assert type(resources_for("production")["http"]) is HttpClientResource  # an explicit choice wins
    monkeypatch.setenv("PETID_DEPLOYMENT", "staging")
    with pytest.raises(DeploymentError, match="unknown deployment 'staging'"):
        resources_for()


def test_environment_values_are_checked_with_one_line_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PETID_RATE_LIMIT", "fast")
    with pytest.raises(DeploymentError, match="PETID_RATE_LIMIT='fast' is not a number"):
        production_resources()
    monkeypatch.setenv("PETID_RATE_LIMIT", "0.5")
    assert production_resources()["http"].rate_limit_per_s == 0.5
    monkeypatch.setenv("PETID_TRAIN_LAUNCHER", "kubernetes")
    with pytest.raises(DeploymentError, match="PETID_TRAIN_LAUNCHER='kubernetes': expected one of in_process"):
        production_resources()
    monkeypatch.setenv("PETID_TRAIN_LAUNCHER", "subprocess")
    assert production_resources()["training"].launcher == "subprocess"
    monkeypatch.setenv("PETID_SAMPLE_SEED", "x1")
    with pytest.raises(DeploymentError, match="not an integer"):
        demo_resources()


def _preset_seen(resources: dict, run_config: dict | None = None) -> str:
    """Materialize a probe asset that reports the preset it would train with, through Dagster's own resolution."""
    @asset
    def probe(config: TrainRunConfig, training: TrainingResource) -> str:
        return config.preset or training.preset

    result = materialize([probe], resources={"training": resources["training"], "io_manager": mem_io_manager},
                         run_config=run_config)
    return result.output_for_node("probe")


def test_precedence_run_config_then_resource_config_then_environment_then_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert _preset_seen(production_resources()) == "auto"  # the default
    monkeypatch.setenv("PETID_TRAIN_PRESET", "recipe")
    resources = production_resources()
    assert not isinstance(resources["training"].preset, str) or resources["training"].preset != "recipe"  # an EnvVar
    assert _preset_seen(resources) == "recipe"  # the environment, resolved at execution
    assert _preset_seen(demo_resources()) == "demo"  # the deployment's resource config beats the environment
    run = {"ops": {"probe": {"config": {"preset": "small"}}}}
    assert _preset_seen(demo_resources(), run) == "small"  # run config beats everything


@pytest.mark.slow
def test_demo_urls_are_stable_across_runs_on_fresh_ports(tmp_path: Path) -> None:
    """Two runs, two servers on two ephemeral ports: every stored URL names the site's origin, and the second run
    downloads the first run's listings' photos through the route (nothing rebased, nothing hard-coded)."""
    from assets.ingest import pet911_listings, pet911_photos

    resources = demo_resources(home=str(tmp_path), n_animals=8)
    crawl = materialize([pet911_listings], resources=resources)
    assert crawl.success
    listings = pq.read_table(tmp_path / "tables" / "pet911_listings.parquet").to_pylist()
    urls = [u for row in listings for u in row["photo_urls"]] + [row["url"] for row in listings]
    assert listings and urls and all(u.startswith(SAMPLE_ORIGIN + "/") for u in urls), urls[:3]
    photos = materialize([pet911_listings.to_source_asset(), pet911_photos], resources=resources)  # a new server
    assert photos.success
    catalogue = pq.read_table(tmp_path / "tables" / "pet911_photos.parquet")
    assert catalogue.num_rows >= len(listings) and all(Path(p).exists() for p in catalogue.column("path").to_pylist())


def test_the_readme_documents_every_environment_variable() -> None:
    from dagster_project.deployments import ENVIRONMENT

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [name for name in ENVIRONMENT if f"`{name}`" not in readme]
    assert not missing, missing
