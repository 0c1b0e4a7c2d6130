"""Shared by live capture and Desktop exports: messages → posts (albums assembled) → stored records.

A :class:`RawMessage` is source-agnostic: id, date, text, album key and, only for a real photo (a photo message
or an image document), a :class:`PhotoRef` that loads the bytes. Link-preview images never become a PhotoRef.
Consecutive messages sharing a ``grouped_id`` form one post (one animal); the caption may sit on any item.
Selected posts are written to ``raw_dir/<channel>/records.jsonl`` (photos content-addressed under
``raw_dir/<channel>/photos/ab/<sha>.<ext>``) and the catalogue is rebuilt from those records. Records and the posts
table keep the caption as posted; the catalogue's ``text`` is :func:`petid.text.listing_text` of the species and the
caption, so phone numbers, links, e-mails and handles never reach it.

A photo whose file cannot be had (Telethon's ``PhotoEmpty``, a download that returns nothing, a Desktop export's
"(File exceeds maximum size…)" placeholder, a file missing from the export) is skipped, never fatal: it is
counted (``photos_<reason>``, ``photos_skipped``), listed in the post's record (``photos_skipped``) and in
``raw_dir/<channel>/skipped.jsonl``, and the post keeps its other photos.

Post links: a channel read by its public username links as ``https://t.me/<username>/<id>``; a channel known only by
its numeric id (Desktop exports carry no username) links as ``https://t.me/c/<id>/<message id>``, Telegram's
private-link form.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from petid.errors import UserError
from petid.paths import store_content
from petid.records import catalogue_table
from petid.text import listing_text
from scrapers.telegram.keywords import Vocabulary, classify

IMAGE_MIME_EXT = {"image/jpeg": ".jpg", "image/jpg": ".jpg", "image/png": ".png", "image/webp": ".webp",
                  "image/heic": ".heic", "image/heif": ".heif", "image/bmp": ".bmp", "image/tiff": ".tif"}
RECORDS_FILE = "records.jsonl"
SKIPPED_FILE = "skipped.jsonl"
# why a photo was skipped -> its stats key
SKIP_REASONS = {"missing": "photos_missing", "not_exported": "photos_not_exported", "too_large": "photos_too_large",
                "unavailable": "photos_unavailable"}

POSTS_SCHEMA = pa.schema([
    pa.field("identity_id", pa.string(), nullable=False),
    pa.field("channel", pa.string(), nullable=False),
    pa.field("first_message_id", pa.int64(), nullable=False),
    pa.field("message_ids", pa.list_(pa.int64())),
    pa.field("date", pa.string()),
    pa.field("text", pa.string()),
    pa.field("species", pa.string()),
    pa.field("kind", pa.string()),
    pa.field("url", pa.string()),
    pa.field("n_photos", pa.int32()),
])


class TelegramError(UserError, RuntimeError):
    """A Telegram capture or export could not be read."""


@dataclass(frozen=True)
class PhotoRef:
    """A real photo of one message: its file extension and how to get its bytes.

    ``missing`` (a key of ``SKIP_REASONS``) marks a photo the message has but whose file cannot be had; ``detail``
    says why. Such a photo is never loaded; it is skipped and recorded. ``load`` returning no bytes is skipped
    the same way (reason ``unavailable``).
    """

    ext: str
    load: Callable[[], bytes | None] | None = None
    missing: str | None = None
    detail: str = ""


@dataclass
class RawMessage:
    id: int
    date: str | None  # ISO 8601
    text: str
    grouped_id: int | None = None
    photo: PhotoRef | None = None


@dataclass
class TelegramResult:
    """``catalogue`` (CATALOGUE_SCHEMA, every stored post of the channels), ``posts`` (POSTS_SCHEMA), ``stats``."""

    catalogue: pa.Table
    posts: pa.Table
    stats: dict[str, int] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)  # photos skipped this run: channel, message_id, reason, detail


def image_ext(mime_type: str | None) -> str | None:
    """File extension for an image mime type; None for anything that is not an image we keep."""
    if not mime_type:
        return None
    mime_type = mime_type.lower().split(";")[0].strip()
    return IMAGE_MIME_EXT.get(mime_type) or (f".{mime_type.split('/')[1]}" if mime_type.startswith("image/")
                                             and mime_type != "image/gif" else None)


def channel_name(channel: str) -> str:
    """``@name``, ``https://t.me/name`` or ``name`` → ``name``."""
    name = channel.strip().rstrip("/")
    for prefix in ("https://t.me/", "http://t.me/", "t.me/", "@"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    if not name or "/" in name:
        raise TelegramError(f"not a channel name: {channel!r}")
    return name


def group_messages(messages: Iterable[RawMessage]) -> Iterator[list[RawMessage]]:
    """Consecutive messages with the same non-null ``grouped_id`` become one group; others stand alone."""
    current: list[RawMessage] = []
    for message in messages:
        if current and (message.grouped_id is None or message.grouped_id != current[-1].grouped_id):
            yield current
            current = []
        current.append(message)
    if current:
        yield current


def post_text(group: list[RawMessage]) -> str:
    """The album's caption(s): every non-empty text of the group, in message order."""
    return "\n".join(m.text.strip() for m in group if m.text and m.text.strip())


class ChannelStore:
    """Writes selected posts of one channel under ``raw_dir/<channel>`` and reads them back.

    ``link_base`` is the prefix of the channel's post links (``https://t.me/<channel>`` by default, for a channel
    read by its username; ``https://t.me/c/<id>`` for one known only by id; None where posts have no link).
    """

    def __init__(self, raw_dir: Path, channel: str, link_base: str | None = "") -> None:
        self.channel = channel_name(channel)
        self.dir = Path(raw_dir) / self.channel
        self.photos_dir = self.dir / "photos"
        self.records_path = self.dir / RECORDS_FILE
        self.skipped_path = self.dir / SKIPPED_FILE
        self.link_base = f"https://t.me/{self.channel}" if link_base == "" else link_base
        self.skipped: list[dict] = []  # photos skipped by this store's calls to process()
        self._skipped_known: set[tuple[int, str]] | None = None

    def link(self, message_id: int) -> str | None:
        """The post link of one message, or None where the chat has no links."""
        return f"{self.link_base.rstrip('/')}/{message_id}" if self.link_base else None

    def skip(self, message_id: int, reason: str, detail: str, stats: dict[str, int]) -> dict:
        """Count and record one photo that cannot be stored (durably, once per message and reason)."""
        entry = {"channel": self.channel, "message_id": message_id, "reason": reason, "detail": detail}
        key = SKIP_REASONS.get(reason, f"photos_{reason}")
        stats[key] = stats.get(key, 0) + 1
        stats["photos_skipped"] = stats.get("photos_skipped", 0) + 1
        self.skipped.append(entry)
        if self._skipped_known is None:
            self._skipped_known = set()
            if self.skipped_path.exists():
                for line in self.skipped_path.read_text(encoding="utf-8").splitlines():
                    try:
                        old = json.loads(line)
                    except json.JSONDecodeError:  # a torn last line
                        continue
                    self._skipped_known.add((old.get("message_id"), old.get("reason")))
        if (message_id, reason) not in self._skipped_known:
            self._skipped_known.add((message_id, reason))
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(self.skipped_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return entry

    def process(self, group: list[RawMessage], vocabulary: Vocabulary, stats: dict[str, int]) -> dict | None:
        """Classify a post; if selected and it has real photos, store photos then append its record."""
        stats["posts_seen"] = stats.get("posts_seen", 0) + 1
        text = post_text(group)
        match = classify(text, vocabulary)
        if not match.selected:
            key = f"excluded_{match.excluded_by}" if match.excluded_by else "not_animal"
            stats[key] = stats.get(key, 0) + 1
            return None
        photo_messages = [m for m in group if m.photo is not None]
        if not photo_messages:
            stats["selected_without_photos"] = stats.get("selected_without_photos", 0) + 1
            return None
        first = group[0].id
        photos, skipped = [], []
        for message in photo_messages:
            ref = message.photo
            data = None if ref.missing or ref.load is None else ref.load()
            if not data:
                reason = ref.missing or "unavailable"
                detail = ref.detail or "photo download returned no bytes"
                skipped.append(self.skip(message.id, reason, detail, stats))
                continue
            digest, path = store_content(self.photos_dir, data, ref.ext)
            photos.append({"message_id": message.id, "sha256": digest, "path": str(path.absolute())})
        if not photos:  # every photo of the post was skipped (and recorded): nothing to store
            stats["selected_photos_unavailable"] = stats.get("selected_photos_unavailable", 0) + 1
            return None
        record = {
            "identity_id": f"telegram:{self.channel}:{first}", "channel": self.channel, "first_message_id": first,
            "message_ids": [m.id for m in group], "date": group[0].date, "text": text, "species": match.species,
            "kind": match.kind, "url": self.link(first), "photos": photos,
        }
        if skipped:
            record["photos_skipped"] = [{k: s[k] for k in ("message_id", "reason", "detail")} for s in skipped]
        self.append(record)
        stats["posts_selected"] = stats.get("posts_selected", 0) + 1
        stats["photos_saved"] = stats.get("photos_saved", 0) + len(photos)
        return record

    def append(self, record: dict) -> None:
        """Append one record and fsync, so it is durable before any cursor moves past it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.records_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def records(self) -> list[dict]:
        """Stored records, the last one kept per identity (a post re-read after a crash is written twice)."""
        if not self.records_path.exists():
            return []
        latest: dict[str, dict] = {}
        with open(self.records_path, encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a torn last line from a killed writer: its post is re-read
                    continue
                latest[record["identity_id"]] = record
        return sorted(latest.values(), key=lambda r: r["first_message_id"])


def build_result(stores: Iterable[ChannelStore], stats: dict[str, int]) -> TelegramResult:
    """Catalogue and posts tables from every stored record of the given channels."""
    rows, posts, skipped = [], [], []
    for store in stores:
        skipped.extend(store.skipped)
        for record in store.records():
            url = store.link(record["first_message_id"])  # from the store, so links written by older code heal
            posts.append({k: record[k] for k in POSTS_SCHEMA.names if k not in ("n_photos", "url")}
                         | {"url": url, "n_photos": len(record["photos"])})
            text = listing_text(species=record["species"], description=record["text"])
            for position, photo in enumerate(record["photos"]):
                rows.append({
                    "identity_id": record["identity_id"], "source": "telegram", "species": record["species"],
                    "kind": record["kind"], "date": record["date"], "text": text, "url": url,
                    "path": photo["path"], "photo_url": store.link(photo["message_id"]), "position": position,
                })
    posts_table = pa.Table.from_pylist(posts, schema=POSTS_SCHEMA)
    return TelegramResult(catalogue=catalogue_table(rows), posts=posts_table, stats=dict(stats), skipped=skipped)


def merge_stats(total: dict[str, int], part: dict[str, Any]) -> None:
    for key, value in part.items():
        total[key] = total.get(key, 0) + int(value)
