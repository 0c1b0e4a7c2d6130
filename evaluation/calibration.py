"""What a match score means: the score read against genuine and impostor score distributions.

A raw cosine score says little to a volunteer; "only 1 in 2,000 unrelated listing pairs scores this high, and 70 %
of true pairs score at least this" does. :class:`ScoreCalibration` holds the two distributions as counts in bins of
``BIN_WIDTH`` over [-1, 1] (serialisable, a few kB) and turns a score into that statement.

Where the distributions come from, and how far to trust them:

- **Unit.** Matching scores listing pairs (an aggregation over all photo pairs, ``evaluation.matching``); the
  evaluation's ``pairs.csv`` holds single photo pairs. Under ``max`` or ``top<k>mean`` an unrelated listing pair's
  score is the best of several photo pairs, so it is *higher* than a typical unrelated photo pair: a photo-level
  calibration (:meth:`ScoreCalibration.from_pairs_csv`, ``unit="photo"``) understates how often impostors reach a
  listing score. Prefer :func:`listing_calibration`, which scores pseudo-listings with the matching code itself.
- **Pseudo-listings.** :func:`listing_calibration` splits each evaluation identity's photos into a "lost" and a
  "found" pseudo-listing (:func:`pseudo_listings`; 1–8 photos each by default, no source photo on both sides) and
  scores every found side against every lost side: same identity = genuine, different = impostor. In petid's
  corpus an identity is often one listing, so both halves come from one owner's camera on one day — easier than a
  real lost/found pair (different people, days apart, other light). The **genuine share is therefore optimistic**
  (an upper estimate of recall at that score). The **impostor rate is the number to lean on**: unrelated animals are
  unrelated whoever took the photos. It still depends on listing sizes (more photos, more chances for a high
  pair), and impostor pairs share listings, so they are not independent.
- **Small samples.** Counts are exact per bin; a score is counted from its bin's lower edge, so rates err by at most
  one bin towards "more common". When no impostor reached a score the statement says "fewer than 1 in N" (N = the
  impostor pairs measured) and :meth:`describe` gives the one-sided 95 % Clopper–Pearson upper bound.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from evaluation.matching import DEFAULT_AGGREGATION, Listings, parse_aggregation, score_matrix
from petid.errors import UserError

BIN_WIDTH = 0.001
LOWEST = -1.0
N_BINS = int(round((1.0 - LOWEST) / BIN_WIDTH)) + 1  # the last bin holds exactly 1.0
SMALL_IMPOSTORS, SMALL_GENUINE = 1000, 30  # below these the statement adds a small-sample note
UNITS = ("listing", "photo")


class CalibrationError(UserError, ValueError):
    """Unusable calibration input (no scores, bad columns, a malformed serialised calibration)."""


def _bins(scores: Any) -> np.ndarray:
    scores = np.clip(np.asarray(scores, np.float64).reshape(-1), LOWEST, 1.0)
    return np.clip(np.floor((scores - LOWEST) / BIN_WIDTH + 1e-6).astype(np.int64), 0, N_BINS - 1)


def histogram(scores: Any) -> np.ndarray:
    """Counts of ``scores`` (finite ones) per calibration bin."""
    scores = np.asarray(scores, np.float64).reshape(-1)
    return np.bincount(_bins(scores[np.isfinite(scores)]), minlength=N_BINS).astype(np.int64)


def _one_in(ratio: float) -> str:
    """``2000.0`` → ``2,000``; two significant figures from 10 on, one decimal below."""
    if ratio >= 10:
        return f"{float(f'{ratio:.2g}'):,.0f}"
    return f"{ratio:.1f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class ScoreCalibration:
    """Genuine and impostor score counts per bin (see the module doc for what they can and cannot say)."""

    unit: str  # "listing" (listing-pair scores under ``aggregation``) or "photo" (single photo pairs)
    aggregation: str | None
    model_version: str
    genuine: tuple[int, ...]  # counts per bin, N_BINS long
    impostor: tuple[int, ...]
    source: str = ""  # where the scores came from, in words

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise CalibrationError(f"calibration unit must be one of {UNITS}, got {self.unit!r}")
        if len(self.genuine) != N_BINS or len(self.impostor) != N_BINS:
            raise CalibrationError(f"calibration counts must have {N_BINS} bins")
        if self.aggregation is not None:
            parse_aggregation(self.aggregation)

    @classmethod
    def from_scores(cls, genuine: Any, impostor: Any, unit: str, aggregation: str | None, model_version: str,
                    source: str = "") -> ScoreCalibration:
        """From raw genuine (same animal) and impostor (different animals) scores."""
        return cls(unit, aggregation, model_version, tuple(histogram(genuine).tolist()),
                   tuple(histogram(impostor).tolist()), source)

    @classmethod
    def from_pairs_csv(cls, path: str | os.PathLike[str], column: str = "score_model",
                       model_version: str | None = None) -> ScoreCalibration:
        """From an evaluation report's ``pairs.csv`` (label ``same``, one ``score_<model>`` column per model):
        **photo-pair** scores (``unit="photo"``; module doc: they understate listing-level impostor rates)."""
        try:
            pairs = pd.read_csv(path)
        except (OSError, ValueError) as exc:
            raise CalibrationError(f"cannot read evaluation pairs {path}: {exc}") from exc
        missing = [c for c in ("same", column) if c not in pairs]
        if missing:
            raise CalibrationError(f"{path} lacks column(s) {missing} (columns: {list(pairs.columns)})")
        same = pairs["same"].astype(str).str.lower().isin(("true", "1")).to_numpy()
        scores = pd.to_numeric(pairs[column], errors="coerce").to_numpy(np.float64)
        return cls.from_scores(scores[same], scores[~same], "photo", None, model_version or column,
                               f"evaluation photo pairs {path} ({column})")

    @property
    def n_genuine(self) -> int:
        return int(self._genuine_at_or_above[0])

    @property
    def n_impostor(self) -> int:
        return int(self._impostor_at_or_above[0])

    @cached_property
    def _genuine_at_or_above(self) -> np.ndarray:
        return np.cumsum(np.asarray(self.genuine, np.int64)[::-1])[::-1]

    @cached_property
    def _impostor_at_or_above(self) -> np.ndarray:
        return np.cumsum(np.asarray(self.impostor, np.int64)[::-1])[::-1]

    def counts(self, scores: Any) -> tuple[np.ndarray, np.ndarray]:
        """(impostors, genuine pairs) scoring at or above each score (from its bin's lower edge)."""
        bins = _bins(scores)
        return self._impostor_at_or_above[bins], self._genuine_at_or_above[bins]

    def rates(self, scores: Any) -> tuple[np.ndarray, np.ndarray]:
        """(impostor exceedance rate, genuine share) per score; NaN where that side has no pairs. A rate of 0 means
        none of ``n_impostor`` reached the score (read it as "below 1 / n_impostor")."""
        impostors, genuine = self.counts(scores)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (impostors / self.n_impostor if self.n_impostor else np.full(len(impostors), np.nan),
                    genuine / self.n_genuine if self.n_genuine else np.full(len(genuine), np.nan))

    def describe(self, score: float) -> dict[str, Any]:
        """Everything about one score: counts, rates, the 95 % upper bound on the impostor rate, the statement."""
        from scipy.special import betaincinv  # the Beta quantile (scipy.stats costs seconds to import)

        impostors, genuine = (int(c[0]) for c in self.counts([score]))
        n_imp, n_gen = self.n_impostor, self.n_genuine
        upper = float(betaincinv(impostors + 1, n_imp - impostors, 0.95)) if impostors < n_imp else 1.0
        return {
            "score": float(score),
            "impostor_count": impostors, "n_impostor": n_imp,
            "impostor_rate": impostors / n_imp if n_imp else None,
            "impostor_rate_upper95": upper if n_imp else None,
            "genuine_count": genuine, "n_genuine": n_gen,
            "genuine_share": genuine / n_gen if n_gen else None,
            "statement": self.statement(score),
        }

    def statement(self, score: float) -> str:
        """One readable sentence, e.g. "Only 1 in 2,000 unrelated listing pairs scores this high (12 of 24,000);
        74 % of true pairs score at least this (37 of 50)."."""
        (impostors,), (genuine,) = (c.tolist() for c in self.counts([score]))
        n_imp, n_gen = self.n_impostor, self.n_genuine
        pairs = f"unrelated {self.unit} pairs"
        if n_imp == 0:
            text = f"No {pairs} were measured"
        elif impostors == 0:
            text = f"Fewer than 1 in {n_imp:,} {pairs} scores this high (none of the {n_imp:,} measured did)"
        else:
            only = "Only 1" if impostors / n_imp <= 0.01 else "1"
            text = f"{only} in {_one_in(n_imp / impostors)} {pairs} scores this high ({impostors:,} of {n_imp:,})"
        if n_gen:
            text += f"; {genuine / n_gen:.0%} of true pairs score at least this ({genuine:,} of {n_gen:,})"
        else:
            text += "; no true pairs were measured"
        if n_imp < SMALL_IMPOSTORS or n_gen < SMALL_GENUINE:
            text += f" [small sample: {n_gen:,} true, {n_imp:,} unrelated pairs]"
        return text + "."

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; counts stored sparsely as ``{bin index: count}``."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for side in ("genuine", "impostor"):
            counts = np.asarray(data[side])
            nonzero = np.flatnonzero(counts)
            data[side] = {str(int(i)): int(counts[i]) for i in nonzero}
        return {**data, "bin_width": BIN_WIDTH, "lowest": LOWEST, "n_bins": N_BINS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreCalibration:
        """The inverse of :meth:`to_dict`; ``CalibrationError`` for anything else."""
        try:
            if (data["bin_width"], data["lowest"], data["n_bins"]) != (BIN_WIDTH, LOWEST, N_BINS):
                raise CalibrationError("calibration was written with other bins; rebuild it")
            sides = {}
            for side in ("genuine", "impostor"):
                counts = np.zeros(N_BINS, np.int64)
                for index, count in data[side].items():
                    counts[int(index)] = int(count)
                sides[side] = tuple(counts.tolist())
            return cls(data["unit"], data["aggregation"], data["model_version"], sides["genuine"],
                       sides["impostor"], data.get("source", ""))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            if isinstance(exc, CalibrationError):
                raise
            raise CalibrationError(f"malformed calibration ({type(exc).__name__}: {exc})") from exc


def pseudo_listings(identities: Sequence[Any], order: Sequence[Any] | None = None,
                    sessions: Sequence[Any] | None = None, min_photos: int = 1, max_photos: int = 8,
                    seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(identity, lost rows, found rows)``: each identity's photos split into two pseudo-listings, deterministic
    in ``seed``. Photos are ordered by ``order`` (e.g. the path: file names number a camera's shots, so neighbours
    are bursts) and grouped by ``sessions`` (photos with one key, e.g. crops of one source photo, stay on one
    side); a random cut between groups separates the sides, and each side takes ``min_photos``–``max_photos``
    random photos from its part. Identities that cannot give both sides ``min_photos`` are skipped."""
    labels = np.asarray(identities, dtype=object).astype(str)
    keys = np.asarray(order if order is not None else np.arange(len(labels)), dtype=object).astype(str)
    groups = np.asarray(sessions if sessions is not None else np.arange(len(labels)), dtype=object).astype(str)
    rng = np.random.default_rng(seed)
    out = []
    for identity in sorted(set(labels.tolist())):
        rows = np.flatnonzero(labels == identity)
        rows = rows[np.argsort(keys[rows], kind="stable")]
        _, first = np.unique(groups[rows], return_index=True)
        session_order = groups[rows][np.sort(first)]
        sizes = np.array([(groups[rows] == s).sum() for s in session_order])
        before = np.cumsum(sizes)[:-1]
        valid = np.flatnonzero((before >= min_photos) & (len(rows) - before >= min_photos))
        if not len(valid):
            continue
        cut = int(before[rng.choice(valid)])
        rank = {s: i for i, s in enumerate(session_order)}
        position = np.array([rank[g] for g in groups[rows]])
        side = np.cumsum(sizes)[position] > cut  # False: the session ends before the cut
        lost_part, found_part = rows[~side], rows[side]
        n_lost = min(len(lost_part), int(rng.integers(min_photos, max_photos + 1)))
        n_found = min(len(found_part), int(rng.integers(min_photos, max_photos + 1)))
        out.append((identity, np.sort(rng.choice(lost_part, n_lost, replace=False)),
                    np.sort(rng.choice(found_part, n_found, replace=False))))
    return out


def pseudo_sides(vectors: np.ndarray, parts: list[tuple[str, np.ndarray, np.ndarray]],
                 paths: Sequence[Any] | None = None) -> tuple[Listings, Listings]:
    """The (lost, found) :class:`Listings` of :func:`pseudo_listings`' output, listing ids ``<identity>``, no
    metadata (every pair passes the filters as ``no-location``)."""
    paths = np.asarray(paths if paths is not None else [None] * len(vectors), dtype=object)
    sides = []
    for which in (1, 2):
        rows = np.concatenate([p[which] for p in parts]) if parts else np.zeros(0, np.int64)
        listing = np.repeat([p[0] for p in parts], [len(p[which]) for p in parts])
        frame = pd.DataFrame({"listing_id": [p[0] for p in parts]})
        photos = pd.DataFrame({"listing_id": listing, "path": paths[rows], "position": np.arange(len(rows))})
        sides.append(Listings.from_frames(frame, photos, np.asarray(vectors)[rows]))
    return sides[0], sides[1]


def listing_calibration(frame: pd.DataFrame, embeddings: np.ndarray, model_version: str,
                        aggregation: str = DEFAULT_AGGREGATION, session_column: str | None = None,
                        min_photos: int = 1, max_photos: int = 8, n_splits: int = 5,
                        seed: int = 0) -> ScoreCalibration:
    """Listing-level calibration from an evaluation's own photo embeddings: ``frame`` (``identity_id``, ``path``;
    rows = ``embeddings`` rows, L2-normalised) is split ``n_splits`` times into pseudo-listings
    (:func:`pseudo_listings`, photos ordered by path, grouped by ``session_column`` if given) and every found side
    is scored against every lost side with the matching code (same identity: genuine; else impostor)."""
    if "identity_id" not in frame or len(frame) != len(embeddings):
        raise CalibrationError("calibration needs a frame with identity_id, one row per embedding row")
    genuine = np.zeros(N_BINS, np.int64)
    impostor = np.zeros(N_BINS, np.int64)
    paths = frame["path"].astype(str).to_numpy() if "path" in frame else None
    sessions = frame[session_column].to_numpy() if session_column else None
    for split in range(n_splits):
        parts = pseudo_listings(frame["identity_id"].to_numpy(), paths, sessions, min_photos, max_photos, seed + split)
        if len(parts) < 2:
            raise CalibrationError(f"only {len(parts)} identities can be split into two pseudo-listings; "
                                   "calibration needs two or more")
        lost, found = pseudo_sides(embeddings, parts, paths)
        scores = score_matrix(found, lost, aggregation)
        same = np.eye(len(parts), dtype=bool)
        genuine += histogram(scores[same])
        impostor += histogram(scores[~same])
    return ScoreCalibration("listing", aggregation, model_version, tuple(genuine.tolist()), tuple(impostor.tolist()),
                            f"pseudo-listings of {frame['identity_id'].nunique()} identities, {n_splits} splits, "
                            f"{min_photos}-{max_photos} photos a side")


__all__ = ["BIN_WIDTH", "CalibrationError", "ScoreCalibration", "histogram", "listing_calibration",
           "pseudo_listings", "pseudo_sides"]
