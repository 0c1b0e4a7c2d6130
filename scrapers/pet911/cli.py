"""``petid parse-listing``, ``petid reparse`` and ``petid crawl`` for pet911.ru."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _default_raw_dir() -> Path:
    from petid.settings import Layout, petid_home

    return Layout(petid_home()).raw / "pet911"


def _parse_listing(args: argparse.Namespace) -> int:
    from scrapers.pet911.parse import NotAListingError, parse_listing

    path = Path(args.path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        record = parse_listing(data, args.url)
    except NotAListingError as exc:
        print(f"{path}: not a pet911 listing: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(record, ensure_ascii=False))
    return 0


def _reparse(args: argparse.Namespace) -> int:
    from scrapers.pet911.crawl import reparse

    raw_dir = Path(args.raw_dir) if args.raw_dir else _default_raw_dir()
    table = reparse(raw_dir)
    if args.out:
        import pyarrow.parquet as pq

        pq.write_table(table, args.out)
    print(json.dumps({"raw_dir": str(raw_dir), "listings": table.num_rows, "out": args.out}))
    return 0


def _crawl(args: argparse.Namespace) -> int:
    from urllib.parse import urlsplit

    from scrapers.pet911.crawl import CrawlConfig, crawl_listings, download_photos

    raw_dir = Path(args.raw_dir) if args.raw_dir else _default_raw_dir()
    hosts = ["pet911.ru", "cdn.pet911.ru", *args.allow_host]
    if args.allow_base_host:
        hosts.append(urlsplit(args.base_url).hostname or "")
    config = CrawlConfig(base_url=args.base_url, feeds=args.feed or ["lost", "found"], max_pages=args.max_pages,
                         stop_after_known=args.stop_after_known, rate_limit_per_s=args.rate_limit,
                         recheck_open=args.recheck_open, allowed_photo_hosts=hosts, max_retries=args.max_retries,
                         backoff_base_s=args.backoff)
    result = crawl_listings(config, raw_dir)
    out = {"listings": result.listings.num_rows, **result.stats, "failures": result.failures[:20]}
    if args.photos:
        photos = download_photos(result.listings, config, raw_dir)
        out["photos"] = {**photos.stats, "rows": photos.catalogue.num_rows}
    print(json.dumps(out, ensure_ascii=False))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the pet911 sub-commands."""
    p = sub.add_parser("parse-listing", help="parse a saved pet911 detail page and print one JSON object")
    p.add_argument("path")
    p.add_argument("--url", default=None, help="the page's URL (helps with relative links and old pages)")
    p.set_defaults(func=_parse_listing)

    p = sub.add_parser("reparse", help="rebuild pet911 listing records from the page archive (no network)")
    p.add_argument("--raw-dir", default=None, help="default: $PETID_HOME/raw/pet911")
    p.add_argument("--out", default=None, help="optional Parquet file for the table")
    p.set_defaults(func=_reparse)

    p = sub.add_parser("crawl", help="incremental, polite pet911 crawl into the raw archive")
    p.add_argument("--base-url", required=True)
    p.add_argument("--raw-dir", default=None, help="default: $PETID_HOME/raw/pet911")
    p.add_argument("--feed", action="append", help="all|lost|found[-cat|-dog][@lat,lng,r] (repeatable)")
    p.add_argument("--max-pages", type=int, default=20)
    p.add_argument("--stop-after-known", type=int, default=30)
    p.add_argument("--rate-limit", type=float, default=1.0, help="requests per second per host")
    p.add_argument("--max-retries", type=int, default=4)
    p.add_argument("--backoff", type=float, default=1.0, help="base of the exponential backoff, seconds")
    p.add_argument("--recheck-open", action="store_true")
    p.add_argument("--photos", action="store_true", help="also download photos")
    p.add_argument("--allow-host", action="append", default=[], help="extra allowed photo host")
    p.add_argument("--allow-base-host", action="store_true", help="allow photos from the base URL's host")
    p.set_defaults(func=_crawl)
