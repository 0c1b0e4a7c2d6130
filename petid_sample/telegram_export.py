"""Write sample posts as a real Telegram Desktop channel export: ``result.json`` + ``photos/`` + ``files/``.

Albums become consecutive messages with the same date (Desktop exports carry no ``grouped_id``); the caption
sits on one item (not always the first). JPEG photos are exported as ``photo``; other formats (WebP) as image
documents (``file`` + ``mime_type``). A link-preview post is text with a ``link`` entity and no media, as
Telegram Desktop exports it. A ``create_channel`` service message opens the history.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from petid_sample.model import SamplePost

_MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


def _dates(when: dt.datetime) -> dict[str, str]:
    aware = when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
    return {"date": aware.replace(tzinfo=None).isoformat(timespec="seconds"),
            "date_unixtime": str(int(aware.timestamp()))}


def _text(text: str, link_preview: bool) -> tuple[Any, list[dict[str, str]]]:
    """Desktop's ``text`` (string, or list with entities) and ``text_entities``."""
    if link_preview and "http" in text:
        head, _, tail = text.partition("http")
        url, _, rest = ("http" + tail).partition(" ")
        parts: list[Any] = [head, {"type": "link", "text": url}] + ([" " + rest] if rest else [])
        entities = [{"type": "plain", "text": head}, {"type": "link", "text": url}]
        return [p for p in parts if p], entities
    return text, ([{"type": "plain", "text": text}] if text else [])


def channel_id(channel: str) -> int:
    """The numeric chat id the export gives ``channel`` (a stable hash of its name)."""
    return int(hashlib.sha256(channel.encode()).hexdigest()[:9], 16)


def post_identity(channel: str, message_id: int) -> str:
    """The identity id the Telegram export importer gives a post of this export: ``telegram:c<chat id>:<first
    message id>`` (a Desktop export has no username, so the importer names the channel ``c<id>``)."""
    return f"telegram:c{channel_id(channel)}:{message_id}"


def write_export(channel: str, posts: list[SamplePost], out_dir: Path) -> Path:
    """Write ``out_dir/result.json`` (+ media) for ``posts`` of ``channel``; returns the result.json path."""
    out_dir = Path(out_dir)
    (out_dir / "photos").mkdir(parents=True, exist_ok=True)
    (out_dir / "files").mkdir(parents=True, exist_ok=True)
    chat_id = channel_id(channel)
    author = {"from": channel, "from_id": f"channel{chat_id}"}
    messages: list[dict[str, Any]] = []
    if posts:
        first = min(posts, key=lambda p: p.message_id)
        messages.append({"id": max(1, first.message_id - 1), "type": "service", **_dates(first.date),
                         "actor": channel, "actor_id": author["from_id"], "action": "create_channel",
                         "title": channel, "text": "", "text_entities": []})
    for post in sorted(posts, key=lambda p: p.message_id):
        text, entities = _text(post.text, post.link_preview)
        if not post.photos:
            messages.append({"id": post.message_id, "type": "message", **_dates(post.date), **author,
                             "text": text, "text_entities": entities})
            continue
        caption_at = post.message_id % len(post.photos)
        for k, photo in enumerate(post.photos):
            mid = post.message_id + k
            stamp = post.date.strftime("%d-%m-%Y_%H-%M-%S")
            message: dict[str, Any] = {"id": mid, "type": "message", **_dates(post.date), **author}
            if photo.ext.lower() in (".jpg", ".jpeg"):
                relative = f"photos/photo_{mid}@{stamp}.jpg"
                message |= {"photo": relative, "photo_file_size": len(photo.data), "width": 0, "height": 0}
            else:
                relative = f"files/IMG_{mid}{photo.ext.lower()}"
                message |= {"file": relative, "file_name": Path(relative).name, "file_size": len(photo.data),
                            "mime_type": _MIME.get(photo.ext.lower(), "application/octet-stream")}
            (out_dir / relative).write_bytes(photo.data)
            message |= {"text": text, "text_entities": entities} if k == caption_at else {"text": "",
                                                                                          "text_entities": []}
            messages.append(message)
    result = {"name": channel, "type": "public_channel", "id": chat_id, "messages": messages}
    path = out_dir / "result.json"
    path.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return path
