"""Parse one pet911.ru listing (detail page HTML of 2022–2025 markup, or the 2020 ``petCard`` JSON).

Species and lost/found come from structured places only (JSON-LD, breadcrumbs, URLs, the listing number), never
from the free-text title. Class names are matched as tokens, so ``card`` also matches the 2025 ``card card-print``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import lxml.etree

from petid.errors import UserError

LISTING_KEYS = ("listing_id", "kind", "species", "breed", "sex", "date_added", "date_event", "city", "address",
                "lat", "lng", "title", "description", "photo_urls", "closed")
LISTING_ID_RE = re.compile(r"\Ar[lf][0-9]{1,10}\Z")  # \Z: no trailing newline
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


def is_valid_listing_id(listing_id: object) -> bool:
    """True for ids like ``rl518787``/``rf494610`` (safe to use in file names and identity ids); False for
    anything else, non-strings and ids with a trailing newline included."""
    return isinstance(listing_id, str) and LISTING_ID_RE.fullmatch(listing_id) is not None


_META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


def declared_charset(data: bytes, header_charset: str | None = None) -> str | None:
    """The page's charset: the HTTP header's if it names a known codec, else the first ``<meta charset>`` /
    ``<meta http-equiv content="…; charset=…">`` in the first 4 KB; None when neither declares a known one."""
    import codecs

    candidates = [header_charset] if header_charset else []
    if match := _META_CHARSET_RE.search(data[:4096]):
        candidates.append(match.group(1).decode("ascii"))
    for name in candidates:
        try:
            return codecs.lookup(name.strip().lower()).name
        except (LookupError, ValueError):
            continue
    return None


def _decode(data: str | bytes, charset: str | None = None) -> str:
    """Text of a page: a BOM wins, then the declared charset (HTTP header, then meta), decoded with
    replacement so one bad byte costs one character. Undeclared pages are UTF-8 unless most of their non-ASCII
    bytes are invalid UTF-8 (a legacy cp1251 page)."""
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    declared = declared_charset(data, charset)
    if declared is not None:
        return data.decode(declared, errors="replace").lstrip("\ufeff")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    non_ascii = sum(1 for byte in data if byte >= 0x80)
    if bad * 4 > non_ascii:
        return data.decode("cp1251", errors="replace")
    return text


def _str(value: Any) -> str | None:
    """A JSON value that should be a string: the string, or None for anything else."""
    return value if isinstance(value, str) else None


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _join(base: str, href: Any) -> str | None:
    """``urljoin`` that yields None for non-strings and URLs urllib cannot parse (e.g. ``http://[bad``)."""
    if not isinstance(href, str) or not href.strip():
        return None
    try:
        full = urljoin(base, href.strip())
        urlsplit(full).port  # noqa: B018 - raises ValueError for a malformed host/port
    except ValueError:
        return None
    return full


_ADJECTIVE_END = ("ий", "ый", "ой", "ая", "яя", "ое", "ее", "ые", "ие")
_REGION_WORDS = frozenset({"область", "обл", "край", "район", "округ", "республика", "автономный", "автономная"})


def city_from_slug(slug: str) -> str:
    """A Cyrillic URL slug back to a place name: a hyphen after an adjective or before a region word is a space
    (``Ростовская-область`` → ``Ростовская область``, ``Нижний-Новгород`` → ``Нижний Новгород``); other hyphens
    are the name's own (``Ростов-на-Дону``, ``Санкт-Петербург``, ``Каменск-Уральский``)."""
    words = [w for w in slug.strip().split("-")]
    if not all(words):
        return " ".join(w for w in words if w)
    out = words[0]
    for prev, word in zip(words, words[1:]):
        space = prev.lower().endswith(_ADJECTIVE_END) or word.lower() in _REGION_WORDS
        out += (" " if space else "-") + word
    return out


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


def _clean(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    text = " ".join(text.split())
    return text or None


def url_parts(url: str) -> list[str]:
    """Lower-cased, percent-decoded path segments of a URL."""
    return [unquote(part).lower() for part in url_parts_raw(url)]


def url_parts_raw(url: str) -> list[str]:
    """Non-empty path segments of a URL as written (not decoded); [] for a URL urllib cannot split."""
    try:
        return [part for part in urlsplit(url).path.split("/") if part]
    except ValueError:
        return []


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


def _document(text: str) -> tuple[Any, dict[str, list[Any]]]:
    """The parsed page and its class index; ``NotAListingError`` unless it is HTML with a ``div.card``."""
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
    return doc, idx


def _card_info(idx: dict[str, list[Any]]) -> dict[str, Any]:
    """The attribute rows of the card: lower-cased label → value element (the first of each row)."""
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
    return info


def _json_ld_animal(doc: Any) -> tuple[dict, str | None]:
    """The JSON-LD ``Animal``'s merged property terms and its term ``@id`` (a string, else None)."""
    animal: dict = {}
    ld_id = None
    for item in _json_ld(doc):
        if item.get("@type") == "Animal":
            ld_id = _str(_dict(item.get("term")).get("@id"))  # an integer @id is no listing number
            properties = item.get("properties")
            for prop in properties if isinstance(properties, list) else []:
                if isinstance(prop, dict) and isinstance(prop.get("term"), dict):
                    animal.update(prop["term"])
    return animal, ld_id


def _page_urls(doc: Any, url: str | None) -> list[str]:
    """The URLs the page is known by: the given one, then ``og:url``, then the canonical link."""
    return [str(u) for u in [url, *doc.xpath("//meta[@property='og:url']/@content"),
                             *doc.xpath("//link[@rel='canonical']/@href")] if u]


def _listing_id(value_text: dict[str, str | None], ld_id: str | None, urls: list[str]) -> str:
    """The listing number from the card, JSON-LD or a URL's last segment; ``NotAListingError`` if none is valid."""
    listing_id = value_text.get("номер объявления") or ld_id
    if not listing_id:
        for candidate in urls:
            last = url_parts(candidate)[-1:] or [""]
            if is_valid_listing_id(last[0]):
                listing_id = last[0]
                break
    if not is_valid_listing_id(listing_id):
        raise NotAListingError(f"page has a card but no valid pet911 listing number (got {listing_id!r})")
    return listing_id


def _kind_species(animal: dict, crumbs: list[Any], urls: list[str], listing_id: str) -> tuple[str, str | None]:
    """Lost/found and species: JSON-LD, breadcrumbs, URLs, then the listing number (kind only)."""
    kind = species = None
    atype = (_str(animal.get("animalType")) or "").strip().lower()
    if atype:
        species = _SPECIES_WORDS.get(atype, "other")
    for crumb in crumbs:
        k, s = _kind_species_from_path(crumb.get("href") or "")
        kind, species = kind or k, species or s
    for candidate in urls:
        k, s = kind_species_from_url(candidate)
        kind, species = kind or k, species or s
    return kind or {"rl": "lost", "rf": "found"}[listing_id[:2]], species


def _dates(info: dict[str, Any], value_text: dict[str, str | None]) -> tuple[str | None, str | None]:
    """ISO dates the listing was added and the pet went missing / was found."""
    event_label = next((k for k in info if k.startswith(("пропал", "найден"))), None)
    date_added = iso_date(value_text.get("добавлено"))
    return date_added, iso_date(value_text.get(event_label)) if event_label else None


def _city_address(idx: dict[str, list[Any]], crumbs: list[Any], urls: list[str]) -> tuple[str | None, str | None]:
    """City (catalog breadcrumb, Cyrillic URL slug, then the address's last part) and street address."""
    city = None
    if len(crumbs) >= 2 and "/catalog" in (crumbs[1].get("href") or ""):
        city = _clean(_text(crumbs[1]))
    if city is None:
        for candidate in urls:
            parts = [unquote(p) for p in url_parts_raw(candidate)]
            if len(parts) >= 4 and re.search("[а-яё]", parts[0], re.I):
                city = _clean(city_from_slug(parts[0]))
                break
    address = None
    for token in ("card-map__address", "card-address__info"):
        nodes = idx.get(token)
        if nodes and (address := _clean(_text(nodes[0]))):
            break
    if city is None and address:
        city = address.rsplit(",", 1)[-1].strip() or None
    return city, address


def _coordinates(text: str) -> tuple[float | None, float | None]:
    """Latitude and longitude from the page's ``initMap(...)`` call; null when absent, malformed or out of range."""
    if match := _INITMAP_RE.search(text):  # a malformed number (``55.7.7``) or one out of range becomes null
        return _coordinate(match.group(1), 90.0), _coordinate(match.group(2), 180.0)
    return None, None


def _title(doc: Any, idx: dict[str, list[Any]], animal: dict) -> str | None:
    """The card title's ``h1``, else the page's first ``h1``, else the JSON-LD name."""
    title = None
    for holder in idx.get("card__title", ()):
        h1 = holder.find(".//h1")
        if h1 is not None:
            title = _clean(_text(h1))
            break
    if title is None:  # also when the card's h1 is empty
        h1s = doc.xpath("//h1")
        title = _clean(_text(h1s[0])) if h1s else _clean(_str(animal.get("name")))
    return title


def _description(idx: dict[str, list[Any]]) -> str | None:
    """The description's non-empty lines (paragraphs and ``<br>`` breaks), or None. Marks ``<br>`` tails in place."""
    if descr := idx.get("card__descr"):
        blocks = descr[0].xpath("./p|./div") or [descr[0]]
        lines = [line for block in blocks for line in _block_lines(block)]
        return "\n".join(lines) or None
    return None


def _photo_urls(idx: dict[str, list[Any]], base: str) -> list[str]:
    """Absolute, distinct photo URLs of the card slider (slide links, else slide images), stubs left out."""
    sliders = idx.get("card-slider", [])
    slider_nodes = {n for s in sliders for n in s.iter()}
    hrefs = [a.get("href") or "" for a in idx.get("js-card-slide", ()) if a in slider_nodes]
    if not hrefs:
        hrefs = [img.get("src") or "" for slide in idx.get("swiper-slide", ()) if slide in slider_nodes
                 for img in slide.iter("img")]
    photos: list[str] = []
    for href in hrefs:
        full = _join(base, href)
        if full and not _STUB_RE.search(full) and full not in photos:
            photos.append(full)
    return photos


def _sex(value_text: dict[str, str | None]) -> str | None:
    """``male``/``female`` from the card's sex row, else None."""
    sex_text = (value_text.get("пол питомца") or "").lower()
    return "male" if sex_text.startswith("муж") else "female" if sex_text.startswith("жен") else None


def _parse_html(text: str, url: str | None) -> dict[str, Any]:
    """One 2022–2025 detail page into a dict with exactly ``LISTING_KEYS``."""
    doc, idx = _document(text)
    info = _card_info(idx)
    value_text = {k: _clean(_text(v)) for k, v in info.items()}
    animal, ld_id = _json_ld_animal(doc)
    urls = _page_urls(doc, url)
    listing_id = _listing_id(value_text, ld_id, urls)
    crumbs = idx.get("breadcrumbs__item", [])
    kind, species = _kind_species(animal, crumbs, urls, listing_id)
    date_added, date_event = _dates(info, value_text)
    city, address = _city_address(idx, crumbs, urls)
    lat, lng = _coordinates(text)
    title = _title(doc, idx, animal)
    description = _description(idx)  # after every other text read: it rewrites <br> tails
    photos = _photo_urls(idx, url or next(iter(urls), None) or DEFAULT_BASE)
    return {
        "listing_id": listing_id,
        "kind": kind,
        "species": species,
        "breed": value_text.get("порода питомца") or _clean(_str(animal.get("breed"))),
        "sex": _sex(value_text),
        "date_added": date_added,
        "date_event": date_event,
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
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _coordinate(value: Any, limit: float) -> float | None:
    number = _float(value)
    return number if number is not None and -limit <= number <= limit else None


def parse_pet_json(pet: dict, url: str | None = None) -> dict[str, Any]:
    """One pet of the 2020 JSON API (``petCard.json``'s ``pet``, or an item of ``petCards.json``'s ``pets``).

    A field of an unexpected type becomes null (or is skipped, for photos); only a missing/invalid listing
    number rejects the pet."""
    if not isinstance(pet, dict):
        raise NotAListingError(f"JSON pet is a {type(pet).__name__}, not an object")
    art = pet.get("art")
    listing_id = art if isinstance(art, str) else ""
    if not is_valid_listing_id(listing_id):
        raise NotAListingError(f"JSON pet has no valid listing number (art={art!r})")
    breed = _clean(_str(_dict(pet.get("petBreed")).get("name")))
    base = url or DEFAULT_BASE
    photos: list[str] = []
    raw_photos = pet.get("photos")
    for photo in raw_photos if isinstance(raw_photos, list) else []:
        full = _join(base, _dict(photo).get("url"))
        if full and full not in photos:
            photos.append(full)
    description = _str(pet.get("description"))

    def code(key: str) -> str | None:
        value = pet.get(key)
        return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None

    animal = code("animal")
    return {
        "listing_id": listing_id,
        "kind": {"1": "lost", "2": "found"}.get(code("type") or "", {"rl": "lost", "rf": "found"}[listing_id[:2]]),
        "species": {"1": "dog", "2": "cat"}.get(animal or "", "other" if animal not in (None, "", "0") else None),
        "breed": None if not breed or breed == "Неизвестно" else breed,
        "sex": {"2": "male", "3": "female"}.get(code("sex") or ""),
        "date_added": _msk_date(pet.get("created_at")),
        "date_event": _msk_date(pet.get("date")),
        "city": _clean(_dict(pet.get("location")).get("name")),
        "address": _clean(pet.get("address")),
        "lat": _coordinate(pet.get("latitude"), 90.0),
        "lng": _coordinate(pet.get("longitude"), 180.0),
        "title": None,
        "description": "\n".join(l.strip() for l in description.splitlines() if l.strip()) or None
        if description else None,
        "photo_urls": photos,
        "closed": code("status") not in ("1", None),
    }


def parse_listing(html: str | bytes, url: str | None = None, charset: str | None = None) -> dict[str, Any]:
    """Parse one saved pet911 detail page into a dict with exactly ``LISTING_KEYS``.

    ``charset`` is the HTTP header's, if known (else the page's meta charset is used). Raises
    ``NotAListingError`` (one-line reason) for anything that is not a single pet911 listing; a malformed field
    becomes null rather than failing the page.
    """
    text = _decode(html, charset)
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
