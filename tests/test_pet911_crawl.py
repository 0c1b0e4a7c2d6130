"""End-to-end crawls against the sample site on 127.0.0.1: faults, reruns, incremental stop, photos, reparse,
and a crawl process killed mid-run then resumed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from petid_sample.pet911_site import Fault, Faults, listing_path, photo_path, serve_site, write_site
from petid_sample.world import build_world
from scrapers.pet911.crawl import CrawlConfig, crawl_listings, download_photos, reparse

REPO = Path(__file__).resolve().parents[1]
WORLD = build_world(seed=0, n_animals=24)
LISTINGS = sorted(WORLD.listings, key=lambda item: (item.date_added, item.listing_id), reverse=True)


def config(base: str, **overrides) -> CrawlConfig:
    site = urlsplit(base).netloc  # exactly the site under test is opted in (host and port)
    settings = dict(base_url=base, feeds=["all"], rate_limit_per_s=200.0, jitter=0.1, backoff_base_s=0.05,
                    max_retries=3, timeout_s=5.0, max_retry_after_s=2.0, allowed_photo_hosts=[site],
                    private_hosts=[site])
    settings.update(overrides)
    return CrawlConfig(**settings)


def rows(table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: r["listing_id"])


def test_crawl_survives_faults_loses_nothing_and_reruns_add_nothing(tmp_path: Path) -> None:
    site, raw = tmp_path / "site", tmp_path / "raw"
    write_site(LISTINGS, site, page_size=5)
    looping, slow, truncated = LISTINGS[3], LISTINGS[5], LISTINGS[7]
    faults = Faults([
        Fault("429", "/catalog", times=2, retry_after=0.2),
        Fault("5xx", "/catalog/page-2", times=2),
        Fault("slow", listing_path(slow), times=1, delay_s=0.4),
        Fault("truncate", listing_path(truncated), times=1),
        Fault("truncate", photo_path(truncated, 0), times=1),
        Fault("5xx", photo_path(slow, 0), times=1),
        Fault("redirect_loop", listing_path(looping), times=-1),
    ])
    with serve_site(site, faults) as base:
        first = crawl_listings(config(base), raw)
        ids = set(first.listings.column("listing_id").to_pylist())
        assert ids == {item.listing_id for item in LISTINGS} - {looping.listing_id}
        assert first.stats["new"] == len(LISTINGS) - 1 and first.stats["queued"] == 1
        assert [f["listing_id"] for f in first.failures] == [looping.listing_id]
        assert "redirect loop" in first.failures[0]["reason"]

        second = crawl_listings(config(base), raw)  # the loop persists: nothing new, nothing duplicated
        assert second.stats["new"] == 0 and second.stats["updated"] == 0
        assert rows(second.listings) == rows(first.listings) and second.stats["queued"] == 1

        faults.rules.clear()  # the site recovers: the queued listing is picked up, nothing was lost
        third = crawl_listings(config(base), raw)
        assert third.stats["new"] == 1 and third.stats["queued"] == 0 and not third.failures
        assert len(third.listings) == len(LISTINGS)
        by_id = {r["listing_id"]: r for r in third.listings.to_pylist()}
        for item in LISTINGS:
            record = by_id[item.listing_id]
            assert (record["kind"], record["species"], record["closed"]) == (item.kind, item.species, item.closed)
            assert len(record["photo_urls"]) == len(item.photos)

        faults.rules.extend([Fault("truncate", photo_path(truncated, 0)), Fault("5xx", photo_path(slow, 0))])
        photos = download_photos(third.listings, config(base), raw)
        assert photos.stats["failed"] == 0 and photos.catalogue.num_rows == sum(len(i.photos) for i in LISTINGS)
        again = download_photos(third.listings, config(base), raw)
        assert again.stats["downloaded"] == 0 and again.stats["reused"] == photos.catalogue.num_rows
    catalogue = photos.catalogue.to_pylist()
    assert {r["identity_id"] for r in catalogue} == {f"pet911:{i.listing_id}" for i in LISTINGS if i.photos}
    assert all(r["source"] == "pet911" and Path(r["path"]).is_file() and Path(r["path"]).is_relative_to(raw / "photos")
               for r in catalogue)
    one = next(r for r in catalogue if r["identity_id"] == f"pet911:{truncated.listing_id}" and r["position"] == 0)
    assert Path(one["path"]).read_bytes() == truncated.photos[0].data
    assert len(list((raw / "photos").rglob("*.*"))) == len({p.data for i in LISTINGS for p in i.photos})
    assert rows(reparse(raw)) == rows(third.listings)  # the archive alone rebuilds every record


def test_photo_security(tmp_path: Path) -> None:
    import pyarrow as pa

    from scrapers.pet911.crawl import LISTINGS_SCHEMA, listings_table

    site = tmp_path / "site"
    write_site(LISTINGS[:2], site)
    (site / "uploads" / "fake.jpg").write_bytes(b"<html>not an image</html>")
    with serve_site(site) as base:
        base_row = {**rows(crawl_listings(config(base), tmp_path / "raw").listings)[0]}
        table = listings_table([
            {**base_row, "photo_urls": ["https://evil.example/x.jpg", f"{base}/uploads/fake.jpg"]},
            {**base_row, "listing_id": "../../etc", "photo_urls": [f"{base}/uploads/fake.jpg"]},
        ])
        assert table.schema == LISTINGS_SCHEMA and isinstance(table, pa.Table)
        result = download_photos(table, config(base), tmp_path / "raw")
    reasons = [f["reason"] for f in result.failures]
    assert result.catalogue.num_rows == 0 and len(reasons) == 3
    assert "allowed_photo_hosts" in reasons[0] and "not an image" in reasons[1] and "invalid listing id" in reasons[2]


def test_incremental_stop_ignores_promoted_cards(tmp_path: Path) -> None:
    site, raw = tmp_path / "site", tmp_path / "raw"
    older, newer = LISTINGS[2:], LISTINGS[:2]
    write_site(older, site, page_size=4, promoted=[older[-1].listing_id])
    with serve_site(site) as base:
        first = crawl_listings(config(base, stop_after_known=1), raw)
        assert first.stats["new"] == len(older)
        # two new listings arrive; the known promoted card pinned above them must not stop the walk
        write_site(LISTINGS, site, page_size=4, promoted=[older[-1].listing_id])
        second = crawl_listings(config(base, stop_after_known=1), raw)
        assert second.stats["new"] == 2 and second.stats["pages_fetched"] == 1 + 2  # page 1 + two details
        # a listing closed since: recheck finds it (and the catalog's is-found mark re-queues it too)
        assert len(second.listings) == len(LISTINGS)
        third = crawl_listings(config(base, stop_after_known=1, recheck_open=True, recheck_limit=100), raw)
        assert third.stats["new"] == 0 and third.stats["updated"] == 0
        assert third.stats["pages_fetched"] == 1 + sum(not i.closed for i in LISTINGS)


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM listings").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_killed_crawl_resumes_to_the_same_records(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_site(LISTINGS, site, page_size=5)
    slow = Faults([Fault("slow", "/*", times=-1, delay_s=0.12)])
    with serve_site(site, slow) as base:
        command = [sys.executable, "-m", "petid_app.cli", "crawl", "--base-url", base, "--raw-dir", str(tmp_path / "killed"),
                   "--feed", "all", "--rate-limit", "200", "--backoff", "0.05",
                   "--private-host", urlsplit(base).netloc]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while _count(tmp_path / "killed" / "state.sqlite") < 3 and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        done_before = _count(tmp_path / "killed" / "state.sqlite")
        assert 3 <= done_before < len(LISTINGS)

        slow.rules.clear()
        resumed = crawl_listings(config(base), tmp_path / "killed")
        reference = crawl_listings(config(base), tmp_path / "clean")
    assert resumed.stats["new"] == len(LISTINGS) - done_before
    assert rows(resumed.listings) == rows(reference.listings) and len(resumed.listings) == len(LISTINGS)
