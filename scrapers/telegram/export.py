"""Import a channel exported by Telegram Desktop (``result.json`` + ``photos/``, ``files/``), offline.

Format read: Telegram Desktop's own JSON writer, ``Telegram/SourceFiles/export/output/export_output_json.cpp`` in
github.com/telegramdesktop/tdesktop (``JsonWriter::writeDialogStart``, ``SerializeMessage``). A single-chat export
has exactly three header keys, ``name`` (the chat *title*), ``type`` (``public_channel``, ``private_channel``,
``public_supergroup``, ``private_supergroup``, ``private_group``, ``personal_chat``…) and ``id`` (the bare peer
id), then ``messages``. **There is no username field**, so the title is never taken for one: without an explicit
``channel`` the channel is named ``c<id>`` and its posts link as ``https://t.me/c/<id>/<message id>`` (Telegram's
private-link form; it opens for anyone who can read the channel). Each message has ``id``, ``type``
(``message``/``service``), ``date`` (local, naive), ``date_unixtime``, ``from``/``from_id``, optional
``forwarded_from``, ``text`` (a string, or a list of strings and ``{"type", "text"}`` entities) and, for media,
either ``photo`` (a path under ``photos/``) or ``file`` (+ ``mime_type``, + ``media_type`` for ``video_file``,
``animation``, ``sticker``, ``voice_message``, ``video_message``, ``audio_file``). A media file the export did not
write is a placeholder in place of its path: ``(File not included. Change data exporting settings to
download.)``, ``(File exceeds maximum size. Change data exporting settings to download.)`` or ``(File unavailable,
please try again later)``. Only ``photo`` and documents whose ``mime_type`` is an image without a ``media_type``
count as photos; a placeholder or a path whose file is absent is a skipped photo with its reason, never a photo.
Link previews are not exported as media and never count.

Albums: the writer keeps no ``grouped_id``. Telegram stamps every item of an album with one date, so an album is
read back as consecutive media messages (photo, video, document, audio; written or a placeholder) with the same
``date_unixtime``, the same ``from_id`` and ``forwarded_from``, at most ten items (Telegram's album limit) and at
most one captioned item. A video inside an album belongs to the album's post but is not one of its photos. A
``grouped_id`` key, where another exporter writes one, wins. Re-importing an export is idempotent: posts already
stored for the channel are skipped.
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
    channel_name,
    group_messages,
    image_ext,
)

_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
ALBUM_MAX_ITEMS = 10  # Telegram's limit on items in one album (messages.sendMultiMedia)
# export_output_json.cpp pushPath(): SkipReason -> the text written instead of the file's path
_PLACEHOLDERS = (("(File not included", "not_exported"), ("(File exceeds maximum size", "too_large"),
                 ("(File unavailable", "unavailable"))
_NOT_ALBUM_MEDIA = frozenset({"sticker", "animation", "voice_message", "video_message"})
_LINKED_TYPES = frozenset({"public_channel", "private_channel", "public_supergroup", "private_supergroup"})


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


def _placeholder(value: str) -> str | None:
    """The skip reason of a Desktop placeholder written instead of a media path, else None."""
    for prefix, reason in _PLACEHOLDERS:
        if value.startswith(prefix):
            return reason
    return None


def _has_media(message: dict) -> bool:
    """A message carrying a media file that can be an album item (photo, video, document, audio), written or not.

    Stickers, GIFs, voice and round video messages are never part of an album.
    """
    if message.get("media_type") in _NOT_ALBUM_MEDIA:
        return False
    return bool(message.get("photo") or message.get("file"))


def _photo(export_dir: Path, message: dict) -> PhotoRef | None:
    """The photo of an export message (photo, or image document), else None; unavailable ones are marked."""
    relative, ext = None, None
    if message.get("photo"):
        relative = message["photo"]
        ext = ".jpg" if _placeholder(relative) else (Path(relative).suffix.lower() or ".jpg")
    elif message.get("file") and not message.get("media_type"):
        ext = image_ext(message.get("mime_type"))
        relative = message["file"] if ext else None
    if relative is None:
        return None
    ext = ".jpg" if ext == ".jpeg" else ext
    reason = _placeholder(relative)
    if reason is not None:
        return PhotoRef(ext=ext, missing=reason, detail=relative)
    path = _resolve(export_dir, relative, message["id"])
    if not path.is_file():
        return PhotoRef(ext=ext, missing="missing", detail=f"{relative} is not in the export")
    return PhotoRef(ext=ext, load=path.read_bytes)


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
    album: list[tuple[dict, RawMessage]] = []  # the open album candidate: consecutive media messages
    explicit_groups = any("grouped_id" in m for m in data["messages"] if isinstance(m, dict))
    for item in data["messages"]:
        if not isinstance(item, dict) or item.get("type") != "message" or not isinstance(item.get("id"), int):
            stats["service_messages"] = stats.get("service_messages", 0) + 1
            continue
        stats["messages_read"] = stats.get("messages_read", 0) + 1
        raw = RawMessage(id=item["id"], date=_iso_date(item), text=export_text(item.get("text")),
                         photo=_photo(export_dir, item))
        messages.append(raw)
        if explicit_groups:
            raw.grouped_id = item.get("grouped_id")
            continue
        if not _has_media(item):
            album = []
            continue
        if album and _joins_album(album, item, raw):
            album.append((item, raw))
            first = album[0][1]
            first.grouped_id = first.grouped_id or first.id
            raw.grouped_id = first.grouped_id
        else:
            album = [(item, raw)]
    return data, messages


def _joins_album(album: list[tuple[dict, RawMessage]], item: dict, raw: RawMessage) -> bool:
    """Whether a media message continues the album candidate before it (see the module docstring)."""
    head = album[0][0]
    if len(album) >= ALBUM_MAX_ITEMS:
        return False
    if (item.get("date_unixtime") or item.get("date")) != (head.get("date_unixtime") or head.get("date")):
        return False
    if item.get("from_id") != head.get("from_id") or item.get("forwarded_from") != head.get("forwarded_from"):
        return False
    return not (raw.text.strip() and any(r.text.strip() for _, r in album))


def export_channel(data: dict, export_dir: Path, channel: str | None = None) -> tuple[str, str | None]:
    """The channel name used in identities and the prefix of its post links.

    ``channel`` (a username the caller knows) wins and links as ``https://t.me/<channel>``. Else a ``username``
    key, where an exporter writes one (Telegram Desktop does not). Else ``c<id>``, linking as
    ``https://t.me/c/<id>`` for channels and supergroups (other chats have no post links). The chat title
    (``name``) is never used: a Latin title is not a username.
    """
    chat_id = data.get("id")
    linkable = data.get("type") in _LINKED_TYPES or data.get("type") is None
    if channel:
        name = channel_name(channel)
        if chat_id is not None and name == f"c{chat_id}":
            return name, f"https://t.me/c/{chat_id}" if linkable else None
        return name, f"https://t.me/{name}"
    username = str(data.get("username") or "").lstrip("@")
    if _USERNAME.match(username):
        return username, f"https://t.me/{username}"
    if chat_id is not None:
        return f"c{chat_id}", f"https://t.me/c/{chat_id}" if linkable else None
    return Path(export_dir).resolve().name, None


def import_export(export_dir: str | Path, raw_dir: str | Path, vocabulary: Vocabulary | None = None,
                  channel: str | None = None) -> TelegramResult:
    """Select animal posts of a Desktop export and store them like live capture does.

    ``channel`` is the channel's public username where the caller knows it (identities
    ``telegram:<channel>:<id>``, links ``https://t.me/<channel>/<id>``); without it the channel is ``c<id>``
    (links ``https://t.me/c/<id>/<message id>``), see :func:`export_channel`. Returns every stored post of that
    channel; ``stats`` counts this import, ``skipped`` lists the photos that could not be had.
    """
    vocab = vocabulary or Vocabulary()
    stats: dict[str, int] = {}
    export_dir = Path(export_dir)
    data, messages = read_export(export_dir, stats)
    name, link_base = export_channel(data, export_dir, channel)
    store = ChannelStore(Path(raw_dir), name, link_base=link_base)
    known = {r["identity_id"] for r in store.records()}
    for group in _groups(messages):
        if f"telegram:{store.channel}:{group[0].id}" in known:
            stats["posts_already_stored"] = stats.get("posts_already_stored", 0) + 1
            continue
        store.process(group, vocab, stats)
    return build_result([store], stats)


def _groups(messages: list[RawMessage]) -> Iterator[list[RawMessage]]:
    yield from group_messages(messages)
