"""Parse one pet911.ru listing (detail page HTML of 2022–2025 markup, or the 2020 ``petCard`` JSON).

Species and lost/found come from structured places only (JSON-LD, breadcrumbs, URLs, the listing number), never
from the free-text title. Class names are matched as tokens, so ``card`` also matches the 2025 ``card card-print``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import lxml.etree

from petid.errors import UserError

LISTING_KEYS = ("listing_id", "kind", "species", "breed", "sex", "date_added", "date_event", "city", "address",
                "lat", "lng", "title", "description", "photo_urls", "closed")
LISTING_ID_RE = re.compile(r"^r[lf][0-9]{1,10}$")
DEFAULT_BASE = "https://pet911.ru/"
_MSK = dt.timezone(dt.timedelta(hours=3))


class NotAListingError(UserError, ValueError):
    """The input is not a pet911 listing page; the message is a one-line reason."""


def tok(name: str) -> str:
    """XPath predicate matching the class token ``name`` (never the whole class string)."""
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


_KIND_WORDS = {"lost": "lost", "found": "found", "пропала": "lost", "пропал": "lost", "пропали": "lost",
               "найдена": "found", "найден": "found", "найдены": "found"}
_SPECIES_WORDS = {"cat": "cat", "cats": "cat", "dog": "dog", "dogs": "dog", "кошка": "cat", "кот": "cat",
                  "кошки": "cat", "собака": "dog", "собаки": "dog", "пес": "dog", "other": "other",
                  "bird": "other", "птица": "other", "другое": "other", "others": "other"}
_DATE_RE = re.compile(r"(\d{2})\.(\d{2})\.(\d{4})")
_INITMAP_RE = re.compile(r"initMap\(\s*['\"][^'\"]*['\"]\s*,\s*\{\s*lat:\s*(-?[0-9.]+)\s*,\s*lng:\s*(-?[0-9.]+)")
_STUB_RE = re.compile(r"/img/no-photo/|\.svg(\?|$)", re.I)


def is_valid_listing_id(listing_id: str | None) -> bool:
    """True for ids like ``rl518787``/``rf494610`` (safe to use in file names and identity ids)."""
    return bool(listing_id) and bool(LISTING_ID_RE.match(listing_id))


def _decode(data: str | bytes) -> str:
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1251", errors="replace")


def iso_date(text: str | None) -> str | None:
    """``"вт, 26.04.2022"`` → ``"2022-04-26"``; None when no valid dd.mm.yyyy is present."""
    match = _DATE_RE.search(text or "")
    if not match:
        return None
    day, month, year = (int(g) for g in match.groups())
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


def _clean(text: str | None) -> str | None:
    text = " ".join((text or "").split())
    return text or None


def url_parts(url: str) -> list[str]:
    """Lower-cased, percent-decoded path segments of a URL."""
    return [unquote(part).lower() for part in urlsplit(url).path.split("/") if part]


def kind_species_from_url(url: str | None) -> tuple[str | None, str | None]:
    """Lost/found and species from a detail URL (``/moskva/lost/cat/rl1`` or ``/Москва/пропала/кошка/rl1``)."""
    kind = species = None
    for part in url_parts(url or ""):
        kind = kind or _KIND_WORDS.get(part)
        species = species or _SPECIES_WORDS.get(part)
    return kind, species


def _kind_species_from_path(href: str) -> tuple[str | None, str | None]:
    """Breadcrumb links like ``/lost-cats``, ``/found-pets``."""
    match = re.search(r"/(lost|found)-([a-z]+)$", urlsplit(href).path)
    if not match:
        return None, None
    return match.group(1), _SPECIES_WORDS.get(match.group(2))


def _block_lines(element: Any) -> list[str]:
    for br in element.iter("br"):
        br.tail = "\n" + (br.tail or "")
    return [line for line in (" ".join(raw.split()) for raw in _text(element).split("\n")) if line]


def _text(element: Any) -> str:
    return "".join(element.itertext())


def _json_ld(doc: Any) -> list[dict]:
    found: list[dict] = []
    for script in doc.xpath("//script[@type='application/ld+json']"):
        try:
            value = json.loads(script.text or "")
        except ValueError:
            continue
        found.extend(v for v in (value if isinstance(value, list) else [value]) if isinstance(v, dict))
    return found


_WANTED = frozenset({"card", "card-info", "card-info__title", "card-info__value", "breadcrumbs", "breadcrumbs__item",
                     "card-map__address", "card-address__info", "card__title", "card__descr", "card-slider",
                     "js-card-slide", "swiper-slide", "card-notice"})


# Every wanted token contains one of these substrings; the C-level pre-filter keeps the Python loop short.
_CANDIDATES = lxml.etree.XPath("//*[contains(@class, 'card') or contains(@class, 'breadcrumbs') "
                               "or contains(@class, 'swiper-slide')]")
_HTML_PARSER = lxml.etree.HTMLParser(remove_comments=True)


def _class_index(doc: Any) -> dict[str, list[Any]]:
    """One pass over classed elements: class token → elements in document order (fast: no per-field scans)."""
    index: dict[str, list[Any]] = {}
    for element in _CANDIDATES(doc):
        for token in element.get("class").split():
            if token in _WANTED:
                index.setdefault(token, []).append(element)
    return index


def _has_token(element: Any, token: str) -> bool:
    return token in (element.get("class") or "").split()


def _parse_html(text: str, url: str | None) -> dict[str, Any]:
    try:
        doc = lxml.etree.fromstring(text, _HTML_PARSER)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise NotAListingError(f"not HTML: {exc}") from exc
    if doc is None:
        raise NotAListingError("document has no HTML elements")
    idx = _class_index(doc)
    if not any(el.tag == "div" for el in idx.get("card", ())):
        title = _clean(" ".join(doc.xpath("//title//text()")))
        raise NotAListingError(f"no pet911 listing card (div.card) in the page (title: {title!r})")

    info: dict[str, Any] = {}
    for row in idx.get("card-info", ()):
        label = value = None
        for child in row.iter():
            if label is None and _has_token(child, "card-info__title"):
                label = _clean(_text(child))
            elif value is None and _has_token(child, "card-info__value"):
                value = child
        if label and value is not None:
            info[label.lower()] = value
    value_text = {k: _clean(_text(v)) for k, v in info.items()}

    animal: dict = {}
    ld_id = None
    for item in _json_ld(doc):
        if item.get("@type") == "Animal":
            ld_id = (item.get("term") or {}).get("@id")
            for prop in item.get("properties") or []:
                if isinstance(prop, dict) and isinstance(prop.get("term"), dict):
                    animal.update(prop["term"])

    urls = [u for u in [url, *doc.xpath("//meta[@property='og:url']/@content"),
                        *doc.xpath("//link[@rel='canonical']/@href")] if u]
    listing_id = value_text.get("номер объявления") or ld_id
    if not listing_id:
        for candidate in urls:
            last = url_parts(candidate)[-1:] or [""]
            if is_valid_listing_id(last[0]):
                listing_id = last[0]
                break
    if not is_valid_listing_id(listing_id):
        raise NotAListingError(f"page has a card but no valid pet911 listing number (got {listing_id!r})")

    # Species / kind: JSON-LD, breadcrumbs, URLs, then the listing number.
    kind = species = None
    atype = (animal.get("animalType") or "").strip().lower()
    if atype:
        species = _SPECIES_WORDS.get(atype, "other")
    crumbs = idx.get("breadcrumbs__item", [])
    for crumb in crumbs:
        k, s = _kind_species_from_path(crumb.get("href") or "")
        kind, species = kind or k, species or s
    for candidate in urls:
        k, s = kind_species_from_url(candidate)
        kind, species = kind or k, species or s
    kind = kind or {"rl": "lost", "rf": "found"}[listing_id[:2]]

    event_label = next((k for k in info if k.startswith(("пропал", "найден"))), None)

    city = None
    if len(crumbs) >= 2 and "/catalog" in (crumbs[1].get("href") or ""):
        city = _clean(_text(crumbs[1]))
    if city is None:
        for candidate in urls:
            parts = [unquote(p) for p in urlsplit(candidate).path.split("/") if p]
            if len(parts) >= 4 and re.search("[а-яё]", parts[0], re.I):
                city = parts[0]
                break
    address = None
    for token in ("card-map__address", "card-address__info"):
        nodes = idx.get(token)
        if nodes and (address := _clean(_text(nodes[0]))):
            break
    if city is None and address:
        city = address.rsplit(",", 1)[-1].strip() or None

    lat = lng = None
    if match := _INITMAP_RE.search(text):
        lat, lng = float(match.group(1)), float(match.group(2))

    title = None
    for holder in idx.get("card__title", ()):
        h1 = holder.find(".//h1")
        if h1 is not None:
            title = _clean(_text(h1))
            break
    if title is None:
        h1s = doc.xpath("//h1")
        title = _clean(_text(h1s[0])) if h1s else _clean(animal.get("name"))

    description = None
    if descr := idx.get("card__descr"):
        blocks = descr[0].xpath("./p|./div") or [descr[0]]
        lines = [line for block in blocks for line in _block_lines(block)]
        description = "\n".join(lines) or None

    base = url or next(iter(urls), None) or DEFAULT_BASE
    sliders = idx.get("card-slider", [])
    slider_nodes = {n for s in sliders for n in s.iter()}
    hrefs = [a.get("href") or "" for a in idx.get("js-card-slide", ()) if a in slider_nodes]
    if not hrefs:
        hrefs = [img.get("src") or "" for slide in idx.get("swiper-slide", ()) if slide in slider_nodes
                 for img in slide.iter("img")]
    photos: list[str] = []
    for href in hrefs:
        full = urljoin(base, href.strip())
        if href.strip() and not _STUB_RE.search(full) and full not in photos:
            photos.append(full)

    sex_text = (value_text.get("пол питомца") or "").lower()
    sex = "male" if sex_text.startswith("муж") else "female" if sex_text.startswith("жен") else None
    breed = value_text.get("порода питомца") or _clean(animal.get("breed"))
    return {
        "listing_id": listing_id,
        "kind": kind,
        "species": species,
        "breed": breed,
        "sex": sex,
        "date_added": iso_date(value_text.get("добавлено")),
        "date_event": iso_date(value_text.get(event_label)) if event_label else None,
        "city": city,
        "address": address,
        "lat": lat,
        "lng": lng,
        "title": title,
        "description": description,
        "photo_urls": photos,
        "closed": bool(idx.get("card-notice")),
    }


def _msk_date(timestamp: Any) -> str | None:
    try:
        return dt.datetime.fromtimestamp(int(timestamp), _MSK).date().isoformat()
    except (TypeError, ValueError, OverflowError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def parse_pet_json(pet: dict, url: str | None = None) -> dict[str, Any]:
    """One pet of the 2020 JSON API (``petCard.json``'s ``pet``, or an item of ``petCards.json``'s ``pets``)."""
    listing_id = str(pet.get("art") or "")
    if not is_valid_listing_id(listing_id):
        raise NotAListingError(f"JSON pet has no valid listing number (art={pet.get('art')!r})")
    breed = (pet.get("petBreed") or {}).get("name")
    base = url or DEFAULT_BASE
    photos: list[str] = []
    for photo in pet.get("photos") or []:
        if photo.get("url") and (full := urljoin(base, photo["url"])) not in photos:
            photos.append(full)
    description = pet.get("description")
    return {
        "listing_id": listing_id,
        "kind": {"1": "lost", "2": "found"}.get(str(pet.get("type")), {"rl": "lost", "rf": "found"}[listing_id[:2]]),
        "species": {"1": "dog", "2": "cat"}.get(str(pet.get("animal")), "other" if pet.get("animal") else None),
        "breed": None if not breed or breed == "Неизвестно" else breed,
        "sex": {"2": "male", "3": "female"}.get(str(pet.get("sex"))),
        "date_added": _msk_date(pet.get("created_at")),
        "date_event": _msk_date(pet.get("date")),
        "city": _clean((pet.get("location") or {}).get("name")),
        "address": _clean(pet.get("address")),
        "lat": _float(pet.get("latitude")),
        "lng": _float(pet.get("longitude")),
        "title": None,
        "description": "\n".join(l.strip() for l in description.splitlines() if l.strip()) if description else None,
        "photo_urls": photos,
        "closed": str(pet.get("status")) not in ("1", "None"),
    }


def parse_listing(html: str | bytes, url: str | None = None) -> dict[str, Any]:
    """Parse one saved pet911 detail page into a dict with exactly ``LISTING_KEYS``.

    Raises ``NotAListingError`` (one-line reason) for anything that is not a single pet911 listing.
    """
    text = _decode(html)
    head = text[:64].lstrip()
    if head.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise NotAListingError(f"looks like JSON but does not parse: {exc}") from exc
        if isinstance(data, dict) and isinstance(data.get("pet"), dict):
            return parse_pet_json(data["pet"], url)
        if isinstance(data, dict) and "art" in data:
            return parse_pet_json(data, url)
        if isinstance(data, dict) and isinstance(data.get("pets"), list):
            raise NotAListingError(f"JSON catalog of {len(data['pets'])} pets, not one listing")
        raise NotAListingError("JSON without a pet911 'pet' object")
    if not text.strip():
        raise NotAListingError("empty document")
    return _parse_html(text, url)
