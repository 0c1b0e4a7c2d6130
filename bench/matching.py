"""Matching speed: new found listings against open lost listings, filters first vs brute force then filter.

Synthetic but realistic spread (seeded): ``--lost`` open lost listings and ``--found`` new found listings,
``--photos`` photos each, random unit vectors of ``--dim`` (512: the trained model's ``TrainConfig.embedding_dim``,
the default and ``small`` presets alike; 1280: the frozen EfficientNet-Lite backbones the gate may keep in
production); dates uniform over a year, species 50/50 cat/dog, positions uniform within ±50 km of central Moscow
(10 % without coordinates, city "Москва" only, as Telegram posts). ``--planted`` found listings are noisy copies of
a lost listing that passes the filters (same species, 0–30 days later, within 5 km).

Methods, each in its own process (so peak RSS is its own): ``ours`` = ``evaluation.matching.match_listings`` (the
filters pick each query's candidates, then only their photo pairs are scored, one query at a time, single-threaded
BLAS; under ``mean`` one product of mean photo vectors per listing pair, photo pairs only for the top N's best
pair); ``naive`` = every photo pair as blocked float32 GEMMs (multi-threaded BLAS), aggregated for every listing
pair with the same ``aggregate``, then filtered, then top N. Prints one JSON object: per method seconds, listing and
photo pairs scored, peak RSS (``resource.getrusage``), recall@1 of the planted pairs; the share of identical
(query, candidate, rank) rows between the two; the load average (other processes inflate times).
Usage: uv run python bench/matching.py [--found 1000] [--lost 25000] [--photos 3] [--dim 512] [--aggregation max]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.matching import (  # noqa: E402 (after the path set-up)
    Listings,
    MatchConfig,
    aggregate,
    haversine_km,
    match_listings,
)

MOSCOW = (55.7558, 37.6173)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    out = np.empty((n, dim), np.float32)
    for lo in range(0, n, 20_000):
        block = rng.standard_normal((min(20_000, n - lo), dim), dtype=np.float32)
        out[lo:lo + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def _places(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    lat = MOSCOW[0] + rng.uniform(-50, 50, n) / 111.2
    lng = MOSCOW[1] + rng.uniform(-50, 50, n) / (111.3 * np.cos(np.radians(MOSCOW[0])))
    return lat, lng


def make_world(n_found: int, n_lost: int, photos: int, dim: int, planted: int, seed: int = 0) -> dict:
    """Listings frames, photo frames and vectors of both sides; ``planted``: found index → lost index."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-01-01")
    sides = {}
    for kind, n in (("lost", n_lost), ("found", n_found)):
        lat, lng = _places(rng, n)
        unlocated = rng.random(n) < 0.10
        frame = pd.DataFrame({
            "listing_id": [f"{kind[0]}{i}" for i in range(n)],
            "url": [f"https://pet911.ru/moskva/{kind}/r{kind[0]}{i}" for i in range(n)],
            "species": rng.choice(["cat", "dog"], n),
            "date": (start + rng.integers(0, 365, n).astype("timedelta64[D]")).astype(str),
            "lat": np.where(unlocated, np.nan, lat), "lng": np.where(unlocated, np.nan, lng), "city": "Москва",
        })
        sides[kind] = [frame, _unit(rng, n * photos, dim)]
    lost, found = sides["lost"][0], sides["found"][0]
    targets = rng.choice(np.flatnonzero(lost["lat"].notna().to_numpy()), planted, replace=False)
    pairs = dict(zip(range(planted), targets.tolist()))
    for f, t in pairs.items():
        found.loc[f, "species"] = lost.at[t, "species"]
        found.loc[f, "date"] = str(np.datetime64(lost.at[t, "date"]) + np.timedelta64(int(rng.integers(0, 31)), "D"))
        found.loc[f, ["lat", "lng"]] = [lost.at[t, "lat"] + rng.uniform(-.03, .03),
                                        lost.at[t, "lng"] + rng.uniform(-.03, .03)]
        centre = sides["lost"][1][t * photos:(t + 1) * photos].mean(axis=0)
        noisy = centre + 0.6 / np.sqrt(dim) * rng.standard_normal((photos, dim))
        sides["found"][1][f * photos:(f + 1) * photos] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    for kind in sides:
        frame = sides[kind][0]
        sides[kind].append(pd.DataFrame({"listing_id": np.repeat(frame["listing_id"].to_numpy(), photos),
                                         "path": [f"{kind}/{i}.jpg" for i in range(len(frame) * photos)]}))
    return {"sides": sides, "planted": pairs}


def run_ours(world: dict, config: MatchConfig) -> tuple[np.ndarray, dict]:
    started = time.perf_counter()
    lost = Listings.from_frames(world["sides"]["lost"][0], world["sides"]["lost"][2], world["sides"]["lost"][1])
    found = Listings.from_frames(world["sides"]["found"][0], world["sides"]["found"][2], world["sides"]["found"][1])
    built = time.perf_counter()
    result = match_listings(found, lost, "found", "bench", config)
    done = time.perf_counter()
    table = result.candidates
    rows = np.stack([[int(i[1:]) for i in table.column(c).to_pylist()] for c in ("query_id", "candidate_id")]
                    + [table.column("rank").to_numpy()], axis=1)  # ids are "f<n>" / "l<n>"
    return rows, {"build_s": round(built - started, 3), "match_s": round(done - built, 3),
                  "listing_pairs_scored": result.stats["listing_pairs_scored"],
                  "mean_products": result.stats["mean_products"],
                  "photo_pairs_scored": result.stats["photo_pairs_scored"],
                  "rules": {k: v for k, v in result.stats.items() if k.startswith("rule_")}}


def run_naive(world: dict, config: MatchConfig, photos: int, block: int = 1000) -> tuple[np.ndarray, dict]:
    """Every photo pair (GEMM per block of gallery listings), aggregated per listing pair, then filtered."""
    started = time.perf_counter()
    (lost, lost_vectors, _), (found, found_vectors, _) = world["sides"]["lost"], world["sides"]["found"]
    n_q, n_g = len(found), len(lost)
    days = {k: pd.to_datetime(f["date"]).to_numpy("datetime64[D]").astype(np.int64) for k, f in
            (("lost", lost), ("found", found))}
    q_species, g_species = found["species"].to_numpy(), lost["species"].to_numpy()
    q_lat, q_lng = found["lat"].to_numpy(), found["lng"].to_numpy()
    best_scores = np.full((n_q, 0), -np.inf, np.float32)
    best_ids = np.zeros((n_q, 0), np.int64)
    for lo in range(0, n_g, block):
        hi = min(n_g, lo + block)
        sims = found_vectors @ lost_vectors[lo * photos:hi * photos].T  # (n_q·p, B·p)
        values = sims.reshape(n_q, photos, hi - lo, photos).transpose(0, 2, 1, 3).reshape(-1, photos * photos)
        scores = aggregate(values, np.full(len(values), photos * photos), config.aggregation)[0].reshape(n_q, -1)
        gap = days["found"][:, None] - days["lost"][None, lo:hi]
        keep = (gap >= -config.slack_days) & (gap <= config.window_days)
        keep &= q_species[:, None] == g_species[None, lo:hi]
        km = haversine_km(q_lat[:, None], q_lng[:, None], lost["lat"].to_numpy()[None, lo:hi],
                          lost["lng"].to_numpy()[None, lo:hi])
        keep &= np.where(np.isnan(km), True, km <= config.max_km)  # no coordinates: same city ("Москва") here
        scores = np.where(keep, scores, -np.inf)
        best_scores = np.concatenate([best_scores, scores], axis=1)
        best_ids = np.concatenate([best_ids, np.broadcast_to(np.arange(lo, hi), scores.shape)], axis=1)
        top = np.argpartition(-best_scores, config.top_n - 1, axis=1)[:, :config.top_n]
        best_scores = np.take_along_axis(best_scores, top, 1)
        best_ids = np.take_along_axis(best_ids, top, 1)
    order = np.lexsort((best_ids, -best_scores), axis=1)
    best_scores, best_ids = np.take_along_axis(best_scores, order, 1), np.take_along_axis(best_ids, order, 1)
    rows = [(q, int(best_ids[q, r]), r + 1) for q in range(n_q) for r in range(config.top_n)
            if np.isfinite(best_scores[q, r])]
    return np.array(rows, np.int64).reshape(-1, 3), {
        "match_s": round(time.perf_counter() - started, 3),
        "listing_pairs_scored": n_q * n_g, "photo_pairs_scored": n_q * n_g * photos * photos}


def child(args: argparse.Namespace) -> None:
    world = make_world(args.found, args.lost, args.photos, args.dim, args.planted, args.seed)
    data_mb = _peak_mb()
    config = MatchConfig(aggregation=args.aggregation or MatchConfig().aggregation)
    rows, info = run_ours(world, config) if args.method == "ours" else run_naive(world, config, args.photos)
    np.save(args.out, rows)
    firsts = {int(q): int(c) for q, c, r in rows if r == 1}
    recall = np.mean([firsts.get(f) == t for f, t in world["planted"].items()]) if world["planted"] else None
    print(json.dumps({"method": args.method, "aggregation": config.aggregation, **info,
                      "planted_recall@1": None if recall is None else round(float(recall), 4),
                      "peak_rss_mb": round(_peak_mb(), 1), "peak_rss_after_data_mb": round(data_mb, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--found", type=int, default=1000)
    parser.add_argument("--lost", type=int, default=25_000)
    parser.add_argument("--photos", type=int, default=3)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--planted", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--aggregation", help="default: MatchConfig's (mean)")
    parser.add_argument("--methods", default="ours,naive")
    parser.add_argument("--method", help=argparse.SUPPRESS)  # internal: run one method in this process
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:
        return child(args)
    results, rows = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            out = os.path.join(tmp, f"{method}.npy")
            command = [sys.executable, __file__, "--method", method, "--out", out, "--found", str(args.found),
                       "--lost", str(args.lost), "--photos", str(args.photos), "--dim", str(args.dim),
                       "--planted", str(args.planted), "--seed", str(args.seed),
                       *(["--aggregation", args.aggregation] if args.aggregation else [])]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results[method] = json.loads(done.stdout.strip().splitlines()[-1])
            rows[method] = {tuple(r) for r in np.load(out).tolist()}
    report = {"found": args.found, "lost": args.lost, "photos_per_listing": args.photos, "dim": args.dim,
              "cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()], "methods": results}
    if {"ours", "naive"} <= set(rows):
        union = rows["ours"] | rows["naive"]
        report["identical_top_rows"] = round(len(rows["ours"] & rows["naive"]) / max(len(union), 1), 5)
        report["speedup"] = round(results["naive"]["match_s"] / results["ours"]["match_s"], 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
