"""Telegram Desktop export import on exports written by ``petid_sample.telegram_export.write_export``."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from petid.paths import sha256_bytes
from petid_app.cli import main
from petid_sample.model import SamplePhoto, SamplePost
from petid_sample.telegram_export import write_export
from scrapers.telegram.export import import_export
from scrapers.telegram.normalize import TelegramError

CH = "petid_test_channel"
T0 = dt.datetime(2025, 3, 1, 9, 0)


def _img(seed: int, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (seed * 40 % 256, seed * 70 % 256, 90)).save(buf, fmt)
    return buf.getvalue()


def _posts() -> list[SamplePost]:
    jpg = lambda i: SamplePhoto(_img(i), ".jpg")  # noqa: E731
    return [
        SamplePost(100, T0, "Пропала кошка! ул. Коштоянца", (jpg(1),), animal_id=1),
        SamplePost(102, T0 + dt.timedelta(hours=1), "Найден пёс, ищем хозяина",
                   (jpg(2), SamplePhoto(_img(3, "WEBP"), ".webp"), jpg(4)), animal_id=2),  # album incl. image doc
        SamplePost(106, T0 + dt.timedelta(hours=2), "Потерялась собака, фото позже"),  # text only
        SamplePost(107, T0 + dt.timedelta(hours=3), "Пропал питомец? Памятка https://example.org/p", link_preview=True),
        SamplePost(108, T0 + dt.timedelta(hours=4), "Отдам котёнка в добрые руки", (jpg(5),)),
        SamplePost(109, T0 + dt.timedelta(hours=5), "Продам переноску для кошки", (jpg(6),)),
        SamplePost(110, T0 + dt.timedelta(hours=6), "Кот нашёлся, спасибо всем!", (jpg(7),)),
        SamplePost(111, T0 + dt.timedelta(hours=7), "Внимание: ул. Коштоянца перекрыта", (jpg(8),)),
        SamplePost(112, T0 + dt.timedelta(hours=7), "Найдена кошка у метро", (jpg(9), jpg(10)), animal_id=3),
    ]


def test_write_export_is_desktop_format(tmp_path: Path) -> None:
    path = write_export(CH, _posts(), tmp_path / "exp")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["name"] == CH and data["type"] == "public_channel"
    messages = {m["id"]: m for m in data["messages"]}
    assert messages[99]["type"] == "service"
    assert [messages[i].get("photo", messages[i].get("file")) is not None for i in (102, 103, 104)] == [True] * 3
    assert messages[103]["mime_type"] == "image/webp" and messages[103]["file"].startswith("files/")
    assert sum(bool(messages[i]["text"]) for i in (102, 103, 104)) == 1  # one caption per album
    assert isinstance(messages[107]["text"], list) and messages[107]["text"][1]["type"] == "link"
    assert "photo" not in messages[107] and "file" not in messages[107]
    assert (tmp_path / "exp" / messages[100]["photo"]).is_file()


def test_import_export_selects_animals_and_assembles_albums(tmp_path: Path) -> None:
    write_export(CH, _posts(), tmp_path / "exp")
    chat_id = json.loads((tmp_path / "exp" / "result.json").read_text(encoding="utf-8"))["id"]
    chan = f"c{chat_id}"  # result.json has no username: the channel is known by its id
    result = import_export(tmp_path / "exp", tmp_path / "raw")
    posts = {r["first_message_id"]: r for r in result.posts.to_pylist()}
    assert sorted(posts) == [100, 102, 112]
    assert posts[102]["message_ids"] == [102, 103, 104] and posts[102]["n_photos"] == 3
    assert (posts[102]["species"], posts[102]["kind"]) == ("dog", "found")
    assert (posts[100]["species"], posts[100]["kind"], posts[100]["url"]) == (
        "cat", "lost", f"https://t.me/c/{chat_id}/100")
    assert posts[100]["date"] == "2025-03-01T09:00:00+00:00"
    assert posts[112]["n_photos"] == 2  # same minute as 111, but 111 is its own captioned post
    rows = result.catalogue.to_pylist()
    assert len(rows) == 6 and {r["identity_id"] for r in rows} == {f"telegram:{chan}:{i}" for i in (100, 102, 112)}
    webp = [r for r in rows if r["path"].endswith(".webp")]
    assert len(webp) == 1 and webp[0]["photo_url"] == f"https://t.me/c/{chat_id}/103"
    for row in rows:
        path = Path(row["path"])
        assert path.parent.parent == tmp_path / "raw" / chan / "photos" and path.stem == sha256_bytes(path.read_bytes())
    s = result.stats
    assert (s["excluded_adoption"], s["excluded_sale"], s["excluded_reunited"], s["not_animal"]) == (1, 1, 1, 1)
    assert s["selected_without_photos"] == 2  # text-only and link-preview posts

    again = import_export(tmp_path / "exp", tmp_path / "raw")  # idempotent
    assert again.catalogue.equals(result.catalogue) and again.stats["posts_already_stored"] == 3


def test_import_export_sample_world(tmp_path: Path) -> None:
    from petid_sample.world import build_world

    world = build_world(seed=0, n_animals=48)
    write_export(world.channel, world.posts, tmp_path / "exp")
    result = import_export(tmp_path / "exp", tmp_path / "raw")
    animal_posts = [p for p in world.posts if p.animal_id is not None]
    assert sorted(result.posts["first_message_id"].to_pylist()) == sorted(p.message_id for p in animal_posts)
    assert result.catalogue.num_rows == sum(len(p.photos) for p in animal_posts)
    stored = {Path(p).stem for p in result.catalogue["path"].to_pylist()}
    assert stored == {sha256_bytes(ph.data) for p in animal_posts for ph in p.photos}


def test_bad_exports_are_named(tmp_path: Path) -> None:
    with pytest.raises(TelegramError, match="no result.json"):
        import_export(tmp_path, tmp_path / "raw")
    (tmp_path / "result.json").write_text('{"name": "x"}')
    with pytest.raises(TelegramError, match="no 'messages' list"):
        import_export(tmp_path, tmp_path / "raw")
    (tmp_path / "result.json").write_text(json.dumps({"name": "chan_name", "messages": [
        {"id": 5, "type": "message", "date": "2025-01-01T00:00:00", "text": "Пропал кот", "photo": "../../etc/x.jpg"}]}))
    with pytest.raises(TelegramError, match=r"message 5: media path '../../etc/x.jpg' points outside"):
        import_export(tmp_path, tmp_path / "raw")
    (tmp_path / "result.json").write_text(json.dumps({"name": "chan_name", "messages": [
        {"id": 6, "type": "message", "date": "2025-01-01T00:00:00", "text": "Пропал кот", "photo": "photos/gone.jpg"},
        {"id": 7, "type": "message", "date": "2025-01-01T00:00:00", "text": "Пропал кот",
         "photo": "(File not included. Change data exporting settings to download.)"}]}))
    result = import_export(tmp_path, tmp_path / "raw")
    assert result.stats["photos_missing"] == 1 and result.stats["photos_not_exported"] == 1
    assert result.catalogue.num_rows == 0


def test_cli_import_export_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_export(CH, _posts(), tmp_path / "exp")
    code = main(["telegram", "import-export", str(tmp_path / "exp"), "--raw-dir", str(tmp_path / "raw"), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    chat_id = json.loads((tmp_path / "exp" / "result.json").read_text(encoding="utf-8"))["id"]
    assert (summary["posts"], summary["photos"], summary["channels"]) == (3, 6, [f"c{chat_id}"])
    assert main(["telegram", "import-export", str(tmp_path / "nothing"), "--raw-dir", str(tmp_path / "raw")]) == 2
    err = capsys.readouterr().err
    assert "no result.json" in err and err.startswith("petid telegram: ") and err.count("\n") == 1
    (tmp_path / "vocab.yaml").write_text("- just a list\n")
    code = main(["telegram", "import-export", str(tmp_path / "exp"), "--raw-dir", str(tmp_path / "raw"),
                 "--vocabulary", str(tmp_path / "vocab.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("petid telegram: vocabulary ") and err.count("\n") == 1


# --- Exports written by hand to Telegram Desktop's own JSON writer -------------------------------------------------
# (tdesktop Telegram/SourceFiles/export/output/export_output_json.cpp: header ``name``/``type``/``id`` only, no
# username and no grouped_id; media as ``photo`` or ``file`` + ``media_type`` + ``mime_type``; a file the export
# did not write is a placeholder text in place of its path.)

TOO_LARGE = "(File exceeds maximum size. Change data exporting settings to download.)"
UNAVAILABLE = "(File unavailable, please try again later)"


def _desktop_export(root: Path, messages: list[dict], name: str = "Poteryashki SPb", chat_id: int = 1712345678,
                    chat_type: str = "public_channel") -> Path:
    (root / "photos").mkdir(parents=True, exist_ok=True)
    (root / "video_files").mkdir(parents=True, exist_ok=True)
    (root / "stickers").mkdir(parents=True, exist_ok=True)
    full = []
    for m in messages:
        m = {"type": "message", "date": "2025-03-01T12:00:00", "date_unixtime": "1740830400", "from": name,
             "from_id": f"channel{chat_id}", "text": "", "text_entities": []} | m
        for key in ("photo", "file"):
            if key in m and not m[key].startswith("("):
                (root / m[key]).write_bytes(_img(m["id"]))
        full.append(m)
    (root / "result.json").write_text(json.dumps({"name": name, "type": chat_type, "id": chat_id, "messages": full},
                                                 ensure_ascii=False), encoding="utf-8")
    return root


def _video(mid: int) -> dict:
    return {"id": mid, "file": f"video_files/VID_{mid}.mp4", "thumbnail": f"video_files/VID_{mid}.mp4_thumb.jpg",
            "media_type": "video_file", "mime_type": "video/mp4", "duration_seconds": 7, "width": 640, "height": 360}


def test_album_with_a_video_inside_stays_one_post(tmp_path: Path) -> None:
    exp = _desktop_export(tmp_path / "exp", [
        {"id": 1, "photo": "photos/photo_1.jpg", "text": "Пропала собака, рыжая, ул. Коштоянца"},
        _video(2),  # the album's second item is a video
        {"id": 3, "photo": "photos/photo_3.jpg"},
        {"id": 4, "photo": "photos/photo_4.jpg", "date_unixtime": "1740830460", "text": "Найден кот у метро"},
        {"id": 5, "photo": "photos/photo_5.jpg", "date_unixtime": "1740830460", "text": "Пропал кот, серый"},
    ])
    result = import_export(exp, tmp_path / "raw")
    posts = {r["first_message_id"]: r for r in result.posts.to_pylist()}
    assert sorted(posts) == [1, 4, 5]  # 3 is not a caption-less post of its own; 5 has its own caption
    assert posts[1]["message_ids"] == [1, 2, 3] and posts[1]["n_photos"] == 2  # the video is no photo
    rows = [r for r in result.catalogue.to_pylist() if r["identity_id"].endswith(":1")]
    assert [r["photo_url"].rsplit("/", 1)[1] for r in rows] == ["1", "3"]
    assert result.stats.get("not_animal", 0) == 0


def test_a_sticker_is_never_an_album_item(tmp_path: Path) -> None:
    exp = _desktop_export(tmp_path / "exp", [
        {"id": 1, "photo": "photos/photo_1.jpg", "text": "Пропала собака"},
        {"id": 2, "file": "stickers/sticker.webp", "media_type": "sticker", "sticker_emoji": "😿"},
        {"id": 3, "photo": "photos/photo_3.jpg"},
    ])
    result = import_export(exp, tmp_path / "raw")
    assert [p["message_ids"] for p in result.posts.to_pylist()] == [[1]]


def test_album_is_at_most_ten_items(tmp_path: Path) -> None:
    items = [{"id": i, "photo": f"photos/photo_{i}.jpg"} for i in range(1, 13)]
    items[0]["text"] = "Найдена собака"
    result = import_export(_desktop_export(tmp_path / "exp", items), tmp_path / "raw")
    assert result.posts.to_pylist()[0]["message_ids"] == list(range(1, 11))


def test_post_links_use_the_channel_id_never_the_title(tmp_path: Path) -> None:
    exp = _desktop_export(tmp_path / "exp", [{"id": 2, "photo": "photos/photo_2.jpg", "text": "Пропал кот"}],
                          name="Poteryashki")  # a Latin title is not a username
    result = import_export(exp, tmp_path / "raw")
    post = result.posts.to_pylist()[0]
    assert post["identity_id"] == "telegram:c1712345678:2"
    assert post["url"] == "https://t.me/c/1712345678/2"
    assert result.catalogue.to_pylist()[0]["photo_url"] == "https://t.me/c/1712345678/2"

    named = import_export(exp, tmp_path / "raw2", channel="@poteryashki_spb")  # a username the caller knows
    post = named.posts.to_pylist()[0]
    assert (post["identity_id"], post["url"]) == ("telegram:poteryashki_spb:2", "https://t.me/poteryashki_spb/2")


def test_links_written_by_older_imports_are_rebuilt(tmp_path: Path) -> None:
    exp = _desktop_export(tmp_path / "exp", [{"id": 2, "photo": "photos/photo_2.jpg", "text": "Пропал кот"}])
    import_export(exp, tmp_path / "raw")
    records = tmp_path / "raw" / "c1712345678" / "records.jsonl"
    records.write_text(records.read_text(encoding="utf-8").replace("t.me/c/1712345678", "t.me/c1712345678"),
                       encoding="utf-8")
    again = import_export(exp, tmp_path / "raw")
    assert again.posts.to_pylist()[0]["url"] == "https://t.me/c/1712345678/2"


def test_basic_group_posts_have_no_link(tmp_path: Path) -> None:
    exp = _desktop_export(tmp_path / "exp", [{"id": 2, "photo": "photos/photo_2.jpg", "text": "Пропал кот"}],
                          chat_type="private_group")
    result = import_export(exp, tmp_path / "raw")
    assert result.posts.to_pylist()[0]["url"] is None and result.catalogue.to_pylist()[0]["photo_url"] is None


def test_placeholders_are_skipped_photos_with_their_reason(tmp_path: Path) -> None:
    exp = _desktop_export(tmp_path / "exp", [
        {"id": 1, "photo": "photos/photo_1.jpg", "text": "Пропала кошка, трёхцветная"},
        {"id": 2, "photo": TOO_LARGE},
        {"id": 3, "photo": UNAVAILABLE},
        {"id": 4, "photo": TOO_LARGE, "date_unixtime": "1740830999", "text": "Найден пёс"},  # only a placeholder
    ])
    result = import_export(exp, tmp_path / "raw")
    s = result.stats
    assert (s["photos_too_large"], s["photos_unavailable"], s["photos_skipped"]) == (2, 1, 3)
    assert "photos_missing" not in s  # a placeholder is not a file missing from the export
    assert s["selected_photos_unavailable"] == 1  # post 4 had only the placeholder
    post = result.posts.to_pylist()
    assert [(p["first_message_id"], p["message_ids"], p["n_photos"]) for p in post] == [(1, [1, 2, 3], 1)]
    assert result.catalogue.num_rows == 1
    assert [(e["message_id"], e["reason"]) for e in result.skipped] == [(2, "too_large"), (3, "unavailable"),
                                                                         (4, "too_large")]
    record = json.loads((tmp_path / "raw" / "c1712345678" / "records.jsonl").read_text(encoding="utf-8"))
    assert [(e["message_id"], e["reason"]) for e in record["photos_skipped"]] == [(2, "too_large"), (3, "unavailable")]
    assert record["photos_skipped"][0]["detail"] == TOO_LARGE

    import_export(exp, tmp_path / "raw")  # re-import: post 4 is seen again, but recorded once
    lines = (tmp_path / "raw" / "c1712345678" / "skipped.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
