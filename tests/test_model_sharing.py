"""The model assets share what they train through the object store, and another machine fetches it."""

from __future__ import annotations

from pathlib import Path

from test_object_store import S3Server, _keys, _register, bucket, s3_server  # noqa: F401  (fixtures)

from assets.model import fetch_versions, share_versions
from dagster_project.resources import ModelRegistryResource, StorageResource


def _registry(root: Path, url: str | None, endpoint: str | None) -> ModelRegistryResource:
    return ModelRegistryResource(storage=StorageResource(root=str(root), object_store=url, s3_endpoint=endpoint))


def test_trained_versions_are_shared_and_fetched_on_another_machine(s3_server: S3Server, bucket: str,  # noqa: F811
                                                                     tmp_path: Path) -> None:
    from training.registry import ModelRegistry

    trainer = _registry(tmp_path / "gpu", f"s3://{bucket}/petid", s3_server.endpoint)
    version, _ = _register(trainer.path)
    assert share_versions(trainer, version, None, version) == [version]  # each once; a missing one is skipped
    assert f"petid/models/{version}/petid-manifest.json" in _keys(s3_server, bucket)
    evaluator = _registry(tmp_path / "cpu", f"s3://{bucket}/petid", s3_server.endpoint)
    assert ModelRegistry(evaluator.path).versions() == []
    fetch_versions(evaluator, version)
    assert ModelRegistry(evaluator.path).versions() == [version]
    fetch_versions(evaluator, version)  # already here: nothing to do


def test_without_a_store_nothing_is_shared(tmp_path: Path) -> None:
    local = _registry(tmp_path, None, None)
    version, _ = _register(local.path)
    assert share_versions(local, version) == []
    fetch_versions(local, "not-here")  # no store: no fetch, no error
