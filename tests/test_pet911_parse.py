"""pet911 parsers: every real saved page in ../shared, the project's 2025/catalog fixtures, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from petid.cli import main
from scrapers.pet911.catalog import (CatalogError, feed_url, page_number, page_url, parse_catalog,
                                     parse_feed_spec)
from scrapers.pet911.parse import LISTING_KEYS, NotAListingError, parse_listing

FIXTURES = Path(__file__).parent / "fixtures" / "pet911"

# file → expected values (a subset of keys; photo count checked separately)
EXPECTED = {
    "20240114/petCard_rl518787.html": dict(
        listing_id="rl518787", kind="lost", species="cat", breed="Британская короткошерстная кошка", sex="female",
        date_added="2022-04-26", date_event="2022-04-24", city="Москва",
        address="улица Брянский Пост, 6 с1А, Москва", lat=55.77292439, lng=37.55103469,
        title="Пропала кошка Муся, серая британка, ул. Брянский Пост, 6 с1А.", closed=False, n_photos=7),
    "20240114/petCard_rf494610_no_author.html": dict(
        listing_id="rf494610", kind="found", species="dog", breed="Немецкая овчарка", sex="male",
        date_added="2021-11-05", date_event="2021-11-01", city="Бийск", lat=52.54243307, lng=85.28085709,
        closed=True, n_photos=2),
    "20240114/petCard_rf494618_no_sex.html": dict(
        listing_id="rf494618", kind="found", species="dog", breed=None, sex=None, city="Хабаровск",
        date_event="2021-11-05", closed=False, n_photos=2),
    "20240114/petCard_rf518209.html": dict(
        listing_id="rf518209", kind="found", species="dog", sex="male", city="Обнинск",
        address="улица Цветкова, 2, Обнинск", closed=False, n_photos=1),
    "20240114/petCard_rl518678_no_photos.html": dict(
        listing_id="rl518678", kind="lost", species="dog", breed="Той терьер", city="Москва", address="Москва",
        closed=False, n_photos=0),
    "20240114/petCard_rl527005_lost_author_name.html": dict(
        listing_id="rl527005", kind="lost", species="cat", sex="male", date_added="2022-05-29",
        date_event="2022-05-27", closed=False, n_photos=3),
    # 2022 markup: no breadcrumbs or JSON-LD; Cyrillic slugs (the canonical URL of rl518787 wrongly says "собака";
    # og:url and the 2024 page agree on "кошка")
    "20220628/petCard_rl518787.html": dict(
        listing_id="rl518787", kind="lost", species="cat", breed=None, sex="female", city="Москва",
        date_added="2022-04-26", date_event="2022-04-24", title="Пропала кошка, Москва", closed=False, n_photos=7),
    "20220628/petCard_rf518209.html": dict(
        listing_id="rf518209", kind="found", species="dog", sex="male", city="Обнинск", lat=55.10841382,
        lng=36.59045935, closed=False, n_photos=1),
    "20220628/petCard_rl537200_lost_is_found.html": dict(
        listing_id="rl537200", kind="lost", species="cat", sex="female", city="Москва",
        address="Рогожский Вал улица, д.11 к2, Москва", closed=True, n_photos=2),
    "2020/petCard.json": dict(
        listing_id="rl433516", kind="lost", species="cat", sex="male", breed=None, city="Томск",
        date_added="2020-07-26", date_event="2020-07-24", lat=56.523339, lng=85.074015, title=None, closed=True,
        n_photos=1),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_pages(pet911_pages: Path, name: str) -> None:
    record = parse_listing((pet911_pages / name).read_bytes())
    assert tuple(record) == LISTING_KEYS
    expected = dict(EXPECTED[name])
    assert len(record["photo_urls"]) == expected.pop("n_photos")
    for key, value in expected.items():
        assert record[key] == value, key
    assert len(set(record["photo_urls"])) == len(record["photo_urls"])
    assert not any("no-photo" in url or url.endswith(".svg") for url in record["photo_urls"])
    assert record["description"] and "\n\n" not in record["description"]


def test_every_shared_page_is_covered(pet911_pages: Path) -> None:
    pages = {str(p.relative_to(pet911_pages)) for p in pet911_pages.rglob("*") if p.is_file() and p.suffix != ".MIT"}
    not_listings = {p for p in pages if "catalog" in p or p.endswith("petCards.json")}
    assert pages - not_listings == set(EXPECTED)
    for name in not_listings:
        with pytest.raises(NotAListingError):
            parse_listing((pet911_pages / name).read_bytes())


def test_real_gallery_order_and_multiline_description(pet911_pages: Path) -> None:
    record = parse_listing((pet911_pages / "20240114/petCard_rl518787.html").read_bytes())
    assert record["photo_urls"][0] == "https://cdn.pet911.ru/Pet_165095340062678cb83dea18.58046461.webp"
    assert record["photo_urls"][-1] == "https://cdn.pet911.ru/Pet_165095355762678d5570db96.27027701.webp"
    lines = record["description"].split("\n")
    assert lines[0].startswith("Пепельная (серая) британка.") and lines[-1].startswith("Потерялась недалеко")


def test_2025_card_print_markup() -> None:
    record = parse_listing((FIXTURES / "card_print_2025.html").read_bytes())
    assert record == {
        "listing_id": "rf901234", "kind": "found", "species": "cat", "breed": None, "sex": "female",
        "date_added": "2025-01-15", "date_event": "2025-01-14", "city": "Казань",
        "address": "улица Баумана, 10, Казань", "lat": 55.78874, "lng": 49.12214,
        "title": "Пропала собака?! Найдена кошка, Казань",  # the title never decides species/kind
        "description": "Первый абзац: рыжая кошка,\nочень ласковая.\nВторой абзац — сидела у подъезда.",
        "photo_urls": ["https://cdn.pet911.ru/Pet_1735000001aaaa.webp",
                       "https://pet911.ru/uploads/pets/2025/01/IMG_2044.JPG"],
        "closed": True,
    }


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b"<html><head><title>404</title></head><body><h1>Not found</h1></body></html>", "no pet911 listing card"),
    (b'<html><body><div class="card"><p>no number</p></div></body></html>', "no valid pet911 listing number"),
    (b'{"pets": []}', "catalog"),
    (b"{not json", "does not parse"),
])
def test_non_listings_raise_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(NotAListingError, match=reason):
        parse_listing(data)


def test_cli_parse_listing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse-listing", str(FIXTURES / "card_print_2025.html")]) == 0
    record = json.loads(capsys.readouterr().out)
    assert tuple(record) == LISTING_KEYS and record["listing_id"] == "rf901234"
    assert main(["parse-listing", str(FIXTURES / "catalog_empty.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a pet911 listing" in err and "\n" not in err


def test_real_catalogs(pet911_pages: Path) -> None:
    page = parse_catalog((pet911_pages / "20240114/catalog.html").read_bytes(), "https://pet911.ru/catalog")
    assert len(page.cards) == 20 and page.total == 82406 and page.last_page == 4121 and page.page == 1
    assert page.cards[0].listing_id == "rl784607" and page.cards[0].is_top
    assert page.cards[0].url == "https://pet911.ru/kommunarka/lost/dog/rl784607"
    assert page.cards[0].date == "2024-01-13" and page.cards[0].thumbnail.startswith("https://cdn.pet911.ru/thumb_")
    assert sum(c.is_top for c in page.cards) == 11 and sum(c.is_found for c in page.cards) == 1
    old = parse_catalog((pet911_pages / "20220628/catalog.html").read_bytes(), "https://pet911.ru/catalog")
    assert len(old.cards) == 20 and old.total == 11351 and old.last_page == 568
    card = next(c for c in old.cards if c.listing_id == "rl537200")
    assert card.is_found and card.url.isascii() and card.url.endswith("/rl537200")
    legacy = parse_catalog((pet911_pages / "2020/petCards.json").read_bytes())
    assert len(legacy.cards) == 20 and legacy.total == 259372


def test_catalog_query_pagination_and_bad_cards() -> None:
    url = "https://pet911.ru/catalog?PetsSearch%5Btype%5D=1&page=7"
    page = parse_catalog((FIXTURES / "catalog_query_pages.html").read_bytes(), url)
    assert [c.listing_id for c in page.cards] == ["rl900003", "rl900002"]  # the path-traversal card is dropped
    assert page.cards[0].is_top and not page.cards[0].is_found and page.cards[1].is_found
    assert page.total == 1160 and page.page == 7 and page.last_page == 8
    empty = parse_catalog((FIXTURES / "catalog_empty.html").read_bytes(), "https://pet911.ru/catalog")
    assert empty.cards == [] and empty.total == 0 and empty.last_page is None
    with pytest.raises(CatalogError):
        parse_catalog((FIXTURES / "card_print_2025.html").read_bytes())


def test_page_urls_and_feeds() -> None:
    assert page_url("https://pet911.ru/catalog", 1) == "https://pet911.ru/catalog"
    assert page_url("https://pet911.ru/catalog/page-4", 9) == "https://pet911.ru/catalog/page-9"
    filtered = feed_url("https://pet911.ru", species="cat", kind="found")
    assert page_url(filtered, 3).endswith("PetsSearch%5Banimal%5D=2&PetsSearch%5Btype%5D=2&page=3")
    assert page_number(page_url(filtered, 3)) == 3 and page_number("https://pet911.ru/catalog/page-12") == 12
    assert page_number("https://pet911.ru/catalog") == 1
    region = parse_feed_spec("lost-dog@59.93,30.31,25", "https://pet911.ru")
    assert "PetsSearch%5Blatitude%5D=59.930000" in region and "PetsSearch%5Bradius%5D=25" in region
    bbox = parse_feed_spec("all@60,29,59,31", "https://pet911.ru")
    assert "latTopLeft%5D=60.000000" in bbox and "lngBotRight%5D=31.000000" in bbox
    assert parse_feed_spec("all", "https://pet911.ru") == "https://pet911.ru/catalog"
    with pytest.raises(ValueError, match="unknown word"):
        parse_feed_spec("lost-hamster", "https://pet911.ru")
