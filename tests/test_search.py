"""Photo search: planted queries find their animal, per-identity results, Kashtanka filters, backends, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluation.ann import ExactBackend, UsearchBackend, top_k
from evaluation.fakes import PixelEmbedder, make_photos
from evaluation.search import SearchError, SearchIndex, build_index
from petid.cli import main


@pytest.fixture
def gallery(tmp_path: Path) -> pd.DataFrame:
    return make_photos(tmp_path / "photos", n_identities=12, per_identity=4, noise=25.0, seed=7)


def _synthetic_gallery(n_ids: int = 300, per: int = 3, dim: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, dim))
    ids = np.repeat(np.arange(n_ids), per)
    vectors = centres[ids] + 0.3 * rng.standard_normal((len(ids), dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return centres, ids, vectors.astype(np.float32)


def test_top_k_matches_a_full_sort() -> None:
    scores = np.random.default_rng(1).random(1000).astype(np.float32)
    idx, vals = top_k(scores, 7)
    assert np.array_equal(idx, np.argsort(-scores)[:7]) and np.all(np.diff(vals) <= 0)
    assert len(top_k(scores[:3], 10)[0]) == 3


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_planted_queries_find_their_identity(gallery: pd.DataFrame, tmp_path: Path, dtype: str) -> None:
    embedder = PixelEmbedder()
    info = build_index(gallery, "m", None, tmp_path / "idx", embedder=embedder, dtype=dtype)
    assert info["n_vectors"] == 48 and info["n_identities"] == 12 and info["dtype"] == dtype
    index = SearchIndex.load(tmp_path / "idx", embedder=embedder)
    for planted in gallery.groupby("identity_id").head(1).itertuples():
        results = index.query(planted.path, top_k=5)
        assert results[0]["identity_id"] == planted.identity_id
        assert results[0]["best_photo"] == planted.path and results[0]["score"] == pytest.approx(1.0, abs=2e-3)
        assert len({r["identity_id"] for r in results}) == len(results) == 5  # one row per animal
        assert [r["rank"] for r in results] == [1, 2, 3, 4, 5]
        assert all(a["score"] >= b["score"] for a, b in zip(results, results[1:]))
        assert results[0]["url"] == f"https://example.org/{planted.identity_id.split(':')[1]}"


def test_filters_as_in_kashtanka(gallery: pd.DataFrame, tmp_path: Path) -> None:
    frame = gallery.copy()
    frame.loc[frame.identity_id == "test:11", ["species", "kind", "date"]] = None  # unknown metadata
    embedder = PixelEmbedder()
    build_index(frame, "m", None, tmp_path / "idx", embedder=embedder)
    index = SearchIndex.load(tmp_path / "idx", embedder=embedder)
    query = frame.path[0]  # test:0, a lost cat
    lost = index.query(query, top_k=20, kind="found")
    assert lost and all(r["kind"] in ("found", None) for r in lost)
    assert "test:0" not in {r["identity_id"] for r in lost} and "test:11" in {r["identity_id"] for r in lost}
    cats = index.query(query, top_k=20, species="cat")
    assert {r["identity_id"] for r in cats} == {"test:0", "test:3", "test:6", "test:9", "test:11"}
    recent = index.query(query, top_k=20, since="2024-01-06", until="2024-01-09")
    assert {r["identity_id"] for r in recent} == {"test:5", "test:6", "test:7", "test:8", "test:11"}
    combined = index.query(query, top_k=2, species="dog", kind="lost", since="2024-01-03")
    assert [r["identity_id"] for r in combined] and all(
        r["species"] in ("dog", None) and r["kind"] in ("lost", None) for r in combined
    )
    assert len(combined) == 2
    with pytest.raises(SearchError, match="ISO date"):
        index.query(query, since="last week")
    with pytest.raises(SearchError, match="kind"):
        index.query(query, kind="stolen")


def test_exact_and_usearch_agree_on_synthetic_gallery(tmp_path: Path) -> None:
    centres, ids, vectors = _synthetic_gallery()
    exact = ExactBackend(vectors)
    approx = UsearchBackend.build(vectors)
    approx.save(tmp_path)
    reloaded = UsearchBackend.load(tmp_path)
    assert reloaded.size == len(vectors)
    rng = np.random.default_rng(5)
    recall = []
    for target in rng.choice(len(centres), 30, replace=False):
        q = centres[target] / np.linalg.norm(centres[target])
        e_idx, e_scores = exact.search(q, 10)
        a_idx, a_scores = reloaded.search(q, 10)
        assert ids[e_idx[0]] == target
        assert np.allclose(e_scores, exact.scores(q)[e_idx], atol=1e-6)
        recall.append(len(set(e_idx) & set(a_idx)) / 10)
        assert a_scores[0] == pytest.approx(e_scores[0], abs=2e-3)
    assert np.mean(recall) > 0.9
    half = ExactBackend(vectors.astype(np.float16))
    q = vectors[0]
    assert np.allclose(half.scores(q), exact.scores(q), atol=3e-3)


def test_vector_queries_with_both_backends(tmp_path: Path, gallery: pd.DataFrame) -> None:
    embedder = PixelEmbedder()
    build_index(gallery, "m", None, tmp_path / "idx", embedder=embedder, backend="usearch")
    assert (tmp_path / "idx" / "usearch.index").exists()
    vector = embedder.embed([gallery.path[9]])[0]
    via_ann = SearchIndex.load(tmp_path / "idx").query(vector, top_k=3, kind="lost")
    via_exact = SearchIndex.load(tmp_path / "idx", backend="exact").query(vector, top_k=3, kind="lost")
    assert [r["identity_id"] for r in via_ann] == [r["identity_id"] for r in via_exact]
    assert via_ann[0]["identity_id"] == gallery.identity_id[9]
    with pytest.raises(SearchError, match="dimension"):
        SearchIndex.load(tmp_path / "idx").query(np.ones(5, np.float32))
    with pytest.raises(SearchError, match="not a search index"):
        SearchIndex.load(tmp_path)


def test_cli_index_build_and_search(tmp_path: Path, gallery: pd.DataFrame, monkeypatch, capsys) -> None:
    import evaluation.cli as cli
    import evaluation.search as search

    monkeypatch.setattr(cli, "_embedder", lambda args: PixelEmbedder())
    monkeypatch.setattr(search, "_load_embedder", lambda ref, root: PixelEmbedder())
    dataset = f"identity-folders:{tmp_path / 'photos'}"
    assert main(["index", "build", "--dataset", dataset, "--model", "m", "--out", str(tmp_path / "idx"),
                 "--registry", str(tmp_path / "models"), "--no-cache"]) == 0
    capsys.readouterr()
    query = str(gallery.path[5])
    sheet = tmp_path / "sheet.png"
    assert main(["search", query, "--index", str(tmp_path / "idx"), "--top-k", "3", "--json",
                 "--sheet", str(sheet)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"][0]["identity_id"].endswith(":animal1")  # identity-folders: "<source>:<folder>"
    assert out["results"][0]["best_photo"] == query and len(out["results"]) == 3
    assert out["contact_sheet"] == str(sheet) and sheet.read_bytes()[:4] == b"\x89PNG"
    assert main(["search", query, "--index", str(tmp_path / "idx"), "--sheet", str(sheet)]) == 0
    text = capsys.readouterr().out
    assert ":animal1" in text and f"contact sheet: {sheet}" in text
    assert main(["search", str(tmp_path / "missing.jpg"), "--index", str(tmp_path / "idx")]) == 2
