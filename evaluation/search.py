"""Photo search ("find my pet"): a gallery of every photo's embedding with its listing's metadata.

Index folder:
- ``vectors.npy``: ``(n_photos, D)`` L2-normalised, float16 by default (half the memory; see bench/search.py for
  the recall impact) or float32; rows grouped by identity (one identity = one listing's animal);
- ``photos.parquet``: one row per vector: ``identity_id``, ``path``, ``source``, ``species``, ``kind``, ``date``,
  ``url``, ``position``;
- ``identities.parquet``: one row per listing: ``identity_id``, ``source``, ``species``, ``kind``, ``date``,
  ``url``, ``best_photo`` (its first photo), ``start``/``count`` (its rows in ``vectors.npy``), ``n_photos``, and,
  when the index was built with ``places`` (:func:`build_index`), ``lat``/``lng`` (degrees, NaN where unknown),
  ``city``, ``title``. Indexes written before those columns existed still load; they cannot search ``near`` a point;
- ``index.json``: model id/ref, dim, dtype, backend, counts, ``has_coordinates``/``n_located``; ``usearch.index``
  with the usearch backend, ``binary_codes.npy`` (packed sign bits) with the binary backend, the default above
  ``BINARY_THRESHOLD`` photos.

A query is one animal: one or more photos (or an indexed listing's own photos, :meth:`SearchIndex.search` with
``listing=``). Results are listings, each scored as the matching library scores a listing pair
(``evaluation.matching.aggregate``): every query photo × listing photo cosine, aggregated by ``aggregation`` —
``mean`` (the default, ``DEFAULT_AGGREGATION``: the dot product of the mean query vector and the listing's mean
photo vector), ``max`` (the best photo pair: what search did before listings) or ``top<k>mean``. Each result names
its best photo pair. The exact backend ranks every listing; the ANN backends (usearch, binary) shortlist the
listings owning the photos nearest to each query photo (and to the mean query vector), then score the shortlist
exactly — so their ranking is approximate, as before.

Filters, as in Kashtanka, only drop listings known not to fit: ``species`` (same species), ``kind`` (a found dog's
owner searches ``kind="lost"``: the opposite kind) and ``since``/``until`` (date window) keep listings whose value
is unknown. ``near``/``radius_km`` is the exception: it keeps listings within ``radius_km`` (haversine) of the
point, and listings without coordinates only with ``include_unlocated`` (the result counts those it dropped).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluation.ann import (
    BACKENDS,
    Backend,
    BinaryRerankBackend,
    ExactBackend,
    UsearchBackend,
    choose_backend,
    make_backend,
    top_k,
)
from evaluation.embeddings import PhotoEmbedder, embed_frame, load_photo_embedder, normalise, photo_frame, uses_text
from evaluation.matching import DEFAULT_AGGREGATION, MatchConfig, MatchError, aggregate, haversine_km, parse_aggregation
from petid.errors import UserError

META_COLUMNS = ("source", "species", "kind", "date", "url")
PLACE_COLUMNS = ("lat", "lng", "city", "title")  # optional per-listing columns of identities.parquet (``places``)
TEXT_PLACE_COLUMNS = ("city", "title")
DTYPES = {"float16": np.float16, "float32": np.float32}
DEFAULT_RADIUS_KM = MatchConfig().max_km  # ``near`` without a radius: the matching library's distance rule
DIRECT_PHOTOS = 50_000  # ANN backends: when the filters leave at most this many photos, score them all exactly
_PAIR_BLOCK = 1 << 20  # photo-pair similarities aggregated per block (4 MiB of float32)


class SearchError(UserError, ValueError):
    """Bad index folder, query or filter value."""


def _gallery_frame(frame: pd.DataFrame) -> pd.DataFrame:
    frame = photo_frame(frame, SearchError, "gallery")
    for column in META_COLUMNS:
        if column not in frame:
            frame[column] = None
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame["position"] = frame["position"].fillna(0).astype("int64") if "position" in frame else 0
    return frame.sort_values(["identity_id", "position", "path"], kind="stable").reset_index(drop=True)


def _text_or_none(values: pd.Series) -> pd.Series:
    """Strings, ``None`` where missing or blank."""
    values = values.astype(object)
    return values.map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) or not str(v).strip()
                      else str(v))


def _with_places(identities: pd.DataFrame, places: pd.DataFrame | None) -> tuple[pd.DataFrame, bool]:
    """``identities`` with the ``PLACE_COLUMNS`` that ``places`` has (see :func:`build_index`); whether it now has
    coordinates."""
    if places is None:
        return identities, False
    if "identity_id" not in places:
        raise SearchError(f"places frame lacks column 'identity_id' (columns: {list(places.columns)})")
    if ("lat" in places) != ("lng" in places):
        raise SearchError(f"places frame has {'lat' if 'lat' in places else 'lng'} without "
                          f"{'lng' if 'lat' in places else 'lat'}: give both or neither")
    ids = places["identity_id"].astype(str)
    if ids.duplicated().any():
        raise SearchError(f"places frame has duplicate identity_id values, e.g. {ids[ids.duplicated()].iloc[0]!r}: "
                          "one row per listing")
    rows = pd.Index(ids).get_indexer(identities["identity_id"].astype(str))
    found = rows >= 0
    identities = identities.copy()
    has_coordinates = "lat" in places
    if has_coordinates:
        lat = pd.to_numeric(places["lat"], errors="coerce").to_numpy(np.float64)
        lng = pd.to_numeric(places["lng"], errors="coerce").to_numpy(np.float64)
        valid = np.isfinite(lat) & np.isfinite(lng) & (np.abs(lat) <= 90) & (np.abs(lng) <= 180)
        lat, lng = np.where(valid, lat, np.nan), np.where(valid, lng, np.nan)
        identities["lat"] = np.where(found, lat[np.maximum(rows, 0)], np.nan) if len(lat) else np.nan
        identities["lng"] = np.where(found, lng[np.maximum(rows, 0)], np.nan) if len(lng) else np.nan
    for column in TEXT_PLACE_COLUMNS:
        if column in places:
            text = _text_or_none(places[column]).to_numpy(object)
            picked = [text[r] if r >= 0 else None for r in rows]
            identities[column] = pd.Series(picked, index=identities.index, dtype=object)
    return identities, has_coordinates


def build_index(
    frame: pd.DataFrame,
    model_ref: str,
    registry_root: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    embedder: PhotoEmbedder | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    dtype: str = "float16",
    backend: str | None = "auto",
    batch_size: int = 32,
    places: pd.DataFrame | None = None,
) -> dict:
    """Embed every photo of ``frame`` and write the index folder (see module doc); returns ``index.json``'s content
    (``n_vectors``, ``n_identities``, ``dim``, ``dtype``, ``backend``, ``model``, ``model_ref``, ``path``,
    ``has_coordinates``, ``n_located``). ``backend`` ``"auto"``/``None`` picks ``binary`` above ``BINARY_THRESHOLD``
    photos, else ``exact``.

    ``places``: one row per listing, ``identity_id`` (required, unique) and any of ``lat``, ``lng`` (degrees
    WGS84; both or neither; a missing, non-numeric or out-of-range pair counts as unknown), ``city``, ``title``
    (text); other columns are ignored, rows of identities not in ``frame`` too, and identities without a row get
    unknown values. The columns it has are stored in ``identities.parquet``; ``near`` search needs ``lat``/``lng``."""
    if dtype not in DTYPES:
        raise SearchError(f"unknown vector dtype {dtype!r}: choose one of {sorted(DTYPES)}")
    if backend not in (*BACKENDS, "auto", None):
        raise SearchError(f"unknown search backend {backend!r}: choose one of {BACKENDS} or 'auto'")
    gallery = _gallery_frame(frame)
    if gallery.empty:
        raise SearchError("cannot build a search index from an empty gallery")
    if places is not None:
        _with_places(gallery[["identity_id"]].drop_duplicates(), places)  # bad places fail before embedding
    embedder = embedder or load_photo_embedder(model_ref, registry_root)
    vectors = embed_frame(gallery, embedder, cache_dir, batch_size=batch_size).astype(DTYPES[dtype])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "vectors.npy", vectors)
    photos = gallery[["identity_id", "path", *META_COLUMNS, "position"]]
    photos.to_parquet(out / "photos.parquet", index=False)
    grouped = photos.reset_index().groupby("identity_id", sort=False)
    identities = grouped.first()[list(META_COLUMNS)].reset_index()
    identities["best_photo"] = grouped["path"].first().to_numpy()
    identities["start"] = grouped["index"].min().to_numpy().astype(np.int64)
    identities["count"] = grouped.size().to_numpy().astype(np.int64)
    identities["n_photos"] = identities["count"]
    identities, has_coordinates = _with_places(identities, places)
    identities.to_parquet(out / "identities.parquet", index=False)
    backend = choose_backend(len(vectors), backend)
    if backend == "usearch":
        UsearchBackend.build(vectors.astype(np.float32)).save(out)
    elif backend == "binary":
        BinaryRerankBackend(vectors).save(out)
    info = {
        "model": embedder.model_id,
        "model_ref": str(model_ref),
        "n_vectors": int(len(vectors)),
        "n_identities": int(len(identities)),
        "dim": int(vectors.shape[1]),
        "dtype": dtype,
        "backend": backend,
        "has_coordinates": has_coordinates,
        "n_located": int(np.isfinite(identities["lat"]).sum()) if has_coordinates else 0,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "path": str(out),
    }
    (out / "index.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info


def check_query_photo(photo: str | os.PathLike[str]) -> None:
    """Raise ``SearchError`` naming the problem unless ``photo`` is a file Pillow decodes (a JPEG at 1/8 scale:
    every byte of it is still read, so a truncated one fails here, not inside the model)."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.exists(photo):
        raise SearchError(f"query photo not found: {photo}")
    if not os.path.isfile(photo):
        raise SearchError(f"query photo {photo} is not a file")
    try:
        with Image.open(photo) as img:
            if img.format == "JPEG":
                img.draft("RGB", (max(1, img.size[0] // 8), max(1, img.size[1] // 8)))
            img.load()
    except UnidentifiedImageError as exc:
        raise SearchError(f"query photo {photo} is not an image (Pillow cannot identify it)") from exc
    except Image.DecompressionBombError as exc:
        raise SearchError(f"query photo {photo} is too large: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise SearchError(f"query photo {photo} cannot be decoded: {exc}") from exc


def parse_point(text: str, name: str = "--near") -> tuple[float, float]:
    """``"LAT,LNG"`` in degrees → ``(lat, lng)``; ``SearchError`` naming ``name`` for anything else."""
    parts = str(text).split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        point = float(parts[0]), float(parts[1])
    except ValueError:
        raise SearchError(f"{name} must be LAT,LNG in degrees (e.g. 55.7558,37.6173), got {text!r}") from None
    return check_point(point, name)


def check_point(point: Sequence[float], name: str = "near") -> tuple[float, float]:
    """``(lat, lng)`` as floats, checked: finite, ``|lat| <= 90``, ``|lng| <= 180``."""
    try:
        lat, lng = (float(v) for v in point)
    except (TypeError, ValueError):
        raise SearchError(f"{name} must be a (lat, lng) pair of numbers, got {point!r}") from None
    if not (math.isfinite(lat) and math.isfinite(lng)) or abs(lat) > 90 or abs(lng) > 180:
        raise SearchError(f"{name} must have -90 <= lat <= 90 and -180 <= lng <= 180, got {lat},{lng}")
    return lat, lng


def parse_radius(value: str | float, name: str = "--radius-km") -> float:
    """A positive, finite radius in km; ``SearchError`` naming ``name`` otherwise."""
    try:
        radius = float(value)
    except (TypeError, ValueError):
        radius = math.nan
    if not math.isfinite(radius) or radius <= 0:
        raise SearchError(f"{name} must be a positive number of km, got {value!r}")
    return radius


def check_aggregation(aggregation: str) -> str:
    """``aggregation`` if ``evaluation.matching.parse_aggregation`` accepts it, else a ``SearchError``."""
    try:
        parse_aggregation(aggregation)
    except MatchError as exc:
        raise SearchError(str(exc)) from None
    return aggregation


def _iso_date(value: str | dt.date | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        return (value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])).isoformat()
    except ValueError as exc:
        raise SearchError(f"{name} must be an ISO date (YYYY-MM-DD), got {value!r}") from exc


def _url_key(url: Any) -> str | None:
    """A URL without scheme, ``www.``, fragment and trailing slash, host lower-cased: two spellings of one listing
    compare equal."""
    if url is None or (isinstance(url, float) and math.isnan(url)):
        return None
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", str(url).strip(), flags=re.IGNORECASE).split("#", 1)[0].rstrip("/")
    host, slash, rest = text.partition("/")
    host = host.lower()
    return (host[4:] if host.startswith("www.") else host) + slash + rest


@dataclass(frozen=True)
class SearchResult:
    """What :meth:`SearchIndex.search` found: ``results`` (one dict per listing, best first: ``rank``,
    ``identity_id``, ``score`` (the listing-level ``aggregation``), ``photo_score`` (its best photo pair's cosine),
    ``query_photo``/``best_photo`` (that pair), ``distance_km`` (with ``near``, ``None`` where unknown),
    ``source``, ``species``, ``kind``, ``date``, ``url``, ``city``, ``title``, ``n_photos``) and the query:
    ``query_photos`` (paths; ``None`` for vectors), ``query_listing`` (the listing searched with, excluded from
    the results). ``n_candidates``: listings that passed every filter; with ``near``: ``n_outside_radius``
    (located, too far) and ``n_unlocated`` (no coordinates: dropped unless ``include_unlocated``)."""

    results: list[dict[str, Any]]
    aggregation: str
    query_photos: list[str | None]
    query_listing: str | None = None
    near: tuple[float, float] | None = None
    radius_km: float | None = None
    include_unlocated: bool = False
    n_candidates: int = 0
    n_outside_radius: int = 0
    n_unlocated: int = 0

    @property
    def n_dropped_unlocated(self) -> int:
        """Listings the ``near`` filter dropped for lack of coordinates."""
        return 0 if self.near is None or self.include_unlocated else self.n_unlocated

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["near"] = list(self.near) if self.near is not None else None
        out["n_dropped_unlocated"] = self.n_dropped_unlocated
        return out


class SearchIndex:
    """A loaded index folder; :meth:`search` / :meth:`query` return candidate listings, best first."""

    def __init__(
        self,
        directory: Path,
        vectors: np.ndarray,
        photos: pd.DataFrame,
        identities: pd.DataFrame,
        info: dict,
        backend: Backend,
        embedder: PhotoEmbedder | None = None,
        registry_root: str | os.PathLike[str] | None = None,
    ) -> None:
        self.directory, self.vectors, self.photos, self.identities = directory, vectors, photos, identities
        self.info, self.backend, self._embedder, self.registry_root = info, backend, embedder, registry_root
        self._starts = identities["start"].to_numpy(np.int64)
        self._counts = identities["count"].to_numpy(np.int64)
        self._photo_identity = np.repeat(np.arange(len(identities)), self._counts)
        self._paths = photos["path"].astype(object).to_numpy()
        columns = {c: identities[c].to_numpy(object) for c in ("species", "kind")}
        self._species, self._kind = columns["species"], columns["kind"]
        self._dates = np.array([str(d)[:10] if d is not None else "" for d in identities["date"]], dtype=object)
        self._ids = identities["identity_id"].astype(str).to_numpy(object)
        self._urls = identities["url"].to_numpy(object)
        self.has_coordinates = "lat" in identities and "lng" in identities
        nan = np.full(len(identities), np.nan)
        self._lat = pd.to_numeric(identities["lat"], errors="coerce").to_numpy(np.float64) if self.has_coordinates \
            else nan
        self._lng = pd.to_numeric(identities["lng"], errors="coerce").to_numpy(np.float64) if self.has_coordinates \
            else nan
        self._text = {c: identities[c].to_numpy(object) if c in identities else np.full(len(identities), None)
                      for c in TEXT_PLACE_COLUMNS}

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        backend: str | None = None,
        embedder: PhotoEmbedder | None = None,
        registry_root: str | os.PathLike[str] | None = None,
    ) -> SearchIndex:
        """Open an index folder (with or without the ``places`` columns); ``backend`` overrides the one it was built
        with (``exact`` and ``binary`` always work, ``auto`` picks by size)."""
        directory = Path(directory)
        info_path = directory / "index.json"
        if not info_path.exists():
            raise SearchError(f"{directory} is not a search index (no index.json): run `petid index build` first")
        info = json.loads(info_path.read_text(encoding="utf-8"))
        vectors = np.load(directory / "vectors.npy")
        photos = pd.read_parquet(directory / "photos.parquet")
        identities = pd.read_parquet(directory / "identities.parquet")
        text = [c for c in (*META_COLUMNS, *TEXT_PLACE_COLUMNS) if c in identities]
        identities = identities.astype({c: object for c in text})
        identities[text] = identities[text].where(identities[text].notna(), None)
        if len(vectors) != len(photos) or int(identities["count"].sum()) != len(photos):
            raise SearchError(f"index {directory} is inconsistent: {len(vectors)} vectors, {len(photos)} photos")
        chosen = backend or info.get("backend", "exact")
        try:
            engine = make_backend(chosen, vectors, directory)
        except ValueError as exc:
            raise SearchError(f"index {directory}: {exc}") from exc
        return cls(directory, vectors, photos, identities, info, engine, embedder, registry_root)

    def _model(self) -> PhotoEmbedder:
        if self._embedder is None:
            self._embedder = load_photo_embedder(self.info["model_ref"], self.registry_root)
        if self._embedder.model_id != self.info["model"]:
            raise SearchError(
                f"index {self.directory} was built with model {self.info['model']}, query embedder is "
                f"{self._embedder.model_id}: rebuild the index or query with the same model"
            )
        return self._embedder

    def embed_photos(self, photos: Sequence[str | os.PathLike[str]], text: str | None = None) -> np.ndarray:
        """The query photos' embeddings ``(m, D)`` with the index's model (loaded on first use); every photo is
        checked first (``SearchError`` for a missing, non-image or undecodable one). ``text`` (the finder's
        description) goes with every photo to a model that reads text; an image model refuses it."""
        for photo in photos:
            check_query_photo(photo)
        model = self._model()
        extra: dict[str, Any] = {}
        if text is not None:
            if not uses_text(model):
                raise SearchError(f"index {self.directory} was built with an image-only model ({model.model_id}): "
                                  "drop the text, or build the index with a model that reads text (a fused model)")
            extra["texts"] = [text] * len(photos)
        return model.embed([str(p) for p in photos], batch_size=max(1, min(32, len(photos))), **extra)

    def embed_photo(self, photo: str | os.PathLike[str], text: str | None = None) -> np.ndarray:
        """One query photo's embedding (see :meth:`embed_photos`)."""
        return self.embed_photos([photo], text)[0]

    def find_listing(self, listing: str) -> int:
        """Row of the listing whose ``identity_id`` or ``url`` is ``listing`` (URLs compare without scheme,
        ``www.`` and trailing slash); ``SearchError`` when none or several match."""
        text = str(listing).strip()
        hits = np.flatnonzero(self._ids == text)
        if not len(hits):
            key = _url_key(text)
            hits = np.flatnonzero(np.array([_url_key(u) == key for u in self._urls], dtype=bool)) if key else hits
        if len(hits) > 1:
            raise SearchError(f"url {text!r} names {len(hits)} listings in the index "
                              f"({', '.join(self._ids[hits[:3]])}): pass one identity id instead")
        if not len(hits):
            raise SearchError(f"listing {text!r} is not in index {self.directory} (no identity_id or url matches)")
        return int(hits[0])

    def _query_vectors(self, query: Any, text: str | None = None) -> tuple[np.ndarray, list[str | None]]:
        if query is None:
            raise SearchError("no query: give one or more photos, vectors or a listing")
        if isinstance(query, (str, os.PathLike)):
            query = [query]
        if isinstance(query, np.ndarray):
            vectors = query.reshape(1, -1) if query.ndim == 1 else query
            paths: list[str | None] = [None] * len(vectors)
        else:
            paths = [str(p) for p in query]
            if not paths:
                raise SearchError("no query photos given")
            vectors = self.embed_photos(paths, text)
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or not len(vectors):
            raise SearchError(f"query vectors must be (D,) or (m, D), got shape {vectors.shape}")
        if vectors.shape[1] != self.vectors.shape[1]:
            raise SearchError(f"query has dimension {vectors.shape[1]}, index has {self.vectors.shape[1]}")
        return normalise(vectors), paths

    def _allowed(self, species: str | None, kind: str | None, since: str | None, until: str | None) -> np.ndarray:
        allowed = np.ones(len(self.identities), dtype=bool)
        if species is not None:
            allowed &= (self._species == species) | (self._species == None)  # noqa: E711 (elementwise)
        if kind is not None:
            allowed &= (self._kind == kind) | (self._kind == None)  # noqa: E711
        if since is not None:
            allowed &= (self._dates >= since) | (self._dates == "")
        if until is not None:
            allowed &= (self._dates <= until) | (self._dates == "")
        return allowed

    def search(
        self,
        query: np.ndarray | str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        *,
        listing: str | None = None,
        top_k: int = 10,
        species: str | None = None,
        kind: str | None = None,
        since: str | dt.date | None = None,
        until: str | dt.date | None = None,
        aggregation: str = DEFAULT_AGGREGATION,
        near: tuple[float, float] | str | None = None,
        radius_km: float | None = None,
        include_unlocated: bool = False,
        text: str | None = None,
    ) -> SearchResult:
        """The best ``top_k`` listings for one animal: ``query`` (a photo path, several, a vector ``(D,)`` or
        vectors ``(m, D)``, with ``text`` — the finder's description — for an index built by a text-reading
        model) or ``listing`` (an indexed listing's ``identity_id`` or ``url``: its own photos, itself
        excluded). Filters and scoring: module doc; ``near`` is ``(lat, lng)`` or ``"LAT,LNG"``, ``radius_km``
        defaults to ``DEFAULT_RADIUS_KM``. Arguments are checked before any photo is embedded."""
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise SearchError(f"top_k must be a positive integer, got {top_k!r}")
        if kind is not None and kind not in ("lost", "found"):
            raise SearchError(f"kind must be 'lost' or 'found', got {kind!r}")
        since_iso, until_iso = _iso_date(since, "since"), _iso_date(until, "until")
        check_aggregation(aggregation)
        if near is not None:
            near = parse_point(near, "near") if isinstance(near, str) else check_point(near)
            radius_km = parse_radius(DEFAULT_RADIUS_KM if radius_km is None else radius_km, "radius_km")
            if not self.has_coordinates:
                raise SearchError(f"index {self.directory} has no listing coordinates (built without places, or "
                                  "before they existed): rebuild it with `petid index build --places ...` to search "
                                  "near a point")
        elif radius_km is not None:
            raise SearchError("radius_km needs near (a LAT,LNG point)")
        exclude = None
        if text is not None and (listing is not None or isinstance(query, np.ndarray)):
            raise SearchError("text goes with query photos, not with a listing or vectors")
        if listing is not None:
            if query is not None:
                raise SearchError("give query photos or a listing, not both")
            exclude = self.find_listing(listing)
            rows = slice(self._starts[exclude], self._starts[exclude] + self._counts[exclude])
            vectors, paths = normalise(self.vectors[rows]), [str(p) for p in self._paths[rows]]
        else:
            vectors, paths = self._query_vectors(query, text)
        allowed = self._allowed(species, kind, since_iso, until_iso)
        if exclude is not None:
            allowed[exclude] = False
        distance, outside, unlocated = None, 0, 0
        if near is not None:
            distance = haversine_km(near[0], near[1], self._lat, self._lng)
            located = np.isfinite(distance)
            inside = located & (distance <= radius_km)
            outside, unlocated = int((allowed & located & ~inside).sum()), int((allowed & ~located).sum())
            allowed &= inside | (~located & include_unlocated)
        chosen, scores, photo_scores, best_q, best_g = self._rank(vectors, allowed, int(top_k), aggregation)
        results = []
        for rank, (i, score, photo, q, g) in enumerate(zip(chosen, scores, photo_scores, best_q, best_g), start=1):
            results.append(self._row(rank, int(i), float(score), float(photo), paths[int(q)], int(g), distance))
        return SearchResult(
            results=results, aggregation=aggregation, query_photos=paths,
            query_listing=str(self._ids[exclude]) if exclude is not None else None, near=near,
            radius_km=radius_km if near is not None else None, include_unlocated=bool(include_unlocated),
            n_candidates=int(allowed.sum()), n_outside_radius=outside, n_unlocated=unlocated,
        )

    def query(
        self,
        query: np.ndarray | str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        top_k: int = 10,
        species: str | None = None,
        kind: str | None = None,
        since: str | dt.date | None = None,
        until: str | dt.date | None = None,
        **options: Any,
    ) -> list[dict[str, Any]]:
        """:meth:`search`'s result rows only (``options``: its other keyword arguments)."""
        return self.search(query, top_k=top_k, species=species, kind=kind, since=since, until=until,
                           **options).results

    def _rank(self, vectors: np.ndarray, allowed: np.ndarray, k: int,
              aggregation: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(listing rows, scores, best-pair scores, best query photo, best gallery photo row)`` of the best ``k``
        allowed listings, best first (ties: index order)."""
        n_allowed = int(allowed.sum())
        if not n_allowed:
            empty = np.zeros(0, np.int64)
            return empty, np.zeros(0, np.float32), np.zeros(0, np.float32), empty, empty
        want = min(n_allowed, 2 * k + 16)  # shortlist, scored again exactly in float32
        if self.backend.exhaustive:
            if parse_aggregation(aggregation) is None:  # mean of all pairs = mean query vector · listing mean
                per_photo = self.backend.scores(vectors.mean(axis=0))
                per_listing = np.add.reduceat(per_photo, self._starts) / self._counts
            else:
                sims = np.stack([self.backend.scores(v) for v in vectors], axis=1)  # (n_photos, m)
                per_listing = np.full(len(allowed), -np.inf, np.float32)
                rows = np.flatnonzero(allowed)
                per_listing[rows] = self._aggregate(sims.__getitem__, rows, len(vectors), aggregation)[0]
            shortlist = top_k_finite(np.where(allowed, per_listing, -np.inf), want)[0]
        elif int(self._counts[allowed].sum()) <= DIRECT_PHOTOS:
            shortlist = np.flatnonzero(allowed)
        else:
            shortlist = self._ann_shortlist(vectors, allowed, want)

        def exact(rows: np.ndarray) -> np.ndarray:
            return np.asarray(self.vectors[rows], np.float32) @ vectors.T

        scores, photo_scores, best_q, best_g = self._aggregate(exact, shortlist, len(vectors), aggregation)
        order = np.lexsort((shortlist, -scores))[:k]
        return shortlist[order], scores[order], photo_scores[order], best_q[order], best_g[order]

    def _aggregate(self, sims_of: Callable[[np.ndarray], np.ndarray], listings: np.ndarray, m: int,
                   aggregation: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``evaluation.matching.aggregate`` over each listing's photo pairs: ``sims_of(photo rows)`` gives
        ``(len(rows), m)`` cosines. Listings are grouped by photo count (no padding) in bounded blocks; returns
        ``(score, best-pair score, best query photo, best gallery photo row)`` per listing."""
        n = len(listings)
        score, photo = np.empty(n, np.float32), np.empty(n, np.float32)
        best_q, best_g = np.empty(n, np.int64), np.empty(n, np.int64)
        counts = self._counts[listings]
        for count in np.unique(counts).tolist():
            same = np.flatnonzero(counts == count)
            step = max(1, _PAIR_BLOCK // (count * m))
            for lo in range(0, len(same), step):
                part = same[lo:lo + step]
                starts = self._starts[listings[part]]
                rows = (starts[:, None] + np.arange(count)).reshape(-1)
                values = np.asarray(sims_of(rows), np.float32).reshape(len(part), count * m)  # photo-major, as matching
                s, best = aggregate(values, np.full(len(part), count * m), aggregation)
                score[part], photo[part] = s, values[np.arange(len(part)), best]
                best_q[part], best_g[part] = best % m, starts + best // m
        return score, photo, best_q, best_g

    def _ann_shortlist(self, vectors: np.ndarray, allowed: np.ndarray, want: int) -> np.ndarray:
        """Allowed listings owning the nearest photos of each query photo (and of the mean query vector), fetching
        more until ``want`` are found or every photo was seen."""
        probes = list(vectors) + ([normalise(vectors.mean(axis=0))] if len(vectors) > 1 else [])
        fetch = max(4 * want, 32)
        while True:
            seen: set[int] = set()
            for probe in probes:
                rows, _ = self.backend.search(probe, min(fetch, self.backend.size))
                listings = self._photo_identity[rows]
                seen.update(int(i) for i in np.unique(listings[allowed[listings]]))
            if len(seen) >= want or fetch >= self.backend.size:
                return np.array(sorted(seen), dtype=np.int64)
            fetch *= 4

    def _row(self, rank: int, ident: int, score: float, photo_score: float, query_photo: str | None, photo_row: int,
             distance: np.ndarray | None) -> dict[str, Any]:
        meta = self.identities.iloc[ident]
        km = float(distance[ident]) if distance is not None else math.nan
        return {
            "rank": rank,
            "identity_id": meta["identity_id"],
            "score": round(score, 6),
            "photo_score": round(photo_score, 6),
            "query_photo": query_photo,
            "best_photo": self._paths[photo_row],
            "distance_km": round(km, 3) if math.isfinite(km) else None,
            **{c: meta[c] for c in META_COLUMNS},
            **{c: self._text[c][ident] for c in TEXT_PLACE_COLUMNS},
            "n_photos": int(meta["n_photos"]),
        }


def top_k_finite(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`evaluation.ann.top_k` without the ``-inf`` (filtered-out) entries."""
    idx, vals = top_k(scores, k)
    keep = np.isfinite(vals)
    return idx[keep], vals[keep]


__all__ = [
    "DEFAULT_RADIUS_KM", "PLACE_COLUMNS", "SearchIndex", "SearchError", "SearchResult", "build_index",
    "check_aggregation", "check_point", "check_query_photo", "parse_point", "parse_radius", "ExactBackend",
    "UsearchBackend", "BinaryRerankBackend",
]
