"""Persistent crawl state (SQLite under ``raw_dir/state.sqlite``): fetched pages, known listings, the detail-page
queue, feed walks in progress and downloaded photos. Every change is committed at once, so a killed crawl resumes."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (sha256 TEXT NOT NULL, url TEXT NOT NULL, kind TEXT NOT NULL, fetched_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS pages_url ON pages (url);
CREATE TABLE IF NOT EXISTS listings (
    listing_id TEXT PRIMARY KEY, url TEXT NOT NULL, page_sha256 TEXT NOT NULL, record TEXT NOT NULL,
    closed INTEGER NOT NULL, first_seen REAL NOT NULL, last_seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS queue (listing_id TEXT PRIMARY KEY, url TEXT NOT NULL, reason TEXT NOT NULL DEFAULT 'new',
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, added_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS walks (feed TEXT PRIMARY KEY, resume_page INTEGER NOT NULL, started_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS photos (photo_url TEXT PRIMARY KEY, sha256 TEXT NOT NULL, path TEXT NOT NULL,
    fetched_at REAL NOT NULL);
"""


class CrawlState:
    """Thin typed wrapper over the state database."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)
        if "charset" not in {row[1] for row in self.db.execute("PRAGMA table_info(pages)")}:
            try:  # databases from before charsets were kept
                self.db.execute("ALTER TABLE pages ADD COLUMN charset TEXT")
            except sqlite3.OperationalError as exc:  # another process added it first
                if "duplicate column" not in str(exc):
                    raise

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> CrawlState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # pages
    def add_page(self, sha256: str, url: str, kind: str, charset: str | None = None) -> None:
        """Index a fetched page; ``charset`` is its HTTP header's (so a reparse decodes it as the crawl did)."""
        self.db.execute("INSERT INTO pages (sha256, url, kind, fetched_at, charset) VALUES (?, ?, ?, ?, ?)",
                        (sha256, url, kind, time.time(), charset))

    def pages(self, kind: str | None = None) -> list[tuple[str, str, str, float]]:
        sql = "SELECT sha256, url, kind, fetched_at FROM pages" + (" WHERE kind = ?" if kind else "") + " ORDER BY rowid"
        return list(self.db.execute(sql, (kind,) if kind else ()))

    def page_charsets(self) -> list[tuple[str, str, str, str | None]]:
        """(sha256, url, kind, HTTP charset or None) of every indexed page, in fetch order."""
        return list(self.db.execute("SELECT sha256, url, kind, charset FROM pages ORDER BY rowid"))

    # listings
    def listing(self, listing_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT url, page_sha256, record FROM listings WHERE listing_id = ?", (listing_id,)).fetchone()
        return None if row is None else {**json.loads(row[2]), "url": row[0], "page_sha256": row[1]}

    def is_known(self, listing_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM listings WHERE listing_id = ? UNION SELECT 1 FROM queue "
                               "WHERE listing_id = ?", (listing_id, listing_id)).fetchone() is not None

    def save_listing(self, record: dict[str, Any], url: str, page_sha256: str) -> None:
        now = time.time()
        self.db.execute(
            "INSERT INTO listings VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(listing_id) DO UPDATE SET url=excluded.url, "
            "page_sha256=excluded.page_sha256, record=excluded.record, closed=excluded.closed, last_seen=excluded.last_seen",
            (record["listing_id"], url, page_sha256, json.dumps(record, ensure_ascii=False, sort_keys=True),
             int(bool(record.get("closed"))), now, now))

    def all_listings(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT url, page_sha256, record FROM listings ORDER BY listing_id")
        return [{**json.loads(r[2]), "url": r[0], "page_sha256": r[1]} for r in rows]

    def open_listings(self) -> list[tuple[str, str]]:
        return list(self.db.execute("SELECT listing_id, url FROM listings WHERE closed = 0 ORDER BY last_seen"))

    # queue
    def enqueue(self, listing_id: str, url: str, reason: str = "new") -> None:
        self.db.execute("INSERT OR IGNORE INTO queue (listing_id, url, reason, added_at) VALUES (?, ?, ?, ?)",
                        (listing_id, url, reason, time.time()))

    def queued(self) -> list[tuple[str, str, str]]:
        return list(self.db.execute("SELECT listing_id, url, reason FROM queue ORDER BY added_at, listing_id"))

    def dequeue(self, listing_id: str) -> None:
        self.db.execute("DELETE FROM queue WHERE listing_id = ?", (listing_id,))

    def queue_failed(self, listing_id: str, error: str) -> None:
        self.db.execute("UPDATE queue SET attempts = attempts + 1, last_error = ? WHERE listing_id = ?", (error, listing_id))

    # feed walks
    def walk_resume_page(self, feed: str) -> int:
        row = self.db.execute("SELECT resume_page FROM walks WHERE feed = ?", (feed,)).fetchone()
        return 0 if row is None else int(row[0])

    def walk_progress(self, feed: str, page: int) -> None:
        self.db.execute("INSERT INTO walks VALUES (?, ?, ?) ON CONFLICT(feed) DO UPDATE SET "
                        "resume_page = MAX(resume_page, excluded.resume_page)", (feed, page, time.time()))

    def walk_done(self, feed: str) -> None:
        self.db.execute("DELETE FROM walks WHERE feed = ?", (feed,))

    # photos
    def photo(self, photo_url: str) -> tuple[str, str] | None:
        row = self.db.execute("SELECT sha256, path FROM photos WHERE photo_url = ?", (photo_url,)).fetchone()
        return None if row is None else (row[0], row[1])

    def save_photo(self, photo_url: str, sha256: str, path: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO photos VALUES (?, ?, ?, ?)", (photo_url, sha256, path, time.time()))
