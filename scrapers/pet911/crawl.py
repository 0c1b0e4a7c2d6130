"""Incremental, polite, resumable pet911 crawl.

``crawl_listings``: walk each feed newest first (enqueueing unknown ids) until ``stop_after_known`` consecutive
known ids (promoted cards do not count) or ``max_pages``; then fetch every queued detail page. Every fetched page is
archived (gzip, content-addressed) before it is parsed; state lives in ``raw_dir/state.sqlite``, so a killed run
resumes (an interrupted feed walk is re-walked past the page where it stopped) and a rerun adds no duplicates.
``download_photos`` fetches gallery photos from allowed hosts only, checks magic bytes and stores them
content-addressed; a catalogue row's ``text`` is ``catalogue_text`` (the listing's fields and description with
personal data stripped), while the archived page and the listing table keep the listing as published. ``reparse``
rebuilds the listing table from the archive without the network.

Every request — and every redirect hop — stays inside a ``UrlPolicy``: pages on the base URL's host and port
(``allowed_page_hosts``), photos on ``allowed_photo_hosts`` (``host`` = default port, ``host:port`` = that port), and
no private/loopback/link-local address unless that exact ``host:port`` is in ``private_hosts`` (the sample site and
tests opt in so). A page that cannot be fetched or parsed is recorded as a failure with its reason and the crawl
goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pyarrow as pa

from petid.paths import content_path, store_content
from petid.records import catalogue_table, empty_catalogue
from petid.text import listing_text
from scrapers.http import (
    DEFAULT_USER_AGENT,
    HttpError,
    HttpStatusError,
    PoliteClient,
    Response,
    UrlPolicy,
    origin_entry,
)
from scrapers.pet911.archive import archive_page, archived_digests, read_page
from scrapers.pet911.catalog import CatalogError, FeedError, page_url, parse_catalog, parse_feed_spec
from scrapers.pet911.parse import LISTING_KEYS, NotAListingError, is_valid_listing_id, parse_listing
from scrapers.pet911.state import CrawlState

LISTINGS_SCHEMA = pa.schema([
    ("listing_id", pa.string()), ("kind", pa.string()), ("species", pa.string()), ("breed", pa.string()),
    ("sex", pa.string()), ("date_added", pa.string()), ("date_event", pa.string()), ("city", pa.string()),
    ("address", pa.string()), ("lat", pa.float64()), ("lng", pa.float64()), ("title", pa.string()),
    ("description", pa.string()), ("photo_urls", pa.list_(pa.string())), ("closed", pa.bool_()),
    ("url", pa.string()), ("page_sha256", pa.string()),
])
IMAGE_MAGIC = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF87a", ".gif"), (b"GIF89a", ".gif"))


@dataclass
class CrawlConfig:
    """Everything a crawl needs; defaults are polite settings for the live site."""

    base_url: str = "https://pet911.ru"
    feeds: list[str] = field(default_factory=lambda: ["lost", "found"])  # see catalog.parse_feed_spec
    max_pages: int = 20
    stop_after_known: int = 30
    rate_limit_per_s: float = 1.0
    jitter: float = 0.2
    user_agent: str = DEFAULT_USER_AGENT
    allowed_photo_hosts: list[str] = field(default_factory=lambda: ["pet911.ru", "cdn.pet911.ru"])
    recheck_open: bool = False
    recheck_limit: int = 200
    timeout_s: float = 20.0
    connect_timeout_s: float = 10.0
    max_retries: int = 4
    backoff_base_s: float = 1.0
    max_retry_after_s: float = 300.0
    max_response_bytes: int = 20_000_000
    obey_robots: bool = True
    probe_ids: list[str] = field(default_factory=list)  # id-probe strategy: ids to look up via /ajax/check-pet
    # pages (and their redirect hops) may only come from these hosts; None = the base URL's host and port
    allowed_page_hosts: list[str] | None = None
    # "host:port" entries that may resolve to private/loopback addresses: only a trusted local site (the sample
    # site, tests), never needed for the live site. Empty = every private address is refused.
    private_hosts: list[str] = field(default_factory=list)
    # "host:port" -> "host:port" actually dialled (see scrapers.http.UrlPolicy.routes): a local site keeps one stable
    # origin in the stored URLs whatever port its server has this run
    routes: dict[str, str] = field(default_factory=dict)
    deadline_s: float = 60.0  # total wall time of one exchange (connect, headers, whole body); timeout_s is per read
    max_crawl_delay_s: float = 60.0  # cap on a robots.txt Crawl-delay (which only slows its own host)

    def page_hosts(self) -> list[str]:
        """The hosts pages may come from: ``allowed_page_hosts``, or the base URL's host (with its port, if not
        the scheme's default)."""
        if self.allowed_page_hosts is not None:
            return list(self.allowed_page_hosts)
        parts = urlsplit(self.base_url)
        return [origin_entry(self.base_url) if parts.port is not None else (parts.hostname or "")]

    def page_policy(self) -> UrlPolicy:
        return UrlPolicy(allowed_hosts=self.page_hosts(), private_hosts=list(self.private_hosts), routes=self.routes)

    def photo_policy(self) -> UrlPolicy:
        return UrlPolicy(allowed_hosts=list(self.allowed_photo_hosts), private_hosts=list(self.private_hosts),
                         routes=self.routes)

    def client(self, policy: UrlPolicy | None = None) -> PoliteClient:
        """A client for this crawl; ``policy`` defaults to ``page_policy()``."""
        return PoliteClient(user_agent=self.user_agent, rate_limit_per_s=self.rate_limit_per_s, jitter=self.jitter,
                            timeout_s=self.timeout_s, connect_timeout_s=self.connect_timeout_s,
                            max_retries=self.max_retries, backoff_base_s=self.backoff_base_s,
                            max_retry_after_s=self.max_retry_after_s, max_response_bytes=self.max_response_bytes,
                            obey_robots=self.obey_robots, policy=policy or self.page_policy(),
                            deadline_s=self.deadline_s, max_crawl_delay_s=self.max_crawl_delay_s)

    def feed_urls(self) -> list[str]:
        """Every configured feed as a URL; raises ``FeedError`` (a ``UserError``) for an invalid spec."""
        if isinstance(self.feeds, str):
            raise FeedError(f"feeds must be a list of feed specs, not the string {self.feeds!r}")
        return [parse_feed_spec(spec, self.base_url) for spec in self.feeds]


@dataclass
class CrawlResult:
    listings: pa.Table  # LISTINGS_SCHEMA: one row per known listing
    # new, updated, closed, failed, pages_fetched, queued (ints); crawl_delay_s: the effective seconds between
    # requests to the base host (rate limit or capped robots.txt Crawl-delay); robots_crawl_delay_s: as declared
    stats: dict[str, float]
    failures: list[dict[str, Any]]  # {"url", "reason"} (+ "listing_id" for detail pages)


@dataclass
class ReparseResult:
    listings: pa.Table  # LISTINGS_SCHEMA
    failures: list[dict[str, Any]]  # {"page_sha256", "url", "reason"}: archived listing pages that did not parse


@dataclass
class PhotoResult:
    catalogue: pa.Table  # petid.records.CATALOGUE_SCHEMA, source "pet911"
    stats: dict[str, int]  # downloaded, reused, failed, listings
    failures: list[dict[str, Any]]


def listings_table(records: list[dict[str, Any]]) -> pa.Table:
    """Listing records (parse-listing keys + url, page_sha256) as a table in ``LISTINGS_SCHEMA``."""
    columns = {name: [r.get(name) for r in records] for name in LISTINGS_SCHEMA.names}
    return pa.Table.from_pydict(columns, schema=LISTINGS_SCHEMA)


def _content(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in LISTING_KEYS}


class _Crawler:
    def __init__(self, config: CrawlConfig, raw_dir: Path, client: PoliteClient, state: CrawlState) -> None:
        self.config, self.raw_dir, self.client, self.state = config, Path(raw_dir), client, state
        self.stats = {"new": 0, "updated": 0, "closed": 0, "failed": 0, "pages_fetched": 0, "queued": 0}
        self.failures: list[dict[str, Any]] = []

    def fail(self, url: str, reason: str, **extra: Any) -> None:
        self.stats["failed"] += 1
        self.failures.append({"url": url, "reason": reason, **extra})

    def fetch(self, url: str, kind: str) -> tuple[Response, str] | None:
        """GET + archive (before any parsing). Returns (response, sha256) or None after recording a failure."""
        try:
            response = self.client.get(url)
        except HttpError as exc:
            self.fail(url, exc.reason)
            return None
        return response, self.archive(response, kind)

    def archive(self, response: Response, kind: str) -> str:
        self.stats["pages_fetched"] += 1
        digest = archive_page(self.raw_dir, response.content)
        self.state.add_page(digest, response.url, kind, response.charset)
        return digest

    def walk(self, feed: str) -> None:
        resume = self.state.walk_resume_page(feed)
        known_run = 0
        for page in range(1, self.config.max_pages + 1):
            url = page_url(feed, page)
            fetched = self.fetch(url, "catalog")
            if fetched is None:
                return  # walk stays unfinished: the next run re-walks past this page
            response = fetched[0]
            try:
                catalog = parse_catalog(response.content, response.url, response.charset)
            except CatalogError as exc:
                self.fail(url, f"not a catalog page: {exc}")
                return
            except Exception as exc:  # noqa: BLE001 - a page the parser chokes on must not stop the crawl
                self.fail(url, f"catalog page does not parse: {type(exc).__name__}: {exc}")
                return
            stop = False
            for card in catalog.cards:
                if self.state.is_known(card.listing_id):
                    known = self.state.listing(card.listing_id)
                    if card.is_found and known is not None and not known.get("closed"):
                        self.state.enqueue(card.listing_id, card.url, "closed-in-catalog")
                    known_run += 0 if card.is_top else 1
                else:
                    self.state.enqueue(card.listing_id, card.url)
                    known_run = 0 if not card.is_top else known_run
                if known_run >= self.config.stop_after_known and page > resume:
                    stop = True
                    break
            self.state.walk_progress(feed, page)
            if stop or not catalog.cards or (catalog.last_page is not None and page >= catalog.last_page):
                break
        self.state.walk_done(feed)

    def fetch_listing(self, listing_id: str, url: str) -> None:
        try:
            response_url = url
            response = self.client.get(url)
        except HttpStatusError as exc:
            if exc.status in (404, 410):
                self.state.dequeue(listing_id)  # the listing was deleted; nothing to keep
            else:
                self.state.queue_failed(listing_id, exc.reason)
            self.fail(url, exc.reason, listing_id=listing_id)
            return
        except HttpError as exc:
            self.state.queue_failed(listing_id, exc.reason)
            self.fail(url, exc.reason, listing_id=listing_id)
            return
        digest = self.archive(response, "listing")
        try:
            record = parse_listing(response.content, response.url or response_url, response.charset)
        except NotAListingError as exc:
            self.state.queue_failed(listing_id, str(exc))
            self.fail(url, f"not a listing: {exc}", listing_id=listing_id)
            return
        except Exception as exc:  # noqa: BLE001 - one unparsable page is a failure, never the end of the crawl
            reason = f"page does not parse: {type(exc).__name__}: {exc}"
            self.state.queue_failed(listing_id, reason)
            self.fail(url, reason, listing_id=listing_id)
            return
        if record["listing_id"] != listing_id:
            self.state.queue_failed(listing_id, f"page shows {record['listing_id']}")
            self.fail(url, f"page shows listing {record['listing_id']}, expected {listing_id}", listing_id=listing_id)
            return
        self.save(record, response.url, digest)
        self.state.dequeue(listing_id)

    def save(self, record: dict[str, Any], url: str, digest: str) -> None:
        old = self.state.listing(record["listing_id"])
        if old is None:
            self.stats["new"] += 1
        elif _content(old) != _content(record):
            self.stats["updated"] += 1
            if record["closed"] and not old.get("closed"):
                self.stats["closed"] += 1
        self.state.save_listing(record, url, digest)

    def drain(self) -> None:
        for listing_id, url, _reason in self.state.queued():
            if not is_valid_listing_id(listing_id):
                self.state.dequeue(listing_id)
                self.fail(url, f"invalid listing id {listing_id!r}")
                continue
            self.fetch_listing(listing_id, url)

    def recheck(self) -> None:
        for listing_id, url in self.state.open_listings()[: self.config.recheck_limit]:
            self.state.enqueue(listing_id, url, "recheck")
        self.drain()

    def probe(self) -> None:
        """Id-probe strategy: ``/ajax/check-pet?art=<id>``. The site answers
        ``{"status": "success", "data": [{"title": …, "url": …}]}``; an item whose URL ends in the id enqueues it."""
        for listing_id in self.config.probe_ids:
            if not is_valid_listing_id(listing_id) or self.state.is_known(listing_id):
                continue
            url = urljoin(self.config.base_url, f"/ajax/check-pet?art={listing_id}")
            fetched = self.fetch(url, "probe")
            if fetched is None:
                continue
            link = probe_link(fetched[0].content, listing_id)
            if link:
                self.state.enqueue(listing_id, urljoin(fetched[0].url, link), "probe")
            else:
                self.stats["probe_misses"] = self.stats.get("probe_misses", 0) + 1


def probe_link(body: bytes, listing_id: str) -> str | None:
    """The listing URL in a ``/ajax/check-pet`` answer (``{"status": "success", "data": [{"url": …}, …]}``) whose
    last path segment is ``listing_id``; None for any other answer."""
    try:
        answer = json.loads(body.decode("utf-8", errors="replace"))
    except ValueError:
        return None
    if not isinstance(answer, dict) or answer.get("status") != "success":
        return None
    items = answer.get("data")
    for item in items if isinstance(items, list) else [items]:
        link = item.get("url") if isinstance(item, dict) else None
        if isinstance(link, str) and link.strip():
            last = link.strip().split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            if last == listing_id:
                return link.strip()
    return None


def crawl_listings(config: CrawlConfig, raw_dir: Path) -> CrawlResult:
    """Run one incremental crawl into ``raw_dir`` (e.g. ``$PETID_HOME/raw/pet911``); see the module docstring."""
    raw_dir = Path(raw_dir)
    feeds = config.feed_urls()  # an invalid feed is refused before anything is fetched
    with config.client() as client, CrawlState(raw_dir / "state.sqlite") as state:
        crawler = _Crawler(config, raw_dir, client, state)
        crawler.drain()  # leftovers of an interrupted run first
        for feed in feeds:
            crawler.walk(feed)
        if config.probe_ids:
            crawler.probe()
        crawler.drain()
        if config.recheck_open:
            crawler.recheck()
        crawler.stats["queued"] = len(state.queued())
        crawler.stats["crawl_delay_s"] = client.host_interval(config.base_url)
        crawler.stats["robots_crawl_delay_s"] = client.robots_crawl_delay(config.base_url) or 0.0
        return CrawlResult(listings_table(state.all_listings()), crawler.stats, crawler.failures)


def reparse_archive(raw_dir: Path) -> ReparseResult:
    """Rebuild the listing table from archived pages alone (no network): the newest capture of each listing wins.
    An archived listing page that does not parse is reported in ``failures`` and skipped."""
    raw_dir = Path(raw_dir)
    ordered: list[tuple[str, str | None, str | None, str | None]] = []
    if (raw_dir / "state.sqlite").exists():
        with CrawlState(raw_dir / "state.sqlite") as state:
            ordered = list(state.page_charsets())
    indexed = {row[0] for row in ordered}
    ordered = [(sha, None, None, None) for sha in archived_digests(raw_dir) if sha not in indexed] + ordered
    latest: dict[str, dict[str, Any]] = {}
    failures: list[dict[str, Any]] = []
    for digest, url, kind, charset in ordered:
        try:
            record = parse_listing(read_page(raw_dir, digest), url, charset)
        except (NotAListingError, FileNotFoundError) as exc:
            if kind == "listing":  # catalog pages and probe answers are not listings, and not failures
                failures.append({"page_sha256": digest, "url": url, "reason": str(exc)})
            continue
        except Exception as exc:  # noqa: BLE001 - one unparsable page must not stop the rebuild
            failures.append({"page_sha256": digest, "url": url,
                             "reason": f"page does not parse: {type(exc).__name__}: {exc}"})
            continue
        latest[record["listing_id"]] = {**record, "url": url, "page_sha256": digest}
    return ReparseResult(listings_table([latest[k] for k in sorted(latest)]), failures)


def reparse(raw_dir: Path) -> pa.Table:
    """The listing table of ``reparse_archive`` (failed pages skipped)."""
    return reparse_archive(raw_dir).listings


def sniff_image(data: bytes) -> str | None:
    """File extension for JPEG/PNG/GIF/WebP bytes by magic number; None for anything else."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return next((ext for magic, ext in IMAGE_MAGIC if data.startswith(magic)), None)


def host_allowed(url: str, allowed_hosts: list[str]) -> bool:
    """http(s) URL whose host and port match one of ``allowed_hosts``: ``host`` (exactly, no subdomain
    wildcarding; the scheme's default port only) or ``host:port``. No address check (the client does that)."""
    return UrlPolicy(allowed_hosts=list(allowed_hosts)).host_allowed(url)


def download_photos(listings: pa.Table, config: CrawlConfig, raw_dir: Path) -> PhotoResult:
    """Download every listing's gallery photos into ``raw_dir/photos`` and return catalogue rows (one per photo).

    Photos already downloaded (by URL) are reused, so reruns fetch and add nothing new. Listings with fewer than
    two photos are kept (the ≥2 filter belongs to the dataset stage)."""
    raw_dir = Path(raw_dir)
    stats = {"listings": 0, "downloaded": 0, "reused": 0, "failed": 0}
    failures: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    with config.client(config.photo_policy()) as client, CrawlState(raw_dir / "state.sqlite") as state:
        for listing in listings.to_pylist():
            listing_id = listing.get("listing_id") or ""
            if not is_valid_listing_id(listing_id):
                failures.append({"url": listing.get("url"), "reason": f"invalid listing id {listing_id!r}"})
                stats["failed"] += 1
                continue
            stats["listings"] += 1
            for position, photo_url in enumerate(listing.get("photo_urls") or []):
                path = _photo(state, client, config, raw_dir, photo_url, stats, failures)
                if path is not None:
                    rows.append({"identity_id": identity_id(listing_id), "source": "pet911",
                                 "species": listing.get("species"), "kind": listing.get("kind"),
                                 "date": listing.get("date_added"), "text": catalogue_text(listing),
                                 "url": listing.get("url"), "path": str(path), "photo_url": photo_url,
                                 "position": position})
    catalogue = catalogue_table(rows) if rows else empty_catalogue()
    return PhotoResult(catalogue, stats, failures)


def catalogue_text(listing: dict[str, Any]) -> str | None:
    """The catalogue's ``text`` of a parsed listing: :func:`petid.text.listing_text` of its species, breed, sex,
    title and description (personal data stripped; no address, date or kind). The raw page keeps everything."""
    return listing_text(species=listing.get("species"), breed=listing.get("breed"), sex=listing.get("sex"),
                        title=listing.get("title"), description=listing.get("description"), city=listing.get("city"))


def identity_id(listing_id: str) -> str:
    """The catalogue's identity id of a pet911 listing."""
    return f"pet911:{listing_id}"


def listing_places(listings: pa.Table) -> pa.Table:
    """Where and when each listing's animal was lost or found, by identity id: ``identity_id``, ``lat``, ``lng``,
    ``city``, ``address``, ``title``, ``date`` (the event date, else the posting date) and ``closed``; one row per
    listing, its latest capture (a listing saved twice, e.g. before and after a redesign, appears once)."""
    latest = {r["listing_id"]: r for r in listings.select(["listing_id", "lat", "lng", "city", "address", "title",
                                                            "date_event", "date_added", "closed"]).to_pylist()}
    rows = list(latest.values())
    return pa.table({
        "identity_id": [identity_id(r["listing_id"]) for r in rows],
        "lat": pa.array([r["lat"] for r in rows], pa.float64()), "lng": pa.array([r["lng"] for r in rows], pa.float64()),
        "city": pa.array([r["city"] for r in rows], pa.string()),
        "address": pa.array([r["address"] for r in rows], pa.string()),
        "title": pa.array([r["title"] for r in rows], pa.string()),
        "date": pa.array([r["date_event"] or r["date_added"] for r in rows], pa.string()),
        "closed": pa.array([bool(r["closed"]) for r in rows], pa.bool_()),
    })


def _photo(state: CrawlState, client: PoliteClient, config: CrawlConfig, raw_dir: Path, url: str,
           stats: dict[str, int], failures: list[dict[str, Any]]) -> Path | None:
    known = state.photo(url)
    if known is not None:
        path = raw_dir / known[1]
        if path.exists():
            stats["reused"] += 1
            return path.resolve()
    if not host_allowed(url, config.allowed_photo_hosts):
        stats["failed"] += 1
        failures.append({"url": url, "reason": f"host:port not in allowed_photo_hosts {config.allowed_photo_hosts}"})
        return None
    try:
        data = client.get(url).content
    except HttpError as exc:
        stats["failed"] += 1
        failures.append({"url": url, "reason": exc.reason})
        return None
    ext = sniff_image(data)
    if ext is None:
        stats["failed"] += 1
        failures.append({"url": url, "reason": f"not an image (magic bytes {data[:8].hex()})"})
        return None
    digest, path = store_content(raw_dir / "photos", data, ext)
    state.save_photo(url, digest, str(content_path("photos", digest, ext)))
    stats["downloaded"] += 1
    return path.resolve()
