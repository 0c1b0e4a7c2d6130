"""pet911 catalog pages: cards, totals, pagination (``/catalog/page-N`` and ``?page=N``) and feed URLs."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

import lxml.etree

from petid.errors import UserError
from scrapers.pet911.parse import (
    _HTML_PARSER,
    DEFAULT_BASE,
    _decode,
    _join,
    _text,
    is_valid_listing_id,
    iso_date,
    tok,
)

SPECIES_CODES = {"dog": "1", "cat": "2", "other": "3"}
KIND_CODES = {"lost": "1", "found": "2"}
_PAGE_PATH_RE = re.compile(r"/page-(\d+)/?$")


class CatalogError(UserError, ValueError):
    """The page is not a pet911 catalog page."""


class FeedError(UserError, ValueError):
    """A configured feed spec is invalid; the message says what is accepted."""


@dataclass(frozen=True)
class CatalogCard:
    listing_id: str
    url: str
    is_top: bool  # promoted ("is-top"): pinned above the newest-first order
    is_found: bool  # the animal was found / went home (the listing is closed)
    date: str | None
    thumbnail: str | None


@dataclass
class CatalogPage:
    cards: list[CatalogCard] = field(default_factory=list)
    total: int | None = None  # listings matching the feed
    last_page: int | None = None
    page: int | None = None  # the current page number, when the pagination shows it


def normalize_url(url: str) -> str:
    """Percent-encode a URL's path (2022 catalogs mix encoded and raw Cyrillic) so it is ASCII and comparable."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=quote(parts.path, safe="/%:@-._~!$&'()*+,;=")))


def page_number(url: str) -> int:
    """The page a catalog URL points at: ``/catalog/page-3`` or ``/catalog?page=3`` → 3; no page → 1."""
    parts = urlsplit(url)
    if match := _PAGE_PATH_RE.search(parts.path):
        return int(match.group(1))
    for key, value in parse_qsl(parts.query):
        if key == "page" and value.isdecimal():
            return int(value)
    return 1


def page_url(feed_url: str, page: int) -> str:
    """URL of page ``page`` of a feed: ``/catalog/page-N`` for a bare catalog, ``?…&page=N`` when filtered."""
    parts = urlsplit(feed_url)
    path = _PAGE_PATH_RE.sub("", parts.path).rstrip("/") or "/catalog"
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "page"]
    if query:
        if page > 1:
            query.append(("page", str(page)))
        return urlunsplit(parts._replace(path=path, query=urlencode(query)))
    return urlunsplit(parts._replace(path=path if page <= 1 else f"{path}/page-{page}", query=""))


def feed_url(base_url: str = DEFAULT_BASE, species: str | None = None, kind: str | None = None,
             lat: float | None = None, lng: float | None = None, radius_km: float | None = None,
             bbox: tuple[float, float, float, float] | None = None) -> str:
    """Catalog feed URL with filters. A bare catalog is Moscow-only; pass ``lat``/``lng`` (+ ``radius_km``) or a
    ``bbox`` = (lat_top_left, lng_top_left, lat_bottom_right, lng_bottom_right) for other regions."""
    query: list[tuple[str, str]] = []
    if species is not None:
        if species not in SPECIES_CODES:
            raise ValueError(f"species {species!r} not in {tuple(SPECIES_CODES)}")
        query.append(("PetsSearch[animal]", SPECIES_CODES[species]))
    if kind is not None:
        if kind not in KIND_CODES:
            raise ValueError(f"kind {kind!r} not in {tuple(KIND_CODES)}")
        query.append(("PetsSearch[type]", KIND_CODES[kind]))
    if lat is not None and lng is not None:
        query += [("PetsSearch[latitude]", f"{lat:.6f}"), ("PetsSearch[longitude]", f"{lng:.6f}")]
        if radius_km is not None:
            query.append(("PetsSearch[radius]", f"{radius_km:g}"))
    if bbox is not None:
        lat1, lng1, lat2, lng2 = bbox
        query += [("PetsSearch[latTopLeft]", f"{lat1:.6f}"), ("PetsSearch[lngTopLeft]", f"{lng1:.6f}"),
                  ("PetsSearch[latBotRight]", f"{lat2:.6f}"), ("PetsSearch[lngBotRight]", f"{lng2:.6f}")]
    url = urljoin(base_url.rstrip("/") + "/", "catalog")
    return f"{url}?{urlencode(query)}" if query else url


def parse_feed_spec(spec: str, base_url: str) -> str:
    """A configured feed → URL. ``all``, ``lost``, ``found``, ``lost-cat``, ``found-dog`` …, optionally with a region
    ``@lat,lng[,radius_km]`` or ``@lat1,lng1,lat2,lng2`` (bbox); anything starting with ``/`` or ``http`` is used
    as is (relative to ``base_url``)."""
    if not isinstance(spec, str) or not spec.strip():
        raise FeedError(f"feed {spec!r}: empty (use all|lost|found[-cat|-dog|-other][@lat,lng,r] or a /path)")
    spec = spec.strip()
    if spec.startswith(("/", "http://", "https://")):
        return urljoin(base_url.rstrip("/") + "/", spec)
    name, _, region = spec.partition("@")
    kind = species = None
    for word in filter(None, name.split("-")):
        if word in KIND_CODES:
            kind = word
        elif word in SPECIES_CODES:
            species = word
        elif word != "all":
            raise FeedError(f"feed {spec!r}: unknown word {word!r} (use all|lost|found[-cat|-dog|-other][@lat,lng,r])")
    try:
        numbers = [float(x) for x in region.split(",")] if region else []
    except ValueError:
        numbers = [math.nan]
    if len(numbers) not in (0, 2, 3, 4) or not all(math.isfinite(x) for x in numbers):
        raise FeedError(f"feed {spec!r}: region needs numbers lat,lng[,radius] or a 4-number bbox")
    if len(numbers) == 4:
        return feed_url(base_url, species, kind, bbox=tuple(numbers))  # type: ignore[arg-type]
    lat, lng, radius = (numbers + [None, None, None])[:3]
    return feed_url(base_url, species, kind, lat=lat, lng=lng, radius_km=radius)


def _int(text: str) -> int | None:
    digits = re.sub(r"\D", "", text)
    return int(digits) if digits else None


def parse_catalog(html: str | bytes, url: str | None = None, charset: str | None = None) -> CatalogPage:
    """Parse a catalog page (2022/2024 markup, or the 2020 ``petCards`` JSON) into cards, total and last page.
    ``charset``: the HTTP header's, if known. Cards that cannot be read are skipped."""
    text = _decode(html, charset)
    base = url or DEFAULT_BASE
    if text.lstrip()[:1] in ("{", "["):
        return _parse_catalog_json(text, base)
    doc = lxml.etree.fromstring(text, _HTML_PARSER) if text.strip() else None
    if doc is None:
        raise CatalogError("empty document")
    items = doc.xpath(f"//div[{tok('catalog-item')}]")
    containers = doc.xpath(f"//*[{tok('catalog__items')}]")
    if not items and not containers:
        raise CatalogError("no catalog items container (div.catalog__items) in the page")
    page = CatalogPage()
    for item in items:
        classes = set((item.get("class") or "").split())
        hrefs = item.xpath(f".//a[{tok('catalog-item__title')} or {tok('catalog-item__thumb')}]/@href")
        if not hrefs:
            continue
        joined = _join(base, hrefs[0])
        if joined is None:
            continue
        card_url = normalize_url(joined)
        listing_id = urlsplit(card_url).path.rstrip("/").rsplit("/", 1)[-1]
        if not is_valid_listing_id(listing_id):
            continue
        dates = item.xpath(f".//*[{tok('catalog-item__date')}]")
        thumbs = item.xpath(f".//*[{tok('catalog-item__thumb')}]//img/@src")
        page.cards.append(CatalogCard(
            listing_id=listing_id, url=card_url, is_top="is-top" in classes, is_found="is-found" in classes,
            date=iso_date(_text(dates[0])) if dates else None,
            thumbnail=_join(base, thumbs[0]) if thumbs else None))
    for xpath in (f"//*[{tok('pagination__info')}]", f"//*[{tok('total_find_ads')}]"):
        for node in doc.xpath(xpath):
            numbers = re.findall(r"\d[\d\s\u00a0]*\d|\d", _text(node))
            if numbers:
                page.total = _int(numbers[-1])
                break
        if page.total is not None:
            break
    numbers = [page_number(link) for h in doc.xpath(f"//*[{tok('pagination')}]//a/@href")
               if (link := _join(base, h)) is not None]
    active = doc.xpath(f"//*[{tok('pagination')}]//*[{tok('pagination__active')}]")
    for node in active:
        if (value := _text(node).strip()).isdecimal():
            page.page = int(value)
    current = page.page or (page_number(url) if url else 1)
    page.last_page = max([*numbers, current]) if (numbers or page.cards) else None
    return page


def _parse_catalog_json(text: str, base: str) -> CatalogPage:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CatalogError(f"JSON does not parse: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("pets"), list):
        raise CatalogError("JSON without a 'pets' list")
    cards = []
    for pet in data["pets"]:
        art = pet.get("art") if isinstance(pet, dict) else None
        if is_valid_listing_id(art):
            photos = pet.get("photos")
            first = photos[0] if isinstance(photos, list) and photos and isinstance(photos[0], dict) else {}
            cards.append(CatalogCard(
                listing_id=art, url=urljoin(base, f"/{art}"), is_top=str(pet.get("is_premium")) == "1",
                is_found=str(pet.get("status")) not in ("1", "None"), date=None, thumbnail=_join(base, first.get("thumb"))))
    total = int(data["total"]) if str(data.get("total", "")).isdecimal() else None
    return CatalogPage(cards=cards, total=total, last_page=None)
