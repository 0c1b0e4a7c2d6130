"""Listing-level search: several query photos scored with the matching library's aggregation, a listing as the
query, ``near``/``radius_km`` by haversine distance, indexes without coordinates, and the CLI's one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from eval_fakes import PixelEmbedder, blend_photos, make_photos

import evaluation.search as search
from evaluation.matching import haversine_km, listing_similarity
from evaluation.search import SearchError, SearchIndex, build_index, parse_point, parse_radius
from petid_app.cli import main

MOSCOW, KHIMKI, PETERSBURG = (55.7558, 37.6173), (55.8970, 37.4297), (59.9343, 30.3351)


@pytest.fixture
def case(tmp_path: Path) -> dict:
    """Six animals, six photos each. Listing ``test:i`` = photos 0–2 of animal i; animal 0 has a second listing,
    ``test:0b`` (photos 3–5, a found one). Photos 3–5 of animal 1 are not indexed: query photos, with ``blend``, a
    photo 40 % animal 1 and 60 % animal 2 (alone it looks like animal 2)."""
    photos = make_photos(tmp_path / "photos", n_identities=6, per_identity=6, noise=25.0, seed=11)
    photos["position"] = photos.groupby("identity_id").cumcount()
    gallery = photos[photos.position < 3].copy()
    second = photos[(photos.identity_id == "test:0") & (photos.position >= 3)].copy()
    second[["identity_id", "url", "kind"]] = ["test:0b", "https://example.org/0b", "found"]
    gallery = pd.concat([gallery, second], ignore_index=True)
    animal1 = photos[photos.identity_id == "test:1"].path.tolist()
    animal2 = photos[photos.identity_id == "test:2"].path.tolist()
    blend = blend_photos(animal1[3], animal2[0], 0.4, tmp_path / "queries" / "blend.jpg")
    places = pd.DataFrame({
        "identity_id": ["test:0", "test:0b", "test:1", "test:2", "elsewhere:9"],
        "lat": [MOSCOW[0], KHIMKI[0], PETERSBURG[0], None, 10.0],
        "lng": [MOSCOW[1], KHIMKI[1], PETERSBURG[1], None, 10.0],
        "city": ["Москва", "Химки", "Санкт-Петербург", "Москва", None],
        "title": ["Потерялась собака", "Найдена собака", None, "", "x"],
    })
    return {"gallery": gallery, "places": places, "blend": blend, "animal1": animal1[4:], "tmp": tmp_path}


@pytest.fixture
def index(case: dict, monkeypatch) -> SearchIndex:
    build_index(case["gallery"], "m", None, case["tmp"] / "idx", embedder=PixelEmbedder(), places=case["places"])
    monkeypatch.setattr(search, "load_photo_embedder", lambda ref, root: PixelEmbedder())
    return SearchIndex.load(case["tmp"] / "idx", embedder=PixelEmbedder())


def _ids(results: list[dict]) -> list[str]:
    return [r["identity_id"] for r in results]


@pytest.mark.parametrize("aggregation", ["mean", "max", "top2mean"])
def test_several_query_photos_beat_one_ambiguous_photo(index: SearchIndex, case: dict, aggregation: str) -> None:
    single = index.query(case["blend"], top_k=3, aggregation=aggregation)
    assert _ids(single)[0] == "test:2"  # the ambiguous photo alone looks like animal 2
    photos = [case["blend"], *case["animal1"]]
    several = index.query(photos, top_k=3, aggregation=aggregation)
    assert _ids(several)[0] == "test:1" and len(set(_ids(several))) == 3  # one row per listing
    top = several[0]
    assert top["query_photo"] in case["animal1"] and top["best_photo"].startswith(str(case["tmp"] / "photos/animal1"))
    assert top["photo_score"] >= top["score"] - 1e-6 and top["n_photos"] == 3
    # the score is the matching library's listing-pair score of these photos
    embedder = PixelEmbedder()
    query = embedder.embed(photos)
    for row in several:
        listing = embedder.embed(case["gallery"][case["gallery"].identity_id == row["identity_id"]].path.tolist())
        assert row["score"] == pytest.approx(listing_similarity(query, listing, aggregation), abs=3e-3)


def test_mean_is_the_dot_product_of_mean_vectors_and_vectors_query_too(index: SearchIndex, case: dict) -> None:
    vectors = PixelEmbedder().embed([case["blend"], *case["animal1"]])
    by_vectors = index.search(vectors, top_k=6)
    assert by_vectors.aggregation == "mean" and by_vectors.query_photos == [None] * 3
    by_paths = index.search([case["blend"], *case["animal1"]], top_k=6)
    assert _ids(by_vectors.results) == _ids(by_paths.results)
    for row in by_vectors.results:
        rows = index.identities.set_index("identity_id").loc[row["identity_id"]]
        mean = index.vectors[rows.start:rows.start + rows["count"]].astype(np.float32).mean(axis=0)
        assert row["score"] == pytest.approx(float(vectors.mean(axis=0) @ mean), abs=3e-3)


@pytest.mark.parametrize("backend", ["binary", "usearch"])
def test_ann_backends_agree_with_exact_on_several_photos(index: SearchIndex, case: dict, backend: str,
                                                         monkeypatch) -> None:
    photos = [case["blend"], *case["animal1"]]
    exact = index.query(photos, top_k=4, aggregation="top2mean")
    build_index(case["gallery"], "m", None, case["tmp"] / backend, embedder=PixelEmbedder(), backend=backend)
    ann = SearchIndex.load(case["tmp"] / backend, embedder=PixelEmbedder())
    assert _ids(ann.query(photos, top_k=4, aggregation="top2mean")) == _ids(exact)  # few photos: scored directly
    monkeypatch.setattr(search, "DIRECT_PHOTOS", 0)  # force the ANN shortlist
    shortlisted = ann.query(photos, top_k=4, aggregation="top2mean")
    assert _ids(shortlisted)[0] == "test:1" and set(_ids(shortlisted)) <= set(index.identities.identity_id)
    assert ann.query(photos, top_k=2, kind="found")[0]["identity_id"] == "test:1"


def test_listing_query_excludes_itself_and_finds_the_other_listing(index: SearchIndex) -> None:
    found = index.search(listing="test:0", top_k=3)
    assert found.query_listing == "test:0" and len(found.query_photos) == 3
    assert "test:0" not in _ids(found.results) and _ids(found.results)[0] == "test:0b"
    assert found.results[0]["score"] > found.results[1]["score"] + 0.3
    for spelling in ("https://example.org/0b", "http://www.Example.org/0b/", " https://example.org/0b#photos "):
        assert _ids(index.query(listing=spelling, top_k=1)) == ["test:0"]
    assert _ids(index.query(listing="test:0", top_k=5, kind="found"))[0] == "test:0b"
    with pytest.raises(SearchError, match="'test:99' is not in index"):
        index.search(listing="test:99")
    with pytest.raises(SearchError, match="not both"):
        index.search("x.jpg", listing="test:0")


def test_ambiguous_url_names_the_listings(case: dict) -> None:
    gallery = case["gallery"].copy()
    gallery.loc[gallery.identity_id == "test:3", "url"] = "https://example.org/2"
    build_index(gallery, "m", None, case["tmp"] / "dup", embedder=PixelEmbedder())
    index = SearchIndex.load(case["tmp"] / "dup", embedder=PixelEmbedder())
    with pytest.raises(SearchError, match=r"names 2 listings .*test:2, test:3"):
        index.search(listing="https://example.org/2")
    assert _ids(index.query(listing="test:2", top_k=1)) != ["test:2"]


def test_places_are_stored_per_listing(index: SearchIndex, case: dict) -> None:
    assert index.has_coordinates and index.info["has_coordinates"] and index.info["n_located"] == 3
    stored = pd.read_parquet(case["tmp"] / "idx" / "identities.parquet").set_index("identity_id")
    assert stored.loc["test:0b", ["lat", "lng"]].tolist() == list(KHIMKI)
    assert np.isnan(stored.loc["test:2", "lat"]) and np.isnan(stored.loc["test:5", "lng"])
    assert stored.loc["test:2", "city"] == "Москва" and pd.isna(stored.loc["test:2", "title"])  # blank: unknown
    row = index.query(listing="test:0", top_k=1)[0]
    assert row["city"] == "Химки" and row["title"] == "Найдена собака" and row["distance_km"] is None


def test_near_filters_by_haversine_distance(index: SearchIndex) -> None:
    assert float(haversine_km(*MOSCOW, *KHIMKI)) == pytest.approx(19.5, abs=0.2)
    near = index.search(listing="test:0b", near=MOSCOW, radius_km=25, top_k=10)
    assert _ids(near.results) == ["test:0"] and near.results[0]["distance_km"] == pytest.approx(0.0, abs=1e-6)
    assert near.n_outside_radius == 1 and near.n_unlocated == 4 and near.n_dropped_unlocated == 4  # test:2..5
    khimki = index.search(near="55.8970,37.4297", radius_km=20, top_k=10, query=index.vectors[:3].astype(np.float32))
    assert set(_ids(khimki.results)) == {"test:0", "test:0b"}
    assert {r["identity_id"]: r["distance_km"] for r in khimki.results}["test:0"] == pytest.approx(19.59, abs=0.05)
    assert _ids(index.query(index.vectors[0], near=KHIMKI, radius_km=19)) == ["test:0b"]
    kept = index.search(index.vectors[0], near=MOSCOW, radius_km=25, include_unlocated=True, top_k=10)
    assert set(_ids(kept.results)) == {"test:0", "test:0b", "test:2", "test:3", "test:4", "test:5"}
    assert kept.n_dropped_unlocated == 0 and all(r["distance_km"] is None for r in kept.results
                                                 if r["identity_id"] not in ("test:0", "test:0b"))
    default_radius = index.search(index.vectors[0], near=PETERSBURG, top_k=10)  # 30 km, as matching
    assert default_radius.radius_km == 30.0 and _ids(default_radius.results) == ["test:1"]
    assert index.search(index.vectors[0], near=MOSCOW, radius_km=25, kind="lost").n_candidates == 1


@pytest.mark.parametrize("near, radius, message", [
    ((91.0, 0.0), 5, "-90 <= lat"), ("55.7", 5, "LAT,LNG"), ("x,y", 5, "LAT,LNG"), (MOSCOW, 0, "positive"),
    (MOSCOW, -1, "positive"), (MOSCOW, float("nan"), "positive"), (None, 5, "needs near"),
])
def test_bad_near_arguments(index: SearchIndex, near, radius, message: str) -> None:
    with pytest.raises(SearchError, match=message):
        index.search(index.vectors[0], near=near, radius_km=radius)


def test_parse_point_and_radius() -> None:
    assert parse_point("55.7558,37.6173") == MOSCOW and parse_point(" -33.9 , 18.4 ") == (-33.9, 18.4)
    for bad in ("55.7", "x,y", "1,2,3", "", "nan,1", "1,inf", "10,181"):
        with pytest.raises(SearchError, match="--near"):
            parse_point(bad)
    assert parse_radius("2.5") == 2.5
    for bad in ("0", "-1", "abc", "inf"):
        with pytest.raises(SearchError, match="--radius-km must be a positive number"):
            parse_radius(bad)


def test_index_without_coordinates_loads_and_near_says_rebuild(case: dict) -> None:
    """An index from before ``places``: no lat/lng/city/title columns, no has_coordinates in index.json."""
    folder = case["tmp"] / "old"
    build_index(case["gallery"], "m", None, folder, embedder=PixelEmbedder())
    info = json.loads((folder / "index.json").read_text())
    for key in ("has_coordinates", "n_located"):
        info.pop(key)
    (folder / "index.json").write_text(json.dumps(info))
    identities = pd.read_parquet(folder / "identities.parquet")
    assert not set(search.PLACE_COLUMNS) & set(identities.columns)
    index = SearchIndex.load(folder, embedder=PixelEmbedder())
    assert not index.has_coordinates
    row = index.query(listing="test:0", top_k=1)[0]
    assert row["identity_id"] == "test:0b" and row["city"] is None and row["distance_km"] is None
    with pytest.raises(SearchError, match="no listing coordinates.*rebuild it"):
        index.search(listing="test:0", near=MOSCOW, radius_km=10)


def test_bad_places_frames(case: dict) -> None:
    gallery, out = case["gallery"], case["tmp"] / "bad"
    bad = {
        "lacks column 'identity_id'": pd.DataFrame({"lat": [1.0], "lng": [2.0]}),
        "duplicate identity_id": pd.DataFrame({"identity_id": ["test:0", "test:0"], "lat": [1.0, 2.0],
                                               "lng": [1.0, 2.0]}),
        "lat without lng": pd.DataFrame({"identity_id": ["test:0"], "lat": [1.0]}),
    }
    for message, places in bad.items():
        embedder = PixelEmbedder()
        with pytest.raises(SearchError, match=message):
            build_index(gallery, "m", None, out, embedder=embedder, places=places)
        assert embedder.calls == [] and not out.exists()  # checked before anything is embedded
    info = build_index(gallery, "m", None, out, embedder=PixelEmbedder(),
                       places=pd.DataFrame({"identity_id": ["test:0", "test:1"], "lat": [200.0, "x"],
                                            "lng": [1.0, 2.0]}))
    assert info["has_coordinates"] and info["n_located"] == 0  # out of range / not a number: unknown
    cities = build_index(gallery, "m", None, out, embedder=PixelEmbedder(),
                         places=pd.DataFrame({"identity_id": ["test:0"], "city": ["Химки"]}))
    assert not cities["has_coordinates"] and SearchIndex.load(out).query(listing="test:0b")[0]["city"] == "Химки"


# ---- CLI ------------------------------------------------------------------------------------------------------------


def _one_line_error(capsys, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("petid search: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err
    return err


def _search_json(capsys, *argv: str) -> dict:
    assert main(["search", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_several_photos_listing_and_aggregation(index: SearchIndex, case: dict, capsys) -> None:
    idx, sheet = str(case["tmp"] / "idx"), str(case["tmp"] / "sheet.png")
    single = _search_json(capsys, case["blend"], "--index", idx, "--sheet", sheet, "--top-k", "2")
    assert single["results"][0]["identity_id"] == "test:2"
    out = _search_json(capsys, case["blend"], *case["animal1"], "--index", idx, "--sheet", sheet, "--top-k", "3")
    assert out["results"][0]["identity_id"] == "test:1" and out["query"]["aggregation"] == "mean"
    assert out["query"]["query_photos"] == [case["blend"], *case["animal1"]] and len(out["results"]) == 3
    assert {"rank", "score", "distance_km", "n_photos", "query_photo", "best_photo", "url", "kind", "date"} <= \
        set(out["results"][0])
    assert out["contact_sheet"] == sheet and Path(sheet).read_bytes()[:4] == b"\x89PNG"
    top_max = _search_json(capsys, case["blend"], *case["animal1"], "--index", idx, "--sheet", sheet,
                           "--aggregation", "max")
    assert top_max["query"]["aggregation"] == "max" and top_max["results"][0]["score"] > out["results"][0]["score"]
    by_url = _search_json(capsys, "--listing", "https://example.org/0", "--index", idx, "--sheet", sheet)
    assert by_url["query"]["query_listing"] == "test:0" and by_url["results"][0]["identity_id"] == "test:0b"
    assert "test:0" not in [r["identity_id"] for r in by_url["results"]]
    assert main(["search", "--listing", "test:0", "--index", idx, "--sheet", sheet, "--top-k", "2"]) == 0
    text = capsys.readouterr().out
    assert "query: listing test:0 (3 photos), aggregation mean" in text and "test:0b" in text
    assert f"contact sheet: {sheet}" in text


def test_cli_near(index: SearchIndex, case: dict, capsys) -> None:
    idx, sheet = str(case["tmp"] / "idx"), str(case["tmp"] / "sheet.png")
    out = _search_json(capsys, "--listing", "test:0", "--index", idx, "--sheet", sheet, "--near", "55.7558,37.6173",
                       "--radius-km", "25")
    assert [r["identity_id"] for r in out["results"]] == ["test:0b"]
    assert out["results"][0]["distance_km"] == pytest.approx(19.59, abs=0.05)
    assert out["query"]["n_dropped_unlocated"] == 4 and out["query"]["near"] == list(MOSCOW)
    assert main(["search", "--listing", "test:0", "--index", idx, "--sheet", sheet, "--near", "55.7558,37.6173",
                 "--radius-km", "25"]) == 0
    text = capsys.readouterr().out
    assert "within 25 km: 1 listing(s) farther away left out, 4 dropped for lack of a location" in text
    assert "19.6 km" in text
    kept = _search_json(capsys, "--listing", "test:0", "--index", idx, "--sheet", sheet, "--near=55.7558,37.6173",
                        "--radius-km", "25", "--include-unlocated")
    assert len(kept["results"]) == 5 and kept["query"]["n_dropped_unlocated"] == 0


@pytest.mark.parametrize("extra, words", [
    (["--near", "55.7"], ["--near", "LAT,LNG", "'55.7'"]),
    (["--near", "x,y"], ["--near", "'x,y'"]),
    (["--near", "95,37"], ["--near", "-90 <= lat"]),
    (["--near", "55.7,37.6", "--radius-km", "0"], ["--radius-km", "positive"]),
    (["--near", "55.7,37.6", "--radius-km=-2"], ["--radius-km", "positive"]),
    (["--near", "55.7,37.6", "--radius-km", "far"], ["--radius-km", "'far'"]),
    (["--radius-km", "5"], ["need --near"]),
    (["--include-unlocated"], ["need --near"]),
    (["--aggregation", "median"], ["unknown aggregation 'median'"]),
])
def test_cli_bad_arguments_are_one_line(index: SearchIndex, case: dict, extra: list[str], words: list[str],
                                        capsys) -> None:
    sheet = case["tmp"] / "sheet.png"
    assert main(["search", case["blend"], "--index", str(case["tmp"] / "idx"), "--sheet", str(sheet), *extra]) == 2
    _one_line_error(capsys, *words)
    assert not sheet.exists()


def test_cli_query_errors_are_one_line(index: SearchIndex, case: dict, capsys) -> None:
    idx, sheet = str(case["tmp"] / "idx"), case["tmp"] / "sheet.png"
    notes = case["tmp"] / "notes.jpg"
    notes.write_text("not a photo\n")
    cases = [
        ([case["blend"], str(case["tmp"] / "gone.jpg")], ["query photo not found", "gone.jpg"]),
        ([case["animal1"][0], str(notes)], ["notes.jpg", "not an image"]),
        ([], ["nothing to search with"]),
        ([case["blend"], "--listing", "test:0"], ["not both"]),
        (["--listing", "test:404"], ["'test:404' is not in index"]),
    ]
    for argv, words in cases:
        assert main(["search", *argv, "--index", idx, "--sheet", str(sheet)]) == 2
        _one_line_error(capsys, *words)
    assert not sheet.exists()


def test_cli_old_index_near_is_one_line_and_index_build_places(case: dict, monkeypatch, capsys) -> None:
    import evaluation.cli as cli

    monkeypatch.setattr(cli, "_embedder", lambda args: PixelEmbedder())
    monkeypatch.setattr(search, "load_photo_embedder", lambda ref, root: PixelEmbedder())
    photos, registry = case["tmp"] / "photos", str(case["tmp"] / "models")
    build = ["index", "build", "--dataset", f"identity-folders:{photos}", "--model", "m", "--registry", registry,
             "--no-cache"]
    assert main([*build, "--out", str(case["tmp"] / "plain")]) == 0
    assert json.loads(capsys.readouterr().out)["has_coordinates"] is False
    sheet = str(case["tmp"] / "sheet.png")
    assert main(["search", case["blend"], "--index", str(case["tmp"] / "plain"), "--near", "55.7,37.6",
                 "--sheet", sheet]) == 2
    _one_line_error(capsys, "no listing coordinates", "rebuild")
    ids = pd.read_parquet(case["tmp"] / "plain" / "identities.parquet").identity_id.tolist()
    csv = case["tmp"] / "places.csv"
    pd.DataFrame({"identity_id": ids, "lat": [MOSCOW[0]] * len(ids), "lng": [MOSCOW[1]] * len(ids)}).to_csv(csv)
    assert main([*build, "--out", str(case["tmp"] / "placed"), "--places", str(csv)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["has_coordinates"] is True
    assert main([*build, "--out", str(case["tmp"] / "nope"), "--places", str(case["tmp"] / "missing.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("petid index: --places ") and "no such file" in err, err
    assert not (case["tmp"] / "nope").exists()
