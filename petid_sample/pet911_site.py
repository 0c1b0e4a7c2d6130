"""Render the sample listings as a small pet911.ru-format site and serve it on 127.0.0.1 (optionally with faults).

Detail pages use the current real markup (breadcrumbs, JSON-LD, ``initMap`` coordinates, the swiper gallery, the
2025 ``card card-print`` container, the ``card-notice`` banner for closed listings); catalog pages list listings
newest first with pagination. The server routes ``/catalog/page-N`` and ``/catalog?page=N`` and the
``PetsSearch[type]``/``PetsSearch[animal]`` filters.
"""

from __future__ import annotations

import contextlib
import html
import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from petid_sample.model import SampleListing

PAGE_SIZE = 10
ROBOTS_TXT = "User-agent: *\nDisallow: /ajax/\nDisallow: /private/\n"
_SPECIES_RU = {"cat": "Кошка", "dog": "Собака"}
_KIND_RU = {"lost": ("Пропавшие", "Пропал(а)", "Имя хозяина"), "found": ("Найденные", "Найден(а)", "Имя нашедшего")}
_WEEKDAYS = ("пн", "вт", "ср", "чт", "пт", "сб", "вс")
_TRANSLIT = dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
                     "a b v g d e e zh z i y k l m n o p r s t u f kh ts ch sh shch  y  e yu ya".split(" ")))
_NO_PHOTO = "https://pet911.ru/img/no-photo/no-photo-1.svg"
FEEDS = ("all", "lost", "found", "lost-cat", "lost-dog", "found-cat", "found-dog")
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".jpg": "image/jpeg", ".webp": "image/webp",
                  ".txt": "text/plain; charset=utf-8", ".svg": "image/svg+xml"}


def slug(text: str) -> str:
    """Transliterated URL slug of a city name (``Москва`` → ``moskva``)."""
    out = "".join(_TRANSLIT.get(ch, ch) for ch in text.lower())
    return "-".join("".join(ch if ch.isalnum() and ch.isascii() else " " for ch in out).split()) or "city"


def listing_path(listing: SampleListing) -> str:
    return f"/{slug(listing.city)}/{listing.kind}/{listing.species}/{listing.listing_id}"


def photo_path(listing: SampleListing, position: int) -> str:
    return f"/uploads/Pet_{listing.listing_id}_{position + 1}{listing.photos[position].ext}"


def _day(date) -> str:
    return f"{_WEEKDAYS[date.weekday()]}, {date.strftime('%d.%m.%Y')}"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _labels(listing: SampleListing) -> tuple[str, str, str]:
    """(catalog section, Russian species name, species URL plural) of the listing."""
    species_plural = {"cat": "cats", "dog": "dogs"}.get(listing.species, "pets")
    return _KIND_RU[listing.kind][0], _SPECIES_RU.get(listing.species, "Другое"), species_plural


def _animal_json_ld(listing: SampleListing, photos: Sequence[str]) -> str:
    """The ``Animal`` JSON-LD block (indented, as on the real pages)."""
    _, species_ru, _ = _labels(listing)
    animal_ld = {"@type": "Animal", "term": {"@id": listing.listing_id, "@type": "Pet"},
                 "properties": [{"@type": "Property", "term": {
                     "name": listing.title, "description": f"{listing.title} – объявление на Pet911",
                     "image": photos[0] if photos else _NO_PHOTO,
                     "animalType": species_ru, **({"breed": listing.breed} if listing.breed else {})}}]}
    return json.dumps(animal_ld, indent=4)


def _breadcrumbs_json_ld(listing: SampleListing) -> str:
    """The ``BreadcrumbList`` JSON-LD block (one line)."""
    section, species_ru, species_plural = _labels(listing)
    city_url = f"https://pet911.ru/catalog/{slug(listing.city)}"
    crumbs_ld = {"@context": "https://schema.org", "@type": "BreadcrumbList", "itemListElement": [
        {"@type": "ListItem", "position": 1, "name": "Pet911.ru", "item": "https://pet911.ru"},
        {"@type": "ListItem", "position": 2, "name": listing.city, "item": city_url},
        {"@type": "ListItem", "position": 3, "name": section, "item": f"https://pet911.ru/{listing.kind}-pets"},
        {"@type": "ListItem", "position": 4, "name": species_ru,
         "item": f"https://pet911.ru/{listing.kind}-{species_plural}"},
        {"@type": "ListItem", "position": 5, "name": listing.title}]}
    return json.dumps(crumbs_ld)


def _breadcrumbs(listing: SampleListing) -> str:
    """The visible breadcrumb links (site, city, section, species), then the title."""
    section, species_ru, species_plural = _labels(listing)
    links = [("/", "Pet911.ru"), (f"https://pet911.ru/catalog/{slug(listing.city)}", _e(listing.city)),
             (f"/{listing.kind}-pets", section), (f"/{listing.kind}-{species_plural}", species_ru)]
    return ("".join(f'<a class="link-gray-dk breadcrumbs__item" href="{href}">{text}</a>' for href, text in links)
            + f'<span class="link-gray-dk breadcrumbs__item">{_e(listing.title)}</span>')


def _photo_slides(listing: SampleListing, photos: Sequence[str]) -> str:
    """The gallery's swiper slides, one per photo (a no-photo placeholder when there are none)."""
    if not photos:
        return f'<div class="swiper-slide">\n<img src="{_NO_PHOTO}" class="img-crop">\n</div>'
    return "\n".join(
        f'<div class="swiper-slide">\n<a href="{_e(p)}" class="card-slider__slide js-card-slide">\n'
        f'<img class="img-crop" src="{_e(p)}" alt="{_e(listing.title)} - photo {k + 1}">\n</a>\n</div>'
        for k, p in enumerate(photos))


def _info_rows(listing: SampleListing) -> str:
    """The ``card-info`` rows: number, breed, sex, dates, author (values already HTML)."""
    _, event_label, author_label = _KIND_RU[listing.kind]
    rows = [("Номер объявления", listing.listing_id)]
    if listing.breed:
        rows.append(("Порода питомца", f'<a class="notice_link" href="/catalog/breed">{_e(listing.breed)}</a>'))
    if listing.sex:
        rows.append(("Пол питомца", "Мужской" if listing.sex == "male" else "Женский"))
    rows += [("Добавлено", _day(listing.date_added)), (event_label, _day(listing.date_event))]
    if listing.author:
        rows.append((author_label, _e(listing.author)))
    return "\n".join(f'<div class="card-info">\n<div class="gray-dk-color card-info__title">{_e(t)}</div>\n'
                     f'<div class="card-info__value">{v}</div>\n</div>' for t, v in rows)


def _description(listing: SampleListing) -> str:
    """One ``<p>`` per non-blank description line."""
    return "\n".join(f"<p>{_e(p)}</p>" for p in listing.description.split("\n") if p.strip())


def _closed_notice(listing: SampleListing) -> str:
    """The ``card-notice`` banner of a closed listing ("" when open)."""
    if not listing.closed:
        return ""
    return ('<div class="card-notice">\n<div class="container">\n<div class="card-notice__inner">\n'
            '<div class="card-notice__title">\nПитомец нашелся.\n</div>\n<div class="card-notice__descr">\n'
            '<button class="link-accent-line-dk js-close-card-notice">Всё равно смотреть</button>\n</div>\n'
            '</div>\n</div>\n</div>\n')


def _similar_slides(similar: Sequence[SampleListing]) -> str:
    """The "similar listings" slides: link, first photo, title."""
    return "\n".join(
        f'<div class="swiper-slide">\n<a href="{listing_path(o)}" class="pets-item" title="{_e(o.title)}">\n'
        f'<div class="pets-item__thumb">\n<img src="{photo_path(o, 0) if o.photos else ""}" class="img-crop">\n</div>\n'
        f'<div class="pets-item__content"><h3>{_e(o.title)}</h3></div>\n</a>\n</div>' for o in similar)


def _map_coords(listing: SampleListing) -> str:
    """The ``initMap`` coordinates object literal, indented as in the page script."""
    return f"{{\n                lat: {listing.lat:.8f},\n                lng: {listing.lng:.8f}\n            }}"


def render_listing(listing: SampleListing, similar: Sequence[SampleListing] = ()) -> str:
    """One detail page in the real (2024/2025) pet911 markup."""
    url = f"https://pet911.ru{listing_path(listing)}"
    title = _e(listing.title)
    address = _e(f"{listing.address}, {listing.city}")
    photos = [photo_path(listing, k) for k in range(len(listing.photos))]
    return f"""<!DOCTYPE html>
<html lang="ru">
<head>
<meta charset="UTF-8">
<title>{title} | Pet911.ru</title>
<meta property="og:url" content="{url}">
<meta property="og:title" content="{title} | Pet911.ru">
<meta property="og:image" content="{_e(photos[0]) if photos else _NO_PHOTO}">
<link href="{url}" rel="canonical">
</head>
<body class=" pet_view{' pet-find' if listing.closed else ''}">
<script type="application/ld+json">
{_animal_json_ld(listing, photos)}
</script>
{_closed_notice(listing)}<div class="card card-print">
<div class="card-slider">
<div class="card-slider__container">
<div class="card-slider__inner">
<div class="card-slider__carousel swiper-container js-card-slider">
<div class="swiper-wrapper">
{_photo_slides(listing, photos)}
</div>
</div>
</div>
</div>
</div>
<div class="container">
<div class="card__inner">
<div class="card__content">
<div class="breadcrumbs section-top__breadcrumbs page-text__breadcrumbs">
{_breadcrumbs(listing)} </div>
<script type="application/ld+json">
{_breadcrumbs_json_ld(listing)}
</script>
<div class="card__title">
<h1>{title}</h1>
</div>
<div class="d-md-none card-address">
<div class="card-address__info">{address}</div>
</div>
<div class="text text-lt card__descr content">
{_description(listing)}
</div>
</div>
<div class="d-none d-md-block card-map">
<div class="card-map__inner img-crop" id="map-single-pc"></div>
<div class="card-map__info">
<div class="md-font card-map__address">{address}</div>
</div>
</div>
<div class="card-information">
{_info_rows(listing)}
</div>
</div>
</div>
</div>
<section class="section pets">
<div class="container"><div class="section__title"><h2>Похожие объявления</h2></div>
<div class="swiper-wrapper">
{_similar_slides(similar)}
</div></div>
</section>
<script>
    $(document).ready(function () {{
        initMap(
            'map-single-pc',
            {_map_coords(listing)}
        );
    }});
</script>
</body>
</html>
"""


def _feed_listings(listings: Sequence[SampleListing], feed: str) -> list[SampleListing]:
    words = set(feed.split("-")) - {"all"}
    return [item for item in listings if words <= {item.kind, item.species}]


def render_catalog(cards: Sequence[SampleListing], page: int, last_page: int, total: int,
                   promoted: Sequence[SampleListing] = ()) -> str:
    """One catalog page: promoted cards (``is-top``) first, then ``cards``, pagination and the total."""
    items = []
    for listing, is_top in [*((p, True) for p in promoted), *((c, False) for c in cards)]:
        classes = "catalog-item" + ("\n    is-top" if is_top else "") + ("\n    is-found" if listing.closed else "")
        thumb = photo_path(listing, 0) if listing.photos else "https://pet911.ru/img/no-photo/no-photo-1.svg"
        items.append(
            f'<div id="petid_{listing.listing_id[2:]}" class="{classes}            ">\n'
            f'<a href="{listing_path(listing)}" class="catalog-item__thumb">\n'
            f'<img loading="lazy" src="{_e(thumb)}" alt="{_e(listing.title)}" class="img-crop">\n</a>\n'
            f'<div class="catalog-item__content">\n<a href="{listing_path(listing)}" class="catalog-item__title">\n'
            f'{_e(listing.title[:30])}... </a>\n<div class="catalog-item__more">\n<div class="catalog-item__info">\n'
            f'<div class="gray-dk-color catalog-item__date">{_day(listing.date_added)}</div>\n</div>\n</div>\n</div>\n</div>')
    links = []
    for n in range(max(1, page - 2), min(last_page, page + 3) + 1):
        if n == page:
            links.append(f'<span class="pagination__item pagination__active">{n}</span>')
        else:
            links.append(f'<a class="pagination__item" href="/catalog/page-{n}" data-page="{n - 1}">{n}</a>')
    if last_page > page + 3:
        links.append(f'<a class="pagination-arrow" href="/catalog/page-{last_page}" data-page="{last_page - 1}">»</a>')
    return f"""<!DOCTYPE html>
<html lang="ru">
<head><meta charset="UTF-8"><title>Все объявления в вашем городе и области на сайте Pet911</title></head>
<body class="simple-header page-catalogue">
<div class="total_find_ads">Найдено {total} объявлений</div>
<div id="w0" class="ajaxContainer"><div class="catalog__items">
{chr(10).join(items)}
</div><div class="pagination"><div class="pagination__inner"><div class="pagination__items">
{chr(10).join(links)}
</div><div class="gray-bk-color pagination__info">Показано {len(cards)} из {total} объявлений</div></div></div></div>
</body>
</html>
"""


def write_site(listings: list[SampleListing], out_dir: Path, page_size: int = PAGE_SIZE,
               promoted: Sequence[str] = ()) -> None:
    """Write the site: ``robots.txt``, ``catalog/<feed>/page-N.html`` (newest first; ``promoted`` ids pinned as
    ``is-top`` on every page), one detail page per listing and its photo files under ``uploads/``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "robots.txt").write_text(ROBOTS_TXT, encoding="utf-8")
    ordered = sorted(listings, key=lambda item: (item.date_added, item.listing_id), reverse=True)
    by_id = {item.listing_id: item for item in listings}
    pinned = [by_id[i] for i in promoted if i in by_id]
    for feed in FEEDS:
        chosen = _feed_listings(ordered, feed)
        last_page = max(1, -(-len(chosen) // page_size))
        for page in range(1, last_page + 1):
            cards = chosen[(page - 1) * page_size: page * page_size]
            target = out_dir / "catalog" / feed / f"page-{page}.html"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render_catalog(cards, page, last_page, len(chosen), _feed_listings(pinned, feed)),
                              encoding="utf-8")
    for k, listing in enumerate(ordered):
        similar = [o for o in ordered[k + 1:k + 3] if o.species == listing.species]
        target = out_dir / (listing_path(listing).lstrip("/") + ".html")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_listing(listing, similar), encoding="utf-8")
        for position, photo in enumerate(listing.photos):
            photo_file = out_dir / photo_path(listing, position).lstrip("/")
            photo_file.parent.mkdir(parents=True, exist_ok=True)
            photo_file.write_bytes(photo.data)


# -- serving ---------------------------------------------------------------------------------------------------


@dataclass
class Fault:
    """Misbehaviour for requests whose path (without query) equals ``path`` (or starts with it, if it ends in *).

    ``kind``: ``"429"`` (with Retry-After), ``"5xx"`` (503), ``"slow"`` (``delay_s`` before answering),
    ``"truncate"`` (half the body with the full Content-Length), ``"redirect_loop"``, ``"404"``.
    ``times``: how many matching requests misbehave (-1: all).
    """

    kind: str
    path: str
    times: int = 1
    retry_after: float = 1.0
    delay_s: float = 0.3

    def matches(self, path: str) -> bool:
        return path.startswith(self.path[:-1]) if self.path.endswith("*") else path == self.path


@dataclass
class Faults:
    """Fault plan for ``serve_site``; also records every request as ``(monotonic time, path, User-Agent)``."""

    rules: list[Fault] = field(default_factory=list)
    requests: list[tuple[float, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, path: str) -> Fault | None:
        with self._lock:
            for rule in self.rules:
                if rule.times != 0 and rule.matches(path):
                    if rule.times > 0:
                        rule.times -= 1
                    return rule
        return None

    def record(self, path: str, agent: str) -> None:
        with self._lock:
            self.requests.append((time.monotonic(), path, agent))


def _resolve(site_dir: Path, raw_path: str) -> Path | None:
    parts = urlsplit(raw_path)
    path = parts.path
    query = dict(parse_qsl(parts.query))
    if path.rstrip("/") == "/catalog" or path.startswith("/catalog/page-"):
        page = path.rsplit("page-", 1)[1] if "/page-" in path else query.get("page", "1")
        kind = {"1": "lost", "2": "found"}.get(query.get("PetsSearch[type]", ""))
        species = {"1": "dog", "2": "cat"}.get(query.get("PetsSearch[animal]", ""))
        feed = "-".join(w for w in (kind, species) if w) or "all"
        if kind is None and species is not None:
            return None
        path = f"/catalog/{feed}/page-{page}.html"
    root = site_dir.resolve()
    candidate = (root / path.lstrip("/")).resolve()
    if root not in candidate.parents:
        return None
    if candidate.is_file():
        return candidate
    if candidate.with_name(candidate.name + ".html").is_file():
        return candidate.with_name(candidate.name + ".html")
    return None


def _handler(site_dir: Path, faults: Faults | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stalls

        def _send(self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8",
                  extra: dict[str, str] | None = None, declared: int | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body) if declared is None else declared))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            if declared is not None:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            if declared is not None:
                self.close_connection = True

        def do_GET(self) -> None:  # noqa: N802
            path = urlsplit(self.path).path
            if faults is not None:
                faults.record(self.path, self.headers.get("User-Agent", ""))
            fault = faults.take(path) if faults is not None and path != "/robots.txt" else None
            if fault is not None and fault.kind == "429":
                return self._send(429, b"slow down", extra={"Retry-After": f"{fault.retry_after:g}"})
            if fault is not None and fault.kind == "5xx":
                return self._send(503, b"unavailable")
            if fault is not None and fault.kind == "404":
                return self._send(404, b"not found")
            if fault is not None and fault.kind == "redirect_loop":
                target = path + ("" if "loop=1" in self.path else "?loop=1")
                return self._send(302, b"", extra={"Location": target})
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay_s)
            target = _resolve(site_dir, self.path)
            if target is None:
                return self._send(404, b"<html><body><h1>404</h1></body></html>")
            body = target.read_bytes()
            content_type = _CONTENT_TYPES.get(target.suffix, "application/octet-stream")
            if fault is not None and fault.kind == "truncate":
                return self._send(200, body[: len(body) // 2], content_type, declared=len(body))
            self._send(200, body, content_type)

    return Handler


@contextlib.contextmanager
def serve_site(site_dir: Path, faults: Faults | None = None) -> Iterator[str]:
    """Serve ``site_dir`` on 127.0.0.1 (ephemeral port, daemon thread); yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Path(site_dir), faults))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="pet911-sample-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
