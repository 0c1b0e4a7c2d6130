"""Benchmark: pet911 detail-page parsing (petid's raw-lxml ``parse_listing`` vs BeautifulSoup on the lxml parser
extracting the same card fields, vs a stdlib html.parser walk) and how closely a crawl holds its configured rate
against the local sample server. Prints one JSON object.

Pages: ../shared/data/pet911_pages when present, else pages rendered by the sample site writer.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from petid_sample.pet911_site import Faults, serve_site, write_site  # noqa: E402
from petid_sample.world import build_world  # noqa: E402
from scrapers.http import origin_entry  # noqa: E402
from scrapers.pet911.crawl import CrawlConfig, crawl_listings  # noqa: E402
from scrapers.pet911.parse import parse_listing  # noqa: E402


class _StdlibWalk(HTMLParser):
    """The html.parser baseline: one pass collecting what parse_listing needs (card rows, gallery, title)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[set[str]] = []
        self.rows: list[str] = []
        self.photos: list[str] = []
        self.h1 = ""
        self._in_h1 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = set((a.get("class") or "").split())
        if tag == "a" and "js-card-slide" in classes and a.get("href"):
            self.photos.append(a["href"])
        self._in_h1 = tag == "h1" or self._in_h1

    def handle_endtag(self, tag: str) -> None:
        if tag == "h1":
            self._in_h1 = False

    def handle_data(self, data: str) -> None:
        if self._in_h1:
            self.h1 += data
        elif data.strip():
            self.rows.append(data.strip())


def _stdlib_parse(data: bytes) -> None:
    walker = _StdlibWalk()
    walker.feed(data.decode("utf-8-sig", errors="replace"))
    walker.close()


def _bs4_parse(data: bytes) -> dict:
    """The BeautifulSoup contender (the brief's suggestion, on the lxml parser): the same card rows, gallery links,
    title, description and initMap script that ``parse_listing`` reads."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "lxml")
    card = soup.select_one(".card") or soup
    rows = {}
    for row in card.select(".card-info"):
        label, value = row.select_one(".card-info__title"), row.select_one(".card-info__value")
        if label is not None and value is not None:
            rows[label.get_text(" ", strip=True)] = value.get_text(" ", strip=True)
    h1 = card.find("h1") or soup.find("h1")
    notice = card.select_one(".card-notice")
    script = next((s.string for s in soup.find_all("script") if s.string and "initMap" in s.string), None)
    return {"rows": rows, "title": h1.get_text(" ", strip=True) if h1 else None,
            "photos": [a.get("href") for a in card.select("a.js-card-slide")],
            "description": notice.get_text(" ", strip=True) if notice else None, "map": bool(script),
            "crumbs": [c.get_text(strip=True) for c in soup.select(".breadcrumbs__item")]}


def _pages() -> tuple[list[bytes], str]:
    shared = Path(os.environ.get("PETID_SHARED", REPO.parent / "shared")) / "data" / "pet911_pages"
    pages = [p.read_bytes() for p in sorted(shared.glob("20*/petCard_*.html"))]
    if pages:
        return pages, "shared"
    tmp = Path(tempfile.mkdtemp())
    write_site(build_world(seed=0, n_animals=24).listings, tmp / "site")
    return [p.read_bytes() for p in sorted((tmp / "site").rglob("r[lf]*.html"))], "sample"


def _rate(fn, pages: list[bytes], seconds: float = 3.0) -> dict[str, float]:
    n, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < seconds:
        for page in pages:
            fn(page)
        n += len(pages)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"pages_per_s_wall": round(n / wall, 1), "pages_per_cpu_s": round(n / cpu, 1), "pages": n}


def _crawl_rate(rate: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        write_site(build_world(seed=1, n_animals=30).listings, site, page_size=5)
        faults = Faults()
        with serve_site(site, faults) as base:
            site_entry = origin_entry(base)  # the local sample site is opted in by host:port, as the demo does
            config = CrawlConfig(base_url=base, feeds=["all"], rate_limit_per_s=rate, jitter=0.2,
                                 allowed_photo_hosts=[site_entry], private_hosts=[site_entry])
            crawl_listings(config, Path(tmp) / "raw")
        times = [t for t, path, _ in faults.requests if path != "/robots.txt"]
    gaps = [b - a for a, b in zip(times, times[1:])]
    achieved = (len(times) - 1) / (times[-1] - times[0])
    return {"configured_per_s": rate, "achieved_per_s": round(achieved, 3), "requests": len(times),
            "min_gap_s": round(min(gaps), 4), "median_gap_s": round(statistics.median(gaps), 4),
            "expected_gap_s": f"{1 / rate:.3f}..{1.2 / rate:.3f} (jitter 0.2)",
            "never_faster_than_configured": min(gaps) >= 1 / rate * 0.98}


def main() -> None:
    pages, origin = _pages()
    lxml_rate = _rate(parse_listing, pages)
    bs4_rate = _rate(_bs4_parse, pages)
    stdlib_rate = _rate(_stdlib_parse, pages)
    result = {
        "detail_pages": {"origin": origin, "distinct_pages": len(pages),
                         "mean_kb": round(sum(map(len, pages)) / len(pages) / 1024, 1),
                         "lxml_parse_listing": lxml_rate, "beautifulsoup_lxml_same_fields": bs4_rate,
                         "stdlib_html_parser_walk": stdlib_rate,
                         "speedup_cpu_vs_beautifulsoup": round(lxml_rate["pages_per_cpu_s"] / bs4_rate["pages_per_cpu_s"], 2),
                         "speedup_cpu": round(lxml_rate["pages_per_cpu_s"] / stdlib_rate["pages_per_cpu_s"], 2)},
        "crawl_rate": [_crawl_rate(rate) for rate in (5.0, 20.0)],
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
