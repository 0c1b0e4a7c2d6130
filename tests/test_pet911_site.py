"""The offline pet911-format sample site: rendered pages parse back to the listings; the server routes both
pagination forms and filters, and injects faults."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from petid_sample.model import SampleListing, SamplePhoto
from petid_sample.pet911_site import Fault, Faults, listing_path, serve_site, write_site
from scrapers.pet911.catalog import parse_catalog
from scrapers.pet911.parse import parse_listing


def jpeg(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, "JPEG")
    return buffer.getvalue()


def webp(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, "WEBP")
    return buffer.getvalue()


def make_listing(number: int, kind: str = "lost", species: str = "cat", photos: int = 2, closed: bool = False,
                 sex: str | None = "female", breed: str | None = "Сиамская", day: int = 1,
                 city: str = "Москва") -> SampleListing:
    return SampleListing(
        animal_id=number, listing_id=("rl" if kind == "lost" else "rf") + f"{number:06d}", kind=kind, species=species,
        breed=breed, sex=sex, date_added=dt.date(2025, 5, day), date_event=dt.date(2025, 4, 28), city=city,
        address=f"ул. Ленина, {number}", lat=55.75 + number / 1000, lng=37.61, title=f"Пропала кошка «{number}» & co",
        description="Первый абзац.\nВторой <абзац> с \"кавычками\".",
        photos=tuple(SamplePhoto(data=(jpeg if k % 2 else webp)((k * 40, 10, 10)), ext=".jpg" if k % 2 else ".webp")
                     for k in range(photos)),
        closed=closed, author=None if number % 2 else "Анна")


LISTINGS = [make_listing(1), make_listing(2, kind="found", species="dog", sex=None, breed=None, day=2),
            make_listing(3, photos=0, closed=True, day=3, city="Санкт-Петербург"),
            make_listing(4, kind="found", sex="male", photos=1, day=4)]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    write_site(LISTINGS, tmp_path / "site", page_size=3, promoted=["rl000001"])
    return tmp_path / "site"


def test_every_detail_page_parses_back(site: Path) -> None:
    pages = sorted(p for p in site.rglob("r[lf]*.html"))
    assert len(pages) == len(LISTINGS)
    for listing in LISTINGS:
        html = (site / (listing_path(listing).lstrip("/") + ".html")).read_bytes()
        assert b"card card-print" in html
        record = parse_listing(html, "http://127.0.0.1:1" + listing_path(listing))
        assert record == {
            "listing_id": listing.listing_id, "kind": listing.kind, "species": listing.species,
            "breed": listing.breed, "sex": listing.sex, "date_added": listing.date_added.isoformat(),
            "date_event": listing.date_event.isoformat(), "city": listing.city,
            "address": f"{listing.address}, {listing.city}", "lat": listing.lat, "lng": listing.lng,
            "title": listing.title, "description": listing.description,
            "photo_urls": [f"http://127.0.0.1:1/uploads/Pet_{listing.listing_id}_{k + 1}{p.ext}"
                           for k, p in enumerate(listing.photos)],
            "closed": listing.closed,
        }


def test_server_routes_pagination_filters_and_photos(site: Path) -> None:
    with serve_site(site) as base, httpx.Client() as client:
        first = parse_catalog(client.get(f"{base}/catalog").content, f"{base}/catalog")
        assert [c.listing_id for c in first.cards] == ["rl000001", "rf000004", "rl000003", "rf000002"]
        assert first.cards[0].is_top and first.total == 4 and first.last_page == 2
        assert first.cards[2].is_found  # closed listing
        second_path = client.get(f"{base}/catalog/page-2").text
        assert second_path == client.get(f"{base}/catalog?page=2").text
        assert [c.listing_id for c in parse_catalog(second_path).cards] == ["rl000001", "rl000001"]
        found = parse_catalog(client.get(f"{base}/catalog?PetsSearch%5Btype%5D=2").content, base)
        assert {c.listing_id for c in found.cards} == {"rf000002", "rf000004"}
        assert client.get(f"{base}/robots.txt").text.startswith("User-agent: *")
        photo = client.get(f"{base}/uploads/Pet_rl000001_2.jpg")
        assert photo.headers["content-type"] == "image/jpeg" and photo.content == LISTINGS[0].photos[1].data
        assert client.get(f"{base}/../../etc/passwd").status_code == 404
        assert client.get(f"{base}/nope").status_code == 404


def test_faults_are_injected_and_logged(site: Path) -> None:
    faults = Faults([Fault("429", "/catalog", times=1, retry_after=3), Fault("5xx", "/catalog/page-2"),
                     Fault("redirect_loop", "/moskva/*", times=-1), Fault("truncate", "/robots.txt")])
    with serve_site(site, faults) as base, httpx.Client() as client:
        first = client.get(f"{base}/catalog")
        assert first.status_code == 429 and first.headers["retry-after"] == "3"
        assert client.get(f"{base}/catalog").status_code == 200
        assert client.get(f"{base}/catalog/page-2").status_code == 503
        loop = client.get(f"{base}{listing_path(LISTINGS[0])}")
        assert loop.status_code == 302 and loop.headers["location"].endswith("?loop=1")
        assert client.get(f"{base}/robots.txt").status_code == 200  # robots.txt is never faulted
    assert len(faults.requests) == 5 and all(agent.startswith("python-httpx") for _, _, agent in faults.requests)


def test_truncated_body_is_detected_by_clients(site: Path) -> None:
    with serve_site(site, Faults([Fault("truncate", "/catalog")])) as base:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"{base}/catalog")
        assert httpx.get(f"{base}/catalog").status_code == 200
