"""A nightly refresh costs what is new: the curation chain over a grown corpus against the same chain on the new
photos alone.

    uv run python bench/nightly.py [--count 3000] [--new-fraction 0.01] [--nights 3] [--workers 2]

Builds a corpus of ``--count`` photo-like images (``petid_sample.images``; three JPEGs to one WebP, about three per
identity), runs the chain the curation assets run — ``process_images`` -> ``hash_curated`` -> ``deduplicate`` ->
``crop_images`` with no detector — once cold, then for each of ``--nights`` nights adds ``--new-fraction`` new
photos and times (a) the refresh: the chain over the whole corpus in the same storage root, and (b) the chain on the
new photos alone in a fresh root; the fixed start-up is the chain on an empty and on a one-photo catalogue (fresh
roots; the first call, which pays one-time imports, is reported apart). Prints one JSON object: wall and CPU seconds
of each (the best night for refresh and new-only), their ratio, the work counters (``petid.work``) and whether
refresh <= 2 x new_only + startup (the target; one-photo warm start-up).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.curation import timed  # noqa: E402  (one timing helper for the curation benches)
from curation.cache import work_stats  # noqa: E402
from curation.crops import crop_images  # noqa: E402
from curation.dedup import deduplicate  # noqa: E402
from curation.images import hash_curated, process_images, process_stats  # noqa: E402
from petid.records import catalogue_table  # noqa: E402

PER_IDENTITY = 3


def _write_photo(args: tuple[Path, int, tuple[int, int]]) -> str:
    from petid_sample.images import photo

    folder, seed, size = args
    fmt, ext = ("WEBP", "webp") if seed % 4 == 3 else ("JPEG", "jpg")  # listing photos are mostly JPEG
    path = folder / f"photo_{seed:06d}.{ext}"
    photo(seed, size).save(path, fmt, quality=90)
    return str(path)


def write_photos(folder: Path, seeds: range, size: tuple[int, int], workers: int) -> list[str]:
    """Photo-like images for ``seeds``, written by ``workers`` processes; their paths in seed order."""
    folder.mkdir(parents=True, exist_ok=True)
    tasks = [(folder, seed, size) for seed in seeds]
    if workers <= 1 or len(tasks) < 8:
        return [_write_photo(t) for t in tasks]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_write_photo, tasks, chunksize=16))


def catalogue(paths: list[str], first_seed: int) -> pa.Table:
    return catalogue_table(
        {"identity_id": f"bench:{(first_seed + k) // PER_IDENTITY}", "source": "bench", "species": "dog",
         "path": p, "position": (first_seed + k) % PER_IDENTITY}
        for k, p in enumerate(paths)
    )


def chain(photos: pa.Table, root: Path, workers: int) -> dict[str, Any]:
    """The curation assets' chain (assets/curation.py) on ``photos`` under storage root ``root``; its counters."""
    images, rejected = process_images(photos, root / "images", workers=workers)
    hashes = hash_curated(images, workers=workers)
    hashes = hashes.append_column("image_id", images.column("image_id"))
    joined = images.join(hashes.select(["image_id", "phash", "dhash"]), keys="image_id", join_type="inner")
    result = deduplicate(joined)
    crops = crop_images(result.kept, None, root / "crops")
    return {"images": images.num_rows, "rejected": rejected.num_rows, "kept": result.kept.num_rows,
            "crops": crops.num_rows, "process": {**process_stats(images), **work_stats(images)},
            "hash": work_stats(hashes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--new-fraction", type=float, default=0.01)
    parser.add_argument("--nights", type=int, default=3, help="refreshes, each with its own new photos")
    parser.add_argument("--size", type=int, nargs=2, default=(640, 480), metavar=("W", "H"))
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    from PIL import Image

    Image.init()  # every Pillow plugin, once per process (else the first WebP the parent opens pays ~60 ms for it)
    size, workers = tuple(args.size), args.workers
    new_count = max(1, round(args.count * args.new_fraction))

    with tempfile.TemporaryDirectory(prefix="petid-nightly-") as tmp:
        tmp_path = Path(tmp)
        t0 = time.perf_counter()
        corpus = write_photos(tmp_path / "raw", range(args.count), size, workers)
        generate_s = time.perf_counter() - t0
        photos = catalogue(corpus, 0)  # the ingest assets' output: built outside the timed chain
        cold_wall, cold_cpu, cold = timed(lambda: chain(photos, tmp_path / "store", workers))

        startup: dict[str, float] = {}
        for name, paths in (("one_photo_first_call", corpus[:1]), ("empty", []), ("one_photo", corpus[:1])):
            photos = catalogue(paths, 0)
            wall, cpu, _ = timed(lambda: chain(photos, tmp_path / f"startup-{name}", workers))
            startup[name], startup[f"{name}_cpu"] = round(wall, 4), round(cpu, 4)

        nights = []
        for night in range(args.nights):
            first = args.count + night * new_count
            new = write_photos(tmp_path / "raw", range(first, first + new_count), size, workers)
            corpus += new
            everything, just_new = catalogue(corpus, 0), catalogue(new, first)
            r_wall, r_cpu, refresh = timed(lambda: chain(everything, tmp_path / "store", workers))
            n_wall, n_cpu, new_only = timed(lambda: chain(just_new, tmp_path / f"new-only-{night}", workers))
            nights.append({"corpus": len(corpus), "new": len(new), "refresh_s": round(r_wall, 4),
                           "refresh_cpu_s": round(r_cpu, 4), "new_only_s": round(n_wall, 4),
                           "new_only_cpu_s": round(n_cpu, 4), "refresh_work": refresh["process"],
                           "refresh_hash_work": refresh["hash"], "new_only_work": new_only["process"]})

    refresh_s, refresh_cpu = min(n["refresh_s"] for n in nights), min(n["refresh_cpu_s"] for n in nights)
    new_only_s, new_only_cpu = min(n["new_only_s"] for n in nights), min(n["new_only_cpu_s"] for n in nights)
    startup_s = startup["one_photo"]
    print(json.dumps({
        "corpus": args.count, "new_per_night": new_count, "size": list(size), "workers": workers,
        "generate_s": round(generate_s, 2), "cold_s": round(cold_wall, 3), "cold_cpu_s": round(cold_cpu, 3),
        "cold_work": cold["process"], "startup_s": startup, "refresh_s": refresh_s, "new_only_s": new_only_s,
        "ratio_refresh_over_new_only": round(refresh_s / new_only_s, 3),
        "cold_over_refresh": round(cold_wall / refresh_s, 1),
        "target": "refresh <= 2 * new_only + startup (one photo, warm), wall clock; and the same in CPU seconds",
        "target_met": refresh_s <= 2 * new_only_s + startup_s,
        "target_met_cpu": refresh_cpu <= 2 * new_only_cpu + startup["one_photo_cpu"], "nights": nights,
    }, indent=2))


if __name__ == "__main__":
    main()
