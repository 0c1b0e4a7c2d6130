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
    from scrapers.pet911.crawl import reparse_archive

    raw_dir = Path(args.raw_dir) if args.raw_dir else _default_raw_dir()
    result = reparse_archive(raw_dir)
    if args.out:
        import pyarrow.parquet as pq

        pq.write_table(result.listings, args.out)
    print(json.dumps({"raw_dir": str(raw_dir), "listings": result.listings.num_rows, "out": args.out,
                      "failed": len(result.failures), "failures": result.failures[:20]}, ensure_ascii=False))
    return 0


def _number(option: str, value: object, kind: type = float, minimum: float = 0.0, strict: bool = True) -> float:
    """``value`` as ``kind``, at least (``strict``: above) ``minimum``; a one-line ``UserError`` otherwise."""
    import math

    from petid.errors import UserError

    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    what = "an integer" if kind is int else "a number"
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{option} must be {what} {bound}, got {value!r}") from None
    if not math.isfinite(number) or number < minimum or (strict and number == minimum):
        raise UserError(f"{option} must be {what} {bound}, got {value!r}")
    return number


def _crawl(args: argparse.Namespace) -> int:
    from urllib.parse import urlsplit

    from petid.errors import UserError
    from scrapers.http import origin_entry
    from scrapers.pet911.catalog import parse_feed_spec
    from scrapers.pet911.crawl import CrawlConfig, crawl_listings, download_photos

    base = urlsplit(args.base_url)
    if base.scheme not in ("http", "https") or not base.hostname:
        raise UserError(f"--base-url must be an http(s) URL with a host, got {args.base_url!r}")
    rate = _number("--rate-limit", args.rate_limit)
    max_pages = int(_number("--max-pages", args.max_pages, int))
    stop_after_known = int(_number("--stop-after-known", args.stop_after_known, int))
    max_retries = int(_number("--max-retries", args.max_retries, int, strict=False))
    backoff = _number("--backoff", args.backoff, strict=False)
    deadline = _number("--deadline", args.deadline)
    max_crawl_delay = _number("--max-crawl-delay", args.max_crawl_delay, strict=False)
    feeds = args.feed or ["lost", "found"]
    for spec in feeds:
        parse_feed_spec(spec, args.base_url)  # FeedError (a UserError): one line, exit status 2
    raw_dir = Path(args.raw_dir) if args.raw_dir else _default_raw_dir()
    hosts = ["pet911.ru", "cdn.pet911.ru", *args.allow_host]
    if args.allow_base_host:
        hosts.append(origin_entry(args.base_url))
    config = CrawlConfig(base_url=args.base_url, feeds=feeds, max_pages=max_pages,
                         stop_after_known=stop_after_known, rate_limit_per_s=rate,
                         recheck_open=args.recheck_open, allowed_photo_hosts=hosts, max_retries=max_retries,
                         backoff_base_s=backoff, private_hosts=list(args.private_host), deadline_s=deadline,
                         max_crawl_delay_s=max_crawl_delay)
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
    # numbers are checked in _crawl, so a bad value is one line (exit status 2), not argparse's usage dump
    p.add_argument("--max-pages", default=20, metavar="N")
    p.add_argument("--stop-after-known", default=30, metavar="N")
    p.add_argument("--rate-limit", default=1.0, metavar="PER_S", help="requests per second per host (> 0)")
    p.add_argument("--max-retries", default=4, metavar="N")
    p.add_argument("--backoff", default=1.0, metavar="S", help="base of the exponential backoff, seconds")
    p.add_argument("--deadline", default=60.0, metavar="S", help="total seconds one request may take")
    p.add_argument("--max-crawl-delay", default=60.0, metavar="S", help="cap on a robots.txt Crawl-delay")
    p.add_argument("--recheck-open", action="store_true")
    p.add_argument("--photos", action="store_true", help="also download photos")
    p.add_argument("--allow-host", action="append", default=[],
                   help="extra allowed photo host: HOST (default port) or HOST:PORT (repeatable)")
    p.add_argument("--allow-base-host", action="store_true", help="allow photos from the base URL's host:port")
    p.add_argument("--private-host", action="append", default=[], metavar="HOST:PORT",
                   help="a trusted local site that may resolve to a private/loopback address (repeatable)")
    p.set_defaults(func=_crawl)
