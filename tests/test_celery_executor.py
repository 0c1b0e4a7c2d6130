"""Distributed curation: the ``curation_shards`` job through the Celery executor on a real Redis broker with two
real ``dagster-celery`` worker processes; a failing shard retried alone without losing what it or the others
recorded; the executor chosen from the environment with one-line errors; shards by content-hash prefix.

The servers and workers are started here, on loopback, and stopped in teardown (``bench/celery_curation.py``
holds the harness the bench uses too); only a missing ``redis-server`` skips.
"""

from __future__ import annotations

import os
import socket
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import celery_curation as harness  # noqa: E402

from curation.cache import work_stats  # noqa: E402
from curation.shards import plan_shards, shard_of, source_digests  # noqa: E402
from petid.records import catalogue_table  # noqa: E402


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory):
    if harness.redis_server() is None:
        pytest.skip("redis-server is not installed (Debian package redis-server; .ci/run installs it)")
    with harness.Redis(tmp_path_factory.mktemp("redis"), lifetime_s=240) as server:
        yield server


@pytest.mark.timeout(150)
def test_sharded_curation_runs_on_two_celery_workers(redis: harness.Redis, tmp_path: Path) -> None:
    with harness.deployment(tmp_path, "celery", redis.url) as (env, dagster_home, petid_home):
        rows = harness.write_corpus(tmp_path / "photos", 48, side=160)
        harness.write_catalogue(petid_home, rows)
        with harness.Workers(["alpha", "beta"], env, tmp_path / "logs") as workers:
            done = harness.execute(env, tmp_path, shards=8, timeout_s=120)
            assert done.returncode == 0, done.stderr[-3000:] + workers.log("alpha")[-1500:]
        report = harness.run_report(dagster_home)

    assert report["status"] == "SUCCESS"
    outputs = harness.step_outputs(petid_home, report["run_id"])
    plan = outputs["curation_shard_plan/plan"]
    assert plan["photos"] == 48 and plan["by_name"] == 24  # the content-addressed half sharded by its name
    shard_steps = {k: v for k, v in report["steps"].items() if k.startswith("curate_shard[")}
    assert sorted(shard_steps) == sorted(f"curate_shard[{k}]" for k in plan["sizes"])
    assert len(shard_steps) >= 4
    for key, step in shard_steps.items():  # each shard ran once, as one task on one of the two workers
        assert len(step["workers"]) == 1 and len(step["ends"]) == 1, (key, step)
        assert outputs[f"{key}/result"]["photos"] == plan["sizes"][key[len("curate_shard["):-1]]
    nodes = {f"alpha@{socket.gethostname()}", f"beta@{socket.gethostname()}"}
    assert {step["workers"][0] for step in shard_steps.values()} == nodes  # steps ran on both workers
    assert {worker for step in report["steps"].values() for worker in step["workers"]} == nodes
    pids = {outputs[f"{key}/result"]["pid"] for key in shard_steps}
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes, neither the test nor the run

    summary = outputs["curation_shards_summary/result"]
    assert summary["photos"] == 48 and summary["rejected"] == 2 and summary["accepted"] == 46  # 2 non-images
    assert summary["decoded"] == 48 and summary["hash_errors"] == 0 and len(summary["workers"]) == 2

    # the whole corpus now resolves from the shards' records: nothing is decoded or hashed again, and the result
    # is the one the images asset computes (deduplication then runs over all of it at once)
    from curation.images import hash_curated, process_images

    catalogue = catalogue_table(rows)
    images, rejected = process_images(catalogue, petid_home / "images", workers=1)
    assert work_stats(images)["decoded"] == 0
    assert (images.num_rows, rejected.num_rows) == (46, 2)
    assert work_stats(hash_curated(images, workers=1))["hashed"] == 0


@pytest.mark.timeout(150)
def test_under_celery_a_broken_shard_fails_alone_and_a_rerun_redoes_only_its_photos(redis: harness.Redis,
                                                                                    tmp_path: Path) -> None:
    import hashlib

    with harness.deployment(tmp_path, "celery", redis.url) as (env, dagster_home, petid_home):
        rows = harness.write_corpus(tmp_path / "photos", 32, side=128)
        harness.write_catalogue(petid_home, rows)
        catalogue = pa.concat_tables([catalogue_table([r for r in rows if r["source"] == source])
                                      for source in ("pet911", "telegram")])  # the planner's order: pet911 first
        parts, _ = plan_shards(catalogue, 8, petid_home / "images")  # what the planner will compute
        shard_by_path = {p: k for k, part in enumerate(parts) for p in part.column("path").to_pylist()}
        prefixes = {row["path"]: hashlib.sha256(Path(row["path"]).read_bytes()).hexdigest()[:2] for row in rows}
        # a photo whose output directory no other photo needs: a regular file there breaks every write into it
        victim = next(p for p, ab in prefixes.items() if list(prefixes.values()).count(ab) == 1
                      and not Path(p).read_bytes().startswith(b"this is not"))
        victim_shard = shard_by_path[victim]
        blocker = petid_home / "images" / prefixes[victim]
        blocker.parent.mkdir(parents=True)
        blocker.write_text("not a directory")
        with harness.Workers(["alpha", "beta"], env, tmp_path / "logs"):
            failed = harness.execute(env, tmp_path, shards=8, timeout_s=120)
            broken = harness.run_report(dagster_home)
            blocker.unlink()  # the operator fixes the disk
            fixed = harness.execute(env, tmp_path, shards=8, timeout_s=120)
            assert fixed.returncode == 0, fixed.stderr[-3000:]
            again = harness.run_report(dagster_home)

    key = f"curate_shard[s{victim_shard:04d}]"
    assert failed.returncode != 0 and broken["status"] == "FAILURE"
    shard_steps = {k: v for k, v in broken["steps"].items() if k.startswith("curate_shard[")}
    assert shard_steps[key]["retries"] == 2 and len(shard_steps[key]["starts"]) == 3  # retried alone, twice
    assert all(v["retries"] == 0 and len(v["starts"]) == 1 for k, v in shard_steps.items() if k != key)
    assert "curation_shards_summary" not in broken["steps"] or not broken["steps"]["curation_shards_summary"]["ends"]

    # the rerun decodes only the broken shard's photos from the victim on: the other shards' photos, and those the
    # broken shard's attempts recorded before the victim, come from the records the failed run left. (The plain-
    # named photos are in the stat index now, so the rerun places them by content: shards are regrouped.)
    assert again["status"] == "SUCCESS"
    outputs = harness.step_outputs(petid_home, again["run_id"])
    order = parts[victim_shard].column("path").to_pylist()
    plan = outputs["curation_shard_plan/plan"]
    assert plan["by_name"] == 16 and plan["by_index"] >= 16 - len(order)  # all but what the broken shard missed
    decoded = [v["decoded"] for k, v in outputs.items() if k.startswith("curate_shard[")]
    assert sum(decoded) == len(order) - order.index(victim) >= 1
    summary = outputs["curation_shards_summary/result"]
    assert (summary["photos"], summary["decoded"], summary["from_records"]) == (32, sum(decoded), 32 - sum(decoded))


def _sources(folder: Path, count: int) -> pa.Table:
    from petid_sample.images import photo

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        paths.append(folder / f"p{k:03d}.jpg")
        photo(k, (128, 96)).save(paths[-1], quality=90)
    return catalogue_table({"identity_id": f"t:{k}", "source": "t", "path": str(p), "position": 0}
                           for k, p in enumerate(paths))


def test_a_failing_shard_is_retried_alone_and_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.parquet as pq
    from dagster import DagsterEventType, DagsterInstance

    import curation.images
    from dagster_project.definitions import build_defs
    from petid.records import empty_catalogue

    home = tmp_path / "home"
    catalogue = _sources(tmp_path / "src", 24)
    (home / "tables").mkdir(parents=True)
    pq.write_table(catalogue, home / "tables" / "pet911_photos.parquet")
    for name in ("telegram_posts", "external_datasets"):
        pq.write_table(empty_catalogue(), home / "tables" / f"{name}.parquet")
    parts, _ = plan_shards(catalogue, 4, home / "images")
    victim_shard = max(range(4), key=lambda k: parts[k].num_rows)
    assert parts[victim_shard].num_rows >= 3
    victim = parts[victim_shard].column("path")[2].as_py()  # two of its photos are converted before it fails
    victim_bytes = Path(victim).read_bytes()

    calls: Counter[bytes] = Counter()
    at_failure: dict[str, tuple[int, int]] = {}
    original = curation.images._convert

    def convert(data: bytes, options):
        calls[data] += 1
        if data == victim_bytes and calls[data] == 1:  # a disk or decoder fault, the first time only
            for jpeg in (home / "images").glob("*/*.jpg"):
                st = jpeg.stat()
                at_failure[str(jpeg)] = (st.st_ino, st.st_mtime_ns)
            raise OSError("simulated I/O error while decoding")
        return original(data, options)

    monkeypatch.setattr(curation.images, "_convert", convert)
    job = build_defs(home=str(home), executor="in_process").resolve_job_def("curation_shards")
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, run_config={
            "ops": {"curation_shard_plan": {"config": {"shards": 4}}}})
        assert result.success
        retried = [e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    key = f"s{victim_shard:04d}"
    assert retried == [f"curate_shard[{key}]"]  # that shard alone, once
    summaries = {s["shard"]: s for s in result.output_for_node("curate_shard", "result").values()}
    assert {k: s["attempt"] for k, s in summaries.items()} == {k: 2 if k == key else 1 for k in summaries}

    # nothing was lost: every photo decoded exactly once except the one whose decode failed; the failed shard's
    # retry took its first two photos from the records the failed attempt had flushed
    sources = [Path(p).read_bytes() for p in catalogue.column("path").to_pylist()]
    assert {data: calls[data] for data in sources} == {data: 2 if data == victim_bytes else 1 for data in sources}
    assert summaries[key]["decoded"] == parts[victim_shard].num_rows - 2
    # and no output written before the failure (other shards', the failed shard's first two) was touched since
    assert len(at_failure) >= 2
    for path, (inode, mtime) in at_failure.items():
        st = os.stat(path)
        assert (st.st_ino, st.st_mtime_ns) == (inode, mtime), path
    summary = result.output_for_node("curation_shards_summary")
    assert summary["photos"] == summary["accepted"] == 24


def test_shards_are_content_hash_prefix_ranges_covering_every_photo(tmp_path: Path) -> None:
    import hashlib

    digests = [hashlib.sha256(str(k).encode()).hexdigest() for k in range(4000)]
    for n in (1, 3, 16, 256):
        shards = [shard_of(d, n) for d in digests]
        assert set(shards) == set(range(n)) or n > 100
        sizes = Counter(shards)
        assert max(sizes.values()) <= 1.35 * len(digests) / n + 10  # balanced
    assert all(shard_of(d, 16) == int(d[0], 16) for d in digests)  # 16 shards = the first hex digit
    assert all(shard_of(d, 256) == int(d[:2], 16) for d in digests)  # 256 = the images/ab/ directory
    with pytest.raises(ValueError):
        shard_of(digests[0], 0)

    catalogue = _sources(tmp_path / "src", 30)
    parts, counts = plan_shards(catalogue, 5, tmp_path / "images")
    assert sum(p.num_rows for p in parts) == 30 and counts == {"by_name": 0, "by_index": 0, "by_path": 30}
    assert sorted(p for part in parts for p in part.column("path").to_pylist()) == \
        sorted(catalogue.column("path").to_pylist())
    reversed_parts, _ = plan_shards(catalogue.take(pa.array(range(29, -1, -1))), 5, tmp_path / "images")
    assert [sorted(p.column("path").to_pylist()) for p in parts] == \
        [sorted(p.column("path").to_pylist()) for p in reversed_parts]  # independent of catalogue order
    sha = "ab" * 32
    assert source_digests([f"/raw/photos/ab/{sha}.jpg"], tmp_path / "none")[0] == [sha]


def test_the_executor_comes_from_the_environment_with_one_line_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster_project.deployments import DeploymentError
    from dagster_project.executors import celery_config, executor_for

    for name in ("PETID_EXECUTOR", "PETID_CELERY_BROKER", "PETID_CELERY_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    assert executor_for().name == "in_process"
    monkeypatch.setenv("PETID_EXECUTOR", "multiprocess")
    assert executor_for().name == "multiprocess"
    monkeypatch.setenv("PETID_EXECUTOR", "dask")
    with pytest.raises(DeploymentError, match=r"PETID_EXECUTOR='dask': expected one of in_process, multiprocess"):
        executor_for()
    monkeypatch.setenv("PETID_EXECUTOR", "celery")
    with pytest.raises(DeploymentError, match="PETID_EXECUTOR=celery needs PETID_CELERY_BROKER"):
        executor_for()
    monkeypatch.setenv("PETID_CELERY_BROKER", "localhost:6379")
    with pytest.raises(DeploymentError, match="is not a Celery broker URL"):
        executor_for()
    monkeypatch.setenv("PETID_CELERY_BROKER", "redis://:s3cret@redis.internal:6379/0")
    assert executor_for().name == "celery"
    # the executor config refers to the variables; the URL (and its password) is read only when a run starts
    assert celery_config() == {"broker": {"env": "PETID_CELERY_BROKER"}, "backend": {"env": "PETID_CELERY_BROKER"}}
    monkeypatch.setenv("PETID_CELERY_BACKEND", "rpc://")
    assert celery_config()["backend"] == {"env": "PETID_CELERY_BACKEND"}
    monkeypatch.setenv("PETID_CELERY_BACKEND", "nonsense")
    with pytest.raises(DeploymentError, match="PETID_CELERY_BACKEND='nonsense' is not a Celery result backend URL"):
        executor_for()
