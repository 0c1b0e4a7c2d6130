"""The training loop, the versioned registry, resume, DDP, the embedder and ``petid train`` on real photos."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from petid_sample.identities import make_identity_set
from training.config import TrainConfig
from training.registry import ModelNotFoundError, ModelRegistry, VersionExistsError
from training.train import TrainingDataError, train_model

REPO = Path(__file__).resolve().parents[1]


def tiny_config(**overrides: object) -> TrainConfig:
    """test_efficientnet (~0.1 M params, random init) at 48 px, 4 × 2 batches, in-process loading."""
    values: dict[str, object] = dict(backbone="test_efficientnet", pretrained="none", embedding_dim=16, p=4, k=2,
                                     epochs=1, max_steps=2, image_size=48, num_workers=0, cache_images=False,
                                     unfreeze_blocks=99)
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return make_identity_set(tmp_path_factory.mktemp("synthetic"), n_identities=12, photos_per_identity=4, size=64)


def test_tiny_model_lowers_its_loss(synthetic: pd.DataFrame) -> None:
    from training.data import ImageDataset
    from training.losses import recipe_loss
    from training.model import build_model
    from training.transforms import data_config, eval_transform

    torch.manual_seed(0)
    config = tiny_config()
    model = build_model(config)
    train = synthetic[synthetic.split == "train"]
    codes = pd.factorize(train.identity_id)[0].tolist()
    dataset = ImageDataset(list(train.path), codes, eval_transform(data_config(model.backbone, config.image_size)))
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    labels = torch.tensor(codes)
    loss_fn = recipe_loss()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    losses = []
    for _ in range(12):
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses


def test_registry_versions_reuse_and_force(synthetic: pd.DataFrame, tmp_path: Path) -> None:
    root = tmp_path / "models"
    messages: list[str] = []
    first = train_model(synthetic, tiny_config(), root, log=messages.append)
    assert not first.reused and first.metrics["steps"] == 2 and first.metrics["val_top1"] is not None
    files = {p.name for p in first.path.iterdir()}
    assert {"weights.safetensors", "config.json", "label_map.json", "data_manifest_hash", "git_commit",
            "curves.png", "metrics.json"} <= files
    assert json.loads((first.path / "label_map.json").read_text()) == {f"synthetic:{i}": i for i in range(8)}
    assert (first.path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    stamp = (first.path / "weights.safetensors").stat().st_mtime_ns

    again = train_model(synthetic.sample(frac=1.0, random_state=3), tiny_config(), root, log=messages.append)
    assert again.reused and again.version_id == first.version_id  # row order does not matter
    assert (first.path / "weights.safetensors").stat().st_mtime_ns == stamp  # never overwritten

    changed = train_model(synthetic, tiny_config(margin=0.3), root, log=messages.append)
    assert changed.version_id != first.version_id and not changed.reused
    fewer = train_model(synthetic.iloc[1:], tiny_config(), root, log=messages.append)
    assert fewer.version_id not in (first.version_id, changed.version_id)

    forced = train_model(synthetic, tiny_config(), root, force=True, log=messages.append)
    assert forced.version_id == f"{first.version_id}-r1" and not forced.reused

    registry = ModelRegistry(root)
    assert registry.aliases()["latest"] == forced.version_id
    assert set(registry.versions()) == {first.version_id, changed.version_id, fewer.version_id, forced.version_id,
                                        first.baseline_id}
    assert first.baseline_id.startswith("frozen-") and registry.aliases()["production"] in (forced.version_id, first.baseline_id)
    assert registry.promote(first.version_id) == first.version_id
    assert registry.resolve("production") == first.path and registry.resolve(str(first.path)) == first.path
    with pytest.raises(ModelNotFoundError, match="nope"):
        registry.resolve("nope")
    with pytest.raises(VersionExistsError):
        registry.register(first.version_id, {}, config={}, label_map={}, data_hash="x", metrics={})

    from training.embedder import load_embedder

    paths = list(synthetic.path[:5])
    embedder = load_embedder("production", root)
    vectors = embedder.embed(paths, batch_size=2)
    assert embedder.model_id == first.version_id
    assert vectors.shape == (5, 16) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(load_embedder(first.version_id, root).embed(paths), vectors, atol=1e-5)  # deterministic


def test_baseline_embedder_is_frozen_pretrained_backbone(synthetic: pd.DataFrame, tmp_path: Path) -> None:
    from training.embedder import load_embedder

    embedder = load_embedder("baseline", tmp_path / "empty")
    vectors = embedder.embed(list(synthetic.path[:3]))
    assert embedder.model_id == "baseline:efficientnet_lite2" and vectors.shape == (3, 1280)  # the small preset's
    assert embedder.data_config["input_size"] == (3, 260, 260)
    assert embedder.data_config["mean"] == pytest.approx((127 / 255,) * 3)  # the Lite weights' own normalisation
    lite0 = load_embedder("baseline:efficientnet_lite0", tmp_path / "empty")
    assert lite0.data_config["input_size"] == (3, 224, 224) and lite0.data_config["std"] == pytest.approx((128 / 255,) * 3)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ModelNotFoundError):
        load_embedder("latest", tmp_path / "empty")


def test_resume_after_interruption(synthetic: pd.DataFrame, tmp_path: Path) -> None:
    # 32 train photos / (4 × 2) → 4 steps per epoch; interrupted mid-epoch at step 3, finishing in epoch 2
    config = tiny_config(epochs=2, max_steps=6, checkpoint_every=1)

    def interrupt(message: str) -> None:
        if message.startswith("step 3/"):
            raise KeyboardInterrupt("simulated interruption")

    with pytest.raises(KeyboardInterrupt):
        train_model(synthetic, config, tmp_path, log=interrupt)
    registry = ModelRegistry(tmp_path)
    assert [v for v in registry.versions() if not v.startswith("frozen-")] == []  # only the frozen baseline
    checkpoints = list((tmp_path / ".work").glob("*/last.pt"))
    assert len(checkpoints) == 1
    saved = torch.load(checkpoints[0], weights_only=True)  # plain tensors and numbers: no pickled objects
    assert saved["step"] == 3 and saved["epoch"] == 0 and [row["epoch"] for row in saved["history"]] == [0]

    messages: list[str] = []
    result = train_model(synthetic, config, tmp_path, log=messages.append)
    assert any(m.startswith("resuming") and "step 3" in m for m in messages)
    assert result.metrics["resumed_from_step"] == 3 and result.metrics["steps"] == 6
    assert [row["epoch"] for row in result.metrics["history"]] == [0, 1, 2]
    assert not checkpoints[0].exists()  # scratch removed once registered


def test_bad_frames_are_named(synthetic: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="split"):
        train_model(synthetic.drop(columns="split"), tiny_config(), tmp_path)
    broken = synthetic.copy()
    broken.loc[0, "path"] = str(tmp_path / "gone.jpg")
    with pytest.raises(TrainingDataError, match="gone.jpg"):
        train_model(broken, tiny_config(), tmp_path)
    with pytest.raises(TrainingDataError, match="holdout"):
        train_model(synthetic.assign(split="holdout"), tiny_config(), tmp_path)


DDP_SCRIPT = textwrap.dedent("""
    import os, sys, pandas as pd
    from training.config import TrainConfig
    from training.train import train_model
    frame = pd.read_parquet(sys.argv[1])
    config = TrainConfig(backbone="test_efficientnet", pretrained="none", embedding_dim=16, p=2, k=2, epochs=1,
                         max_steps=2, image_size=32, num_workers=0, unfreeze_blocks=99)
    result = train_model(frame, config, sys.argv[2], log=lambda m: None)
    with open(f"{sys.argv[2]}.rank{os.environ['RANK']}", "w") as out:  # one file per rank: no interleaved stdout
        out.write(result.version_id)
""")


def test_ddp_two_cpu_processes_gloo(synthetic: pd.DataFrame, tmp_path: Path) -> None:
    frame_path = tmp_path / "frame.parquet"
    synthetic.to_parquet(frame_path)
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    # a bytecode cache outside the venv spares the two fresh ranks recompiling torch on every run
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(REPO / ".pytest_cache" / "pycache")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           str(frame_path), str(tmp_path / "models")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=170, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    versions = {(tmp_path / f"models.rank{rank}").read_text() for rank in (0, 1)}
    assert len(versions) == 1  # both ranks agree
    metrics = ModelRegistry(tmp_path / "models").metrics(versions.pop())
    assert metrics["world_size"] == 2 and metrics["steps"] == 2


def test_petid_train_on_kennel_dev(kennel_dev: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from petid_app.cli import main

    config = tmp_path / "train.yaml"
    config.write_text("preset: demo\np: 6\nk: 2\nimage_size: 64\nmax_steps: 2\nnum_workers: 1\n")
    args = ["train", "--dataset", f"csv:{kennel_dev / 'labels.csv'}", "--config", str(config),
            "--registry", str(tmp_path / "models")]
    assert main(args) == 0
    version = capsys.readouterr().out.strip().splitlines()[-1]
    registry = ModelRegistry(tmp_path / "models")
    assert registry.aliases()["latest"] == version
    metrics = registry.metrics(version)
    assert metrics["steps"] == 2 and metrics["train_images"] + metrics["val_images"] == 359
    assert metrics["val_images"] > 0 and 0.0 <= metrics["val_top1"] <= 1.0 and 0.0 <= metrics["val_eer"] <= 1.0
    assert registry.config(version)["backbone"] == "efficientnet_lite0"
    assert main(args) == 0  # identical inputs: the version is reused
    assert capsys.readouterr().out.strip().splitlines()[-1] == version


@pytest.mark.slow
def test_petid_train_with_no_flags_on_kennel_dev(kennel_dev: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's user: 14 real dogs, no flag. The small-data preset trains, a version is registered and
    printed, the gate decides, and the identical call reuses it."""
    from petid_app.cli import main

    monkeypatch.setenv("PETID_HOME", str(tmp_path))
    args = ["train", "--dataset", f"identity-folders:{kennel_dev / 'images'}"]
    assert main(args) == 0
    out = capsys.readouterr()
    version = out.out.strip().splitlines()[-1]
    assert "gate:" in out.err and "production" in out.err
    registry = ModelRegistry(tmp_path / "models")
    config = registry.config(version)
    assert config["backbone"] == "efficientnet_lite2" and config["p"] <= 11  # the small preset; 11 training dogs
    production = registry.aliases()["production"]
    assert production in (version, registry.resolve(production).name)
    assert registry.metrics(version)["val_identities"] == 3
    assert main(args) == 0
    again = capsys.readouterr()
    assert again.out.strip().splitlines()[-1] == version and "reused" in again.err


def test_one_version_id_one_model(synthetic: pd.DataFrame, tmp_path: Path) -> None:
    """Training again (into a second registry) with the same data and config gives the same weights, whatever
    Python's global random state was: timm's augmentations draw from it, so the trainer seeds it."""
    import random

    config = tiny_config(max_steps=4, augment="strong")
    weights = []
    for state in (1, 2):
        random.seed(state)
        result = train_model(synthetic, config, tmp_path / str(state), log=lambda _: None)
        weights.append((result.version_id, (result.path / "weights.safetensors").read_bytes()))
    assert weights[0][0] == weights[1][0] and weights[0][1] == weights[1][1]
