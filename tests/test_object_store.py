"""Object storage against a real S3-compatible server: moto's server mode in its own process on a free loopback port,
with IAM authentication switched on after the setup calls (``INITIAL_NO_AUTH_ACTION_COUNT``), so wrong credentials
are refused the way S3 refuses them. The server lives for this module and is stopped in the fixture's teardown.

Checked: a table written through the Parquet IO manager lands in the bucket and a second storage root (another
machine) reads it back equal; a model version published from one registry is fetched into an empty one and loads,
every file verified against the published sha256s (an altered object is refused); a report folder round-trips; and
the failures a user can fix (bad URL, missing bucket, unreachable endpoint, wrong credentials) are one-line
``UserError``s.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, DagsterInstance, asset, materialize

from petid.errors import UserError
from petid.objectstore import IntegrityError, ObjectNotFoundError, ObjectStore, ObjectStoreError
from petid.paths import sha256_file

pytestmark = pytest.mark.timeout(120)  # a hung server fails the test instead of the whole run
SERVER_START_S = 30
SERVER_LIFETIME_S = 600
SETUP_ACTIONS = 3  # create_user, create_access_key, put_user_policy: unauthenticated; everything after is checked
AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_PROFILE")


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    key_id: str
    secret: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_ACTIONS), "AWS_ACCESS_KEY_ID": "bootstrap-key",
           "AWS_SECRET_ACCESS_KEY": "bootstrap-secret"}
    with open(log, "wb") as out:
        # coreutils' timeout bounds the server's life even if this test process is killed before its teardown
        bound = ["timeout", str(SERVER_LIFETIME_S)] if shutil.which("timeout") else []
        server = subprocess.Popen([*bound, sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  env=env, stdout=out, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto server did not start on {endpoint}: {log.read_text()[-2000:]}")
                time.sleep(0.1)
        import boto3

        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bootstrap-key",
                           aws_secret_access_key="bootstrap-secret")
        iam.create_user(UserName="petid")
        key = iam.create_access_key(UserName="petid")["AccessKey"]
        iam.put_user_policy(UserName="petid", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, with the IAM user's credentials in the environment (the only place petid takes them from)."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    name = f"petid-{uuid.uuid4().hex[:12]}"
    _client(s3_server).create_bucket(Bucket=name)
    return name


def _client(server: S3Server):  # the test's own view of the bucket, beside petid's
    import boto3

    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1", aws_access_key_id=server.key_id,
                        aws_secret_access_key=server.secret)


def _keys(server: S3Server, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in _client(server).list_objects_v2(Bucket=bucket).get("Contents", []))


def _one_line_user_error(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert isinstance(info.value, UserError) and "\n" not in message and "Traceback" not in message, message
    return message


# -- tables through the IO manager --------------------------------------------------------------------------------
@asset
def listings_table() -> pa.Table:
    return pa.table({"listing_id": ["a1", "b2", "c3"], "photos": [2, 0, 5], "city": ["Москва", None, "Казань"]})


@asset
def photo_total(listings_table: pa.Table) -> pa.Table:
    return pa.table({"photos": [sum(listings_table.column("photos").to_pylist())]})


def test_a_table_lands_in_the_bucket_and_another_machine_reads_it_back(s3_server: S3Server, bucket: str,
                                                                        tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster_project.deployments import production_resources

    monkeypatch.setenv("PETID_OBJECT_STORE", f"s3://{bucket}/petid")
    monkeypatch.setenv("PETID_S3_ENDPOINT", s3_server.endpoint)
    first, second = tmp_path / "machine-a", tmp_path / "machine-b"
    result = materialize([listings_table], resources=production_resources(home=str(first)))
    assert result.success
    assert _keys(s3_server, bucket) == ["petid/tables/listings_table.parquet"]
    body = _client(s3_server).get_object(Bucket=bucket, Key="petid/tables/listings_table.parquet")["Body"].read()
    in_bucket = pq.read_table(pa.BufferReader(body))
    assert in_bucket.equals(listings_table())
    [materialization] = result.asset_materializations_for_node("listings_table")
    assert materialization.metadata["object_url"].value == f"s3://{bucket}/petid/tables/listings_table.parquet"

    # machine B has none of A's files: its input comes from the bucket, its output goes there too
    result = materialize([listings_table.to_source_asset(), photo_total], resources=production_resources(home=str(second)))
    assert result.success
    assert pq.read_table(second / "tables" / "listings_table.parquet").equals(in_bucket)  # the local mirror
    assert ObjectStore(f"s3://{bucket}/petid", endpoint_url=s3_server.endpoint).ls("tables") == [
        "tables/listings_table.parquet", "tables/photo_total.parquet"]
    store = ObjectStore(f"s3://{bucket}/petid", endpoint_url=s3_server.endpoint)
    with store.open("tables/photo_total.parquet") as fh:
        assert pq.read_table(fh).to_pylist() == [{"photos": 7}]

    # the store is the shared copy: a newer table written by A is what B's next run reads, not B's stale mirror
    store.put_file(_write(tmp_path / "newer.parquet", pa.table({"listing_id": ["z"], "photos": [1], "city": ["Омск"]})),
                   "tables/listings_table.parquet")
    assert materialize([listings_table.to_source_asset(), photo_total],
                       resources=production_resources(home=str(second))).success
    assert pq.read_table(second / "tables" / "photo_total.parquet").to_pylist() == [{"photos": 1}]

    # every object carries the sha256 it was written with: an unchanged table is not downloaded again...
    mirror = second / "tables" / "listings_table.parquet"
    recorded = store.recorded_sha256("tables/listings_table.parquet")
    assert recorded == sha256_file(mirror)
    before = mirror.stat().st_mtime_ns
    assert materialize([listings_table.to_source_asset(), photo_total],
                       resources=production_resources(home=str(second))).success
    assert mirror.stat().st_mtime_ns == before
    # ...and one altered in the bucket behind petid's back is refused by a machine that downloads it
    _client(s3_server).put_object(Bucket=bucket, Key="petid/tables/listings_table.parquet", Body=body,
                                  Metadata={"sha256": recorded})
    third = tmp_path / "machine-c"
    result = materialize([listings_table.to_source_asset(), photo_total],
                         resources=production_resources(home=str(third)), raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    cause = failure.step_failure_data.error.cause
    assert cause is not None and cause.cls_name == "IntegrityError" and "refusing it" in cause.message
    assert not (third / "tables" / "listings_table.parquet").exists() and not list((third / "tables").glob(".tmp-*"))


def _write(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


def test_a_table_from_before_the_store_was_configured_is_read_from_the_local_mirror(
        s3_server: S3Server, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster_project.deployments import production_resources

    monkeypatch.delenv("PETID_OBJECT_STORE", raising=False)
    assert materialize([listings_table], resources=production_resources(home=str(tmp_path))).success  # local only
    monkeypatch.setenv("PETID_OBJECT_STORE", f"s3://{bucket}")
    monkeypatch.setenv("PETID_S3_ENDPOINT", s3_server.endpoint)
    with DagsterInstance.ephemeral() as instance:
        result = materialize([listings_table.to_source_asset(), photo_total],
                             resources=production_resources(home=str(tmp_path)), instance=instance)
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert result.success and _keys(s3_server, bucket) == ["tables/photo_total.parquet"]
    assert pq.read_table(tmp_path / "tables" / "photo_total.parquet").to_pylist() == [{"photos": 7}]
    assert any("listings_table.parquet is missing: reading the local" in m for m in messages), messages
    other = tmp_path / "empty-machine"
    with pytest.raises(Exception, match="listings_table.parquet is missing"):
        materialize([listings_table.to_source_asset(), photo_total], resources=production_resources(home=str(other)))


def test_without_an_object_store_tables_stay_local_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster_project.deployments import production_resources

    monkeypatch.delenv("PETID_OBJECT_STORE", raising=False)
    resources = production_resources(home=str(tmp_path))
    assert resources["storage"].objects() is None
    result = materialize([listings_table], resources=resources)
    [materialization] = result.asset_materializations_for_node("listings_table")
    assert "object_url" not in materialization.metadata
    assert pq.read_table(tmp_path / "tables" / "listings_table.parquet").equals(listings_table())


# -- model versions and reports ---------------------------------------------------------------------------------------
def _register(root: Path) -> tuple[str, dict]:
    import torch

    from training.registry import ModelRegistry

    state = {"backbone.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4), "head.bias": torch.ones(4)}
    ModelRegistry(root).register("v0123456789abcdef", state, config={"preset": "demo", "embedding_dim": 4},
                                 label_map={"cat-1": 0, "dog-2": 1}, data_hash="d" * 64,
                                 metrics={"val_top1": 0.5}, curves_png=b"\x89PNG fake curves")
    return "v0123456789abcdef", state


def test_a_published_model_version_is_fetched_verified_and_loads(s3_server: S3Server, bucket: str,
                                                                  tmp_path: Path) -> None:
    import torch

    from training.registry import ModelNotFoundError, ModelRegistry

    store = ObjectStore(f"s3://{bucket}/shared", endpoint_url=s3_server.endpoint)
    version, state = _register(tmp_path / "a" / "models")
    trainer = ModelRegistry(tmp_path / "a" / "models")
    trainer.set_alias("production", version)
    assert trainer.publish("production", store) == version  # an alias resolves to the version it names
    published = _keys(s3_server, bucket)
    assert f"shared/models/{version}/weights.safetensors" in published
    assert f"shared/models/{version}/petid-manifest.json" in published
    before = _client(s3_server).head_object(Bucket=bucket, Key=f"shared/models/{version}/petid-manifest.json")
    trainer.publish(version, store)  # publishing again changes nothing
    after = _client(s3_server).head_object(Bucket=bucket, Key=f"shared/models/{version}/petid-manifest.json")
    assert after["LastModified"] == before["LastModified"] and after["ETag"] == before["ETag"]

    other = ModelRegistry(tmp_path / "b" / "models")  # another machine's empty registry
    assert other.versions() == []
    path = other.fetch(version, store)
    assert path == other.root / version and other.versions() == [version]
    loaded = other.load_state_dict(version)
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    assert other.config(version) == trainer.config(version)
    assert (path / "curves.png").read_bytes() == b"\x89PNG fake curves"
    assert not list((other.root / ".work").iterdir())  # the staging folder is gone

    with pytest.raises(ModelNotFoundError, match="nothing published"):
        other.fetch("vdoesnotexist0000", store)

    # someone alters the weights in the bucket: a fresh machine refuses them and registers nothing
    weights_key = f"shared/models/{version}/weights.safetensors"
    body = bytearray(_client(s3_server).get_object(Bucket=bucket, Key=weights_key)["Body"].read())
    body[-1] ^= 0xFF
    _client(s3_server).put_object(Bucket=bucket, Key=weights_key, Body=bytes(body))
    third = ModelRegistry(tmp_path / "c" / "models")
    with pytest.raises(IntegrityError, match="does not match the manifest") as info:
        third.fetch(version, store)
    assert "weights.safetensors" in _one_line_user_error(info)
    assert third.versions() == [] and not (third.root / version).exists()
    assert not list((third.root / ".work").iterdir())

    # a manifest that names a path outside its folder is refused before anything is downloaded
    _client(s3_server).put_object(Bucket=bucket, Key=f"shared/models/{version}/petid-manifest.json", Body=json.dumps(
        {"format": 1, "files": {"../../escape.txt": {"sha256": "0" * 64, "size": 1}}}).encode())
    with pytest.raises(ObjectStoreError, match="invalid object key"):
        third.fetch(version, store)
    assert not (tmp_path / "c" / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()


def test_a_report_folder_round_trips_and_a_version_is_never_overwritten(s3_server: S3Server, bucket: str,
                                                                         tmp_path: Path) -> None:
    store = ObjectStore(f"s3://{bucket}", endpoint_url=s3_server.endpoint)
    report = tmp_path / "reports" / "v1"
    (report / "figures").mkdir(parents=True)
    (report / "report.json").write_text(json.dumps({"top1": 0.9}))
    (report / "figures" / "roc.png").write_bytes(b"png" * 1000)
    manifest = store.put_tree(report, "reports/v1")
    assert set(manifest["files"]) == {"report.json", "figures/roc.png"}
    copy = tmp_path / "elsewhere"
    store.get_tree("reports/v1", copy)
    assert (copy / "report.json").read_text() == '{"top1": 0.9}'
    assert (copy / "figures" / "roc.png").read_bytes() == b"png" * 1000

    (report / "report.json").write_text(json.dumps({"top1": 0.8}))
    with pytest.raises(ObjectStoreError, match="already published with different content"):
        store.put_tree(report, "reports/v1")  # immutable by default (model versions)
    store.put_tree(report, "reports/v1", overwrite=True)  # a report folder may be re-published
    assert json.loads(store.get_bytes("reports/v1/report.json")) == {"top1": 0.8}
    with pytest.raises(ObjectNotFoundError):
        store.get_bytes("reports/v1/missing.json")


# -- what a user can get wrong ------------------------------------------------------------------------------------
@pytest.mark.parametrize("url, expected", [
    ("ftp://host/dir", "unsupported scheme 'ftp'"),
    ("s3://", "not a valid bucket name"),
    ("s3://Upper_Case/x", "not a valid bucket name"),
    ("s3://petid/../up", "'.' or '..'"),
    ("s3://KEY:SECRET@petid/x", "no credentials"),
    ("", "empty object store URL"),
])
def test_bad_urls_are_one_line_errors(url: str, expected: str) -> None:
    with pytest.raises(ObjectStoreError) as info:
        ObjectStore(url)
    assert expected in _one_line_user_error(info)


def test_bad_settings_stop_the_deployment_with_their_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster_project.deployments import DeploymentError, production_resources

    monkeypatch.setenv("PETID_OBJECT_STORE", "gs://bucket")
    with pytest.raises(DeploymentError, match="PETID_OBJECT_STORE: .*unsupported scheme 'gs'"):
        production_resources()
    monkeypatch.setenv("PETID_OBJECT_STORE", "s3://petid-models/prod")
    monkeypatch.setenv("PETID_S3_ENDPOINT", "minio:9000")
    with pytest.raises(DeploymentError, match=r"PETID_S3_ENDPOINT: .*expected http\(s\)://HOST\[:PORT\]"):
        production_resources()
    monkeypatch.setenv("PETID_S3_ENDPOINT", "http://minio:9000")
    storage = production_resources()["storage"]
    assert storage.object_store is not None and storage.s3_endpoint is not None  # EnvVars, resolved at execution


def test_a_missing_bucket_is_one_line(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    store = ObjectStore("s3://petid-no-such-bucket/x", endpoint_url=s3_server.endpoint)
    for action in (store.check, lambda: store.put_bytes("a.txt", b"1"), lambda: store.get_bytes("a.txt")):
        with pytest.raises(ObjectStoreError) as info:
            action()
        assert "bucket 'petid-no-such-bucket' does not exist" in _one_line_user_error(info)
    ObjectStore(f"s3://{bucket}", endpoint_url=s3_server.endpoint).check()  # the real one is fine


def test_a_materialization_against_a_missing_bucket_fails_with_the_one_line_error(
        s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    from dagster_project.io_managers import ParquetIOManager
    from dagster_project.resources import StorageResource

    storage = StorageResource(root=str(tmp_path), object_store="s3://petid-no-such-bucket",
                              s3_endpoint=s3_server.endpoint)
    result = materialize([listings_table], resources={"io_manager": ParquetIOManager(storage=storage)},
                         raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error  # Dagster's "error while handling output", caused by petid's one line
    assert error.cause is not None and error.cause.cls_name == "ObjectStoreError"
    message = error.cause.message.strip()
    assert "bucket 'petid-no-such-bucket' does not exist" in message and "\n" not in message, message
    assert AssetKey("listings_table") not in {m.asset_key for m in result.asset_materializations_for_node(
        "listings_table")}


def test_an_unreachable_endpoint_is_one_line_and_quick(bucket: str) -> None:
    store = ObjectStore(f"s3://{bucket}", endpoint_url=f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    started = time.monotonic()
    with pytest.raises(ObjectStoreError) as info:
        store.check()
    assert "cannot reach http://127.0.0.1:" in _one_line_user_error(info)
    assert time.monotonic() - started < 20


def test_wrong_credentials_are_one_line(s3_server: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store_url = f"s3://{bucket}/petid"
    ObjectStore(store_url, endpoint_url=s3_server.endpoint).put_bytes("ok.txt", b"fine")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    for action in ("check", "get_bytes", "put_bytes"):
        store = ObjectStore(store_url, endpoint_url=s3_server.endpoint)  # credentials are read per store
        call = {"check": store.check, "get_bytes": lambda: store.get_bytes("ok.txt"),
                "put_bytes": lambda: store.put_bytes("new.txt", b"x")}[action]
        with pytest.raises(ObjectStoreError) as info:
            call()
        assert "access denied" in _one_line_user_error(info) and "AWS_ACCESS_KEY_ID" in str(info.value), action
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
    with pytest.raises(ObjectStoreError, match="access denied"):
        ObjectStore(store_url, endpoint_url=s3_server.endpoint).check()
    assert _keys(s3_server, bucket) == ["petid/ok.txt"]  # nothing was written with the wrong credentials


def test_a_local_folder_is_a_store_too_and_writes_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PETID_OBJECT_STORE", raising=False)
    assert ObjectStore.from_env() is None
    monkeypatch.setenv("PETID_OBJECT_STORE", f"file://{tmp_path}/shared")
    store = ObjectStore.from_env()
    assert store is not None and store.url == str(tmp_path / "shared")
    (tmp_path / "shared").mkdir()
    store.check()
    assert store.put_bytes("tables/a.parquet", b"data").endswith("tables/a.parquet")
    assert store.get_bytes("tables/a.parquet") == b"data" and store.ls() == ["tables/a.parquet"]
    assert not [p for p in (tmp_path / "shared").rglob(".tmp-*")]
    with pytest.raises(ObjectNotFoundError):
        store.get_file("tables/missing.parquet", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists() and not list(tmp_path.glob(".tmp-*"))
    with pytest.raises(ObjectStoreError, match="invalid object key"):
        store.get_bytes("../outside")
