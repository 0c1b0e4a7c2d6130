"""Import a channel exported by Telegram Desktop (``result.json`` + ``photos/``, ``files/``), offline.

Format read (Telegram Desktop "Export chat history", JSON): top level ``name``, ``type``, ``id``, ``messages``;
each message has ``id``, ``type`` (``message``/``service``), ``date`` (local, naive), ``date_unixtime``, ``text``
(a string, or a list of strings and ``{"type", "text"}`` entities), and for media either ``photo`` (a path under
``photos/``) or ``file`` + ``mime_type`` (+ ``media_type`` for videos, stickers, voice…). Only ``photo`` and
documents whose ``mime_type`` is an image without a ``media_type`` count as photos; link previews are not
exported as media and never count.

Desktop exports carry no ``grouped_id``; an album is its consecutive photo messages with the same
``date_unixtime`` (at most one of them captioned). A ``grouped_id`` key, where an exporter writes one, wins.
Re-importing an export is idempotent: posts already stored for the channel are skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scrapers.telegram.keywords import Vocabulary
from scrapers.telegram.normalize import (
    ChannelStore,
    PhotoRef,
    RawMessage,
    TelegramError,
    TelegramResult,
    build_result,
    group_messages,
    image_ext,
)

_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
_NOT_INCLUDED = "(File not included"


def export_text(value: Any) -> str:
    """``text`` as plain text: a string, or a list of strings and entity dicts with a ``text`` key."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(part if isinstance(part, str) else str(part.get("text", "")) for part in value)
    raise TelegramError(f"unexpected text value {value!r}")


def _iso_date(message: dict) -> str | None:
    if message.get("date_unixtime"):
        return dt.datetime.fromtimestamp(int(message["date_unixtime"]), dt.timezone.utc).isoformat()
    return message.get("date")


def _resolve(export_dir: Path, relative: str, message_id: int) -> Path:
    path = (export_dir / relative).resolve()
    if Path(relative).is_absolute() or export_dir.resolve() not in path.parents:
        raise TelegramError(f"message {message_id}: media path {relative!r} points outside the export")
    return path


def _photo(export_dir: Path, message: dict, stats: dict[str, int]) -> PhotoRef | None:
    """A real photo of an export message (photo, or image document), else None."""
    relative, ext = None, None
    if message.get("photo"):
        relative, ext = message["photo"], Path(message["photo"]).suffix.lower() or ".jpg"
    elif message.get("file") and not message.get("media_type"):
        ext = image_ext(message.get("mime_type"))
        relative = message["file"] if ext else None
    if relative is None:
        return None
    if relative.startswith(_NOT_INCLUDED):
        stats["photos_not_exported"] = stats.get("photos_not_exported", 0) + 1
        return None
    path = _resolve(export_dir, relative, message["id"])
    if not path.is_file():
        stats["photos_missing"] = stats.get("photos_missing", 0) + 1
        return None
    return PhotoRef(ext=".jpg" if ext == ".jpeg" else ext, load=path.read_bytes)


def read_export(export_dir: Path, stats: dict[str, int]) -> tuple[dict, list[RawMessage]]:
    """The export's header and its non-service messages as RawMessages, albums keyed by ``grouped_id``."""
    export_dir = Path(export_dir)
    result_path = export_dir / "result.json"
    if not result_path.is_file():
        raise TelegramError(f"no result.json in {export_dir} (expected a Telegram Desktop JSON export)")
    try:
        data = json.loads(result_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TelegramError(f"{result_path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise TelegramError(f"{result_path} has no 'messages' list (export a single channel, JSON format)")
    messages: list[RawMessage] = []
    previous: tuple[dict, RawMessage] | None = None
    explicit_groups = any("grouped_id" in m for m in data["messages"] if isinstance(m, dict))
    for item in data["messages"]:
        if not isinstance(item, dict) or item.get("type") != "message" or not isinstance(item.get("id"), int):
            stats["service_messages"] = stats.get("service_messages", 0) + 1
            continue
        stats["messages_read"] = stats.get("messages_read", 0) + 1
        raw = RawMessage(id=item["id"], date=_iso_date(item), text=export_text(item.get("text")),
                         photo=_photo(export_dir, item, stats))
        if explicit_groups:
            raw.grouped_id = item.get("grouped_id")
        elif previous is not None and _same_album(previous, item, raw):
            prev_item, prev_raw = previous
            prev_raw.grouped_id = prev_raw.grouped_id or prev_raw.id
            raw.grouped_id = prev_raw.grouped_id
        messages.append(raw)
        previous = (item, raw)
    return data, messages


def _same_album(previous: tuple[dict, RawMessage], item: dict, raw: RawMessage) -> bool:
    prev_item, prev_raw = previous
    if raw.photo is None or prev_raw.photo is None:
        return False
    if (item.get("date_unixtime") or item.get("date")) != (prev_item.get("date_unixtime") or prev_item.get("date")):
        return False
    if item.get("from_id") != prev_item.get("from_id"):
        return False
    return not (raw.text.strip() and prev_raw.text.strip())


def export_channel(data: dict, export_dir: Path) -> str:
    """The channel name used in identities and URLs: the export's ``name`` when it is a valid username."""
    name = str(data.get("name") or "")
    if _USERNAME.match(name):
        return name
    if data.get("id") is not None:
        return f"c{data['id']}"
    return Path(export_dir).resolve().name


def import_export(export_dir: str | Path, raw_dir: str | Path, vocabulary: Vocabulary | None = None,
                  channel: str | None = None) -> TelegramResult:
    """Select animal posts of a Desktop export and store them like live capture does.

    ``channel`` overrides the channel name (default: the export's ``name`` if it is a username, else
    ``c<id>``). Returns every stored post of that channel; ``stats`` counts this import.
    """
    vocab = vocabulary or Vocabulary()
    stats: dict[str, int] = {}
    export_dir = Path(export_dir)
    data, messages = read_export(export_dir, stats)
    store = ChannelStore(Path(raw_dir), channel or export_channel(data, export_dir))
    known = {r["identity_id"] for r in store.records()}
    for group in _groups(messages):
        if f"telegram:{store.channel}:{group[0].id}" in known:
            stats["posts_already_stored"] = stats.get("posts_already_stored", 0) + 1
            continue
        store.process(group, vocab, stats)
    return build_result([store], stats)


def _groups(messages: list[RawMessage]) -> Iterator[list[RawMessage]]:
    yield from group_messages(messages)
