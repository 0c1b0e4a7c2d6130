"""pet911 parsers: every real saved page in ../shared, the project's 2025/catalog fixtures, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from petid_app.cli import main
from scrapers.pet911.catalog import CatalogError, feed_url, page_number, page_url, parse_catalog, parse_feed_spec
from scrapers.pet911.parse import LISTING_KEYS, NotAListingError, city_from_slug, is_valid_listing_id, parse_listing

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


# -- bad input: malformed fields become null, nothing raises but NotAListingError --------------------------------

CARD_2025 = (FIXTURES / "card_print_2025.html").read_bytes()


def test_malformed_initmap_coordinates_become_null() -> None:
    record = parse_listing(CARD_2025.replace(b"lat: 55.78874000", b"lat: 55.7.7"))
    assert record["lat"] is None and record["lng"] == 49.12214 and record["listing_id"] == "rf901234"
    out_of_range = parse_listing(CARD_2025.replace(b"lng: 49.12214000", b"lng: 4912214"))
    assert out_of_range["lat"] == 55.78874 and out_of_range["lng"] is None


def test_json_ld_of_unexpected_types_is_ignored() -> None:
    integer_id = parse_listing(CARD_2025.replace(b'"@id": "rf901234"', b'"@id": 901234'))
    assert integer_id["listing_id"] == "rf901234"  # from the "Номер объявления" row, the int @id is no number
    odd = CARD_2025.replace(b'"term": {"@id": "rf901234", "@type": "Pet"}', b'"term": "rf901234"')
    odd = odd.replace(b'"animalType":', b'"animalType": 7, "x":').replace(b'"properties": [', b'"properties": [1, ')
    assert parse_listing(odd)["species"] == "cat"  # breadcrumbs still say so
    no_info = CARD_2025.replace("Номер объявления".encode(), "Что-то ещё".encode())
    only_int_id = no_info.replace(b'"@id": "rf901234"', b'"@id": 901234')
    assert parse_listing(only_int_id, "https://pet911.ru/kazan/found/cat/rf901234")["listing_id"] == "rf901234"
    malformed_urls = no_info.replace(b"https://pet911.ru/kazan/found/cat/rf901234", b"http://[broken")
    with pytest.raises(NotAListingError, match="no valid pet911 listing number"):
        parse_listing(malformed_urls.replace(b'"@id": "rf901234"', b'"@id": 901234'))


def test_2020_json_with_unexpected_types_nulls_the_fields() -> None:
    pet = {"art": "rl433516", "type": [1], "animal": {"x": 1}, "sex": None, "petBreed": "Сиамская",
           "photos": ["a.jpg", {"url": 5}, {"url": "/uploads/ok.jpg"}, {"url": "http://[bad"}], "location": "Томск",
           "address": 17, "latitude": "55.7.7", "longitude": {"v": 1}, "description": ["a", "b"],
           "created_at": "yesterday", "date": 10 ** 20, "status": {"open": True}}
    record = parse_listing(json.dumps({"pet": pet}).encode())
    assert tuple(record) == LISTING_KEYS
    assert record["listing_id"] == "rl433516" and record["kind"] == "lost"  # from the listing number
    assert record["photo_urls"] == ["https://pet911.ru/uploads/ok.jpg"]
    for key in ("species", "breed", "sex", "city", "address", "lat", "lng", "description", "date_added",
                "date_event"):
        assert record[key] is None, key
    with pytest.raises(NotAListingError, match="no valid listing number"):
        parse_listing(json.dumps({"pet": {"art": 433516}}).encode())
    with pytest.raises(NotAListingError):
        parse_listing(json.dumps({"art": ["rl1"]}).encode())


def test_catalog_json_and_html_with_unexpected_types() -> None:
    data = {"pets": [5, {"art": 7}, {"art": "rl1\n"}, {"art": "rl2", "photos": "x.jpg"},
                     {"art": "rl3", "photos": [{"thumb": 9}]}, {"art": "rl4", "photos": [{"thumb": "/t.jpg"}]}],
            "total": "²"}
    page = parse_catalog(json.dumps(data).encode())
    assert [c.listing_id for c in page.cards] == ["rl2", "rl3", "rl4"] and page.total is None
    assert page.cards[2].thumbnail == "https://pet911.ru/t.jpg" and page.cards[1].thumbnail is None
    html = (FIXTURES / "catalog_query_pages.html").read_bytes().replace(b'href="', b'href="http://[bad', 1)
    parse_catalog(html, "https://pet911.ru/catalog")  # an unparsable link drops its card, not the page


def test_one_invalid_byte_costs_one_character_not_the_page() -> None:
    broken = CARD_2025.replace("Казань".encode(), "Каз".encode() + b"\xff" + "нь".encode(), 1)
    record = parse_listing(broken)
    reference = parse_listing(CARD_2025)
    assert record["title"] == reference["title"] and record["description"] == reference["description"]
    assert record["breed"] == reference["breed"] and record["address"] == reference["address"]
    undeclared = broken.replace(b'<meta charset="UTF-8">', b"")
    assert parse_listing(undeclared)["title"] == reference["title"]  # mostly valid UTF-8: stays UTF-8


def test_declared_charset_header_or_meta_is_kept() -> None:
    reference = parse_listing(CARD_2025)
    text = CARD_2025.decode("utf-8")
    cp1251 = text.replace('<meta charset="UTF-8">', "").encode("cp1251")
    header = parse_listing(cp1251, charset="windows-1251")
    assert header["title"] == reference["title"] and header["city"] == "Казань"
    meta = text.replace('<meta charset="UTF-8">',
                        '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">').encode("cp1251")
    assert parse_listing(meta)["title"] == reference["title"]
    assert parse_listing(cp1251)["title"] == reference["title"]  # undeclared legacy page: cp1251 guessed
    assert parse_listing(CARD_2025, charset="no-such-codec")["title"] == reference["title"]


def test_listing_ids_reject_a_trailing_newline_and_non_strings() -> None:
    assert is_valid_listing_id("rl518787") and is_valid_listing_id("rf1")
    for bad in ("rl518787\n", "rl518787\r\n", " rl518787", "rl", "rl١٢٣", 518787, None, ["rl1"], "rx1"):
        assert not is_valid_listing_id(bad), bad
    with pytest.raises(NotAListingError, match="no valid listing number"):
        parse_listing(json.dumps({"pet": {"art": "rl433516\n"}}).encode())


@pytest.mark.parametrize("slug, city", [
    ("Ростовская-область", "Ростовская область"), ("Нижний-Новгород", "Нижний Новгород"),
    ("Ростов-на-Дону", "Ростов-на-Дону"), ("Санкт-Петербург", "Санкт-Петербург"),
    ("Москва", "Москва"), ("Краснодарский-край", "Краснодарский край"),
])
def test_city_from_a_url_slug(slug: str, city: str) -> None:
    assert city_from_slug(slug) == city
    page = ('<html><body><div class="card"><div class="card-info"><div class="card-info__title">Номер объявления'
            '</div><div class="card-info__value">rl100</div></div></div></body></html>').encode()
    record = parse_listing(page, f"https://pet911.ru/{quote(slug)}/пропала/кошка/rl100")
    assert record["city"] == city and record["kind"] == "lost" and record["species"] == "cat"
