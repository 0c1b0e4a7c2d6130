"""``petid dedup DIR``: perceptual duplicate groups of every image under a folder."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any


def add_commands(sub: Any) -> None:
    parser = sub.add_parser(
        "dedup",
        help="hash every image under DIR and print its near-duplicate groups",
        description="Hash every image under DIR (pHash + dHash) and print groups of near-duplicates: pHash within "
        "--threshold bits and dHash within twice that (the curation rule).",
    )
    parser.add_argument("dir", type=Path, metavar="DIR")
    parser.add_argument("--threshold", type=int, default=8, help="pHash Hamming threshold in bits (default 8)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--full-decode", action="store_true", help="disable the JPEG draft / reduced WebP decoding")
    parser.set_defaults(func=_dedup)


def image_files(root: Path) -> list[Path]:
    """Every file under ``root`` (recursively) whose extension Pillow knows, sorted."""
    from PIL import Image

    extensions = {ext.lower() for ext in Image.registered_extensions()}
    return sorted(
        Path(dirpath) / name
        for dirpath, _, names in os.walk(root)
        for name in names
        if Path(name).suffix.lower() in extensions
    )


def duplicate_groups(paths: list[str], threshold: int, workers: int | None = None, fast: bool = True) -> dict[str, Any]:
    """``{"groups": [[path, ...], ...], "n_images": N, "errors": [...]}`` for the given image files."""
    import numpy as np

    from curation.hashing import hamming, hash_images
    from curation.neardup import connected_groups, near_duplicate_pairs

    table = hash_images(paths, workers=workers, fast=fast)
    ok = np.flatnonzero(~np.asarray(table.column("error").is_valid()))
    ph = np.asarray(table.column("phash").fill_null(0), np.uint64)[ok]
    dh = np.asarray(table.column("dhash").fill_null(0), np.uint64)[ok]
    pairs = near_duplicate_pairs(ph, threshold)
    confirmed = hamming(dh[pairs["i"]], dh[pairs["j"]]) <= 2 * threshold
    labels = connected_groups(len(ok), pairs["i"][confirmed], pairs["j"][confirmed])
    members: dict[int, list[str]] = {}
    for row, label in zip(ok.tolist(), labels.tolist()):
        members.setdefault(label, []).append(paths[row])
    groups = sorted((sorted(g) for g in members.values() if len(g) > 1), key=lambda g: g[0])
    errors = [e for e in table.column("error").to_pylist() if e]
    return {"groups": groups, "n_images": len(paths), "errors": errors}


def _dedup(args: argparse.Namespace) -> int:
    if not args.dir.is_dir():
        print(f"petid dedup: {args.dir} is not a directory")
        return 2
    if not 0 <= args.threshold < 64:
        print(f"petid dedup: --threshold must be in [0, 63], got {args.threshold}")
        return 2
    start = time.perf_counter()
    paths = [str(p) for p in image_files(args.dir)]
    result = duplicate_groups(paths, args.threshold, workers=args.workers, fast=not args.full_decode)
    result["seconds"] = round(time.perf_counter() - start, 3)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['n_images']} images, {len(result['groups'])} duplicate groups ({result['seconds']} s)")
    for number, group in enumerate(result["groups"], 1):
        print(f"group {number}:")
        for path in group:
            print(f"  {path}")
    for error in result["errors"]:
        print(f"unreadable: {error}")
    return 0
