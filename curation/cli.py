"""``petid dedup DIR``: perceptual duplicate groups of every image under a folder."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from curation.inputs import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, InputRefused, printable, stat_input
from petid.errors import UserError


def add_commands(sub: Any) -> None:
    parser = sub.add_parser(
        "dedup",
        help="hash every image under DIR and print its near-duplicate groups",
        description="Hash every image under DIR (pHash + dHash) and print groups of near-duplicates: pHash within "
        "--threshold bits and dHash within twice that (the curation rule). Only regular files (or symlinks to "
        "them) are read; FIFOs, devices, dangling links and files over --max-size are skipped and listed.",
    )
    parser.add_argument("dir", type=Path, metavar="DIR")
    parser.add_argument("--threshold", type=int, default=8, help="pHash Hamming threshold in bits (default 8)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (file names exact: undecodable bytes as \\udcXX escapes)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--full-decode", action="store_true", help="disable the JPEG draft / reduced WebP decoding")
    parser.add_argument("--max-size", type=float, default=DEFAULT_MAX_BYTES / 2**20, metavar="MB",
                        help=f"skip files larger than this many MiB (default {DEFAULT_MAX_BYTES // 2**20})")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"refuse images whose header claims more pixels (default {DEFAULT_MAX_PIXELS})")
    parser.set_defaults(func=_dedup)


def image_files(root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[list[Path], list[dict[str, str]]]:
    """Files under ``root`` (recursively, symlinked folders not followed) whose extension Pillow knows and that are
    regular files (a symlink counts when it resolves to one) of at most ``max_bytes``, sorted; and the skipped ones
    as ``{"path", "reason"}`` (FIFOs, devices, sockets, dangling links, oversized files, unreadable folders)."""
    from PIL import Image

    extensions = {ext.lower() for ext in Image.registered_extensions()}
    files: list[Path] = []
    skipped: list[dict[str, str]] = []

    def unreadable(exc: OSError) -> None:
        skipped.append({"path": str(exc.filename), "reason": f"cannot list folder: {exc.strerror}"})

    for dirpath, _, names in os.walk(root, onerror=unreadable):
        for name in names:
            if Path(name).suffix.lower() not in extensions:
                continue
            path = Path(dirpath) / name
            try:
                stat_input(path, max_bytes)  # follows symlinks; nothing is opened
            except InputRefused as exc:
                skipped.append({"path": str(path), "reason": _reason(exc, path)})
                continue
            except OSError as exc:
                skipped.append({"path": str(path), "reason": exc.strerror or type(exc).__name__})
                continue
            files.append(path)
    return sorted(files), sorted(skipped, key=lambda s: s["path"])


def _reason(exc: InputRefused, path: Path) -> str:
    message = str(exc)
    prefix = f"{printable(str(path))}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def duplicate_groups(
    paths: list[str], threshold: int, workers: int | None = None, fast: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS,
) -> dict[str, Any]:
    """``{"groups": [[path, ...], ...], "n_images": N, "errors": [...]}`` for the given image files."""
    import numpy as np

    from curation.hashing import hamming, hash_images
    from curation.neardup import connected_groups, near_duplicate_pairs

    table = hash_images(paths, workers=workers, fast=fast, max_bytes=max_bytes, max_pixels=max_pixels)
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
        raise UserError(f"{printable(str(args.dir))} is not a directory")
    if not 0 <= args.threshold < 64:
        raise UserError(f"--threshold must be in [0, 63], got {args.threshold}")
    if not args.max_size > 0:
        raise UserError(f"--max-size must be a positive number of MiB, got {args.max_size}")
    if args.max_pixels <= 0:
        raise UserError(f"--max-pixels must be positive, got {args.max_pixels}")
    max_bytes = int(args.max_size * 2**20)
    start = time.perf_counter()
    files, skipped = image_files(args.dir, max_bytes)
    paths = [str(p) for p in files]
    result = duplicate_groups(paths, args.threshold, workers=args.workers, fast=not args.full_decode,
                              max_bytes=max_bytes, max_pixels=args.max_pixels)
    result["skipped"] = skipped
    result["seconds"] = round(time.perf_counter() - start, 3)
    if args.json:
        print(json.dumps(result))  # ensure_ascii: a surrogate-escaped name stays exact and the output valid ASCII
        return 0
    print(f"{result['n_images']} images, {len(result['groups'])} duplicate groups ({result['seconds']} s)")
    for number, group in enumerate(result["groups"], 1):
        print(f"group {number}:")
        for path in group:
            print(f"  {printable(path)}")
    for error in result["errors"]:
        print(f"unreadable: {printable(error)}")
    for skip in skipped:
        print(f"skipped: {printable(skip['path'])}: {skip['reason']}")
    return 0
