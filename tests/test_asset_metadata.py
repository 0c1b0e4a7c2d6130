"""What the Dagster UI shows: standard table metadata, typed previews, pictures as data URIs, rounded metrics,
owners, enum config, and content-based data versions on the source-side assets."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, DagsterInstance, TableMetadataValue, materialize

from assets._images import MAX_BYTES, data_uri, plot
from assets._metadata import content_digest, counts, metric, table_schema

DATA_URI = re.compile(r"!\[[^\]]*\]\((data:image/(png|jpeg);base64,([A-Za-z0-9+/=]+))\)")
REPO = Path(__file__).resolve().parents[1]


def _decode(markdown: str) -> list:
    """Every Markdown data-URI image in ``markdown``, opened with Pillow."""
    from PIL import Image

    images = []
    for _, _, data in DATA_URI.findall(markdown):
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        image.load()
        images.append(image)
    return images


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Ingest + curation on a small demo world, then the listings crawl again on the same site (one instance)."""
    from assets import curation, ingest
    from dagster_project.deployments import demo_resources

    home = tmp_path_factory.mktemp("petid_home")
    resources = demo_resources(home=str(home), n_animals=8)
    workers = {"config": {"workers": 1}}
    with DagsterInstance.ephemeral() as instance:
        first = materialize([a for group in (ingest, curation) for a in group.defs.assets], resources=resources,
                            instance=instance, run_config={"ops": {"images": workers, "image_hashes": workers}})
        again = materialize([ingest.pet911_listings], resources=resources, instance=instance)
        latest = {key: instance.get_latest_materialization_event(AssetKey(key)).asset_materialization
                  for key in ("pet911_listings", "pet911_photos")}
    assert first.success and again.success
    events = {e.event_specific_data.materialization.asset_key.to_user_string(): e.event_specific_data.materialization
              for e in first.get_asset_materialization_events()}
    return {"home": home, "first": events, "again": again.get_asset_materialization_events()[0]
            .event_specific_data.materialization, "latest": latest}


@pytest.mark.slow
def test_every_table_output_carries_row_count_and_column_schema(runs: dict) -> None:
    assert len(runs["first"]) == 10  # ingest and curation
    for key, event in runs["first"].items():
        table = pq.read_table(runs["home"] / "tables" / f"{key}.parquet")
        assert event.metadata["dagster/row_count"].value == table.num_rows, key
        schema = event.metadata["dagster/column_schema"].value
        assert [c.name for c in schema.columns] == table.column_names, key
        assert schema == table_schema(table.schema), key
    images = {c.name: c for c in runs["first"]["images"].metadata["dagster/column_schema"].value.columns}
    assert images["width"].type == "int" and images["identity_id"].type == "string"
    assert not images["identity_id"].constraints.nullable


@pytest.mark.slow
def test_previews_are_small_typed_tables(runs: dict) -> None:
    for key in ("pet911_listings", "telegram_posts", "images", "cross_identity_duplicates"):
        value = runs["first"][key].metadata["preview"]
        assert isinstance(value, TableMetadataValue), key
        assert 0 < len(value.records) <= 8, key
        names = [c.name for c in value.schema.columns]
        for record in value.records:
            assert set(record.data) == set(names)
            assert all(v is None or isinstance(v, (str, int, float, bool)) for v in record.data.values())
    types = {c.name: c.type for c in runs["first"]["images"].metadata["preview"].schema.columns}
    assert types == {"image_id": "string", "identity_id": "string", "source": "string", "width": "int",
                     "height": "int", "src_format": "string"}
    closed = {c.name: c.type for c in runs["first"]["pet911_listings"].metadata["preview"].schema.columns}["closed"]
    assert closed == "bool"


@pytest.mark.slow
def test_curation_metadata_shows_photos_as_data_uri_images(runs: dict) -> None:
    grid = runs["first"]["images"].metadata["thumbnails"].value
    (image,) = _decode(grid)
    assert image.format == "JPEG" and image.width >= 112 and image.height >= 112
    assert len(grid) < 200_000
    pairs = runs["first"]["cross_identity_duplicates"]
    if pairs.metadata["pairs"].value:  # the planted cross-listing duplicate
        (pair,) = _decode(pairs.metadata["duplicate_pairs"].value)
        assert pair.width > 2 * 160
    assert "nothing" not in grid and "no crops" in runs["first"]["animal_crops"].metadata["crops"].value


@pytest.mark.slow
def test_listing_data_version_is_stable_so_downstream_stays_fresh(runs: dict) -> None:
    first = runs["first"]["pet911_listings"].tags["dagster/data_version"]
    assert runs["again"].tags["dagster/data_version"] == first  # same site, nothing new: same version
    assert runs["again"].tags["dagster/data_version_is_user_provided"] == "true"
    # the photos were made from exactly this version: Dagster sees pet911_photos as up to date
    photos = runs["latest"]["pet911_photos"].tags
    assert photos["dagster/input_data_version/pet911_listings"] == runs["latest"]["pet911_listings"].tags[
        "dagster/data_version"]
    listings = pq.read_table(runs["home"] / "tables" / "pet911_listings.parquet")
    assert first == content_digest(listings, ignore=["page_sha256"])


def _listings() -> pa.Table:
    return pa.table({"listing_id": ["rl2", "rl1"], "closed": [False, False], "photo_urls": [["a", "b"], ["c"]],
                     "page_sha256": ["x", "y"]})


def test_content_digest_follows_content_not_order_or_process() -> None:
    listings = _listings()
    digest = content_digest(listings, ignore=["page_sha256"])
    assert content_digest(listings.take([1, 0]), ignore=["page_sha256"]) == digest
    assert content_digest(listings.set_column(3, "page_sha256", pa.array(["p", "q"])), ignore=["page_sha256"]) == digest
    closed = listings.set_column(1, "closed", pa.array([False, True]))
    assert content_digest(closed, ignore=["page_sha256"]) != digest
    more = pa.concat_tables([listings, pa.table({"listing_id": ["rl3"], "closed": [False], "photo_urls": [["d"]],
                                                 "page_sha256": ["z"]}).cast(listings.schema)])
    assert content_digest(more, ignore=["page_sha256"]) != digest
    code = ("import pyarrow as pa; from assets._metadata import content_digest; "
            "t = pa.table({'listing_id': ['rl2', 'rl1'], 'closed': [False, False], 'photo_urls': [['a', 'b'], ['c']],"
            " 'page_sha256': ['x', 'y']}); print(content_digest(t, ignore=['page_sha256']))")
    other = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO,
                           env={**os.environ, "PYTHONHASHSEED": "123"})
    assert other.stdout.strip() == digest


def test_photo_catalogues_digest_file_bytes_not_where_they_are(tmp_path: Path) -> None:
    for root in ("a", "b"):
        (tmp_path / root).mkdir()
        (tmp_path / root / "cat.jpg").write_bytes(b"same bytes")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "cat.jpg").write_bytes(b"other bytes")

    def catalogue(root: str) -> pa.Table:
        return pa.table({"identity_id": ["x:1"], "path": [str(tmp_path / root / "cat.jpg")]})

    assert content_digest(catalogue("a"), files=["path"]) == content_digest(catalogue("b"), files=["path"])
    assert content_digest(catalogue("a"), files=["path"]) != content_digest(catalogue("c"), files=["path"])
    addressed = pa.table({"identity_id": ["x:1"], "path": [f"/anywhere/ab/{'ab' * 32}.jpg"]})
    assert content_digest(addressed, files=["path"]) != content_digest(catalogue("a"), files=["path"])


def test_plots_are_embedded_scaled_down_and_a_missing_one_is_named(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from evaluation.plots import roc_plot

    path = roc_plot({"m": (np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.8, 1.0]), 0.9)}, tmp_path / "roc.png")
    entry = plot("ROC", path, max_width=300).value
    (image,) = _decode(entry)
    assert image.format == "PNG" and image.width == 300
    assert "roc.png is missing" in plot("ROC", tmp_path / "gone" / "roc.png").value
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1500, 1500, 3), dtype=np.uint8))
    assert len(data_uri(noise)) <= MAX_BYTES + 40  # shrunk until it fits (plus the "data:image/jpeg;base64," head)


def test_metrics_are_rounded_to_four_significant_digits() -> None:
    assert metric(0.123456789) == 0.1235 and metric(1234.5678) == 1235.0 and metric(3) == 3
    assert metric(None) is None and metric(True) is True
    assert counts({"rate": 2.0 / 3.0, "n": 5, "ok": True, "name": "x"}) == {"rate": 0.6667, "n": 5}


def test_every_asset_has_an_owner_and_a_description() -> None:
    from dagster_project.definitions import defs

    graph = defs.resolve_asset_graph()
    teams = {"ingest": "team:petid-data", "curation": "team:petid-data", "dataset": "team:petid-data",
             "model": "team:petid-ml", "matching": "team:petid-ml"}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert list(node.owners) == [teams[node.group_name]], key
        assert node.description and node.description.strip(), key


def test_train_preset_is_an_enum_the_launchpad_offers() -> None:
    from assets.model import Preset, TrainRunConfig
    from training.config import PRESETS

    assert [p.value for p in Preset] == list(PRESETS)
    field = TrainRunConfig.to_fields_dict()["preset"]
    assert field.description and not field.is_required
    choices = [v.config_value for v in field.config_type.inner_type.enum_values]  # Noneable(Enum)
    assert choices == list(PRESETS)
    assert TrainRunConfig(preset="small").preset is Preset.small and TrainRunConfig().preset is None
