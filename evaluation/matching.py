"""Lost ↔ found matching: which open listings could show the same animal as a new one?

A listing has one or more photos (pet911: 2–8), and so does the other side. The score of a listing pair comes from
all its photo pairs' cosine similarities (L2-normalised embeddings), aggregated (``MatchConfig.aggregation``):

- ``max``: the best photo pair;
- ``mean``: the mean of all photo pairs;
- ``top<k>mean`` (``top2mean``, ``top3mean``, ...): the mean of the ``k`` best pairs (all of them when fewer).

The default, ``DEFAULT_AGGREGATION`` = ``mean``, ranked true pairs best on real dogs (``bench/matching_aggregation.py``:
14 kennel dogs, each split 20 times into a lost and a found pseudo-listing of 2–8 photos from different shots,
frozen ImageNet backbones). Recall@1 over the 280 queries: ``mean`` 0.982 with both EfficientNet-Lite0 and
Lite2-GeM, ``top2mean`` 0.925 / 0.961, ``top3mean`` 0.921 / 0.939, ``max`` 0.882 / 0.907; ``mean`` also gave the
best listing-level ROC AUC (0.995 / 0.998). One chance-high photo pair lifts an unrelated listing under ``max``;
the mean needs every photo to agree. Its weak spot would be a listing with a photo that is not of the animal
(a poster, a map): the mean dilutes; ``top<k>mean`` is the fallback if real listings show that.

Candidate filters run before any scoring, so the scoring work is proportional to the plausible pairs:

- species: equal, or unknown (``None``) on either side;
- dates: ``day_gap`` = found date − lost date must lie in ``[-slack_days, window_days]`` (a found animal may be
  posted a little before its owner posts the loss); an unknown date on either side keeps the pair (``day_gap``
  null);
- location, recorded per pair in ``rule``: both sides with coordinates: haversine distance ≤ ``max_km``
  (``distance``); otherwise both sides with a city: the same normalised city (``same-city``); otherwise
  (neither coordinates on both sides nor a city on both sides) the pair is kept and marked ``no-location`` —
  Telegram posts often name no place, and dropping them would hide them from every match — unless
  ``keep_unlocated=False`` excludes it.

Scoring runs one query listing at a time: its photos against the photos of its candidates, gathered in blocks of at
most ``block_photos`` gallery photos, as float32 matrix products. Under ``mean`` the score needs no photo pairs at all:
the mean of all photo-pair cosines is the dot product of the two listings' mean photo vectors (``Listings.means``),
one product per listing pair; photo pairs are then compared only for the kept top-N, to name the best pair.
Pure NumPy/pandas/pyarrow; no Dagster.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from evaluation.embeddings import normalise
from petid.errors import UserError

DEFAULT_AGGREGATION = "mean"  # chosen on kennel_dev (bench/matching_aggregation.py; see the module doc)
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
NO_DATE = np.iinfo(np.int64).min  # Listings.days where the date is unknown
RULE_DISTANCE, RULE_SAME_CITY, RULE_NO_LOCATION = "distance", "same-city", "no-location"
RULES = (RULE_DISTANCE, RULE_SAME_CITY, RULE_NO_LOCATION)  # Candidates.rule codes index this
KINDS = ("found", "lost")
_UNKNOWN_SPECIES = {"", "unknown", "none", "null", "nan"}
_TOPK = re.compile(r"^top([1-9][0-9]*)mean$")

CANDIDATES_SCHEMA = pa.schema([
    pa.field("query_id", pa.string(), nullable=False),
    pa.field("query_kind", pa.string(), nullable=False),  # found (vs open lost listings) or lost (vs open found)
    pa.field("query_url", pa.string()),
    pa.field("candidate_id", pa.string(), nullable=False),
    pa.field("candidate_url", pa.string()),
    pa.field("rank", pa.int32(), nullable=False),  # 1 = best candidate of this query
    pa.field("score", pa.float32(), nullable=False),  # listing-level similarity (``aggregation``)
    pa.field("aggregation", pa.string(), nullable=False),
    pa.field("photo_score", pa.float32(), nullable=False),  # the best photo pair's cosine similarity
    pa.field("query_photo", pa.string()),  # the best photo pair: the query's photo ...
    pa.field("candidate_photo", pa.string()),  # ... and the candidate's
    pa.field("n_query_photos", pa.int16(), nullable=False),
    pa.field("n_candidate_photos", pa.int16(), nullable=False),
    pa.field("distance_km", pa.float64()),  # null unless both sides have coordinates
    pa.field("day_gap", pa.int32()),  # found date − lost date in days; null when either is unknown
    pa.field("rule", pa.string(), nullable=False),  # distance / same-city / no-location
    pa.field("impostor_rate", pa.float64()),  # with a calibration: share of unrelated pairs scoring >= score
    pa.field("genuine_share", pa.float64()),  # with a calibration: share of true pairs scoring >= score
    pa.field("model_version", pa.string(), nullable=False),
])


class MatchError(UserError, ValueError):
    """Bad matching input or configuration."""


def parse_aggregation(name: str) -> int | None:
    """How many best photo pairs an aggregation averages: ``max`` → 1, ``top<k>mean`` → k, ``mean`` → None (all)."""
    if name == "max":
        return 1
    if name == "mean":
        return None
    match = _TOPK.match(name)
    if match is None:
        raise MatchError(f"unknown aggregation {name!r}: use max, mean or top<k>mean (e.g. top2mean)")
    return int(match.group(1))


@dataclass(frozen=True)
class MatchConfig:
    """Matching thresholds.

    ``aggregation``: listing-pair score from its photo pairs (module doc). ``top_n``: candidates kept per query.
    ``max_km``: radius for pairs where both sides have coordinates. ``window_days``/``slack_days``: the found date
    may be at most ``window_days`` after the lost date and at most ``slack_days`` before it. ``keep_unlocated``:
    keep (marked ``no-location``) pairs that neither distance nor city can check. ``block_photos``: gallery photos
    per matrix product (memory ≈ block_photos × (dim + query photos) × 4 bytes).
    """

    aggregation: str = DEFAULT_AGGREGATION
    top_n: int = 10
    max_km: float = 30.0
    window_days: int = 60
    slack_days: int = 3
    keep_unlocated: bool = True
    block_photos: int = 16_384

    def __post_init__(self) -> None:
        parse_aggregation(self.aggregation)
        checks = {"top_n": self.top_n >= 1, "max_km": self.max_km >= 0, "window_days": self.window_days >= 0,
                  "slack_days": self.slack_days >= 0, "block_photos": self.block_photos >= 1}
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise MatchError(f"invalid MatchConfig value(s): {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def normalise_city(city: Any) -> str | None:
    """Case-folded, ``ё`` → ``е``, punctuation and a leading ``г.``/``город`` dropped, spaces collapsed; ``None``
    for a missing or empty city."""
    if city is None or (isinstance(city, float) and np.isnan(city)):
        return None
    text = unicodedata.normalize("NFKC", str(city)).casefold().replace("ё", "е")
    text = re.sub(r"[^\w\s-]", " ", text)
    text = re.sub(r"^\s*(г|город|city)\s+", "", text)
    text = " ".join(text.replace("-", " ").split())
    return text or None


def normalise_species(species: Any) -> str | None:
    """Lower-case species; ``None`` for missing/unknown (which matches either side)."""
    if species is None or (isinstance(species, float) and np.isnan(species)):
        return None
    text = str(species).strip().lower()
    return None if text in _UNKNOWN_SPECIES else text


def haversine_km(lat1: Any, lng1: Any, lat2: Any, lng2: Any) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (broadcasts; NaN where a coordinate is NaN)."""
    p1, p2 = np.radians(np.asarray(lat1, np.float64)), np.radians(np.asarray(lat2, np.float64))
    dlat = p2 - p1
    dlng = np.radians(np.asarray(lng2, np.float64) - np.asarray(lng1, np.float64))
    h = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlng / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def _days(values: pd.Series) -> np.ndarray:
    dates = pd.to_datetime(values.astype(object).map(lambda v: None if v is None else str(v)[:10]), errors="coerce")
    days = (dates.to_numpy("datetime64[D]").astype(np.int64))
    return np.where(dates.isna().to_numpy(), NO_DATE, days)


def _normalised(values: pd.Series, normalise_one: Any) -> np.ndarray:
    """``normalise_one`` of every value, computed once per distinct value; an object array."""
    cache: dict[Any, Any] = {}
    return np.array([cache[v] if v in cache else cache.setdefault(v, normalise_one(v)) for v in values], dtype=object)


def _unit_rows(vectors: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``vectors[order]`` as float32 rows of unit L2 norm (zero rows stay zero), in one copy."""
    out = np.asarray(vectors, np.float32)[order]
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))
    out /= np.where(norms > 0, norms, 1.0)[:, None]
    return out


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame:
        return frame[name]
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


@dataclass(frozen=True)
class Listings:
    """Listings of one kind with their photo embeddings; listing ``i``'s photos are rows
    ``starts[i]:starts[i] + counts[i]`` of ``vectors``/``paths``. Build with :meth:`from_frames`."""

    ids: np.ndarray  # object (n,)
    urls: np.ndarray  # object (n,), None where unknown
    species: np.ndarray  # object (n,): normalised species or None
    days: np.ndarray  # int64 (n,): days since 1970-01-01, NO_DATE where unknown
    lat: np.ndarray  # float64 (n,), NaN where unknown
    lng: np.ndarray  # float64 (n,)
    cities: np.ndarray  # object (n,): normalise_city or None
    vectors: np.ndarray  # float32 (n_photos, D), L2-normalised
    paths: np.ndarray  # object (n_photos,)
    starts: np.ndarray  # int64 (n,)
    counts: np.ndarray  # int64 (n,), >= 1
    n_without_photos: int = 0  # listings of the input frame dropped because no photo row named them

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @cached_property
    def means(self) -> np.ndarray:
        """Each listing's mean photo vector (not renormalised), float32 ``(n, D)``: the mean of all photo-pair
        cosines of two listings is the dot product of their means, so ``mean`` scores one product per pair."""
        n, dim = len(self.ids), self.vectors.shape[1]
        out = np.empty((n, dim), np.float32)
        for count in np.unique(self.counts).tolist():  # (np.add.reduceat over rows is several times slower)
            same = np.flatnonzero(self.counts == count)
            if len(same) == n:  # every listing has ``count`` photos: the rows already are (n, count, D)
                np.sum(self.vectors.reshape(n, count, dim), axis=1, out=out)
                out /= count
                break
            for lo in range(0, len(same), 4096):
                chunk = same[lo:lo + 4096]
                rows = (self.starts[chunk, None] + np.arange(count)).reshape(-1)
                out[chunk] = self.vectors[rows].reshape(len(chunk), count, dim).mean(axis=1)
        return out

    @classmethod
    def from_frames(cls, listings: pd.DataFrame, photos: pd.DataFrame, vectors: np.ndarray) -> Listings:
        """``listings``: one row per listing: ``listing_id`` and optional ``url``, ``species``, ``date`` (when the
        pet was lost/found: the event date, else the posting date; ISO string or date), ``lat``, ``lng``, ``city``.
        ``photos``: ``listing_id`` and optional ``path`` (+ ``position`` for order), one row per row of
        ``vectors``. Photos of listings not in ``listings`` are ignored; listings without photos are dropped
        (counted in ``n_without_photos``)."""
        if "listing_id" not in listings or "listing_id" not in photos:
            raise MatchError("listings and photos frames both need a 'listing_id' column")
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or len(vectors) != len(photos):
            raise MatchError(f"vectors have shape {vectors.shape}; expected ({len(photos)}, D), one row per photo")
        ids = listings["listing_id"].astype(str)
        if ids.duplicated().any():
            raise MatchError(f"duplicate listing ids, e.g. {ids[ids.duplicated()].iloc[0]!r}")
        codes = pd.Index(ids).get_indexer(photos["listing_id"].astype(str))
        keys = [codes, *([_column(photos, "position").fillna(0).to_numpy(np.int64)] if "position" in photos else [])]
        order = np.lexsort(keys[::-1])
        order = order[codes[order] >= 0]
        photo_codes = codes[order]
        counts_all = np.bincount(photo_codes, minlength=len(ids)).astype(np.int64)
        keep = counts_all > 0
        counts = counts_all[keep]
        starts = (np.cumsum(counts) - counts).astype(np.int64)
        paths = _column(photos, "path").astype(object).to_numpy()[order]
        lat = pd.to_numeric(_column(listings, "lat"), errors="coerce").to_numpy(np.float64)
        lng = pd.to_numeric(_column(listings, "lng"), errors="coerce").to_numpy(np.float64)
        located = np.isfinite(lat) & np.isfinite(lng)
        urls = _column(listings, "url").astype(object)
        return cls(
            ids=ids.to_numpy(object)[keep],
            urls=urls.where(urls.notna(), None).to_numpy(object)[keep],
            species=_normalised(_column(listings, "species"), normalise_species)[keep],
            days=_days(_column(listings, "date"))[keep],
            lat=np.where(located, lat, np.nan)[keep],
            lng=np.where(located, lng, np.nan)[keep],
            cities=_normalised(_column(listings, "city"), normalise_city)[keep],
            vectors=_unit_rows(vectors, order),
            paths=np.array([None if p is None or p != p else str(p) for p in paths], dtype=object),
            starts=starts,
            counts=counts,
            n_without_photos=int((~keep).sum()),
        )


@dataclass(frozen=True)
class Candidates:
    """Candidate listing pairs of one query (gallery indices) with what the filters measured."""

    gallery: np.ndarray  # int64 gallery listing indices
    distance_km: np.ndarray  # float64, NaN unless both sides have coordinates
    day_gap: np.ndarray  # int64 found − lost days; NO_DATE where unknown
    rule: np.ndarray  # int8 index into RULES


@dataclass
class MatchStats:
    """Counters of one matching run. ``listing_pairs_total`` − the three ``excluded_*`` = ``listing_pairs_scored``
    (= the sum of ``rules``): the scoring work is proportional to it, never to ``listing_pairs_total``."""

    queries: int = 0
    gallery: int = 0
    listing_pairs_total: int = 0  # queries × gallery
    excluded_date: int = 0
    excluded_species: int = 0
    excluded_location: int = 0
    listing_pairs_scored: int = 0
    mean_products: int = 0  # ``mean``: one product of mean photo vectors per listing pair scored
    photo_pairs_scored: int = 0  # photo-pair cosines (under ``mean`` only the kept candidates' best-pair search)
    rules: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in dataclasses.asdict(self).items() if k != "rules"},
                **{f"rule_{k.replace('-', '_')}": v for k, v in self.rules.items()}}


def _codes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shared integer codes of two object arrays' values; -1 for None."""
    table: dict[Any, int] = {}
    coded = [np.array([-1 if v is None else table.setdefault(v, len(table)) for v in x], np.int64) for x in (a, b)]
    return coded[0], coded[1]


class _Filter:
    """The gallery side of the candidate filters: dates sorted for a range lookup, cities and species coded."""

    def __init__(self, gallery: Listings, queries: Listings, query_kind: str, config: MatchConfig) -> None:
        if query_kind not in KINDS:
            raise MatchError(f"query_kind must be one of {KINDS}, got {query_kind!r}")
        self.g, self.config = gallery, config
        self.sign = 1 if query_kind == "found" else -1  # day_gap = sign × (query day − gallery day)
        known = gallery.days != NO_DATE
        self.dated = np.flatnonzero(known)
        self.dated = self.dated[np.argsort(gallery.days[self.dated], kind="stable")]
        self.dated_days = gallery.days[self.dated]
        self.undated = np.flatnonzero(~known)
        self.g_city, self.q_city = _codes(gallery.cities, queries.cities)
        self.g_species, self.q_species = _codes(gallery.species, queries.species)
        self.g_located = np.isfinite(gallery.lat)

    def candidates(self, q: int, queries: Listings, stats: MatchStats) -> Candidates:
        g, config = self.g, self.config
        day = queries.days[q]
        if day == NO_DATE:
            pool = np.arange(len(g))
        else:
            lo, hi = (day - config.window_days, day + config.slack_days) if self.sign > 0 else \
                (day - config.slack_days, day + config.window_days)
            a, b = np.searchsorted(self.dated_days, [lo, hi + 1])
            pool = np.concatenate([self.dated[a:b], self.undated])
        stats.excluded_date += len(g) - len(pool)
        if self.q_species[q] >= 0:
            species = self.g_species[pool]
            before = len(pool)
            pool = pool[(species == self.q_species[q]) | (species < 0)]
            stats.excluded_species += before - len(pool)
        distance, rule, keep = self._location(q, queries, pool)
        stats.excluded_location += int((~keep).sum())
        order = np.argsort(pool[keep], kind="stable")  # gallery order: the photo gather then reads memory forwards
        pool, distance, rule = pool[keep][order], distance[keep][order], rule[keep][order]
        gap = np.full(len(pool), NO_DATE, dtype=np.int64)
        if day != NO_DATE:
            dated = g.days[pool] != NO_DATE
            gap[dated] = self.sign * (day - g.days[pool[dated]])
        stats.rules.update({r: stats.rules[r] + int((rule == i).sum()) for i, r in enumerate(RULES)})
        return Candidates(gallery=pool, distance_km=distance, day_gap=gap, rule=rule)

    def _location(self, q: int, queries: Listings, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(distance km, rule code, keep) of query ``q`` against gallery listings ``pool`` (module doc)."""
        g, config = self.g, self.config
        distance = np.full(len(pool), np.nan)
        rule = np.full(len(pool), RULES.index(RULE_NO_LOCATION), dtype=np.int8)
        keep = np.full(len(pool), config.keep_unlocated)
        located = self.g_located[pool] if np.isfinite(queries.lat[q]) else np.zeros(len(pool), dtype=bool)
        if located.any():
            rows = pool[located]
            distance[located] = haversine_km(queries.lat[q], queries.lng[q], g.lat[rows], g.lng[rows])
            rule[located] = RULES.index(RULE_DISTANCE)
            keep[located] = distance[located] <= config.max_km
        if self.q_city[q] >= 0:
            cities = self.g_city[pool]
            by_city = ~located & (cities >= 0)
            rule[by_city] = RULES.index(RULE_SAME_CITY)
            keep[by_city] = cities[by_city] == self.q_city[q]
        return distance, rule, keep


def candidate_pairs(queries: Listings, gallery: Listings, query_kind: str,
                    config: MatchConfig = MatchConfig()) -> Iterator[tuple[int, Candidates]]:
    """``(query index, its Candidates)`` for every query listing, after the filters (module doc), nothing scored.
    ``query_kind``: ``found`` (queries are found listings, the gallery lost ones) or ``lost``."""
    filters = _Filter(gallery, queries, query_kind, config)
    stats = MatchStats()
    for q in range(len(queries)):
        yield q, filters.candidates(q, queries, stats)


def aggregate(values: np.ndarray, n_valid: np.ndarray, aggregation: str) -> tuple[np.ndarray, np.ndarray]:
    """Listing-pair scores from photo-pair similarities: ``values`` ``(pairs, P)`` with ``-inf`` padding after
    each row's ``n_valid`` real entries (anywhere, in fact: only finite entries count). Returns ``(scores,
    best)``: the aggregated score and the column of each row's best photo pair."""
    k = parse_aggregation(aggregation)
    best = np.argmax(values, axis=1)
    rows = np.arange(len(values))
    if k == 1:
        return values[rows, best].astype(np.float32), best
    n_valid = np.asarray(n_valid, np.int64)
    if k is None or k >= values.shape[1]:
        total = np.where(np.isfinite(values), values, 0).sum(axis=1, dtype=np.float64)
        return (total / np.maximum(n_valid, 1)).astype(np.float32), best
    top = -np.partition(-values, k - 1, axis=1)[:, :k]
    total = np.where(np.isfinite(top), top, 0).sum(axis=1, dtype=np.float64)
    return (total / np.clip(n_valid, 1, k)).astype(np.float32), best


def listing_similarity(a: np.ndarray, b: np.ndarray, aggregation: str = DEFAULT_AGGREGATION) -> float:
    """The score of one listing pair from its photos' embeddings ``a`` ``(m, D)`` and ``b`` ``(n, D)``
    (normalised here): the reference the block scorer must agree with."""
    sims = (normalise(a) @ normalise(b).T).reshape(1, -1)
    return float(aggregate(sims, np.array([sims.shape[1]]), aggregation)[0][0])


def _score(query: np.ndarray, gallery: Listings, cand: np.ndarray, aggregation: str, block_photos: int,
           stats: MatchStats) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scores of one query's photos ``(m, D)`` against gallery listings ``cand``: ``(score, photo_score,
    best query photo (0..m-1), best gallery photo row)``, in blocks of at most ``block_photos`` gallery photos."""
    m = len(query)
    counts, starts = gallery.counts[cand], gallery.starts[cand]
    scores = np.empty(len(cand), np.float32)
    photo_scores = np.empty(len(cand), np.float32)
    best_q = np.empty(len(cand), np.int64)
    best_g = np.empty(len(cand), np.int64)
    lo = 0
    cum = np.cumsum(counts)
    while lo < len(cand):
        base = cum[lo - 1] if lo else 0
        hi = max(lo + 1, int(np.searchsorted(cum, base + block_photos, side="right")))
        c, s = counts[lo:hi], starts[lo:hi]
        total = int(c.sum())
        offsets = np.cumsum(c) - c
        cols = np.repeat(s - offsets, c) + np.arange(total)
        sims = gallery.vectors[cols] @ query.T  # (total, m) float32: each listing's rows contiguous
        width = int(c.max())
        if (c == width).all():
            values = sims.reshape(hi - lo, width * m)
        else:
            slot = np.arange(width)
            valid = slot < c[:, None]
            values = sims[np.where(valid, offsets[:, None] + slot, 0)]  # (n, width, m)
            values[~valid] = -np.inf
            values = values.reshape(hi - lo, width * m)
        score, best = aggregate(values, m * c, aggregation)
        scores[lo:hi] = score
        photo_scores[lo:hi] = values[np.arange(hi - lo), best]
        best_q[lo:hi] = best % m
        best_g[lo:hi] = s + best // m
        stats.photo_pairs_scored += m * total
        lo = hi
    return scores, photo_scores, best_q, best_g


def single_threaded_blas() -> Any:
    """A context holding BLAS to one thread: matching's products are (gallery photos × a few query photos),
    memory-bound, and on a loaded 2-core machine BLAS threads spin more than they compute (bench/matching.py)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def score_matrix(queries: Listings, gallery: Listings, aggregation: str = DEFAULT_AGGREGATION,
                 block_photos: int = 16_384) -> np.ndarray:
    """Every query listing's score against every gallery listing, ``(len(queries), len(gallery))`` float32, no
    filters (pseudo-listing calibration and the aggregation benchmark)."""
    _check_dims(queries, gallery)
    if parse_aggregation(aggregation) is None:
        return queries.means @ gallery.means.T
    out = np.empty((len(queries), len(gallery)), np.float32)
    everything = np.arange(len(gallery))
    stats = MatchStats()
    with single_threaded_blas():
        for q in range(len(queries)):
            rows = slice(queries.starts[q], queries.starts[q] + queries.counts[q])
            out[q] = _score(queries.vectors[rows], gallery, everything, aggregation, block_photos, stats)[0]
    return out


def _check_dims(queries: Listings, gallery: Listings) -> None:
    if len(queries) and len(gallery) and queries.dim != gallery.dim:
        raise MatchError(f"query embeddings have dimension {queries.dim}, gallery embeddings {gallery.dim}: "
                         "embed both sides with the same model")


@dataclass(frozen=True)
class MatchResult:
    """``candidates``: a table in ``CANDIDATES_SCHEMA``, sorted by query kind, query and rank; ``stats``: counters
    (``MatchStats.to_dict``)."""

    candidates: pa.Table
    stats: dict[str, Any]


def _top_n(score: np.ndarray, gallery_index: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` best scores, best first; ties broken by gallery order (deterministic)."""
    n = min(n, len(score))
    top = np.argpartition(-score, n - 1)[:n] if n < len(score) else np.arange(len(score))
    return top[np.lexsort((gallery_index[top], -score[top]))]


def match_listings(queries: Listings, gallery: Listings, query_kind: str, model_version: str,
                   config: MatchConfig = MatchConfig(), calibration: Any = None) -> MatchResult:
    """The best ``config.top_n`` gallery listings for every query listing that pass the filters (module doc).
    ``query_kind``: ``found`` (new found listings vs open lost ones) or ``lost`` (new lost vs open found).
    ``calibration``: a ``evaluation.calibration.ScoreCalibration`` (fills ``impostor_rate``/``genuine_share``)."""
    _check_dims(queries, gallery)
    filters = _Filter(gallery, queries, query_kind, config)
    stats = MatchStats(queries=len(queries), gallery=len(gallery), listing_pairs_total=len(queries) * len(gallery))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("q", "g", "rank", "score", "photo", "bq", "bg", "km",
                                                          "gap", "rule")}
    mean = parse_aggregation(config.aggregation) is None
    with single_threaded_blas():
        for q in range(len(queries)):
            cand = filters.candidates(q, queries, stats)
            if not len(cand.gallery):
                continue
            first, count = int(queries.starts[q]), int(queries.counts[q])
            photos = queries.vectors[first:first + count]
            stats.listing_pairs_scored += len(cand.gallery)
            if mean:  # one product per listing pair; photo pairs only for the kept candidates' best pair
                score = gallery.means[cand.gallery] @ queries.means[q]
                stats.mean_products += len(cand.gallery)
                top = _top_n(score, cand.gallery, config.top_n)
                _, photo, bq, bg = _score(photos, gallery, cand.gallery[top], "max", config.block_photos, stats)
            else:
                score, photo, bq, bg = _score(photos, gallery, cand.gallery, config.aggregation,
                                              config.block_photos, stats)
                top = _top_n(score, cand.gallery, config.top_n)
                photo, bq, bg = photo[top], bq[top], bg[top]
            for key, values in (("q", np.full(len(top), q)), ("g", cand.gallery[top]),
                                ("rank", np.arange(1, len(top) + 1)), ("score", score[top]), ("photo", photo),
                                ("bq", first + bq), ("bg", bg), ("km", cand.distance_km[top]),
                                ("gap", cand.day_gap[top]), ("rule", cand.rule[top])):
                parts[key].append(values)
    columns = {k: np.concatenate(v) if v else np.zeros(0, np.float64 if k == "km" else np.int64)
               for k, v in parts.items()}
    table = _candidates_table(queries, gallery, query_kind, model_version, config, calibration, columns)
    return MatchResult(candidates=table, stats={**stats.to_dict(), "n_without_photos": queries.n_without_photos
                                                + gallery.n_without_photos})


def _candidates_table(queries: Listings, gallery: Listings, query_kind: str, model_version: str,
                      config: MatchConfig, calibration: Any, columns: dict[str, np.ndarray]) -> pa.Table:
    qi, gi = columns["q"].astype(np.int64), columns["g"].astype(np.int64)
    gap, km = columns["gap"].astype(np.int64), columns["km"].astype(np.float64)
    score = columns["score"].astype(np.float32)
    n = len(qi)
    impostor_rate, genuine_share = calibration.rates(score) if calibration is not None else ([None] * n,) * 2
    return pa.table({
        "query_id": pa.array(queries.ids[qi], pa.string()),
        "query_kind": pa.array([query_kind] * n, pa.string()),
        "query_url": pa.array(queries.urls[qi], pa.string()),
        "candidate_id": pa.array(gallery.ids[gi], pa.string()),
        "candidate_url": pa.array(gallery.urls[gi], pa.string()),
        "rank": pa.array(columns["rank"].astype(np.int32), pa.int32()),
        "score": pa.array(score, pa.float32()),
        "aggregation": pa.array([config.aggregation] * n, pa.string()),
        "photo_score": pa.array(columns["photo"].astype(np.float32), pa.float32()),
        "query_photo": pa.array(queries.paths[columns["bq"].astype(np.int64)], pa.string()),
        "candidate_photo": pa.array(gallery.paths[columns["bg"].astype(np.int64)], pa.string()),
        "n_query_photos": pa.array(queries.counts[qi].astype(np.int16), pa.int16()),
        "n_candidate_photos": pa.array(gallery.counts[gi].astype(np.int16), pa.int16()),
        "distance_km": pa.array(km, pa.float64(), mask=~np.isfinite(km)),
        "day_gap": pa.array(np.where(gap == NO_DATE, 0, gap).astype(np.int32), pa.int32(), mask=gap == NO_DATE),
        "rule": pa.array([RULES[int(r)] for r in columns["rule"]], pa.string()),
        "impostor_rate": pa.array(impostor_rate, pa.float64(), from_pandas=True),
        "genuine_share": pa.array(genuine_share, pa.float64(), from_pandas=True),
        "model_version": pa.array([model_version] * n, pa.string()),
    }, schema=CANDIDATES_SCHEMA)


def match_new_listings(new_found: Listings, open_lost: Listings, new_lost: Listings, open_found: Listings,
                       model_version: str, config: MatchConfig = MatchConfig(), calibration: Any = None) -> MatchResult:
    """Both directions of a nightly run: new found listings vs open lost ones, then new lost vs open found; one
    table (found queries first), stats summed."""
    results = [match_listings(new_found, open_lost, "found", model_version, config, calibration),
               match_listings(new_lost, open_found, "lost", model_version, config, calibration)]
    total: dict[str, Any] = {}
    for result in results:
        for key, value in result.stats.items():
            total[key] = total.get(key, 0) + value
    return MatchResult(candidates=pa.concat_tables([r.candidates for r in results]), stats=total)


__all__ = [
    "CANDIDATES_SCHEMA", "DEFAULT_AGGREGATION", "NO_DATE", "RULES", "Candidates", "Listings", "MatchConfig",
    "MatchError", "MatchResult", "MatchStats", "aggregate", "candidate_pairs", "haversine_km", "listing_similarity",
    "match_listings", "match_new_listings", "normalise_city", "normalise_species", "parse_aggregation",
    "score_matrix", "single_threaded_blas",
]
