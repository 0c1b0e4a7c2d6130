"""Photo search ("find my pet"): a gallery of every photo's embedding with its animal's metadata.

Index folder:
- ``vectors.npy``: ``(n_photos, D)`` L2-normalised, float16 by default (half the memory; see bench/search.py for
  the recall impact) or float32; rows grouped by identity;
- ``photos.parquet``: one row per vector: ``identity_id``, ``path``, ``source``, ``species``, ``kind``, ``date``,
  ``url``, ``position``;
- ``identities.parquet``: one row per animal: ``identity_id``, ``source``, ``species``, ``kind``, ``date``, ``url``,
  ``best_photo`` (its first photo), ``start``/``count`` (its rows in ``vectors.npy``), ``n_photos``;
- ``index.json``: model id/ref, dim, dtype, backend, counts; ``usearch.index`` with the usearch backend,
  ``binary_codes.npy`` (packed sign bits) with the binary backend, the default above ``BINARY_THRESHOLD`` photos.

Queries return one row per candidate animal (its best-scoring photo's score). Filters, as in Kashtanka, only drop
animals known not to fit: ``species`` (same species), ``kind`` (a found dog's owner searches ``kind="lost"``: the
opposite kind) and ``since``/``until`` (date window) keep animals whose value is unknown.
"""

from __future__ import annotations

import datetime as dt
import json
import os
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
from evaluation.embeddings import PhotoEmbedder, embed_frame, load_photo_embedder, normalise, photo_frame
from petid.errors import UserError

META_COLUMNS = ("source", "species", "kind", "date", "url")
DTYPES = {"float16": np.float16, "float32": np.float32}


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
) -> dict:
    """Embed every photo of ``frame`` and write the index folder (see module doc); returns ``index.json``'s content
    (``n_vectors``, ``n_identities``, ``dim``, ``dtype``, ``backend``, ``model``, ``model_ref``, ``path``).
    ``backend`` ``"auto"``/``None`` picks ``binary`` above ``BINARY_THRESHOLD`` photos, else ``exact``."""
    if dtype not in DTYPES:
        raise SearchError(f"unknown vector dtype {dtype!r}: choose one of {sorted(DTYPES)}")
    if backend not in (*BACKENDS, "auto", None):
        raise SearchError(f"unknown search backend {backend!r}: choose one of {BACKENDS} or 'auto'")
    gallery = _gallery_frame(frame)
    if gallery.empty:
        raise SearchError("cannot build a search index from an empty gallery")
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


def _iso_date(value: str | dt.date | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        return (value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])).isoformat()
    except ValueError as exc:
        raise SearchError(f"{name} must be an ISO date (YYYY-MM-DD), got {value!r}") from exc


class SearchIndex:
    """A loaded index folder; :meth:`query` returns candidate animals, best first."""

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
        columns = {c: identities[c].to_numpy(object) for c in ("species", "kind")}
        self._species, self._kind = columns["species"], columns["kind"]
        self._dates = np.array([str(d)[:10] if d is not None else "" for d in identities["date"]], dtype=object)

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        backend: str | None = None,
        embedder: PhotoEmbedder | None = None,
        registry_root: str | os.PathLike[str] | None = None,
    ) -> SearchIndex:
        """Open an index folder; ``backend`` overrides the one it was built with (``exact`` and ``binary`` always
        work, ``auto`` picks by size)."""
        directory = Path(directory)
        info_path = directory / "index.json"
        if not info_path.exists():
            raise SearchError(f"{directory} is not a search index (no index.json): run `petid index build` first")
        info = json.loads(info_path.read_text(encoding="utf-8"))
        vectors = np.load(directory / "vectors.npy")
        photos = pd.read_parquet(directory / "photos.parquet")
        identities = pd.read_parquet(directory / "identities.parquet")
        identities = identities.astype({c: object for c in META_COLUMNS})
        identities[list(META_COLUMNS)] = identities[list(META_COLUMNS)].where(identities[list(META_COLUMNS)].notna(), None)
        if len(vectors) != len(photos) or int(identities["count"].sum()) != len(photos):
            raise SearchError(f"index {directory} is inconsistent: {len(vectors)} vectors, {len(photos)} photos")
        chosen = backend or info.get("backend", "exact")
        try:
            engine = make_backend(chosen, vectors, directory)
        except ValueError as exc:
            raise SearchError(f"index {directory}: {exc}") from exc
        return cls(directory, vectors, photos, identities, info, engine, embedder, registry_root)

    def embed_photo(self, photo: str | os.PathLike[str]) -> np.ndarray:
        """The query photo's embedding with the index's model (loaded on first use); ``SearchError`` for a missing,
        non-image or undecodable photo."""
        check_query_photo(photo)
        if self._embedder is None:
            self._embedder = load_photo_embedder(self.info["model_ref"], self.registry_root)
        if self._embedder.model_id != self.info["model"]:
            raise SearchError(
                f"index {self.directory} was built with model {self.info['model']}, query embedder is "
                f"{self._embedder.model_id}: rebuild the index or query with the same model"
            )
        return self._embedder.embed([str(photo)], batch_size=1)[0]

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

    def query(
        self,
        query: np.ndarray | str | os.PathLike[str],
        top_k: int = 10,
        species: str | None = None,
        kind: str | None = None,
        since: str | dt.date | None = None,
        until: str | dt.date | None = None,
    ) -> list[dict[str, Any]]:
        """Best ``top_k`` animals for a query vector or photo path: ``rank``, ``identity_id``, ``score``,
        ``best_photo`` (its best-matching photo), ``photo_score``-ordered metadata ``source``, ``species``, ``kind``,
        ``date``, ``url``, ``n_photos``."""
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise SearchError(f"top_k must be a positive integer, got {top_k!r}")
        if kind is not None and kind not in ("lost", "found"):
            raise SearchError(f"kind must be 'lost' or 'found', got {kind!r}")
        since_iso, until_iso = _iso_date(since, "since"), _iso_date(until, "until")
        vector = self.embed_photo(query) if isinstance(query, (str, os.PathLike)) else np.asarray(query, np.float32)
        vector = normalise(vector.reshape(-1))
        if vector.shape[0] != self.vectors.shape[1]:
            raise SearchError(f"query has dimension {vector.shape[0]}, index has {self.vectors.shape[1]}")
        allowed = self._allowed(species, kind, since_iso, until_iso)
        if self.backend.exhaustive:
            scores = self.backend.scores(vector)
            per_identity = np.maximum.reduceat(scores, self._starts) if len(scores) else scores
            per_identity = np.where(allowed, per_identity, -np.inf)
            chosen, chosen_scores = top_k_finite(per_identity, top_k)
            best_rows = [int(self._starts[i] + np.argmax(scores[self._starts[i]: self._starts[i] + self._counts[i]]))
                         for i in chosen]
        else:
            chosen, chosen_scores, best_rows = self._approximate(vector, top_k, allowed)
        return [self._row(rank, int(i), float(s), row) for rank, (i, s, row) in
                enumerate(zip(chosen, chosen_scores, best_rows), start=1)]

    def _approximate(self, vector: np.ndarray, k: int, allowed: np.ndarray) -> tuple[list, list, list]:
        """Over-fetch nearest photos from the ANN backend until ``k`` allowed animals are found (or all seen)."""
        fetch = max(4 * k, 32)
        while True:
            rows, scores = self.backend.search(vector, fetch)
            chosen, chosen_scores, best_rows, seen = [], [], [], set()
            for row, score in zip(rows.tolist(), scores.tolist()):
                ident = int(self._photo_identity[row])
                if ident in seen or not allowed[ident]:
                    continue
                seen.add(ident)
                chosen.append(ident), chosen_scores.append(score), best_rows.append(row)
                if len(chosen) == k:
                    return chosen, chosen_scores, best_rows
            if fetch >= self.backend.size:
                return chosen, chosen_scores, best_rows
            fetch *= 4

    def _row(self, rank: int, ident: int, score: float, photo_row: int) -> dict[str, Any]:
        meta = self.identities.iloc[ident]
        return {
            "rank": rank,
            "identity_id": meta["identity_id"],
            "score": round(score, 6),
            "best_photo": self.photos.at[photo_row, "path"],
            **{c: meta[c] for c in META_COLUMNS},
            "n_photos": int(meta["n_photos"]),
        }


def top_k_finite(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`evaluation.ann.top_k` without the ``-inf`` (filtered-out) entries."""
    idx, vals = top_k(scores, k)
    keep = np.isfinite(vals)
    return idx[keep], vals[keep]


__all__ = ["SearchIndex", "SearchError", "build_index", "check_query_photo", "ExactBackend", "UsearchBackend", "BinaryRerankBackend"]
