"""The promotion gate, honest numbers (bootstrap intervals, the pairs file) and small datasets that train."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from eval_fakes import PixelEmbedder, make_photos
from sklearn.metrics import roc_auc_score

from petid_sample.identities import make_identity_set
from training.config import TrainConfig
from training.gate import gate_decision, read_gate
from training.registry import ModelRegistry
from training.train import TrainingDataError, train_model


def tiny(**overrides: object) -> TrainConfig:
    values: dict[str, object] = dict(backbone="test_efficientnet", pretrained="none", embedding_dim=16, p=4, k=2,
                                     epochs=1, max_steps=2, image_size=48, num_workers=0, unfreeze_blocks=99)
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return make_identity_set(tmp_path_factory.mktemp("synthetic"), n_identities=12, photos_per_identity=4, size=64)


def test_gate_promotes_only_a_strict_win_with_no_worse_top1_or_eer() -> None:
    base = {"top1": 0.8, "map": 0.6, "eer": 0.2}
    assert gate_decision({"top1": 0.85, "map": 0.65, "eer": 0.18}, base, 0.0)["promoted"]
    assert not gate_decision(dict(base), base, 0.0)["promoted"]  # a tie is not a win
    assert not gate_decision({"top1": 0.85, "map": 0.65, "eer": 0.18}, base, 0.1)["promoted"]  # below the margin
    assert not gate_decision({"top1": 0.75, "map": 0.70, "eer": 0.10}, base, 0.0)["promoted"]  # worse Top-1
    assert not gate_decision({"top1": 0.90, "map": 0.70, "eer": 0.25}, base, 0.0)["promoted"]  # worse EER
    kept = gate_decision({}, base, 0.0)
    assert not kept["promoted"] and "no validation" in kept["reason"]


def test_unbeaten_model_leaves_the_frozen_backbone_in_production(synthetic: pd.DataFrame, tmp_path: Path) -> None:
    messages: list[str] = []
    result = train_model(synthetic, tiny(gate_margin=1.0), tmp_path, log=messages.append)  # an unreachable margin
    registry = ModelRegistry(tmp_path)
    assert not result.promoted and result.production_id == result.baseline_id
    assert registry.aliases() == {"latest": result.version_id, "production": result.baseline_id}
    assert registry.resolve("production").name.startswith("frozen-")
    gate = read_gate(registry, result.version_id)
    assert gate["baseline_version"] == result.baseline_id and gate["candidate"] and gate["baseline"]
    assert any(m.startswith("gate:") and "stays in production" in m for m in messages)
    # epoch 0 (the model before any step) is a candidate, validated with the report's own metrics
    history = result.metrics["history"]
    assert history[0]["epoch"] == 0 and {"top1", "map", "eer", "roc_auc"} <= set(history[0])
    # reuse re-applies the recorded decision even after someone repointed production
    registry.set_alias("production", result.version_id)
    again = train_model(synthetic, tiny(gate_margin=1.0), tmp_path, log=messages.append)
    assert again.reused and registry.aliases()["production"] == result.baseline_id


def test_frozen_backbone_embeds_like_the_registered_baseline(synthetic: pd.DataFrame, tmp_path: Path) -> None:
    from training.embedder import load_embedder

    result = train_model(synthetic, tiny(), tmp_path, log=lambda m: None)
    paths = list(synthetic.path[:4])
    registered = load_embedder(result.baseline_id, tmp_path).embed(paths)
    trained = load_embedder(result.version_id, tmp_path).embed(paths)
    assert registered.shape[1] != trained.shape[1]  # pooled features vs the 16-d head
    assert np.allclose(np.linalg.norm(registered, axis=1), 1.0, atol=1e-5)


def test_p_adapts_to_the_usable_identities(synthetic: pd.DataFrame, tmp_path: Path) -> None:
    messages: list[str] = []
    result = train_model(synthetic, tiny(p=58), tmp_path, log=messages.append)
    assert result.metrics["p"] == 8  # 8 training identities
    assert any("warning" in m and "p=8" in m for m in messages)


def test_too_few_identities_fail_before_any_model_is_built(synthetic: pd.DataFrame, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import training.model

    monkeypatch.setattr(training.model, "build_model", lambda *a, **k: pytest.fail("model built"))
    one = synthetic[synthetic.identity_id.isin(["synthetic:0", "synthetic:9"])]  # one train, one val identity
    with pytest.raises(TrainingDataError, match="need 2 or more"):
        train_model(one, tiny(), tmp_path)


def test_cli_train_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from petid_app.cli import main

    folder = tmp_path / "dogs"
    frame = make_identity_set(folder, n_identities=1, photos_per_identity=3, size=32)
    assert len(frame) == 3
    code = main(["train", "--dataset", f"identity-folders:{folder}", "--registry", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("petid train:"), err
    assert "Traceback" not in err


def test_corrupt_registry_state_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from petid_app.cli import main

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "aliases.json").write_text('{"latest": "production", "production": "latest"}')
    photos = make_photos(tmp_path / "p", n_identities=3, per_identity=2)
    photos[["path", "identity_id"]].rename(columns={"identity_id": "identity"}).to_csv(tmp_path / "p.csv", index=False)
    args = ["evaluate", "--dataset", f"csv:{tmp_path / 'p.csv'}", "--model", "latest",
            "--registry", str(tmp_path / "models"), "--out", str(tmp_path / "r.json")]
    assert main(args) == 2
    assert "alias cycle" in capsys.readouterr().err
    (tmp_path / "models" / "aliases.json").write_text("{not json")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "not valid JSON" in err and len(err.strip().splitlines()) == 1


def _factory(ref: str, registry_root) -> PixelEmbedder:
    return PixelEmbedder(f"fake-{ref}", noise=0.0 if ref != "baseline" else 0.3, seed=1)


def test_report_intervals_cover_the_estimates_and_pairs_recompute(tmp_path: Path) -> None:
    from evaluation.evaluate import evaluate

    photos = make_photos(tmp_path / "photos", n_identities=12, per_identity=4, noise=200.0, seed=4, spread=0.1)
    report = evaluate(photos, "v1", None, tmp_path / "r", None, embedder_factory=_factory, n_boot=300,
                      candidate_ref="v2")
    for source in (report, report["baseline"], report["candidate"]):
        for key in ("top1", "top5", "map", "roc_auc", "eer"):
            low, high = source["intervals"][key]
            assert low <= source[key] + 1e-9 and source[key] <= high + 1e-9, (key, low, source[key], high)
    assert report["interval_method"] == {"level": 0.95, "n_boot": 300, "unit": "identity"}
    low, high = report["delta_intervals"]["top1"]
    assert low <= report["top1"] - report["baseline"]["top1"] <= high
    pairs = pd.read_csv(tmp_path / "r" / "pairs.csv")
    assert len(pairs) == report["n_pairs_pos"] + report["n_pairs_neg"]
    assert pairs["same"].sum() == report["n_pairs_pos"]
    assert (pairs.identity_a == pairs.identity_b).equals(pairs.same)
    assert roc_auc_score(pairs.same, pairs.score_model) == pytest.approx(report["roc_auc"], abs=1e-5)
    assert roc_auc_score(pairs.same, pairs.score_baseline) == pytest.approx(report["baseline"]["roc_auc"], abs=1e-5)
    assert (pairs.path_a.value_counts().add(pairs.path_b.value_counts(), fill_value=0) <= 5).all()
    html = (tmp_path / "r" / "report.html").read_text()
    assert "95% CI" in html and "pairs.csv" in html and "candidate" in html


def test_intervals_narrow_with_more_identities(tmp_path: Path) -> None:
    from evaluation.evaluate import evaluate

    widths = []
    for n in (6, 30):
        photos = make_photos(tmp_path / f"p{n}", n_identities=n, per_identity=4, noise=250.0, seed=2, spread=0.1)
        report = evaluate(photos, "v1", None, tmp_path / f"r{n}", None, embedder_factory=_factory, n_boot=200)
        widths.append(np.subtract(*report["intervals"]["map"][::-1]))
    assert widths[1] < widths[0]


def test_production_check_blocks_a_production_the_gate_did_not_choose(synthetic: pd.DataFrame,
                                                                     tmp_path: Path) -> None:
    from dagster import build_asset_check_context

    from assets.model import LINEAGE_SCHEMA, production_beats_frozen_backbone
    from dagster_project.resources import ModelRegistryResource, StorageResource

    result = train_model(synthetic, tiny(gate_margin=1.0), tmp_path / "models", log=lambda m: None)
    row = {name: None for name in LINEAGE_SCHEMA.names}
    row.update(trained_version=result.version_id, baseline_version=result.baseline_id, promoted=False,
               production_version=result.production_id)
    registry = ModelRegistryResource(storage=StorageResource(root=str(tmp_path)))
    def check(row: dict):
        return production_beats_frozen_backbone(build_asset_check_context(), pa.Table.from_pylist([row], schema=LINEAGE_SCHEMA),
                                                registry=registry)

    assert check(row).passed
    row["production_version"] = result.version_id  # a model that did not beat the backbone, served anyway
    bad = check(row)
    assert not bad.passed and "the gate chose" in bad.metadata["problems"].value
    spec = next(iter(production_beats_frozen_backbone.check_specs))
    assert spec.blocking


def test_missing_or_corrupt_model_is_one_line(synthetic: pd.DataFrame, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from petid_app.cli import main

    result = train_model(synthetic, tiny(), tmp_path / "models", log=lambda m: None)
    csv_path = tmp_path / "p.csv"
    synthetic[["path", "identity_id"]].rename(columns={"identity_id": "identity"}).to_csv(csv_path, index=False)
    args = ["embed", "--dataset", f"csv:{csv_path}", "--registry", str(tmp_path / "models"),
            "--out", str(tmp_path / "e.parquet"), "--model"]
    assert main([*args, "no-such-version"]) == 2
    assert "is not an alias" in capsys.readouterr().err
    (result.path / "weights.safetensors").write_bytes(b"\x00garbage")
    assert main([*args, result.version_id]) == 2
    err = capsys.readouterr().err
    assert "unreadable" in err and len(err.strip().splitlines()) == 1


def test_gate_wants_the_win_to_survive_the_interval() -> None:
    base = {"top1": 0.8, "map": 0.6, "eer": 0.2}
    better = {"top1": 0.85, "map": 0.65, "eer": 0.18}
    assert gate_decision(better, base, 0.0, {"map": [0.01, 0.09]})["promoted"]
    kept = gate_decision(better, base, 0.0, {"map": [-0.04, 0.12]})  # a few validation animals: not certain
    assert not kept["promoted"] and kept["map_gain_lower_bound"] == -0.04 and "lower bound" in kept["reason"]
    few = gate_decision(better, base, 0.0, {"map": [0.01, 0.09]}, n_identities=3, min_identities=5)
    assert not few["promoted"] and "only 3 validation animals" in few["reason"]


def test_reuse_decides_again_under_a_new_margin(synthetic: pd.DataFrame, tmp_path: Path) -> None:
    first = train_model(synthetic, tiny(), tmp_path, log=lambda m: None)
    messages: list[str] = []
    again = train_model(synthetic, tiny(gate_margin=1.0), tmp_path, log=messages.append)
    assert again.reused and again.version_id == first.version_id  # the margin does not retrain
    assert not again.promoted and again.production_id == first.baseline_id
    assert any(m.startswith("gate decided again") for m in messages)
    assert read_gate(ModelRegistry(tmp_path), first.version_id)["margin"] == 1.0


def test_cli_cross_validation_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from petid_app.cli import main

    folder = tmp_path / "animals"
    make_identity_set(folder, n_identities=8, photos_per_identity=3, size=48)
    config = tmp_path / "tiny.yaml"
    config.write_text("backbone: test_efficientnet\npretrained: none\nembedding_dim: 16\nimage_size: 48\n"
                      "epochs: 1\nmax_steps: 1\np: 4\nnum_workers: 0\nunfreeze_blocks: 99\n")
    args = ["train", "--dataset", f"identity-folders:{folder}", "--config", str(config), "--cv", "2",
            "--registry", str(tmp_path / "models"), "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["folds"] == 2 and result["identities"] == 8
    folds = {(r["fold"], r["model"]) for r in result["rows"]}
    assert folds == {(f, m) for f in (0, 1) for m in ("trained", "production", "frozen")}
    production = [r for r in result["rows"] if r["model"] == "production"]
    frozen = {r["fold"]: r["version"] for r in result["rows"] if r["model"] == "frozen"}
    trained = {r["fold"]: r["version"] for r in result["rows"] if r["model"] == "trained"}
    assert all(r["version"] == (trained if r["promoted"] else frozen)[r["fold"]] for r in production)
    summary = {e["model"]: e for e in result["summary"]}
    assert summary["trained"]["folds"] == 2 and 0 <= summary["trained"]["folds_beating_frozen"] <= 2
    # the test animals of a fold are never trained on: each fold's versions differ
    assert len({r["version"] for r in result["rows"] if r["model"] == "trained"}) == 2


class _DesignedEmbedder:
    """Vectors chosen per photo: an image part (dims 0-15) and, for a text-reading model, the listing text's
    vector (dims 16-35), so what each protocol rewards is known exactly."""

    def __init__(self, model_id: str, image: dict[str, np.ndarray], text: dict[str, np.ndarray] | None = None):
        self.model_id, self._image, self._text = model_id, image, text
        self.uses_text, self.modality = text is not None, "fused" if text is not None else "image"

    def embed(self, paths: list[str], batch_size: int = 32, texts: list[str | None] | None = None) -> np.ndarray:
        rows = []
        for path, text in zip(paths, texts or [None] * len(paths)):
            row = np.concatenate([0.3 * self._image[path], np.zeros(20, np.float32)])
            if text is not None:
                row[16:] = self._text[text]
            rows.append(row)
        return np.stack(rows)


def _pairs_frame(root: Path) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """16 animals, 3 photos a listing, noisy image vectors per animal: animals 0-3 with a lost and a found listing
    merged into one identity as known pairs are (the found listing named in ``merged_from``), 4-15 with one."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((16, 16))
    rows, image = [], {}
    for a in range(16):
        for kind in ("lost", "found") if a < 4 else ("lost",):
            for j in range(3):
                path = root / f"{a}-{kind}-{j}.jpg"
                path.write_bytes(f"{a}{kind}{j}".encode())
                vector = centres[a] + 2.5 * rng.standard_normal(16)
                image[str(path)] = (vector / np.linalg.norm(vector)).astype(np.float32)
                rows.append({"path": str(path), "identity_id": f"t:{a}-lost", "sha256": f"{a}{kind}{j}".ljust(64, "0"),
                             "merged_from": f"t:{a}-found" if kind == "found" else None, "text": f"{a}-{kind}"})
    return pd.DataFrame(rows), image


def test_a_fused_model_must_find_the_other_listing_as_often_as_the_frozen_backbone(tmp_path: Path) -> None:
    from training.gate import validate_gate

    frame, image = _pairs_frame(tmp_path)
    frozen = _DesignedEmbedder("frozen", image)
    words = dict(zip(frame.text.unique(), np.eye(20, dtype=np.float32)))  # one direction per listing's text
    # each pair's found listing described in the words of the next pair's lost listing: every listing's photos
    # share its text (the usual validation rewards that), but the text leads away from the animal's other listing
    misleading = {**words, **{f"{a}-found": words[f"{(a + 1) % 4}-lost"] for a in range(4)}}
    gate = validate_gate(frame, _DesignedEmbedder("fused-misled", image, misleading), frozen, margin=0.0)
    assert gate["candidate"]["top1"] > gate["baseline"]["top1"]  # the shared listing text wins the usual protocol
    assert gate["photo_only_top1"] == gate["photo_only_floor"]  # a photo alone: the frozen backbone's ranking
    assert gate["other_listings_queries"] == 24 and gate["other_listings_top1"] < gate["other_listings_floor"]
    assert not gate["promoted"] and "other listing" in gate["reason"], gate["reason"]
    # the same animal described alike in both listings: its other listing is found, and the model is promoted
    faithful = {**words, **{f"{a}-found": words[f"{a}-lost"] for a in range(4)}}
    gate = validate_gate(frame, _DesignedEmbedder("fused-faithful", image, faithful), frozen, margin=0.0)
    assert gate["promoted"], gate["reason"]
    assert gate["other_listings_top1"] == 1.0 > gate["other_listings_floor"] and gate["other_listings_pairs"] == 4
    few = validate_gate(frame, _DesignedEmbedder("fused-faithful", image, faithful), frozen, 0.0, min_pairs=5)
    assert not few["promoted"] and "only 4 known lost/found pair(s) in validation, 5 needed" in few["reason"]
    # without known pairs in validation the rule has nothing to measure and is not applied
    unmerged = frame.assign(identity_id=frame.merged_from.fillna(frame.identity_id), merged_from=None)
    assert "other_listings_top1" not in validate_gate(unmerged, _DesignedEmbedder("f", image, misleading), frozen, 0.0)
