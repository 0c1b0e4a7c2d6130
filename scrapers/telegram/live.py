"""Live capture of public channels with Telethon, incremental and crash-safe.

Async/sync boundary: petid drives Telethon through its *sync* interface (``make_client`` imports
``telethon.sync``, which lets ``client.iter_messages(...)`` be iterated with a plain ``for`` and makes
``client.download_media(...)`` return its result directly). ``fetch_channels`` only ever calls
``client.iter_messages(channel, min_id=cursor, reverse=True)`` and ``client.download_media(message, file=bytes)``.

Per channel the cursor (``raw_dir/<channel>/cursor.json``, the last message id fully handled) moves only after the
post's photos and record are written, and never past an album that might continue: a trailing album is left for
the next run when the per-run message cap stopped the read, or when it is younger than ``album_grace_s`` (its
remaining items may not be posted yet). A photo Telegram cannot give (``PhotoEmpty``, or a download that returns
nothing) is skipped and recorded with its reason (see ``scrapers.telegram.normalize``), so it never pins the
cursor. ``FloodWaitError`` and ``FloodPremiumWaitError`` (telethon.errors; both carry ``.seconds``) are honoured
by sleeping ``e.seconds`` and resuming from the cursor; a wait above ``flood_wait_cap_s`` stops the run cleanly
(state saved, next run continues).

Sessions: the client ``make_client`` returns never prompts. Entering it (``with client:``) or ``client.start()``
connects and checks ``is_user_authorized()``; an expired or revoked session raises TelegramCredentialsError
naming ``PETID_TELEGRAM_SESSION`` instead of asking for a phone number on stdin inside a run. A session string
that does not decode raises the same error.
"""

from __future__ import annotations

import binascii
import datetime as dt
import json
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from petid.errors import UserError
from petid.paths import atomic_write_bytes
from scrapers.telegram.keywords import Vocabulary
from scrapers.telegram.normalize import (
    ChannelStore,
    PhotoRef,
    RawMessage,
    TelegramError,
    TelegramResult,
    build_result,
    image_ext,
    merge_stats,
)

CURSOR_FILE = "cursor.json"
ENV_API_ID, ENV_API_HASH, ENV_SESSION = "PETID_TELEGRAM_API_ID", "PETID_TELEGRAM_API_HASH", "PETID_TELEGRAM_SESSION"


class TelegramCredentialsError(UserError, RuntimeError):
    """API id, API hash or session string missing or malformed (values are never included in the message)."""


_SESSION_EXPIRED = (
    f"the Telegram session in {ENV_SESSION} is not authorised (expired, revoked or logged out): create a new "
    "StringSession with one interactive login outside petid and set it in the environment"
)


def make_client(api_id: int | str | None, api_hash: str | None, session_string: str | None) -> Any:
    """A Telethon ``TelegramClient(StringSession(session_string), api_id, api_hash)`` using the sync interface.

    The caller connects it with ``with client:`` (or ``client.start()``), which never prompts: it connects and
    raises TelegramCredentialsError when the session is not authorised. Missing or malformed values raise
    TelegramCredentialsError naming which ones, never their content.
    """
    missing = [name for name, value in ((ENV_API_ID, api_id), (ENV_API_HASH, api_hash),
                                        (ENV_SESSION, session_string)) if not value]
    if missing:
        raise TelegramCredentialsError(
            f"Telegram credentials missing: {', '.join(missing)} (set them in the environment; a session "
            "string comes from telethon's StringSession after one interactive login)")
    try:
        api_id_int = int(api_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TelegramCredentialsError(f"{ENV_API_ID} must be an integer") from None
    import telethon.sync  # noqa: F401  (patches the client so its coroutines run synchronously)
    from telethon.sessions import StringSession

    try:
        session = StringSession(session_string)
    except (ValueError, binascii.Error, struct.error, TypeError, IndexError):  # bad version, base64, length, ip
        raise TelegramCredentialsError(
            f"{ENV_SESSION} is not a valid Telethon StringSession (it does not decode; copy the whole string "
            "that StringSession.save() printed)") from None
    return _client_class()(session, api_id_int, api_hash)


def _client_class() -> type:
    """``TelegramClient`` whose ``with`` block and ``start()`` connect without ever prompting on stdin."""
    from telethon import TelegramClient

    class NonInteractiveClient(TelegramClient):  # type: ignore[misc, valid-type]
        async def _petid_start(self) -> Any:
            await self.connect()
            if not await self.is_user_authorized():
                await self.disconnect()
                raise TelegramCredentialsError(_SESSION_EXPIRED)
            return self

        async def __aenter__(self) -> Any:  # TelegramClient's would call the interactive start()
            return await self._petid_start()

        def start(self, *args: Any, **kwargs: Any) -> Any:  # same contract as Telethon's: sync unless in a loop
            coro = self._petid_start()
            return coro if self.loop.is_running() else self.loop.run_until_complete(coro)

    return NonInteractiveClient


def _flood_wait_types() -> tuple[type[BaseException], ...]:
    """telethon.errors' waits that carry ``.seconds``: FLOOD_WAIT_X and FLOOD_PREMIUM_WAIT_X (downloads)."""
    try:
        from telethon.errors import FloodPremiumWaitError, FloodWaitError
    except ImportError:  # pragma: no cover - telethon is a dependency
        return ()
    return (FloodWaitError, FloodPremiumWaitError)


def _unauthorised_types() -> tuple[type[BaseException], ...]:
    try:
        from telethon.errors import UnauthorizedError
    except ImportError:  # pragma: no cover
        return ()
    return (UnauthorizedError,)


class _FloodStop(Exception):
    def __init__(self, seconds: int) -> None:
        self.seconds = seconds


def telethon_photo(client: Any, message: Any) -> PhotoRef | None:
    """A real photo of a Telethon message: ``MessageMediaPhoto`` or an image ``MessageMediaDocument``.

    ``message.photo``/``message.document`` are not used: Telethon also returns a web page preview's photo there.
    """
    media = getattr(message, "media", None)
    kind = type(media).__name__
    if kind == "MessageMediaPhoto" and type(getattr(media, "photo", None)).__name__ == "PhotoEmpty":
        return PhotoRef(ext=".jpg", missing="unavailable", detail="PhotoEmpty: Telegram holds no file for this photo")
    if kind == "MessageMediaPhoto" and getattr(media, "photo", None) is not None:
        ext = ".jpg"
    elif kind == "MessageMediaDocument" and getattr(media, "document", None) is not None:
        ext = image_ext(getattr(media.document, "mime_type", None))
        if ext is None:
            return None
    else:  # MessageMediaWebPage (link preview), geo, polls, none
        return None
    return PhotoRef(ext=ext, load=lambda: client.download_media(message, file=bytes))


def _raw(client: Any, message: Any) -> RawMessage:
    date = getattr(message, "date", None)
    return RawMessage(id=int(message.id), date=date.isoformat() if isinstance(date, dt.datetime) else date,
                      text=getattr(message, "message", None) or "", grouped_id=getattr(message, "grouped_id", None),
                      photo=telethon_photo(client, message))


def read_cursor(raw_dir: Path, channel: str) -> int:
    path = ChannelStore(raw_dir, channel).dir / CURSOR_FILE
    if not path.exists():
        return 0
    try:
        return int(json.loads(path.read_text())["last_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise TelegramError(f"corrupt cursor file {path}: {exc}") from exc


def _write_cursor(store: ChannelStore, last_id: int) -> None:
    payload = {"last_id": last_id, "updated": dt.datetime.now(dt.timezone.utc).isoformat()}
    atomic_write_bytes(store.dir / CURSOR_FILE, json.dumps(payload).encode())


def _is_recent(message: RawMessage, grace_s: float) -> bool:
    if not message.date:
        return True
    try:
        when = dt.datetime.fromisoformat(message.date)
    except ValueError:
        return True
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return (dt.datetime.now(dt.timezone.utc) - when).total_seconds() < grace_s


def _fetch_channel(client: Any, store: ChannelStore, raw_dir: Path, vocab: Vocabulary, max_messages: int,
                   flood_wait_cap_s: float, album_grace_s: float, sleep: Callable[[float], None],
                   stats: dict[str, int]) -> None:
    flood_types = _flood_wait_types()
    while True:
        cursor = read_cursor(raw_dir, store.channel)
        group: list[RawMessage] = []
        consumed = stats.get("messages_read", 0)
        capped = False

        def finish(done: list[RawMessage]) -> None:
            store.process(done, vocab, stats)  # photos + record written (or post skipped) ...
            _write_cursor(store, done[-1].id)  # ... before the cursor moves past it

        try:
            for message in client.iter_messages(store.channel, min_id=cursor, reverse=True):
                if stats.get("messages_read", 0) >= max_messages:
                    capped = True
                    break
                stats["messages_read"] = stats.get("messages_read", 0) + 1
                if type(message).__name__ == "MessageService":
                    stats["service_messages"] = stats.get("service_messages", 0) + 1
                    continue
                raw = _raw(client, message)
                if group and raw.grouped_id != group[-1].grouped_id:
                    finish(group)
                    group = []
                if raw.grouped_id is None:  # a lone message is complete: handle it now
                    finish([raw])
                else:
                    group.append(raw)
            if group:  # a trailing album
                if capped or _is_recent(group[-1], album_grace_s):
                    stats["albums_deferred"] = stats.get("albums_deferred", 0) + 1
                else:
                    finish(group)
            stats["channels_capped"] = stats.get("channels_capped", 0) + int(capped)
            return
        except flood_types as exc:  # type: ignore[misc]
            seconds = int(getattr(exc, "seconds", 0) or 0)
            stats["flood_waits"] = stats.get("flood_waits", 0) + 1
            stats["messages_read"] = consumed  # the interrupted pass is re-read from the cursor
            if seconds > flood_wait_cap_s:
                raise _FloodStop(seconds) from exc
            stats["flood_wait_s"] = stats.get("flood_wait_s", 0) + seconds
            sleep(seconds)


def fetch_channels(client: Any, channels: Sequence[str], raw_dir: str | Path, vocabulary: Vocabulary | None = None,
                   max_messages_per_channel: int = 5000, flood_wait_cap_s: float = 300,
                   album_grace_s: float = 600, sleep: Callable[[float], None] = time.sleep) -> TelegramResult:
    """Read new messages of each channel since its cursor; store selected posts; return all stored posts.

    ``stats`` counts this run (``messages_read``, ``posts_selected``, ``photos_saved``, ``photos_skipped``,
    ``photos_unavailable``, ``excluded_*``, ``albums_deferred``, ``flood_waits``, ``flood_wait_s``,
    ``flood_stopped``, ``channels_done``...); ``skipped`` lists the photos that could not be had.
    """
    vocab = vocabulary or Vocabulary()
    raw_dir = Path(raw_dir)
    stores = [ChannelStore(raw_dir, channel) for channel in channels]
    total: dict[str, int] = {"channels_done": 0, "flood_stopped": 0}
    unauthorised = _unauthorised_types()
    for store in stores:
        stats: dict[str, int] = {}
        try:
            _fetch_channel(client, store, raw_dir, vocab, max_messages_per_channel, flood_wait_cap_s,
                           album_grace_s, sleep, stats)
        except unauthorised as exc:  # type: ignore[misc]  (session revoked mid-run; cursors are saved)
            raise TelegramCredentialsError(f"{_SESSION_EXPIRED} ({type(exc).__name__})") from None
        except _FloodStop as stop:
            stats["flood_stopped"] = 1
            stats["flood_stop_wait_s"] = stop.seconds
            merge_stats(total, stats)
            break  # flood limits are per account: stop the whole run; cursors are saved
        merge_stats(total, stats)
        total["channels_done"] += 1
    return build_result(stores, total)
