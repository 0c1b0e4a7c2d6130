"""Validation + hashing throughput against imagededup's ``PHash().encode_images`` on the same photos, same run.

    uv run python bench/curation.py [--count 300] [--workers 2]

Photos: the Oxford pets sample from ../shared resized to ~1024 px when present, else photo-like synthetic images;
alternately saved as JPEG and WebP, plus near-duplicate variants (half size, recompressed, WebP re-encode) of some.
Prints one JSON object: images/s of imagededup, of ``hash_images`` with the fast decoding shortcuts and with full
decodes, the speedup, the bits the shortcuts change relative to imagehash on full decodes, the duplicate recall of
both modes on the planted variants, and ``process_images`` (validate + convert) throughput, first run and re-run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation.hashing import hamming, hash_images  # noqa: E402
from curation.images import process_images, process_stats  # noqa: E402
from curation.neardup import near_duplicate_pairs  # noqa: E402
from petid.records import catalogue_table  # noqa: E402
from petid_sample.images import photo  # noqa: E402

SHARED = Path(os.environ.get("PETID_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def build_photos(folder: Path, count: int, long_side: int) -> tuple[list[Path], list[tuple[Path, Path]], str]:
    """Write ``count`` originals (JPEG/WebP alternately) and variants of every 5th one; returns (all paths,
    (original, variant) pairs, where the photos came from)."""
    from PIL import Image

    real = sorted((SHARED / "data" / "oxford_pets_sample" / "images").glob("*/*.jpg"))[:count]
    origin = "oxford_pets_sample resized" if real else "synthetic photo-like"
    paths, planted = [], []
    for k in range(count):
        if real and k < len(real):
            img = Image.open(real[k]).convert("RGB")
            scale = long_side / max(img.size)
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
        else:
            img = photo(k, (long_side, long_side * 3 // 4))
        fmt, ext = ("JPEG", "jpg") if k % 2 == 0 else ("WEBP", "webp")
        path = folder / f"img_{k:04d}.{ext}"
        img.save(path, fmt, quality=90)
        paths.append(path)
        if k % 5 == 0:
            variant = folder / f"img_{k:04d}_variant.{'webp' if fmt == 'JPEG' else 'jpg'}"
            img.resize((img.width // 2, img.height // 2)).save(variant, "WEBP" if fmt == "JPEG" else "JPEG", quality=75)
            paths.append(variant)
            planted.append((path, variant))
    return paths, planted, origin


def timed(run: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process and its finished worker processes, result) of ``run()``."""

    def cpu() -> float:
        own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime

    cpu0, wall0 = cpu(), time.perf_counter()
    result = run()
    return time.perf_counter() - wall0, cpu() - cpu0, result


def recall(table, paths: list[Path], planted: list[tuple[Path, Path]], threshold: int) -> tuple[float, int]:
    index = {str(p): k for k, p in enumerate(paths)}
    ph = np.asarray(table.column("phash"), np.uint64)
    pairs = near_duplicate_pairs(ph, threshold)
    found = set(zip(pairs["i"].tolist(), pairs["j"].tolist()))
    planted_keys = {tuple(sorted((index[str(a)], index[str(b)]))) for a, b in planted}
    hit = sum(1 for key in planted_keys if key in found)
    return hit / len(planted_keys), len(found - planted_keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--long-side", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--threshold", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="runs per contender; the best is reported")
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="petid-bench-") as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        paths, planted, origin = build_photos(folder, args.count, args.long_side)
        n = len(paths)
        for path in paths:  # warm the page cache equally for everyone
            path.read_bytes()

        from imagededup.methods import PHash

        def imagededup_run(directory: Path, expected: int) -> None:
            encodings = PHash(verbose=False).encode_images(image_dir=str(directory), num_enc_workers=args.workers)
            assert len(encodings) == expected and all(v is not None for v in encodings.values())

        # Alternate the contenders and keep each one's best of --repeats (wall clock and CPU time of the process and
        # its workers, separately), so background load hits both alike.
        best = {name: [float("inf"), float("inf")] for name in ("imagededup", "fast", "full")}
        tables = {}
        for _ in range(args.repeats):
            for name, run in (("imagededup", lambda: imagededup_run(folder, n)),
                              ("fast", lambda: hash_images(paths, workers=args.workers, fast=True)),
                              ("full", lambda: hash_images(paths, workers=args.workers, fast=False))):
                wall, cpu, result = timed(run)
                best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
                tables[name] = result
        imagededup_s, fast_s, full_s = best["imagededup"][0], best["fast"][0], best["full"][0]
        fast, full = tables["fast"], tables["full"]

        # The same contest on each format alone: where the speedup comes from.
        per_format = {}
        for suffix in (".jpg", ".webp"):
            subset = folder.parent / suffix.lstrip(".")
            subset.mkdir()
            for path in paths:
                if path.suffix == suffix:
                    os.link(path, subset / path.name)
            members = sorted(subset.iterdir())
            walls = {"imagededup": float("inf"), "petid": float("inf")}
            for _ in range(args.repeats):
                walls["imagededup"] = min(walls["imagededup"], timed(lambda: imagededup_run(subset, len(members)))[0])
                walls["petid"] = min(walls["petid"], timed(lambda: hash_images(members, workers=args.workers))[0])
            per_format[suffix.lstrip(".")] = {
                "images": len(members),
                "imagededup_images_per_s": round(len(members) / walls["imagededup"], 1),
                "petid_hash_fast_images_per_s": round(len(members) / walls["petid"], 1),
                "speedup": round(walls["imagededup"] / walls["petid"], 2),
            }

        import imagehash
        from PIL import Image

        ref_p = np.array([int(str(imagehash.phash(Image.open(p))), 16) for p in paths], np.uint64)
        ref_d = np.array([int(str(imagehash.dhash(Image.open(p))), 16) for p in paths], np.uint64)
        p_bits = hamming(np.asarray(fast.column("phash")), ref_p)
        d_bits = hamming(np.asarray(fast.column("dhash")), ref_d)
        fast_recall, fast_false = recall(fast, paths, planted, args.threshold)
        full_recall, full_false = recall(full, paths, planted, args.threshold)

        catalogue = catalogue_table(
            {"identity_id": f"bench:{k}", "source": "bench", "path": str(p), "position": 0} for k, p in enumerate(paths)
        )
        start = time.perf_counter()
        images, rejected = process_images(catalogue, Path(tmp) / "out", workers=args.workers)
        convert_s = time.perf_counter() - start
        start = time.perf_counter()
        again, _ = process_images(catalogue, Path(tmp) / "out", workers=args.workers)
        rerun_s = time.perf_counter() - start

    print(json.dumps({
        "photos": origin,
        "images": n,
        "long_side": args.long_side,
        "workers": args.workers,
        "repeats": args.repeats,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "imagededup_images_per_s": round(n / imagededup_s, 1),
        "petid_hash_fast_images_per_s": round(n / fast_s, 1),
        "petid_hash_full_images_per_s": round(n / full_s, 1),
        "speedup_fast_vs_imagededup": round(imagededup_s / fast_s, 2),
        "speedup_full_vs_imagededup": round(imagededup_s / full_s, 2),
        "cpu_ms_per_image": {name: round(1000 * cpu / n, 2) for name, (_, cpu) in best.items()},
        "speedup_fast_vs_imagededup_cpu": round(best["imagededup"][1] / best["fast"][1], 2),
        "by_format": per_format,
        "full_decode_equals_imagehash": bool(np.array_equal(np.asarray(full.column("phash")), ref_p)
                                             and np.array_equal(np.asarray(full.column("dhash")), ref_d)),
        "fast_phash_bits_vs_imagehash_mean": round(float(p_bits.mean()), 3),
        "fast_phash_bits_vs_imagehash_max": int(p_bits.max()),
        "fast_dhash_bits_vs_imagehash_mean": round(float(d_bits.mean()), 3),
        "fast_dhash_bits_vs_imagehash_max": int(d_bits.max()),
        "planted_pairs": len(planted),
        "planted_recall_fast": fast_recall,
        "planted_recall_full": full_recall,
        "other_pairs_fast": fast_false,
        "other_pairs_full": full_false,
        "process_images_per_s": round(n / convert_s, 1),
        "process_images_rerun_per_s": round(n / rerun_s, 1),
        "process_images_rerun_stats": process_stats(again),
        "rejected": rejected.num_rows,
    }))


if __name__ == "__main__":
    main()
