"""Photo search: planted queries find their animal, per-identity results, Kashtanka filters, backends, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from eval_fakes import PixelEmbedder, make_photos

from evaluation.ann import (
    BINARY_THRESHOLD,
    BinaryRerankBackend,
    ExactBackend,
    UsearchBackend,
    choose_backend,
    make_backend,
    sign_codes,
    top_k,
)
from evaluation.search import SearchError, SearchIndex, build_index
from petid_app.cli import main


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
        best_pair = index.query(planted.path, top_k=5, aggregation="max")  # the pre-listing ranking: best photo
        assert best_pair[0]["identity_id"] == planted.identity_id and best_pair[0]["score"] >= results[0]["score"]
        assert best_pair[0]["score"] == pytest.approx(best_pair[0]["photo_score"]) == pytest.approx(1.0, abs=2e-3)


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
    approx = UsearchBackend.build(vectors, threads=16)  # more threads than cores, as on a many-core CI host
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
    monkeypatch.setattr(search, "load_photo_embedder", lambda ref, root: PixelEmbedder())
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


def test_sign_codes_pack_bits_and_hamming_counts_differences() -> None:
    vectors = np.array([[1.0, -1.0] * 40, [-1.0, 1.0] * 40, [1.0] * 80], dtype=np.float32)  # D = 80: 2 words
    codes = sign_codes(vectors)
    assert codes.shape == (2, 3) and codes.dtype == np.uint64
    assert codes[0, 0] == int("01" * 32, 2) and codes[1, 2] == (1 << 16) - 1  # little-endian bits, zero padding
    backend = BinaryRerankBackend(vectors, candidates=1)
    assert backend.hamming(vectors[0]).tolist() == [0, 80, 40]
    assert backend.hamming(-vectors[2]).tolist() == [40, 40, 80]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_binary_backend_matches_exact_top1_on_planted_queries(dtype) -> None:
    centres, ids, vectors = _synthetic_gallery(n_ids=2000, per=3, dim=128, seed=3)
    exact = ExactBackend(vectors.astype(dtype))
    binary = BinaryRerankBackend(vectors.astype(dtype), candidates=200, threads=2)
    binary.CHUNK = 1024  # exercise the threaded, chunked scan on a small gallery
    rng = np.random.default_rng(9)
    for target in rng.choice(len(centres), 40, replace=False):
        q = centres[target] + 0.3 * rng.standard_normal(centres.shape[1])  # another photo of the animal
        q = (q / np.linalg.norm(q)).astype(np.float32)
        e_idx, e_scores = exact.search(q, 5)
        b_idx, b_scores = binary.search(q, 5)
        assert ids[b_idx[0]] == ids[e_idx[0]] == target
        if dtype == np.float32:  # float16 exact rounds its half-precision products: near-ties may swap photos
            assert b_idx[0] == e_idx[0]
        assert b_scores[0] == pytest.approx(e_scores[0], abs=2e-3) and np.all(np.diff(b_scores) <= 0)
    assert len(binary.candidate_rows(q, 200)) == 200
    idx, scores = binary.search(q, len(vectors) + 5)  # more than the candidates: falls back to every row
    assert len(idx) == len(vectors) and set(idx) == set(range(len(vectors)))


def test_binary_codes_round_trip_through_the_index(tmp_path: Path, gallery: pd.DataFrame) -> None:
    embedder = PixelEmbedder()
    info = build_index(gallery, "m", None, tmp_path / "idx", embedder=embedder, backend="binary")
    assert info["backend"] == "binary" and (tmp_path / "idx" / BinaryRerankBackend.FILE).exists()
    index = SearchIndex.load(tmp_path / "idx", embedder=embedder)
    assert isinstance(index.backend, BinaryRerankBackend)
    assert np.array_equal(index.backend.codes, sign_codes(index.vectors))
    saved = np.load(tmp_path / "idx" / BinaryRerankBackend.FILE)
    assert np.array_equal(saved, index.backend.codes)
    for planted in gallery.groupby("identity_id").head(1).itertuples():
        results = index.query(planted.path, top_k=3)
        assert results[0]["identity_id"] == planted.identity_id and results[0]["best_photo"] == planted.path
        assert len({r["identity_id"] for r in results}) == 3
    exact = SearchIndex.load(tmp_path / "idx", backend="exact", embedder=embedder)
    vector = embedder.embed([gallery.path[9]])[0]
    assert [r["identity_id"] for r in index.query(vector, top_k=12)] == \
        [r["identity_id"] for r in exact.query(vector, top_k=12)]  # 48 photos < candidates: exact ranking
    with pytest.raises(SearchError, match="unknown search backend"):
        SearchIndex.load(tmp_path / "idx", backend="faiss")
    with pytest.raises(ValueError, match="binary codes have shape"):
        BinaryRerankBackend(index.vectors, saved[:, :5])


def test_backend_selection_threshold(tmp_path: Path, gallery: pd.DataFrame) -> None:
    assert choose_backend(BINARY_THRESHOLD) == "exact" and choose_backend(BINARY_THRESHOLD + 1) == "binary"
    assert choose_backend(10, "auto") == "exact" and choose_backend(10**7, "exact") == "exact"
    assert choose_backend(10, "binary") == "binary"
    with pytest.raises(ValueError, match="unknown search backend"):
        choose_backend(10, "faiss")
    small = np.eye(4, 64, dtype=np.float32)
    assert isinstance(make_backend("auto", small), ExactBackend)
    assert isinstance(make_backend(None, small), ExactBackend)
    info = build_index(gallery, "m", None, tmp_path / "idx", embedder=PixelEmbedder())  # default: auto
    assert info["backend"] == "exact" and not (tmp_path / "idx" / BinaryRerankBackend.FILE).exists()
    assert isinstance(SearchIndex.load(tmp_path / "idx", backend="binary").backend, BinaryRerankBackend)
    import evaluation.ann as ann

    original = ann.BINARY_THRESHOLD
    try:
        ann.BINARY_THRESHOLD = 10  # a 48-photo gallery is now "large"
        info = build_index(gallery, "m", None, tmp_path / "big", embedder=PixelEmbedder(), backend="auto")
        assert info["backend"] == "binary" and (tmp_path / "big" / BinaryRerankBackend.FILE).exists()
        assert isinstance(SearchIndex.load(tmp_path / "big").backend, BinaryRerankBackend)
    finally:
        ann.BINARY_THRESHOLD = original
