"""Lost ↔ found matching: candidate filters, aggregation math, ranking, calibration statements, planted pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluation.calibration import (
    CalibrationError,
    ScoreCalibration,
    listing_calibration,
    pseudo_listings,
)
from evaluation.matching import (
    CANDIDATES_SCHEMA,
    RULES,
    Listings,
    MatchConfig,
    MatchError,
    aggregate,
    candidate_pairs,
    haversine_km,
    listing_similarity,
    match_listings,
    match_new_listings,
    normalise_city,
    score_matrix,
)

MOSCOW, KHIMKI, SPB = (55.7558, 37.6173), (55.8970, 37.4297), (59.9343, 30.3351)


def _listings(rows: list[dict], vectors: np.ndarray | None = None, per: int = 1, dim: int = 8,
              seed: int = 0) -> Listings:
    """Listings from dicts (listing_id plus any metadata); ``per`` photos each, random vectors unless given."""
    frame = pd.DataFrame(rows)
    ids = frame["listing_id"].tolist()
    photos = pd.DataFrame({"listing_id": np.repeat(ids, per),
                           "path": [f"{i}/{k}.jpg" for i in ids for k in range(per)]})
    if vectors is None:
        vectors = np.random.default_rng(seed).standard_normal((len(photos), dim)).astype(np.float32)
    return Listings.from_frames(frame, photos, vectors)


def _candidates(queries: Listings, gallery: Listings, kind: str = "found", **config) -> list[dict]:
    """The single query's candidates as dicts: id, rule, distance, day gap."""
    (_, cand), = list(candidate_pairs(queries, gallery, kind, MatchConfig(**config)))
    return [{"id": gallery.ids[g], "rule": RULES[r], "km": km, "gap": None if gap == np.iinfo(np.int64).min else gap}
            for g, r, km, gap in zip(cand.gallery, cand.rule, cand.distance_km, cand.day_gap)]


# --- filters ---------------------------------------------------------------------------------------------------

def test_haversine_known_distances() -> None:
    assert 18.0 < float(haversine_km(*MOSCOW, *KHIMKI)) < 21.0  # Moscow centre – Khimki ≈ 19.6 km
    assert abs(float(haversine_km(*MOSCOW, *SPB)) - 634) < 5  # Moscow – St Petersburg ≈ 634 km
    assert abs(float(haversine_km(0, 0, 1, 0)) - 111.19) < 0.05  # one degree of latitude
    assert np.isnan(haversine_km(np.nan, 0, 1, 0))


def test_species_filter_keeps_same_and_unknown() -> None:
    gallery = _listings([{"listing_id": f"rl{s}", "species": s} for s in ("cat", "dog", None, "unknown", "other")])
    cat = _listings([{"listing_id": "rf1", "species": "Cat"}])
    assert [c["id"] for c in _candidates(cat, gallery)] == ["rlcat", "rlNone", "rlunknown"]
    anything = _listings([{"listing_id": "rf2", "species": None}])
    assert len(_candidates(anything, gallery)) == 5


def test_date_window_and_slack_both_directions() -> None:
    found_day = pd.Timestamp("2024-05-01")
    offsets = {"lost60": -60, "lost61": -61, "lost_after3": 3, "lost_after4": 4, "same_day": 0}
    gallery = _listings([{"listing_id": k, "date": (found_day + pd.Timedelta(days=d)).date().isoformat()}
                         for k, d in offsets.items()] + [{"listing_id": "undated", "date": None}])
    found = _listings([{"listing_id": "rf", "date": "2024-05-01"}])
    got = {c["id"]: c["gap"] for c in _candidates(found, gallery, "found")}
    assert got == {"lost60": 60, "lost_after3": -3, "same_day": 0, "undated": None}
    wider = {c["id"] for c in _candidates(found, gallery, "found", window_days=61, slack_days=4)}
    assert wider == set(offsets) | {"undated"}
    # The reverse: a lost query against found listings; found may be up to 60 days after, 3 before.
    found_side = _listings([{"listing_id": f"rf{d}", "date": (found_day + pd.Timedelta(days=d)).date().isoformat()}
                            for d in (-4, -3, 0, 60, 61)])
    lost = _listings([{"listing_id": "rl", "date": "2024-05-01"}])
    assert {c["id"]: c["gap"] for c in _candidates(lost, found_side, "lost")} == {"rf-3": -3, "rf0": 0, "rf60": 60}


def test_radius_by_haversine_records_distance() -> None:
    gallery = _listings([{"listing_id": "khimki", "lat": KHIMKI[0], "lng": KHIMKI[1], "city": "Химки"},
                         {"listing_id": "spb", "lat": SPB[0], "lng": SPB[1], "city": "Санкт-Петербург"}])
    query = _listings([{"listing_id": "moscow", "lat": MOSCOW[0], "lng": MOSCOW[1], "city": "Москва"}])
    (khimki,) = _candidates(query, gallery)
    assert khimki["id"] == "khimki" and khimki["rule"] == "distance" and 18 < khimki["km"] < 21
    assert _candidates(query, gallery, max_km=15) == []  # coordinates win over the (different) city


def test_city_fallback_and_no_location_rule() -> None:
    gallery = _listings([
        {"listing_id": "moscow_coords", "lat": MOSCOW[0], "lng": MOSCOW[1], "city": "г. Москва"},
        {"listing_id": "moscow_text", "city": "МОСКВА "},
        {"listing_id": "khimki_text", "city": "Химки"},
        {"listing_id": "nowhere"},
    ])
    query = _listings([{"listing_id": "rf", "city": "москва"}])  # no coordinates: the city decides
    got = {c["id"]: (c["rule"], c["km"]) for c in _candidates(query, gallery)}
    assert set(got) == {"moscow_coords", "moscow_text", "nowhere"}
    assert got["moscow_coords"][0] == got["moscow_text"][0] == "same-city" and np.isnan(got["moscow_text"][1])
    assert got["nowhere"][0] == "no-location"
    assert "nowhere" not in {c["id"] for c in _candidates(query, gallery, keep_unlocated=False)}
    assert normalise_city("Королёв") == normalise_city(" королев ") == "королев"
    assert normalise_city("") is None and normalise_city(None) is None


def test_config_is_validated() -> None:
    with pytest.raises(MatchError, match="aggregation"):
        MatchConfig(aggregation="median")
    with pytest.raises(MatchError, match="top_n"):
        MatchConfig(top_n=0)
    assert MatchConfig(aggregation="top3mean").aggregation == "top3mean"


# --- aggregation -------------------------------------------------------------------------------------------------

E = np.eye(4, dtype=np.float32)
QUERY = np.stack([E[0], E[1]])
GALLERY = np.stack([E[0], (E[0] + E[1]) / np.sqrt(2), E[2]])  # pair sims: 1, .7071, 0 / 0, .7071, 0


@pytest.mark.parametrize(("aggregation", "expected"), [
    ("max", 1.0), ("mean", (1 + 2 * 0.70710678) / 6), ("top2mean", (1 + 0.70710678) / 2),
    ("top3mean", (1 + 2 * 0.70710678) / 3), ("top6mean", (1 + 2 * 0.70710678) / 6),
    ("top9mean", (1 + 2 * 0.70710678) / 6),  # fewer pairs than k: the mean of them all
])
def test_aggregations_on_hand_made_embeddings(aggregation: str, expected: float) -> None:
    assert listing_similarity(QUERY, GALLERY, aggregation) == pytest.approx(expected, abs=1e-6)


def test_aggregate_ignores_padding() -> None:
    values = np.array([[0.9, 0.1, -np.inf, -np.inf], [0.2, 0.4, 0.6, 0.8]], np.float32)
    scores, best = aggregate(values, np.array([2, 4]), "top3mean")
    assert scores == pytest.approx([0.5, 0.6]) and best.tolist() == [0, 3]
    scores, _ = aggregate(values, np.array([2, 4]), "mean")
    assert scores == pytest.approx([0.5, 0.5])


@pytest.mark.parametrize("aggregation", ["max", "mean", "top2mean"])
def test_block_scorer_agrees_with_reference(aggregation: str) -> None:
    """Listings of 1–5 photos, scored in blocks of 4 gallery photos, equal the one-pair reference."""
    rng = np.random.default_rng(3)
    counts = [1, 5, 2, 3, 1, 4, 2]
    vectors = rng.standard_normal((sum(counts), 16)).astype(np.float32)
    ids = [f"rl{i}" for i in range(len(counts))]
    photos = pd.DataFrame({"listing_id": np.repeat(ids, counts), "path": [f"p{i}" for i in range(sum(counts))]})
    gallery = Listings.from_frames(pd.DataFrame({"listing_id": ids}), photos, vectors)
    query_vectors = rng.standard_normal((3, 16)).astype(np.float32)
    query = _listings([{"listing_id": "rf"}], query_vectors, per=3)
    result = match_listings(query, gallery, "found", "v1", MatchConfig(aggregation=aggregation, top_n=99,
                                                                        block_photos=4))
    table = result.candidates.to_pandas().set_index("candidate_id")
    for i, listing in enumerate(ids):
        rows = slice(gallery.starts[i], gallery.starts[i] + gallery.counts[i])
        expected = listing_similarity(query_vectors, gallery.vectors[rows], aggregation)
        assert table.at[listing, "score"] == pytest.approx(expected, abs=1e-5)
    matrix = score_matrix(query, gallery, aggregation, block_photos=4)
    assert matrix[0] == pytest.approx(table.loc[ids, "score"].to_numpy(), abs=1e-6)


def test_best_photo_pair_is_reported() -> None:
    gallery = _listings([{"listing_id": "rl"}], GALLERY, per=3)
    query = _listings([{"listing_id": "rf"}], QUERY, per=2)
    row = match_listings(query, gallery, "found", "v1").candidates.to_pylist()[0]
    assert (row["query_photo"], row["candidate_photo"]) == ("rf/0.jpg", "rl/0.jpg")  # e0 · e0 = 1
    assert row["photo_score"] == pytest.approx(1.0) and row["n_query_photos"] == 2 and row["n_candidate_photos"] == 3


# --- ranking -----------------------------------------------------------------------------------------------------

def test_top_n_ranks_schema_and_both_directions() -> None:
    lost = _listings([{"listing_id": f"rl{i}", "url": f"https://pet911.ru/rl{i}"} for i in range(30)], per=2,
                     dim=16, seed=1)
    found = _listings([{"listing_id": f"rf{i}"} for i in range(4)], per=3, dim=16, seed=2)
    result = match_new_listings(found, lost, lost, found, "model-7", MatchConfig(top_n=5))
    table = result.candidates
    assert table.schema == CANDIDATES_SCHEMA
    frame = table.to_pandas()
    found_rows = frame[frame["query_kind"] == "found"]
    assert len(found_rows) == 4 * 5 and len(frame[frame["query_kind"] == "lost"]) == 30 * 4  # only 4 found exist
    for _, group in found_rows.groupby("query_id"):
        assert group["rank"].tolist() == [1, 2, 3, 4, 5]
        assert (np.diff(group["score"].to_numpy()) <= 0).all()
    assert set(frame["model_version"]) == {"model-7"} and set(frame["rule"]) == {"no-location"}
    assert found_rows["candidate_url"].str.startswith("https://pet911.ru/rl").all()
    assert frame["distance_km"].isna().all() and frame["day_gap"].isna().all() and frame["impostor_rate"].isna().all()
    assert result.stats["listing_pairs_scored"] == 4 * 30 * 2


def test_empty_result_keeps_the_schema() -> None:
    lost = _listings([{"listing_id": "rl", "species": "dog"}])
    found = _listings([{"listing_id": "rf", "species": "cat"}])
    result = match_listings(found, lost, "found", "v1")
    assert result.candidates.num_rows == 0 and result.candidates.schema == CANDIDATES_SCHEMA
    assert result.stats["excluded_species"] == 1 and result.stats["photo_pairs_scored"] == 0


def test_from_frames_groups_photos_and_drops_listings_without_any() -> None:
    listings = pd.DataFrame({"listing_id": ["a", "b", "c"], "date": ["2024-01-02", None, "garbage"]})
    photos = pd.DataFrame({"listing_id": ["b", "a", "b", "zzz", "a"], "path": ["b1", "a2", "b0", "z", "a1"],
                           "position": [1, 2, 0, 0, 1]})
    vectors = np.eye(5, dtype=np.float32) * 3
    built = Listings.from_frames(listings, photos, vectors)
    assert built.ids.tolist() == ["a", "b"] and built.n_without_photos == 1
    assert built.paths.tolist() == ["a1", "a2", "b0", "b1"] and built.counts.tolist() == [2, 2]
    assert np.allclose(np.linalg.norm(built.vectors, axis=1), 1.0)
    assert built.days[1] == np.iinfo(np.int64).min
    with pytest.raises(MatchError, match="duplicate"):
        Listings.from_frames(pd.DataFrame({"listing_id": ["a", "a"]}), photos, vectors)


def test_planted_pair_is_found_at_rank_one_among_decoys() -> None:
    rng = np.random.default_rng(11)
    n, per, dim = 800, 3, 64
    centres = rng.standard_normal((n, dim))
    lost_vectors = (np.repeat(centres, per, axis=0) + 0.6 * rng.standard_normal((n * per, dim))).astype(np.float32)
    meta = [{"listing_id": f"rl{i}", "species": "dog", "date": "2024-03-01", "lat": MOSCOW[0] + rng.uniform(-.1, .1),
             "lng": MOSCOW[1] + rng.uniform(-.1, .1)} for i in range(n)]
    lost = _listings(meta, lost_vectors, per=per)
    planted = 417
    found_vectors = (centres[planted] + 0.6 * rng.standard_normal((4, dim))).astype(np.float32)
    found = _listings([{"listing_id": "rf", "species": "dog", "date": "2024-03-20", "lat": MOSCOW[0],
                        "lng": MOSCOW[1]}], found_vectors, per=4)
    for aggregation in ("max", "mean", "top2mean"):
        table = match_listings(found, lost, "found", "v1", MatchConfig(aggregation=aggregation)).candidates
        assert table.column("candidate_id")[0].as_py() == f"rl{planted}", aggregation
        assert table.column("day_gap")[0].as_py() == 19 and table.column("rule")[0].as_py() == "distance"
    reverse = match_listings(lost, found, "lost", "v1").candidates.to_pandas()
    assert reverse.loc[reverse["query_id"] == f"rl{planted}", "score"].iloc[0] == reverse["score"].max()


def test_scoring_work_is_proportional_to_filtered_pairs() -> None:
    rng = np.random.default_rng(5)
    n = 400
    lost = _listings([{"listing_id": f"rl{i}", "species": ("cat", "dog")[i % 2],
                       "date": (pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(d))).date().isoformat(),
                       "lat": MOSCOW[0] + rng.uniform(-.5, .5), "lng": MOSCOW[1] + rng.uniform(-.8, .8)}
                      for i, d in enumerate(rng.integers(0, 365, n))], per=3, dim=16)
    found = _listings([{"listing_id": f"rf{i}", "species": "cat", "date": "2024-06-01", "lat": MOSCOW[0],
                        "lng": MOSCOW[1]} for i in range(5)], per=2, dim=16, seed=1)
    config = MatchConfig(aggregation="max", top_n=1000)
    expected = sum(len(c.gallery) for _, c in candidate_pairs(found, lost, "found", config))
    stats = match_listings(found, lost, "found", "v1", config).stats
    assert stats["listing_pairs_scored"] == expected == stats["rule_distance"]
    assert stats["photo_pairs_scored"] == expected * 2 * 3 and stats["mean_products"] == 0
    assert expected < 0.1 * stats["listing_pairs_total"]  # the filters removed > 90 % before any scoring
    assert stats["listing_pairs_total"] - expected == (stats["excluded_date"] + stats["excluded_species"]
                                                       + stats["excluded_location"])
    loose = MatchConfig(aggregation="max", top_n=1000, max_km=1e4, window_days=400, slack_days=400)
    assert match_listings(found, lost, "found", "v1", loose).stats["photo_pairs_scored"] == 5 * (n // 2) * 2 * 3
    # mean: one product of mean vectors per candidate; photo pairs only for the kept top 3's best pair
    mean = match_listings(found, lost, "found", "v1", MatchConfig(aggregation="mean", top_n=3)).stats
    assert mean["mean_products"] == mean["listing_pairs_scored"] == expected
    assert mean["photo_pairs_scored"] == 5 * 3 * 2 * 3


def test_dimension_mismatch_is_a_user_error() -> None:
    with pytest.raises(MatchError, match="dimension"):
        match_listings(_listings([{"listing_id": "a"}], dim=8), _listings([{"listing_id": "b"}], dim=4), "found", "v")


# --- calibration -------------------------------------------------------------------------------------------------

def _calibration(genuine: list[float], impostor: list[float]) -> ScoreCalibration:
    return ScoreCalibration.from_scores(genuine, impostor, "listing", "mean", "v1", "test")


def test_calibration_statements_on_known_distributions() -> None:
    impostor = [0.1] * 1999 + [0.8]
    genuine = [0.3] * 10 + [0.85] * 30
    calibration = _calibration(genuine, impostor)
    assert calibration.n_impostor == 2000 and calibration.n_genuine == 40
    assert calibration.statement(0.8) == ("Only 1 in 2,000 unrelated listing pairs scores this high (1 of 2,000); "
                                          "75% of true pairs score at least this (30 of 40).")
    assert calibration.statement(0.1).startswith("1 in 1 unrelated listing pairs scores this high (2,000 of 2,000)")
    assert "100% of true pairs" in calibration.statement(0.1)
    none_above = calibration.statement(0.9)
    assert none_above.startswith("Fewer than 1 in 2,000 unrelated listing pairs scores this high (none of the 2,000")
    assert "0% of true pairs score at least this (0 of 40)" in none_above
    described = calibration.describe(0.9)
    assert described["impostor_count"] == 0 and described["impostor_rate"] == 0.0
    assert described["impostor_rate_upper95"] == pytest.approx(1 - 0.05 ** (1 / 2000), rel=1e-3)  # ≈ 3 / N
    rates, shares = calibration.rates(np.array([0.8, 0.9, 0.0]))
    assert rates.tolist() == [1 / 2000, 0.0, 1.0] and shares.tolist() == [0.75, 0.0, 1.0]


def test_calibration_ratio_wording_and_small_samples() -> None:
    calibration = _calibration([0.9, 0.7, 0.2], [0.5] * 3 + [0.0] * 7)
    text = calibration.statement(0.5)
    assert text.startswith("1 in 3.3 unrelated listing pairs scores this high (3 of 10)")
    assert "[small sample: 3 true, 10 unrelated pairs]" in text
    assert _calibration([], []).statement(0.5).startswith("No unrelated listing pairs were measured")
    many = _calibration([0.5] * 40, [0.9] * 7 + [0.0] * 12_336)
    assert "Only 1 in 1,800 unrelated listing pairs" in many.statement(0.9)  # 12,343 / 7 = 1,763 → 1,800


def test_calibration_round_trips_through_json(tmp_path: Path) -> None:
    calibration = _calibration([0.91, 0.5, 0.77], [0.1, -0.3, 0.42, 1.0, -1.0])
    restored = ScoreCalibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
    assert restored == calibration and restored.statement(0.42) == calibration.statement(0.42)
    with pytest.raises(CalibrationError):
        ScoreCalibration.from_dict({"unit": "listing"})
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"path_a": ["a", "b", "c"], "path_b": ["d", "e", "f"], "identity_a": ["1", "2", "3"],
                  "identity_b": ["1", "9", "8"], "same": [True, False, False],
                  "score_model": [0.9, 0.2, 0.95]}).to_csv(pairs, index=False)
    photo = ScoreCalibration.from_pairs_csv(pairs)
    assert photo.unit == "photo" and photo.n_genuine == 1 and photo.n_impostor == 2
    assert photo.statement(0.9).startswith("1 in 2 unrelated photo pairs scores this high (1 of 2)")
    with pytest.raises(CalibrationError, match="score_candidate"):
        ScoreCalibration.from_pairs_csv(pairs, column="score_candidate")


def test_match_fills_calibrated_columns() -> None:
    calibration = _calibration([0.99] * 50, np.linspace(-1, 1, 2001).tolist())
    gallery = _listings([{"listing_id": "rl"}], GALLERY, per=3)
    query = _listings([{"listing_id": "rf"}], QUERY, per=2)
    row = match_listings(query, gallery, "found", "v1", MatchConfig(aggregation="max"), calibration).candidates
    assert 0 < row.column("impostor_rate")[0].as_py() <= 2 / 2001  # score 1.0: the top bin (or the one below)
    assert row.column("genuine_share")[0].as_py() == 0.0


def test_pseudo_listings_keep_sessions_on_one_side() -> None:
    identities = ["a"] * 10 + ["b"] * 3 + ["c"] * 1
    sessions = ["a1", "a1", "a2", "a2", "a2", "a3", "a4", "a4", "a5", "a5", "b1", "b2", "b3", "c1"]
    parts = pseudo_listings(identities, None, sessions, min_photos=1, max_photos=3, seed=4)
    assert [p[0] for p in parts] == ["a", "b"]  # c has one photo: cannot be split
    for _, lost, found in parts:
        assert 1 <= len(lost) <= 3 and 1 <= len(found) <= 3
        assert not {sessions[i] for i in lost} & {sessions[i] for i in found}
    again = pseudo_listings(identities, None, sessions, min_photos=1, max_photos=3, seed=4)
    assert all((x[1] == y[1]).all() and (x[2] == y[2]).all() for x, y in zip(parts, again))


def test_listing_calibration_separates_synthetic_identities() -> None:
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((30, 32))
    labels = np.repeat(np.arange(30), 6)
    vectors = centres[labels] + 0.5 * rng.standard_normal((len(labels), 32))
    frame = pd.DataFrame({"identity_id": labels.astype(str), "path": [f"p{i:03d}" for i in range(len(labels))]})
    calibration = listing_calibration(frame, vectors.astype(np.float32), "v1", "mean", n_splits=3)
    assert calibration.unit == "listing" and calibration.aggregation == "mean"
    assert calibration.n_genuine == 3 * 30 and calibration.n_impostor == 3 * 30 * 29
    rates, shares = calibration.rates([0.5])
    assert rates[0] < 0.01 and shares[0] > 0.9
    with pytest.raises(CalibrationError, match="two or more"):
        listing_calibration(frame.iloc[:6], vectors[:6], "v1")
