"""pet911 crawls against hostile or broken loopback sites: redirects to an internal service (which must receive
nothing), a robots.txt Crawl-delay of a day, pages the parser cannot read, and the real /ajax/check-pet answer."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from test_http_policy import Loopback, Reply, internal_server, loopback, run_bounded

from petid_sample.pet911_site import _CONTENT_TYPES, _resolve, listing_path, photo_path, render_listing, write_site
from petid_sample.world import build_world
from scrapers.pet911.crawl import (
    CrawlConfig,
    crawl_listings,
    download_photos,
    listings_table,
    probe_link,
    reparse,
    reparse_archive,
)

WORLD = build_world(seed=1, n_animals=8)
LISTINGS = sorted(WORLD.listings, key=lambda item: (item.date_added, item.listing_id), reverse=True)
ROBOTS = "User-agent: *\nDisallow: /private/\n"


def config(base: str, **overrides) -> CrawlConfig:
    site = urlsplit(base).netloc  # exactly the site under test is trusted (host and port), nothing else
    settings = dict(base_url=base, feeds=["all"], rate_limit_per_s=500.0, jitter=0.0, backoff_base_s=0.01,
                    max_retries=1, timeout_s=5.0, deadline_s=10.0, allowed_photo_hosts=[site], private_hosts=[site])
    settings.update(overrides)
    return CrawlConfig(**settings)


def site_server(site_dir: Path, overrides: dict[str, Reply | Callable[[str], Reply]], robots: str = ROBOTS):
    """Serve a written sample site; ``overrides`` (by path, query ignored) replace or redirect single URLs."""

    def respond(path: str, handler, server: Loopback) -> Reply:
        bare = urlsplit(path).path
        if bare in overrides:
            reply = overrides[bare]
            return reply(path) if callable(reply) else reply
        if bare == "/robots.txt":
            return 200, {"Content-Type": "text/plain"}, robots.encode()
        target = _resolve(site_dir, path)
        if target is None:
            return 404, {"Content-Type": "text/html"}, b"<html><body><h1>404</h1></body></html>"
        return 200, {"Content-Type": _CONTENT_TYPES.get(target.suffix, "application/octet-stream")}, target.read_bytes()

    return loopback(respond)


def archived(raw: Path) -> list[bytes]:
    return [gzip.decompress(p.read_bytes()) for p in (raw / "pages").rglob("*.html.gz")]


def test_redirects_to_an_internal_service_are_refused_for_pages_and_photos(tmp_path: Path) -> None:
    site, raw = tmp_path / "site", tmp_path / "raw"
    listings = [item for item in LISTINGS if item.photos][:4]
    write_site(listings, site, page_size=10)
    page_victim, photo_victim = listings[0], listings[1]
    with internal_server() as internal:
        overrides = {listing_path(page_victim): (302, {"Location": f"{internal.base}/admin"}, b""),
                     photo_path(photo_victim, 0): (302, {"Location": f"http://localhost:{internal.port}/x.jpg"}, b"")}
        with site_server(site, overrides) as server:
            crawl = crawl_listings(config(server.base), raw)
            photos = download_photos(crawl.listings, config(server.base), raw)
    assert internal.requests == []  # the internal service never saw a single request
    ids = set(crawl.listings.column("listing_id").to_pylist())
    assert ids == {item.listing_id for item in listings} - {page_victim.listing_id}
    [failure] = crawl.failures
    assert failure["listing_id"] == page_victim.listing_id and "refused" in failure["reason"]
    assert not any(b"INTERNAL SECRET" in page for page in archived(raw))
    [photo_failure] = photos.failures
    assert photo_failure["url"].endswith(photo_path(photo_victim, 0)) and "refused" in photo_failure["reason"]
    assert not any(b"INTERNAL SECRET" in p.read_bytes() for p in (raw / "photos").rglob("*.*"))
    assert photos.catalogue.num_rows == sum(len(i.photos) for i in listings if i is not page_victim) - 1


def test_a_day_long_crawl_delay_is_capped_per_host_and_reported(tmp_path: Path) -> None:
    site, raw = tmp_path / "site", tmp_path / "raw"
    write_site(LISTINGS[:3], site)
    with site_server(site, {}, robots="User-agent: *\nCrawl-delay: 86400\n") as server:
        result = run_bounded(lambda: crawl_listings(config(server.base, max_crawl_delay_s=0.02), raw), 30)
    assert result.stats["new"] == 3 and not result.failures
    assert result.stats["crawl_delay_s"] == 0.02 and result.stats["robots_crawl_delay_s"] == 86400
    assert CrawlConfig().max_crawl_delay_s == 60.0


def _edit(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data, old
    path.write_bytes(data.replace(old, new, 1))


def test_pages_that_do_not_parse_are_failures_and_the_crawl_goes_on(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import scrapers.pet911.crawl as crawl_module

    site, raw = tmp_path / "site", tmp_path / "raw"
    chosen = LISTINGS[:5]
    write_site(chosen, site)
    bad_map, int_id, cp1251, bad_byte, crashing = chosen
    page = {item.listing_id: site / (listing_path(item).lstrip("/") + ".html") for item in chosen}
    _edit(page[bad_map.listing_id], f"lat: {bad_map.lat:.8f}".encode(), b"lat: 55.7.7")
    _edit(page[int_id.listing_id], f'"@id": "{int_id.listing_id}"'.encode(), b'"@id": 12345')
    head, tail = bad_byte.title[0].encode(), bad_byte.title[1:].encode()
    _edit(page[bad_byte.listing_id], b"<h1>" + head + tail, b"<h1>" + head + b"\xff" + tail)
    # served as windows-1251 by the HTTP header, although the page's own meta says UTF-8: the header wins
    legacy = page[cp1251.listing_id].read_text(encoding="utf-8").encode("cp1251", errors="replace")
    overrides = {listing_path(cp1251): (200, {"Content-Type": "text/html; charset=windows-1251"}, legacy)}

    real_parse = crawl_module.parse_listing

    def parse(html, url=None, charset=None):
        if url and url.endswith(crashing.listing_id):
            raise TypeError("unexpected parser crash")
        return real_parse(html, url, charset)

    monkeypatch.setattr(crawl_module, "parse_listing", parse)
    with site_server(site, overrides) as server:
        first = crawl_listings(config(server.base), raw)
        again = crawl_listings(config(server.base), raw)  # the queue is drained first: no crash on rerun either
    by_id = {r["listing_id"]: r for r in first.listings.to_pylist()}
    assert set(by_id) == {item.listing_id for item in chosen} - {crashing.listing_id}
    assert [(f["listing_id"], f["reason"]) for f in first.failures] == [
        (crashing.listing_id, "page does not parse: TypeError: unexpected parser crash")]
    assert first.stats["queued"] == 1 and again.stats["queued"] == 1 and again.stats["new"] == 0
    assert by_id[bad_map.listing_id]["lat"] is None and by_id[bad_map.listing_id]["lng"] == pytest.approx(bad_map.lng)
    assert by_id[int_id.listing_id]["title"] == int_id.title
    assert by_id[cp1251.listing_id]["title"] == cp1251.title and by_id[cp1251.listing_id]["city"] == cp1251.city
    assert by_id[bad_byte.listing_id]["title"] == bad_byte.title[:1] + "\ufffd" + bad_byte.title[1:]
    assert by_id[bad_byte.listing_id]["description"] == bad_byte.description

    rebuilt = reparse_archive(raw)  # offline: the same records (charsets kept), the same page reported
    assert {f["url"].rsplit("/", 1)[-1] for f in rebuilt.failures} == {crashing.listing_id}
    assert "TypeError" in rebuilt.failures[0]["reason"]
    rows = {r["listing_id"]: r for r in rebuilt.listings.to_pylist()}
    assert {k: {**v, "url": None} for k, v in rows.items()} == {k: {**v, "url": None} for k, v in by_id.items()}
    monkeypatch.undo()
    assert crashing.listing_id in set(reparse(raw).column("listing_id").to_pylist())


def test_probe_reads_the_real_check_pet_answer(tmp_path: Path) -> None:
    site, raw = tmp_path / "site", tmp_path / "raw"
    walked, hidden = LISTINGS[:2], LISTINGS[2]
    write_site(walked, site)
    answers = {hidden.listing_id: {"status": "success", "data": [
        {"title": "Пропала собака", "url": "/elsewhere/lost/dog/rl7"},
        {"title": hidden.title, "url": listing_path(hidden)}]},
        "rf999998": {"status": "success", "data": []}}

    def check_pet(path: str) -> Reply:
        art = dict(parse_qsl(urlsplit(path).query)).get("art", "")
        answer = answers.get(art, {"status": "error", "message": "not found"})
        return 200, {"Content-Type": "application/json"}, json.dumps(answer, ensure_ascii=False).encode()

    overrides = {"/ajax/check-pet": check_pet,
                 listing_path(hidden): (200, {"Content-Type": "text/html; charset=utf-8"},
                                        render_listing(hidden).encode())}
    probes = [hidden.listing_id, "rl999999\n", walked[0].listing_id, "rf999998"]
    with site_server(site, overrides) as server:
        result = crawl_listings(config(server.base, probe_ids=probes), raw)
    assert set(result.listings.column("listing_id").to_pylist()) == {i.listing_id for i in [*walked, hidden]}
    asked = [p for p in server.requests if p.startswith("/ajax/check-pet")]
    assert asked == [f"/ajax/check-pet?art={hidden.listing_id}", "/ajax/check-pet?art=rf999998"]
    assert result.stats["probe_misses"] == 1 and not result.failures


def test_probe_link_shapes() -> None:
    def body(value: object) -> bytes:
        return json.dumps(value).encode()

    real = {"status": "success", "data": [{"title": "x", "url": "https://pet911.ru/moskva/lost/cat/rl5/"}]}
    assert probe_link(body(real), "rl5") == "https://pet911.ru/moskva/lost/cat/rl5/"
    assert probe_link(body(real), "rl50") is None and probe_link(body(real), "rl") is None
    assert probe_link(body({"status": "success", "data": {"url": "/a/rl5?x=1"}}), "rl5") == "/a/rl5?x=1"
    for other in ({"status": "error", "data": real["data"]}, {"url": "/a/rl5"}, [real], "rl5", {"data": 5}):
        assert probe_link(body(other), "rl5") is None
    assert probe_link(b"<html>", "rl5") is None


def test_photo_download_refuses_ids_with_a_trailing_newline(tmp_path: Path) -> None:
    site = tmp_path / "site"
    item = next(i for i in LISTINGS if i.photos)
    write_site([item], site)
    with site_server(site, {}) as server:
        row = {"listing_id": item.listing_id + "\n", "photo_urls": [server.base + photo_path(item, 0)]}
        result = download_photos(listings_table([row]), config(server.base), tmp_path / "raw")
    assert result.catalogue.num_rows == 0 and "invalid listing id" in result.failures[0]["reason"]
    assert not any(p.startswith("/uploads/") for p in server.requests)


def test_a_state_database_from_before_charsets_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    from scrapers.pet911.state import CrawlState

    db = tmp_path / "state.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE pages (sha256 TEXT NOT NULL, url TEXT NOT NULL, kind TEXT NOT NULL, "
                     "fetched_at REAL NOT NULL)")
        conn.execute("INSERT INTO pages VALUES ('a', 'http://x/rl1', 'listing', 1.0)")
    with CrawlState(db) as state:
        state.add_page("b", "http://x/rl2", "listing", "windows-1251")
        assert state.page_charsets() == [("a", "http://x/rl1", "listing", None),
                                         ("b", "http://x/rl2", "listing", "windows-1251")]
        assert [row[:3] for row in state.pages()] == [("a", "http://x/rl1", "listing"), ("b", "http://x/rl2", "listing")]
    with CrawlState(db):
        pass  # reopening an already migrated database is fine
