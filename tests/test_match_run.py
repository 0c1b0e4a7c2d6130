"""One matching run over pipeline tables: places, city mentions, the index's vectors, incremental reruns, decisions
attached, recall on known pairs."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from curation.decisions import DecisionLog, pair_id
from evaluation.match_run import listing_frame, mentioned_city, recall_at, review_cards, run_matching
from evaluation.matching import MatchConfig


def test_a_post_without_coordinates_gets_the_city_it_names() -> None:
    cities = ["москва", "химки", "нижний новгород"]
    assert mentioned_city("Нашли кошку, ул. Лесная, г. Химки!", cities) == "химки"
    assert mentioned_city("Найден пёс в Нижний Новгород", cities) == "нижний новгород"
    assert mentioned_city("Химкинский лес", cities) is None  # whole words only
    assert mentioned_city(None, cities) is None


def _identities() -> pd.DataFrame:
    return pd.DataFrame({
        "identity_id": ["pet911:rl1", "pet911:rf2", "telegram:c1:5", "pet911:rl3"],
        "kind": ["lost", "found", "found", "lost"], "species": ["dog", "dog", "dog", "dog"],
        "date": ["2025-05-01", "2025-05-03", "2025-05-04", "2025-05-02"], "url": ["u1", "u2", "u3", "u4"],
        "text": ["", "", "собака у метро, Химки", ""]})


def _places() -> pd.DataFrame:
    return pd.DataFrame({"identity_id": ["pet911:rl1", "pet911:rf2", "pet911:rl3"], "lat": [55.89, 55.90, 55.75],
                         "lng": [37.43, 37.44, 37.62], "city": ["Химки", "Химки", "Москва"], "title": ["a", "b", "c"],
                         "date": ["2025-04-30", None, "2025-05-01"], "closed": [False, False, True]})


def test_listing_frame_joins_places_prefers_the_event_date_and_marks_closed_listings() -> None:
    frame = listing_frame(_identities(), _places()).set_index("listing_id")
    assert frame.loc["pet911:rl1", "date"] == "2025-04-30" and frame.loc["pet911:rf2", "date"] == "2025-05-03"
    assert frame.loc["telegram:c1:5", "city"] == "химки"
    assert not frame.loc["pet911:rl3", "open"] and frame.loc["pet911:rl1", "open"]


def _index(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 16)).astype(np.float32)
    ids = ["pet911:rl1", "pet911:rl1", "pet911:rf2", "pet911:rf2", "telegram:c1:5", "pet911:rl3"]
    vectors = np.stack([base[0], base[0], base[0], base[0], base[1], base[2]]) + rng.normal(0, .1, (6, 16))
    pd.DataFrame({"identity_id": ids, "path": [f"/p/{i}.jpg" for i in range(6)]}).to_parquet(tmp_path / "photos.parquet")
    np.save(tmp_path / "vectors.npy", vectors.astype(np.float16))
    return tmp_path


def test_a_run_ranks_new_listings_attaches_decisions_and_a_rerun_carries_its_rows(tmp_path: Path) -> None:
    index = _index(tmp_path)
    log = DecisionLog(tmp_path / "d.sqlite")
    log.record("pet911:rf2", "pet911:rl1", "same", "anna")
    first = run_matching(_identities(), _places(), index, "m1", MatchConfig(), decisions=log.latest())
    table = first.candidates.to_pandas()
    best = table[(table.query_id == "pet911:rf2") & (table["rank"] == 1)].iloc[0]
    assert best.candidate_id == "pet911:rl1" and best.decision == "same" and best.rule == "distance"
    assert best.pair_id == pair_id("pet911:rl1", "pet911:rf2")
    assert "pet911:rl3" not in set(table.candidate_id)  # closed
    assert set(table.loc[table.query_id == "telegram:c1:5", "rule"]) == {"same-city"}
    assert first.confirmed_pairs == [("pet911:rf2", "pet911:rl1")]
    assert first.stats["new_queries"] == 3 and first.stats["carried_rows"] == 0
    again = run_matching(_identities(), _places(), index, "m1", MatchConfig(), previous=first.candidates)
    assert again.stats["new_queries"] == 0 and again.stats["listing_pairs_scored"] == 0
    assert again.candidates.num_rows == first.candidates.num_rows
    other_model = run_matching(_identities(), _places(), index, "m2", MatchConfig(), previous=first.candidates)
    assert other_model.stats["new_queries"] == 3  # a new model ranks everything again
    assert recall_at(first.candidates, [("pet911:rl1", "pet911:rf2"), ("pet911:rl1", "x")]) == {
        "n": 2, "recall@1": 0.5, "recall@5": 0.5, "missed": [["pet911:rl1", "x"]]}


def test_review_cards_carry_the_place_title_and_photos() -> None:
    images = pd.DataFrame({"identity_id": ["pet911:rl1"] * 6, "path": [f"/p/{i}.jpg" for i in range(6)]})
    cards = review_cards(_identities(), images, _places())
    assert cards["pet911:rl1"].place == "Химки" and cards["pet911:rl1"].title == "a"
    assert len(cards["pet911:rl1"].photos) == 4 and cards["telegram:c1:5"].photos == []


def test_real_pet911_pages_give_places_the_matcher_uses(pet911_pages: Path) -> None:
    """Every real saved detail page (2020 JSON, 2022 and 2024 markup) → the listings table → ``listing_places`` →
    ``listing_frame``: coordinates and cities as the site gives them, event dates preferred, and a matching run
    over them applies the location rules it says it applied."""
    from scrapers.pet911.crawl import LISTINGS_SCHEMA, listing_places
    from scrapers.pet911.parse import NotAListingError, parse_listing

    records = []
    for page in sorted(p for p in pet911_pages.rglob("*") if p.is_file() and p.suffix != ".MIT"):
        try:
            records.append(parse_listing(page.read_bytes()))
        except NotAListingError:
            continue
    listings = pa.Table.from_pylist([{**r, "url": None, "page_sha256": None} for r in records], schema=LISTINGS_SCHEMA)
    places = listing_places(listings).to_pandas()
    assert places.identity_id.is_unique and len(places) == len({r["listing_id"] for r in records}) >= 5
    assert places.lat.notna().sum() >= 3 and places.city.notna().all()
    assert places.lat.dropna().between(-90, 90).all() and places.lng.dropna().between(-180, 180).all()
    latest = {f"pet911:{r['listing_id']}": r for r in records}
    identities = pd.DataFrame([{"identity_id": i, "kind": r["kind"], "species": r["species"], "date": r["date_added"],
                                "url": None, "text": r["description"]} for i, r in latest.items()])
    frame = listing_frame(identities, places)
    assert frame.date.notna().all()
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(frame) * 2, 8)).astype(np.float32)
    photos = pd.DataFrame({"listing_id": np.repeat(frame.listing_id.to_numpy(), 2), "path": "x"})
    from evaluation.matching import Listings, match_listings

    lost, found = (Listings.from_frames(frame[frame.kind == k], photos[photos.listing_id.isin(frame.listing_id[
        frame.kind == k])].reset_index(drop=True), vectors[photos.listing_id.isin(frame.listing_id[frame.kind == k])
                                                             .to_numpy()]) for k in ("lost", "found"))
    result = match_listings(found, lost, "found", "m", MatchConfig(max_km=5000, window_days=100_000, slack_days=100_000))
    rows = result.candidates.to_pandas()
    assert set(rows.rule) <= {"distance", "same-city", "no-location"}
    assert rows.loc[rows.rule == "distance", "distance_km"].notna().all()
