"""One nightly matching run over the pipeline's tables: which listings are new, their places, the production
model's photo vectors from the search index, both directions of ``evaluation.matching``, readable scores, the
reviewers' decisions attached, and recall on pairs known to be true.

``previous`` (the last run's candidates) makes the run incremental: with the same model and aggregation, listings
already ranked keep their rows (while both sides stay open) and only new listings are ranked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from evaluation.matching import Listings, MatchConfig, match_new_listings, normalise_city
from evaluation.review import ListingCard

RUN_COLUMNS = (("pair_id", pa.string()), ("statement", pa.string()), ("decision", pa.string()))


def mentioned_city(text: Any, cities: Sequence[str]) -> str | None:
    """The first of ``cities`` (normalised names, longest first wins) that ``text`` names as a whole word —
    how a Telegram post without coordinates gets a place for the ``same-city`` rule."""
    if not isinstance(text, str) or not text:
        return None
    words = f" {normalise_city(text) or ''} "  # the same normalisation: punctuation gone, spaces collapsed
    for city in sorted({c for c in cities if c}, key=len, reverse=True):
        if f" {city} " in words:
            return city
    return None


def listing_frame(identities: pd.DataFrame, places: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per listing for :meth:`Listings.from_frames`: ``identities`` (an identity manifest: ``identity_id``,
    ``kind``, ``species``, ``date``, ``url``, ``text``) joined with ``places`` by ``identity_id`` (``lat``, ``lng``,
    ``city``, ``title``, ``date`` = event date, ``closed``; e.g. ``scrapers.pet911.crawl.listing_places``). A
    listing without a place gets the city its text names among the known cities. ``open`` = not closed."""
    frame = identities.rename(columns={"identity_id": "listing_id"}).copy()
    if places is not None and len(places):
        extra = places.rename(columns={"identity_id": "listing_id", "date": "event_date"})
        frame = frame.merge(extra, on="listing_id", how="left")
        frame["date"] = frame["event_date"].where(frame["event_date"].notna(), frame["date"])
    for column, default in (("lat", np.nan), ("lng", np.nan), ("city", None), ("title", None), ("closed", False)):
        if column not in frame:
            frame[column] = default
    known = sorted({c for c in (normalise_city(v) for v in frame["city"]) if c})
    texts = frame["text"] if "text" in frame else pd.Series([None] * len(frame), index=frame.index)
    missing = frame["city"].isna()
    frame.loc[missing, "city"] = [mentioned_city(t, known) for t in texts[missing]]
    frame["open"] = ~frame["closed"].fillna(False).astype(bool)
    return frame


def recall_at(candidates: pa.Table, pairs: Sequence[tuple[str, str]], ks: Sequence[int] = (1, 5)) -> dict[str, Any]:
    """Of the known ``(lost, found)`` pairs, the share found at rank ≤ k in either direction (found query → lost
    candidate, or lost query → found candidate); ``n`` pairs, ``missed`` the ones not within the largest k."""
    best: dict[tuple[str, str], int] = {}
    for row in candidates.select(["query_id", "candidate_id", "rank"]).to_pylist():
        key = tuple(sorted((row["query_id"], row["candidate_id"])))
        best[key] = min(best.get(key, row["rank"]), row["rank"])
    ranks = [best.get(tuple(sorted(pair))) for pair in pairs]
    out: dict[str, Any] = {"n": len(pairs)}
    for k in ks:
        out[f"recall@{k}"] = (sum(r is not None and r <= k for r in ranks) / len(pairs)) if pairs else None
    out["missed"] = [list(p) for p, r in zip(pairs, ranks) if r is None or r > max(ks)]
    return out


@dataclass(frozen=True)
class MatchRun:
    """``candidates``: ``CANDIDATES_SCHEMA`` plus ``pair_id``, ``statement`` and ``decision``; ``stats``: the
    matching counters plus ``new_queries`` and ``carried_rows``; ``confirmed_pairs``: pairs reviewers said are the
    same animal."""

    candidates: pa.Table
    stats: dict[str, Any]
    confirmed_pairs: list[tuple[str, str]] = field(default_factory=list)


def _index_photos(index_dir: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The search index's photo rows (``listing_id``, ``path``) and their vectors (the production model's)."""
    photos = pd.read_parquet(index_dir / "photos.parquet")
    vectors = np.load(index_dir / "vectors.npy").astype(np.float32)
    return photos.rename(columns={"identity_id": "listing_id"}), vectors


def _listings(frame: pd.DataFrame, kind: str, photos: pd.DataFrame, vectors: np.ndarray,
              only: set[str] | None = None) -> Listings:
    chosen = frame[(frame["kind"] == kind) & frame["open"]]
    if only is not None:
        chosen = chosen[chosen["listing_id"].isin(only)]
    keep = photos["listing_id"].isin(set(chosen["listing_id"]))
    return Listings.from_frames(chosen, photos[keep].reset_index(drop=True), vectors[keep.to_numpy()])


QUERIED_KEY = b"petid.matching"  # schema metadata: the model, settings and listings a candidates table ranked


def _run_key(version: str, config: MatchConfig) -> str:
    return json.dumps({"model": version, "config": config.to_dict()}, sort_keys=True)


def _carried(previous: pa.Table | None, frame: pd.DataFrame, version: str,
             config: MatchConfig) -> tuple[pd.DataFrame, set[str]]:
    """The last run's rows that still hold (same model and settings, both listings still open) and the listings it
    ranked (with or without candidates)."""
    meta = json.loads((previous.schema.metadata or {}).get(QUERIED_KEY, b"{}")) if previous is not None else {}
    if not meta or meta.get("run") != _run_key(version, config):
        return pd.DataFrame(), set()
    rows = previous.to_pandas()
    open_ids = set(frame.loc[frame["open"], "listing_id"])
    return rows[rows["query_id"].isin(open_ids) & rows["candidate_id"].isin(open_ids)], set(meta["queried"])


def run_matching(identities: pd.DataFrame, places: pd.DataFrame | None, index_dir: str | Path, version: str,
                 config: MatchConfig = MatchConfig(), calibration: Any = None, decisions: pa.Table | None = None,
                 previous: pa.Table | None = None) -> MatchRun:
    """Rank the new listings of ``identities`` (an identity manifest) against the open ones of the other kind,
    with the vectors of the search index at ``index_dir`` (built with model ``version``)."""
    from curation.decisions import pair_id
    from evaluation.matching import CANDIDATES_SCHEMA

    frame = listing_frame(identities, places)
    photos, vectors = _index_photos(Path(index_dir))
    carried, done = _carried(previous, frame, version, config)
    open_ids = set(frame.loc[frame["open"], "listing_id"])
    new = open_ids - done
    result = match_new_listings(_listings(frame, "found", photos, vectors, new), _listings(frame, "lost", photos, vectors),
                                _listings(frame, "lost", photos, vectors, new), _listings(frame, "found", photos, vectors),
                                version, config, calibration)
    fresh = result.candidates
    verdicts = {} if decisions is None else dict(zip(decisions.column("pair_id").to_pylist(),
                                                     decisions.column("decision").to_pylist()))
    pair_ids = [pair_id(q, c) for q, c in zip(fresh.column("query_id").to_pylist(),
                                              fresh.column("candidate_id").to_pylist())]
    scores = fresh.column("score").to_pylist()
    fresh = fresh.append_column("pair_id", pa.array(pair_ids, pa.string()))
    fresh = fresh.append_column("statement", pa.array([calibration.statement(s) if calibration else None
                                                       for s in scores], pa.string()))
    fresh = fresh.append_column("decision", pa.array([None] * fresh.num_rows, pa.string()))
    schema = pa.schema([*CANDIDATES_SCHEMA, *(pa.field(n, t) for n, t in RUN_COLUMNS)])
    table = pa.concat_tables([pa.Table.from_pandas(carried, schema=schema, preserve_index=False), fresh.cast(schema)]
                             if len(carried) else [fresh.cast(schema)])
    table = table.set_column(table.schema.get_field_index("decision"), "decision",
                             pa.array([verdicts.get(p) for p in table.column("pair_id").to_pylist()], pa.string()))
    confirmed = [] if decisions is None else [
        (r["listing_a"], r["listing_b"]) for r in decisions.to_pylist() if r["decision"] == "same"]
    queried = sorted((done & open_ids) | new)
    table = table.replace_schema_metadata({QUERIED_KEY: json.dumps({"run": _run_key(version, config),
                                                                    "queried": queried}).encode()})
    stats = {**result.stats, "new_queries": len(new), "carried_rows": len(carried)}
    return MatchRun(table, stats, confirmed)


def review_cards(identities: pd.DataFrame, images: pd.DataFrame, places: pd.DataFrame | None = None,
                 max_photos: int = 4) -> dict[str, ListingCard]:
    """What the review page shows of each listing: manifest fields, the place and title of ``places``, and up to
    ``max_photos`` curated photos."""
    frame = listing_frame(identities, places)
    photos = images.groupby("identity_id")["path"].apply(lambda p: list(p)[:max_photos]).to_dict()
    cards = {}
    for row in frame.to_dict("records"):
        place = row.get("address") if isinstance(row.get("address"), str) else None
        city = row.get("city") if isinstance(row.get("city"), str) else None
        cards[row["listing_id"]] = ListingCard(
            listing_id=row["listing_id"], kind=row.get("kind"), species=row.get("species"), date=row.get("date"),
            place=", ".join(p for p in (place, city) if p) or None,
            title=row.get("title") if isinstance(row.get("title"), str) else None, text=row.get("text"),
            url=row.get("url"), photos=photos.get(row["listing_id"], []))
    return cards
