"""The listing text a model encodes: personal data stripped (phones, links, e-mails, handles, cards in many forms),
animal numbers kept, the composition of ``listing_text``, the real saved pet911 pages, and the catalogue rows the
pet911 crawl and the Telegram import write."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from petid.text import listing_text, strip_pii

# Deliberately broad, independent of petid.text: any 7+ digits in a row allowing separators, any link-looking thing.
BROAD_PHONE = re.compile(r"(?:\d[\s().\-–]*){7,}")
BROAD_LINK = re.compile(r"(?i)https?:|www\.|[a-zа-яё0-9-]+\.(?:ru|рф|com|me|org|net|su|io|info)\b|@\w|\w@")

CONTACTS = [  # (snippet, what must be gone)
    ("Пропала кошка! Звоните +7 916 123-45-67, вознаграждение.", ["916", "45-67"]),
    ("Нашли пса, хозяин звоните 8 (916) 123 45 67", ["916", "123 45 67"]),
    ("тел. 89161234567 Ольга", ["89161234567"]),
    ("Тел.: +7(916)1234567", ["916", "1234567"]),
    ("моб. 8-916-123-45-67, дом. 8 495 765 43 21", ["916", "495", "765"]),
    ("WhatsApp/Viber +7.926.555.44.33", ["926", "555"]),
    ("звоните 8 916 1234567 или 8(903)765-43-21", ["916", "903", "765"]),
    ("Пишите на +380 67 123 4567 (Украина)", ["380", "4567"]),
    ("Номер +44 20 7946 0958, спросить Анну", ["7946", "0958"]),
    ("городской (495) 123-45-67, с 9 до 18", ["495", "123-45-67"]),
    ("звоните 123-45-67 вечером", ["123-45-67"]),
    ("мобильный 916 123-45-67", ["916"]),
    ("+7 999 000 11 22 — Марина", ["999", "000 11 22"]),
    ("Подробности на https://vk.com/wall-12345_678 и http://pet911.ru/moskva/lost/cat/rl123", ["vk.com", "pet911.ru",
                                                                                                "wall-12345"]),
    ("Фото тут: www.avito.ru/moskva/koshki/12345", ["avito", "www"]),
    ("Группа поиска vk.com/poisk_msk, канал t.me/poteryashki_msk", ["vk.com", "t.me", "poisk_msk", "poteryashki"]),
    ("Пишите в телеграм @anna_poisk или в инсту @koshki.msk", ["anna_poisk", "koshki", "@"]),
    ("e-mail: anna.petrova-1985@mail.ru", ["anna", "mail.ru", "@"]),
    ("почта lost.cat+msk@yandex.ru, сайт найдипитомца.рф", ["yandex", "lost.cat", "рф"]),
    ("Вознаграждение! Карта Сбер 4276 1234 5678 9012, Иван", ["4276", "9012"]),
    ("перевод на карту 2202-2002-3004-5005", ["2202", "5005"]),
    ("карта 4276123456789012 на корм", ["4276123456789012"]),
    ("Хозяйка: тел 22 33 44, спросить Галину", ["22 33 44", "Галин"]),
    ("Анна, 8 916 123 45 67, звонить после 18", ["Анна", "916"]),
    ("Звоните Сергею: +7 916 000-11-22 (Сергей)", ["Серге", "916"]),
    ("WA 8 916 123 45 67 / tg @finder", ["916", "finder"]),
]


@pytest.mark.parametrize(("snippet", "gone"), CONTACTS)
def test_contacts_are_removed(snippet: str, gone: list[str]) -> None:
    out = strip_pii(snippet)
    for part in gone:
        assert part not in out, (snippet, out)
    assert not BROAD_PHONE.search(out) and not BROAD_LINK.search(out), out
    assert "  " not in out and out == out.strip()


def test_the_words_around_contacts_stay() -> None:
    assert strip_pii("Пропала кошка! Звоните +7 916 123-45-67, вознаграждение.") == "Пропала кошка! вознаграждение."
    assert strip_pii("Будем благодарны за репост. +7-983-701-49-48, пишите в Telegram @sergey_dog") == \
        "Будем благодарны за репост."  # nothing leading up to a contact is left dangling
    assert strip_pii("Звоните в любое время, ответим сразу") == "Звоните в любое время, ответим сразу"
    assert strip_pii("Тел.: +7(916)1234567") == ""  # the label goes with the number
    assert strip_pii("Найден пёс, Химки.\nТел. +7 916 123-45-67\n\nОн ждёт хозяина") == \
        "Найден пёс, Химки.\nОн ждёт хозяина"
    assert strip_pii("городской (495) 123-45-67, с 9 до 18") == "городской с 9 до 18"
    assert strip_pii("Группа поиска vk.com/poisk_msk, канал t.me/poteryashki_msk") == "Группа поиска канал"
    assert strip_pii("Рыжий кот.\nЗвоните: 8 916 123 45 67, Анна") == "Рыжий кот."  # only how to call: gone
    assert strip_pii("Хозяйка Ольга ищет кота Бориса") == "Хозяйка ищет кота Бориса"


KEPT = [  # animal and event numbers strip_pii must leave as they are
    "Кошке 2 года, вес 5 кг, стерилизована.",
    "Пропала 12.05.2024 около 18:30 у д. 12 по ул. Лесной, кв. 45.",
    "Пёс 3-4 лет, рост в холке 55 см, весит 23,5 кг.",
    "Родилась 01.03.2019, привита в 2023 году, чип 643094100123456.",
    "Видели 2024-05-12 у дома 117 корпус 2, подъезд 3.",
    "Вознаграждение 10 000 рублей. Ей 9 лет ( она на них не выглядит)",
    "Потерялась в Москве, м. Беговая; 2 кота и 1 кошка дома.",
    "Окрас: чёрно-белый, 1/2 хвоста белая, размер S (2-3 кг).",
    "Кошку зовут Вера, кота Борис; откликаются на кличку.",  # names of animals, not next to a contact
    "Номер чипа 643094100123456, клеймо АБВ 1234.",
    "Звоните 2 раза в дверь, т. 5 кг не поднять",
]


@pytest.mark.parametrize("text", KEPT)
def test_animal_numbers_are_kept(text: str) -> None:
    assert strip_pii(text) == text


def test_strip_pii_edge_cases() -> None:
    assert strip_pii("") == ""
    assert strip_pii("   \n\t ") == ""
    assert strip_pii("+7 916 123 45 67 2 года") == "2 года"  # the number after a phone is the animal's
    assert strip_pii("кошка   серая\t\tпушистая") == "кошка серая пушистая"
    assert strip_pii("Химки, Мытищи и Москва") == "Химки, Мытищи и Москва"  # cities are not personal data


def test_listing_text_composition() -> None:
    text = listing_text(species="cat", breed="Британская", sex="female", colour="серый",
                        title="Пропала кошка Муся, серая британка, ул. Брянский Пост, 6 с1А.",
                        description="Глаза жёлтые.\nЗвоните 8 916 123-45-67", city="Москва")
    assert text == "кошка; порода: Британская; пол: самка; окрас: серый\nкошка Муся, серая британка\nГлаза жёлтые."
    assert listing_text(species="dog", sex="male") == "собака; пол: самец"
    assert listing_text(description="Рыжий кот, тел. +7 916 123-45-67") == "Рыжий кот"
    assert listing_text(species="other", breed="Неизвестная") == "животное; порода: Неизвестная"


def test_titles_lose_kind_address_and_city() -> None:
    def title(t: str, city: str | None = None) -> str | None:
        out = listing_text(title=t, city=city)
        return out

    assert title("Найдена Немецкая овчарка на ул. А. Пушкина, 152 в Бийске", "Бийск") == "Немецкая овчарка"
    assert title("Пропала собака Русский той терьер в Москве", "Москва") == "собака Русский той терьер"
    assert title("Найдена белая собака на ул. Уборевича, 47", "Хабаровск") == "белая собака"
    # nothing but the species noun left: the title is dropped
    assert title("Найдена собака на ул. Цветкова, 2 в Обнинске", "Обнинск") is None
    assert title("Пропала кошка, Москва", "Москва") is None
    assert title("Пропал кот, Химки, ул. Лесная", "Химки") is None
    assert title("Пропал кот, Химки, ул. Лесная") == "кот, Химки"  # without its city the title keeps the name
    assert title("Пропала кошка на Вернадского, Коштоянца.", "Москва") is None
    # a title that only repeats the header adds nothing
    assert listing_text(species="dog", breed="Немецкая овчарка", title="Найдена Немецкая овчарка на ул. Ленина") == \
        "собака; порода: Немецкая овчарка"
    assert listing_text(species="dog", breed="Той терьер", title="Пропала собака Русский той терьер") == \
        "собака; порода: Той терьер\nсобака Русский той терьер"


@pytest.mark.parametrize(("description", "expected"), [
    ("Пропала собака 07.02.2025 в районе ул. Гарибальди, 90 (Москва).", "Пропала собака (Москва)."),
    ("Найдена белая собака средних размеров, на пересечении переулка Клары Цеткин и улицы Уборевича, в частном "
     "секторе.", "Найдена белая собака средних размеров, в частном секторе."),
    ("Кошка сидела у подъезда, Рогожский Вал улица, д.11 к2, боится людей", "Кошка сидела у подъезда, боится людей"),
    ("Пропал 12 мая 2024 г. на Ленинском пр-те, 12. Ему 2 года, вес 5 кг", "Пропал. Ему 2 года, вес 5 кг"),
    ("Потерялась недалеко от м. Беговая, Химки", "Потерялась недалеко от м. Беговая, Химки"),  # no street: stays
])
def test_descriptions_lose_street_addresses_and_dates(description: str, expected: str) -> None:
    assert listing_text(description=description) == expected
    assert strip_pii(description) == description  # strip_pii itself keeps them: they are not personal data


def test_listing_text_missing_and_empty() -> None:
    assert listing_text() is None
    assert listing_text(description="", title="", breed="  ") is None
    assert listing_text(description="тел. 8 916 123-45-67, vk.com/anna, anna@mail.ru") is None  # only contacts
    assert listing_text(title="Пропала кошка, Москва", city="Москва") is None
    assert listing_text(breed="Такса") == "порода: Такса"
    with pytest.raises(ValueError, match="max_chars"):
        listing_text(description="кот", max_chars=0)


def test_listing_text_truncates_at_a_word() -> None:
    words = "пушистый ласковый кот " * 100
    text = listing_text(species="cat", description=words, max_chars=200)
    assert text is not None and len(text) <= 200 and text.startswith("кошка\nпушистый")
    assert words.startswith(text.split("\n", 1)[1])
    assert text.split()[-1] in {"пушистый", "ласковый", "кот"}  # no word cut in half
    assert listing_text(description="x" * 50, max_chars=10) == "x" * 10  # one long word: a hard cut
    assert len(listing_text(species="cat", description="кот " * 10) or "") < 1000


# ------------------------------------------------------------------------------------------------ real pages


def _real_listings(pages: Path) -> list[tuple[str, dict]]:
    from scrapers.pet911.parse import NotAListingError, parse_listing

    out = []
    for path in sorted(pages.rglob("*")):
        if not path.is_file() or path.suffix == ".MIT":
            continue
        try:
            out.append((str(path.relative_to(pages)), parse_listing(path.read_bytes())))
        except NotAListingError:  # the saved catalogue pages
            continue
    return out


def test_real_pages_after_listing_text(pet911_pages: Path) -> None:
    from scrapers.pet911.crawl import catalogue_text

    listings = _real_listings(pet911_pages)
    assert len(listings) >= 10
    for name, record in listings:
        text = catalogue_text(record)
        assert text, name
        assert not BROAD_PHONE.search(text) and not BROAD_LINK.search(text), (name, text)
        if record["breed"]:
            assert record["breed"] in text, name
        assert {"cat": "кошка", "dog": "собака"}[record["species"]] in text.split("\n")[0]
        street = (record["address"] or "").split(",")[0]
        if street.startswith("улица"):  # the listing's street never reaches the text from its title
            assert street.split(" ", 1)[1] not in text, (name, text)
    by_name = dict(listings)
    muse = catalogue_text(by_name["20240114/petCard_rl518787.html"])
    assert muse.split("\n")[:2] == ["кошка; порода: Британская короткошерстная кошка; пол: самка",
                                    "кошка Муся, серая британка"]
    assert "Пепельная (серая) британка" in muse and "Брянский Пост" not in muse


def test_real_descriptions_with_planted_contacts(pet911_pages: Path) -> None:
    """Real owner text with contacts added in several forms: every contact goes, every word of the owner stays."""
    contacts = ("Звоните: +7 916 123-45-67", "или 8 (903) 765 43 21, WhatsApp 89261234567",
                "пишите @lost_cat_msk, vk.com/id12345 или anna.k@mail.ru", "https://t.me/poteryashki/512")
    for name, record in _real_listings(pet911_pages):
        description = record["description"]
        planted = f"{contacts[0]}\n{description}\n" + " ".join(contacts[1:])
        stripped, text = strip_pii(planted), listing_text(description=planted)
        for out in (stripped, text):
            assert out and not BROAD_PHONE.search(out) and not BROAD_LINK.search(out), (name, out)
        assert set(re.findall(r"\w+", description)) <= set(re.findall(r"\w+", stripped)), name


# ------------------------------------------------------------------------------------------------ catalogue rows


def test_pet911_catalogue_text_is_stripped_and_the_raw_page_is_not(tmp_path: Path) -> None:
    from petid_sample.pet911_site import serve_site, write_site
    from petid_sample.world import build_world
    from scrapers.pet911.crawl import CrawlConfig, crawl_listings, download_photos

    world = build_world(seed=1, n_animals=8)
    listing = replace(world.listings[0], description=world.listings[0].description +
                      "\nЗвоните 8 (916) 123-45-67 или пишите @hozyain_kota, vk.com/hozyain")
    write_site([listing], tmp_path / "site")
    with serve_site(tmp_path / "site") as base:
        site = urlsplit(base).netloc
        config = CrawlConfig(base_url=base, feeds=["all"], rate_limit_per_s=200.0, allowed_photo_hosts=[site],
                             private_hosts=[site])
        listings = crawl_listings(config, tmp_path / "raw").listings
        catalogue = download_photos(listings, config, tmp_path / "raw").catalogue
    record = listings.to_pylist()[0]
    assert "123-45-67" in record["description"] and "@hozyain_kota" in record["description"]  # the raw listing
    texts = set(catalogue.column("text").to_pylist())
    assert len(texts) == 1
    text = texts.pop()
    assert not BROAD_PHONE.search(text) and not BROAD_LINK.search(text), text
    assert listing.address not in text and listing.date_added.isoformat() not in text
    header = {"cat": "кошка", "dog": "собака"}[listing.species]
    assert text.split("\n")[0].startswith(header)
    if listing.breed:
        assert f"порода: {listing.breed}" in text


def test_telegram_catalogue_text_is_stripped_and_the_record_is_not(tmp_path: Path) -> None:
    from scrapers.telegram.normalize import ChannelStore, build_result

    store = ChannelStore(tmp_path / "raw", "poteryashki")
    caption = "Найдена кошка! ул. Лесная, Химки.\nРыжая, в синем ошейнике.\nТел. +7 916 123-45-67, @finder_msk"
    store.append({"identity_id": "telegram:poteryashki:5", "channel": "poteryashki", "first_message_id": 5,
                  "message_ids": [5], "date": "2025-05-01T10:00:00", "text": caption, "species": "cat",
                  "kind": "found", "url": None, "photos": [{"message_id": 5, "sha256": "0" * 64, "path": "/x.jpg"}]})
    result = build_result([store], {})
    text = result.catalogue.column("text").to_pylist()[0]
    assert text == "кошка\nНайдена кошка! Химки.\nРыжая, в синем ошейнике."  # the city stays for the matcher
    assert result.posts.column("text").to_pylist() == [caption]  # the post as published
    assert store.records()[0]["text"] == caption


def test_sample_world_texts_through_listing_text() -> None:
    """The sample captions' phones, handles and links never survive; the city the matcher reads from them does."""
    from evaluation.match_run import mentioned_city
    from evaluation.matching import normalise_city
    from petid_sample.world import build_world

    world = build_world(seed=2, n_animals=24)
    cities = sorted({normalise_city(c) for c in ("Москва", "Химки", "Мытищи", "Балашиха", "Люберцы", "Красногорск",
                                                 "Подольск", *(lst.city for lst in world.listings))})
    animal_posts = [p for p in world.posts if p.animal_id is not None]
    assert any(BROAD_PHONE.search(p.text) for p in animal_posts) and any("@" in p.text for p in animal_posts)
    for post in animal_posts:
        text = listing_text(description=post.text)
        assert text and not BROAD_PHONE.search(text) and not BROAD_LINK.search(text), (post.text, text)
        city = post.text.split("\n")[0].rsplit(", ", 1)[1].rstrip(".")
        assert mentioned_city(text, cities) == normalise_city(city), (post.text, text)
    for listing in world.listings:
        text = listing_text(species=listing.species, breed=listing.breed, sex=listing.sex, title=listing.title,
                            description=listing.description, city=listing.city)
        assert text and listing.address not in text and listing.date_event.strftime("%d.%m.%Y") not in text
