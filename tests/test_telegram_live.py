"""Live capture against a fake Telethon client yielding real ``telethon.tl.types`` messages built offline."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from telethon.errors import AuthKeyUnregisteredError, FloodPremiumWaitError, FloodWaitError
from telethon.tl.types import (
    Document,
    Message,
    MessageActionChannelCreate,
    MessageMediaDocument,
    MessageMediaPhoto,
    MessageMediaWebPage,
    MessageService,
    PeerChannel,
    Photo,
    PhotoEmpty,
    WebPage,
)

from petid.paths import sha256_bytes
from scrapers.telegram.live import TelegramCredentialsError, fetch_channels, make_client, read_cursor

OLD = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
CH = "poteryashki_test"


def _photo() -> MessageMediaPhoto:
    return MessageMediaPhoto(photo=Photo(id=1, access_hash=0, file_reference=b"", date=OLD, sizes=[], dc_id=2))


def _doc(mime: str) -> MessageMediaDocument:
    return MessageMediaDocument(document=Document(id=2, access_hash=0, file_reference=b"", date=OLD, mime_type=mime,
                                                  size=10, dc_id=2, attributes=[]))


def _msg(mid: int, text: str = "", media=None, grouped_id: int | None = None, date: dt.datetime = OLD) -> Message:
    return Message(id=mid, peer_id=PeerChannel(7), date=date, message=text, media=media, grouped_id=grouped_id)


class FakeClient:
    """Implements exactly what petid calls: iter_messages(entity, min_id=, reverse=True), download_media(m, file=bytes)."""

    def __init__(self, messages: dict[str, list], flood: dict[int, int] | None = None) -> None:
        self.messages = messages
        self.flood = dict(flood or {})  # message id -> seconds, raised once when reaching that message
        self.iter_calls: list[tuple[str, int]] = []
        self.downloads: list[int] = []
        self.fail_download: set[int] = set()
        self.premium_wait: dict[int, int] = {}  # message id -> FLOOD_PREMIUM_WAIT seconds, raised once on download
        self.revoked_at: int | None = None  # message id at which the session stops being authorised

    def iter_messages(self, entity: str, *, min_id: int = 0, reverse: bool = False):
        assert reverse is True
        self.iter_calls.append((entity, min_id))
        for message in sorted(self.messages[entity], key=lambda m: m.id):
            if message.id <= min_id:
                continue
            if message.id in self.flood:
                raise FloodWaitError(request=None, capture=self.flood.pop(message.id))
            if message.id == self.revoked_at:
                raise AuthKeyUnregisteredError(request=None)
            yield message

    def download_media(self, message: Message, file=None) -> bytes | None:
        assert file is bytes
        if message.id in self.fail_download:
            raise ConnectionError(f"download of {message.id} failed")
        if message.id in self.premium_wait:
            raise FloodPremiumWaitError(request=None, capture=self.premium_wait.pop(message.id))
        self.downloads.append(message.id)
        if isinstance(getattr(message.media, "photo", None), PhotoEmpty):
            return None  # what Telethon's download_media returns for a PhotoEmpty (no file to fetch)
        return b"\xff\xd8\xff" + f"photo-{message.id}".encode()


def _channel() -> list:
    return [
        MessageService(id=1, peer_id=PeerChannel(7), date=OLD, action=MessageActionChannelCreate(title="t")),
        _msg(10, "Пропала кошка, ул. Коштоянца", _photo()),  # single photo
        _msg(11, "", _photo(), grouped_id=500),  # album, caption on the middle item
        _msg(12, "Найдена собака! Ищем хозяина", _photo(), grouped_id=500),
        _msg(13, "", _photo(), grouped_id=500),
        _msg(14, "Потерялся пёс, помогите"),  # text only
        _msg(15, "Пропал кот, памятка https://example.org",  # link preview photo must not count
             MessageMediaWebPage(webpage=WebPage(id=1, url="https://example.org", display_url="example.org",
                                                 hash=0, photo=_photo().photo))),
        _msg(16, "Нашли котёнка", _doc("image/png")),  # image document
        _msg(17, "Пропала собака, видео", _doc("video/mp4")),  # not a photo
        _msg(18, "Котёнок в добрые руки", _photo()),  # adoption: excluded
        _msg(19, "ул. Коштоянца перекрыта", _photo()),  # not about an animal
    ]


def test_fetch_selects_posts_albums_and_real_photos(tmp_path: Path) -> None:
    client = FakeClient({CH: _channel()})
    result = fetch_channels(client, [f"@{CH}"], tmp_path, sleep=lambda s: pytest.fail("no flood wait expected"))
    posts = {r["identity_id"]: r for r in result.posts.to_pylist()}
    assert sorted(posts) == [f"telegram:{CH}:10", f"telegram:{CH}:11", f"telegram:{CH}:16"]
    album = posts[f"telegram:{CH}:11"]
    assert album["message_ids"] == [11, 12, 13] and album["n_photos"] == 3
    assert (album["species"], album["kind"], album["url"]) == ("dog", "found", f"https://t.me/{CH}/11")
    assert posts[f"telegram:{CH}:10"]["species"] == "cat" and posts[f"telegram:{CH}:10"]["kind"] == "lost"
    cat = result.catalogue.to_pylist()
    assert [(r["identity_id"].split(":")[-1], r["position"]) for r in cat] == [
        ("10", 0), ("11", 0), ("11", 1), ("11", 2), ("16", 0)]
    assert {r["source"] for r in cat} == {"telegram"}
    doc_row = cat[-1]
    assert doc_row["path"].endswith(".png") and doc_row["photo_url"] == f"https://t.me/{CH}/16"
    for row in cat:  # content-addressed under raw_dir/<channel>/photos/ab/<sha>.<ext>
        path = Path(row["path"])
        digest = sha256_bytes(path.read_bytes())
        assert path == tmp_path / CH / "photos" / digest[:2] / f"{digest}{path.suffix}"
    assert sorted(client.downloads) == [10, 11, 12, 13, 16]  # no download for previews, videos, excluded posts
    s = result.stats
    assert (s["selected_without_photos"], s["excluded_adoption"], s["not_animal"]) == (3, 1, 1)
    assert read_cursor(tmp_path, CH) == 19

    again = fetch_channels(client, [CH], tmp_path)  # nothing new: same catalogue, no downloads
    assert client.iter_calls[-1] == (CH, 19) and again.catalogue.equals(result.catalogue)
    assert again.stats.get("messages_read", 0) == 0


def test_album_split_across_runs_by_message_cap(tmp_path: Path) -> None:
    messages = [_msg(1, "Пропал кот", _photo()), _msg(2, "Найден пёс", _photo(), grouped_id=9),
                _msg(3, "", _photo(), grouped_id=9), _msg(4, "", _photo(), grouped_id=9), _msg(5, "Пропала кошка", _photo())]
    client = FakeClient({CH: messages})
    first = fetch_channels(client, [CH], tmp_path, max_messages_per_channel=3)
    assert first.posts["identity_id"].to_pylist() == [f"telegram:{CH}:1"]
    assert first.stats["albums_deferred"] == 1 and read_cursor(tmp_path, CH) == 1  # never past a partial album
    second = fetch_channels(client, [CH], tmp_path, max_messages_per_channel=10)
    assert client.iter_calls[-1] == (CH, 1)
    posts = {r["identity_id"]: r for r in second.posts.to_pylist()}
    assert posts[f"telegram:{CH}:2"]["message_ids"] == [2, 3, 4] and posts[f"telegram:{CH}:2"]["n_photos"] == 3
    assert sorted(posts) == [f"telegram:{CH}:1", f"telegram:{CH}:2", f"telegram:{CH}:5"]
    assert read_cursor(tmp_path, CH) == 5


def test_recent_trailing_album_waits_for_its_remaining_items(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    channel = [_msg(1, "", _photo(), grouped_id=3, date=now), _msg(2, "", _photo(), grouped_id=3, date=now)]
    client = FakeClient({CH: channel})
    first = fetch_channels(client, [CH], tmp_path)
    assert first.posts.num_rows == 0 and read_cursor(tmp_path, CH) == 0
    channel.append(_msg(3, "Пропала собака", _photo(), grouped_id=3, date=now))  # caption arrives on the last item
    channel.append(_msg(4, "Новости района"))
    second = fetch_channels(client, [CH], tmp_path)
    assert second.posts.to_pylist()[0]["message_ids"] == [1, 2, 3]
    assert second.catalogue.num_rows == 3 and read_cursor(tmp_path, CH) == 4


def test_flood_wait_is_slept_and_resumed(tmp_path: Path) -> None:
    client = FakeClient({CH: _channel()}, flood={12: 7})
    slept: list[float] = []
    result = fetch_channels(client, [CH], tmp_path, sleep=slept.append, flood_wait_cap_s=60)
    assert slept == [7] and result.stats["flood_waits"] == 1 and result.stats["flood_wait_s"] == 7
    assert client.iter_calls == [(CH, 0), (CH, 10)]  # resumed from the cursor, album 11-13 re-read whole
    assert result.posts.to_pylist()[1]["message_ids"] == [11, 12, 13]
    assert result.posts.num_rows == 3 and read_cursor(tmp_path, CH) == 19


def test_flood_wait_over_cap_stops_cleanly_and_next_run_continues(tmp_path: Path) -> None:
    client = FakeClient({CH: _channel(), "other": [_msg(1, "Пропал кот", _photo())]}, flood={16: 3600})
    result = fetch_channels(client, [CH, "other"], tmp_path, sleep=lambda s: pytest.fail("must not sleep 1h"),
                            flood_wait_cap_s=60)
    assert result.stats["flood_stopped"] == 1 and result.stats["channels_done"] == 0
    assert read_cursor(tmp_path, CH) == 15 and read_cursor(tmp_path, "other") == 0
    assert all(call[0] == CH for call in client.iter_calls)  # the run stopped, other channel untouched
    assert result.posts.num_rows == 2
    resumed = fetch_channels(client, [CH, "other"], tmp_path)
    assert resumed.stats["channels_done"] == 2 and read_cursor(tmp_path, CH) == 19
    assert resumed.posts.num_rows == 4


def test_crash_during_download_never_skips_a_post(tmp_path: Path) -> None:
    client = FakeClient({CH: _channel()})
    client.fail_download = {12}
    with pytest.raises(ConnectionError):
        fetch_channels(client, [CH], tmp_path)
    assert read_cursor(tmp_path, CH) == 10  # the album was not written, so the cursor stays before it
    client.fail_download = set()
    result = fetch_channels(client, [CH], tmp_path)
    assert [r["first_message_id"] for r in result.posts.to_pylist()] == [10, 11, 16]


def test_make_client_credentials(tmp_path: Path) -> None:
    with pytest.raises(TelegramCredentialsError, match="PETID_TELEGRAM_API_HASH, PETID_TELEGRAM_SESSION"):
        make_client(12345, None, "")
    with pytest.raises(TelegramCredentialsError, match="must be an integer") as err:
        make_client("abc", "secret-hash-value", "1session")
    assert "secret-hash-value" not in str(err.value)
    with pytest.raises(TelegramCredentialsError, match="not a valid Telethon StringSession") as err:
        make_client(12345, "secret-hash-value", "garbage-session-secret")
    assert "garbage-session-secret" not in str(err.value)

    from telethon.crypto import AuthKey
    from telethon.sessions import StringSession

    session = StringSession()
    session.set_dc(2, "149.154.167.51", 443)
    session.auth_key = AuthKey(b"\x01" * 256)
    client = make_client("12345", "0123456789abcdef", session.save())
    from telethon import TelegramClient

    assert isinstance(client, TelegramClient) and client.api_id == 12345
    assert not client.is_connected()


def test_corrupt_cursor_is_named(tmp_path: Path) -> None:
    (tmp_path / CH).mkdir()
    (tmp_path / CH / "cursor.json").write_text("{bad")
    with pytest.raises(Exception, match="corrupt cursor file .*cursor.json"):
        fetch_channels(FakeClient({CH: []}), [CH], tmp_path)


def _empty_photo() -> MessageMediaPhoto:
    return MessageMediaPhoto(photo=PhotoEmpty(id=9))


def test_photo_empty_is_skipped_and_recorded_and_the_cursor_moves(tmp_path: Path) -> None:
    channel = [
        _msg(10, "Пропала кошка, ул. Коштоянца", _empty_photo()),  # the post's only photo is gone
        _msg(11, "", _photo(), grouped_id=77),  # album: one item gone, two kept
        _msg(12, "Найдена собака! Ищем хозяина", _empty_photo(), grouped_id=77),
        _msg(13, "", _photo(), grouped_id=77),
        _msg(14, "Пропал кот", _photo()),
    ]
    client = FakeClient({CH: channel})
    result = fetch_channels(client, [CH], tmp_path)
    assert read_cursor(tmp_path, CH) == 14  # not pinned at message 10
    posts = {r["first_message_id"]: r for r in result.posts.to_pylist()}
    assert sorted(posts) == [11, 14] and posts[11]["message_ids"] == [11, 12, 13] and posts[11]["n_photos"] == 2
    s = result.stats
    assert (s["photos_unavailable"], s["photos_skipped"], s["selected_photos_unavailable"]) == (2, 2, 1)
    assert [(e["message_id"], e["reason"]) for e in result.skipped] == [(10, "unavailable"), (12, "unavailable")]
    assert "PhotoEmpty" in result.skipped[0]["detail"]
    assert 10 not in client.downloads  # nothing to download for a PhotoEmpty
    skipped_file = tmp_path / CH / "skipped.jsonl"
    assert len(skipped_file.read_text(encoding="utf-8").splitlines()) == 2


def test_download_returning_nothing_is_skipped(tmp_path: Path) -> None:
    class NoBytes(FakeClient):
        def download_media(self, message, file=None):
            return None if message.id == 10 else super().download_media(message, file)

    client = NoBytes({CH: [_msg(10, "Пропала кошка", _photo()), _msg(11, "Пропал кот", _photo())]})
    result = fetch_channels(client, [CH], tmp_path)
    assert read_cursor(tmp_path, CH) == 11 and result.posts["first_message_id"].to_pylist() == [11]
    assert result.skipped[0]["detail"] == "photo download returned no bytes"


def test_flood_premium_wait_is_slept_and_resumed(tmp_path: Path) -> None:
    client = FakeClient({CH: _channel()})
    client.premium_wait = {12: 5}  # FLOOD_PREMIUM_WAIT_5 while downloading the album's second photo
    slept: list[float] = []
    result = fetch_channels(client, [CH], tmp_path, sleep=slept.append, flood_wait_cap_s=60)
    assert slept == [5] and result.stats["flood_waits"] == 1 and result.stats["flood_wait_s"] == 5
    assert result.posts.num_rows == 3 and read_cursor(tmp_path, CH) == 19


def test_flood_premium_wait_over_cap_stops_cleanly(tmp_path: Path) -> None:
    client = FakeClient({CH: _channel()})
    client.premium_wait = {16: 7200}
    result = fetch_channels(client, [CH], tmp_path, sleep=lambda s: pytest.fail("must not sleep 2h"),
                            flood_wait_cap_s=60)
    assert result.stats["flood_stopped"] == 1 and result.stats["flood_stop_wait_s"] == 7200
    assert read_cursor(tmp_path, CH) == 15


def test_session_revoked_mid_run_names_the_session(tmp_path: Path) -> None:
    client = FakeClient({CH: _channel()})
    client.revoked_at = 14
    with pytest.raises(TelegramCredentialsError, match="PETID_TELEGRAM_SESSION"):
        fetch_channels(client, [CH], tmp_path)
    assert read_cursor(tmp_path, CH) == 10  # what was handled stays handled (album 11-13 was still open)


def _valid_session() -> str:
    from telethon.crypto import AuthKey
    from telethon.sessions import StringSession

    session = StringSession()
    session.set_dc(2, "149.154.167.51", 443)
    session.auth_key = AuthKey(b"\x01" * 256)
    return session.save()


def test_unauthorised_session_never_prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_stdin(*args, **kwargs):
        raise AssertionError("petid must never prompt on stdin")

    monkeypatch.setattr("builtins.input", no_stdin)
    monkeypatch.setattr("getpass.getpass", no_stdin)
    calls: list[str] = []
    for enter in ("with", "start"):
        client = make_client(12345, "0123456789abcdef", _valid_session())

        async def connect() -> None:
            calls.append("connect")

        async def is_user_authorized() -> bool:
            calls.append("is_user_authorized")
            return False

        async def disconnect() -> None:
            calls.append("disconnect")

        client.connect, client.is_user_authorized, client.disconnect = connect, is_user_authorized, disconnect
        with pytest.raises(TelegramCredentialsError, match="PETID_TELEGRAM_SESSION") as err:
            if enter == "with":
                with client:
                    pytest.fail("the block must not run with an unauthorised session")
            else:
                client.start()
        assert "0123456789abcdef" not in str(err.value)
    assert calls == ["connect", "is_user_authorized", "disconnect"] * 2


def test_authorised_session_enters_without_login() -> None:
    client = make_client(12345, "0123456789abcdef", _valid_session())
    calls: list[str] = []

    async def connect() -> None:
        calls.append("connect")

    async def is_user_authorized() -> bool:
        return True

    async def disconnect() -> None:
        calls.append("disconnect")

    client.connect, client.is_user_authorized, client.disconnect = connect, is_user_authorized, disconnect
    with client as entered:
        assert entered is client
    assert calls == ["connect", "disconnect"]


@pytest.mark.parametrize("bad", ["1AAAA", "1" + "A" * 352, "1abc", "2" + "A" * 352])
def test_malformed_session_string_is_a_credentials_error(bad: str) -> None:
    with pytest.raises(TelegramCredentialsError, match="PETID_TELEGRAM_SESSION is not a valid") as err:
        make_client(12345, "0123456789abcdef", bad)
    assert bad not in str(err.value)
