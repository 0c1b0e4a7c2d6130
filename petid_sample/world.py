"""Build the synthetic sample world: pet911 listings and Telegram posts about procedurally drawn animals.

About 70% of the animals become pet911 listings, the rest Telegram posts, plus a few Telegram posts that are not
about a lost or found animal. Planted data-quality cases give every curation stage real work: an exact duplicate,
a near duplicate, the same photo in two different animals' listings, a truncated JPEG and a one-photo listing.
Everything is deterministic for a seed (no wall clock, no global RNG).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from dataclasses import replace
from typing import Any

import numpy as np
from PIL import Image

from petid_sample.model import SampleListing, SamplePhoto, SamplePost, SampleWorld
from petid_sample.photos import COAT_COLOURS, Appearance, background_photo, random_appearance, render_photo

LISTING_SHARE = 0.7
MIN_ANIMALS = 8  # enough listings to plant every data-quality case in a different one
END_DATE = dt.date(2025, 6, 1)  # newest listing date; fixed so the world does not depend on the clock
PHOTO_SIZES = ((480, 360), (640, 480), (400, 300), (512, 384), (600, 450), (480, 640), (450, 600))
QUALITY = 85

NOTE_EXACT = "exact-duplicate"
NOTE_NEAR = "near-duplicate"
NOTE_CROSS = "cross-duplicate"
NOTE_CORRUPT = "corrupt"

# ------------------------------------------------------------------------------------------------ Russian text

_COAT_WORDS = {  # coat -> (masculine, feminine)
    "black": ("чёрный", "чёрная"),
    "white": ("белый", "белая"),
    "ginger": ("рыжий", "рыжая"),
    "grey": ("серый", "серая"),
    "brown": ("коричневый", "коричневая"),
    "cream": ("кремовый", "кремовая"),
}
_PATTERN_WORDS = {
    "spots": "в пятнышках",
    "stripes": "полосатый окрас",
    "patches": "с крупными пятнами",
}
_EYE_WORDS = {"green": "зелёные", "amber": "янтарные", "blue": "голубые", "brown": "карие", "yellow": "жёлтые"}
_BREEDS = {
    "cat": ("Британская", "Сибирская", "Шотландская вислоухая", "Метис", "Беспородная"),
    "dog": ("Дворняжка", "Лабрадор", "Джек-рассел-терьер", "Такса", "Метис", "Хаски"),
}
_CITIES = ("Москва", "Москва", "Москва", "Химки", "Мытищи", "Балашиха", "Люберцы", "Красногорск", "Подольск")
_STREETS = (
    "ул. Профсоюзная", "ул. Вавилова", "Ленинский пр-т", "ул. Академика Анохина", "ул. Обручева",
    "ул. Миклухо-Маклая", "ул. Гарибальди", "Мичуринский пр-т", "ул. Удальцова", "ул. Новаторов",
    "ул. Лобачевского", "пр-т Вернадского", "ул. Строителей", "Рязанский пр-т", "ул. Лесная",
)
_AUTHORS = ("Анна", "Ольга", "Сергей", "Марина", "Дмитрий", "Елена", "Игорь", "Наталья")
# Templates with "{masculine|feminine}" slots.
_CIRCUMSTANCES_LOST = (
    "{Выскользнул|Выскользнула} из открытой двери подъезда вечером, когда мы заносили покупки.",
    "{Убежал|Убежала} во время прогулки, испугавшись салюта.",
    "{Выпрыгнул|Выпрыгнула} из окна первого этажа, окно было открыто на проветривание.",
    "{Пропал|Пропала} на даче: {вышел|вышла} во двор и не {вернулся|вернулась}.",
)
_CIRCUMSTANCES_FOUND = (
    "{Сидел|Сидела} у входа в магазин, людей не боится, явно {домашний|домашняя}.",
    "{Подошёл|Подошла} к нам на детской площадке, {ухоженный|ухоженная}, в ошейнике без адресника.",
    "{Бегал|Бегала} вдоль дороги, забрали к себе, пока на передержке у нас.",
    "{Найден|Найдена} в подвале дома, жители говорят, что раньше не видели.",
)
_CONTACT = (
    "Пожалуйста, звоните в любое время, вознаграждение гарантируем.",
    "Если видели похожее животное, напишите в личные сообщения. Будем благодарны за репост.",
    "Звоните или пишите, ответим сразу. Просьба не беспокоить с предложениями услуг поиска.",
)


def _gender(template: str, female: bool) -> str:
    """Fill the ``{masculine|feminine}`` slots of a template."""
    return re.sub(r"\{([^|}]*)\|([^}]*)\}", lambda m: m.group(2 if female else 1), template)


def _noun(species: str, sex: str | None) -> tuple[str, bool]:
    """The noun for the animal and whether it is grammatically feminine."""
    if species == "cat":
        return ("кот", False) if sex == "male" else ("кошка", True)
    return ("пёс", False) if sex == "male" else ("собака", True)


def _describe(app: Appearance, noun: str, female: bool) -> str:
    """One sentence describing the animal's coat, markings and eyes."""
    coat = _COAT_WORDS[app.coat][1 if female else 0]
    marks = _mark_colour_word(app)
    bits = [f"{coat.capitalize()} {noun}", _PATTERN_WORDS[app.pattern]]
    if marks:
        bits.append(f"отметины {marks}")
    if app.white_socks:
        bits.append("белые «носочки» на лапах")
    if app.tail_tip:
        bits.append("кончик хвоста другого цвета")
    bits.append(f"глаза {_EYE_WORDS[app.eye_colour]}")
    return ", ".join(bits) + "."


def _mark_colour_word(app: Appearance) -> str:
    """The palette colour closest to the markings, as a plural adjective."""
    best = min(COAT_COLOURS, key=lambda n: sum((a - b) ** 2 for a, b in zip(COAT_COLOURS[n], app.mark_rgb)))
    plural = {"black": "чёрные", "white": "белые", "ginger": "рыжие", "grey": "серые", "brown": "коричневые",
              "cream": "кремовые"}
    return plural[best]


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


# ------------------------------------------------------------------------------------------------ photos


def _encode(img: Image.Image, ext: str, quality: int = QUALITY) -> bytes:
    buf = io.BytesIO()
    if ext == ".webp":
        img.save(buf, "WEBP", quality=quality, method=2)
    else:
        img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _shoot(app: Appearance, animal_id: int, n: int, rng: np.random.Generator) -> tuple[list[SamplePhoto], list[Image.Image]]:
    """Render and encode ``n`` photos of one animal (mixed WebP/JPEG); also returns the rendered images."""
    photos, images = [], []
    for _ in range(n):
        size = PHOTO_SIZES[int(rng.integers(len(PHOTO_SIZES)))]
        img = render_photo(app, rng, size)
        ext = ".webp" if rng.random() < 0.5 else ".jpg"
        photos.append(SamplePhoto(_encode(img, ext), ext, depicts=animal_id))
        images.append(img)
    return photos, images


# ------------------------------------------------------------------------------------------------ the world


def build_world(seed: int = 0, n_animals: int = 48, channel: str = "petid_sample_poteryashki") -> SampleWorld:
    """Build the whole sample world for ``seed``: same seed, same listings, posts and photo bytes."""
    if n_animals < MIN_ANIMALS:
        raise ValueError(f"n_animals={n_animals} is too small: the sample needs at least {MIN_ANIMALS} animals")
    rng = np.random.default_rng(seed)
    appearances = [random_appearance(rng, "cat" if rng.random() < 0.5 else "dog") for _ in range(n_animals)]
    n_listings = round(n_animals * LISTING_SHARE)
    listings = _build_listings(appearances[:n_listings], rng)
    posts = _build_posts(appearances, n_listings, rng)
    return SampleWorld(listings=listings, channel=channel, posts=posts)


def _build_listings(appearances: list[Appearance], rng: np.random.Generator) -> list[SampleListing]:
    n = len(appearances)
    # Planted cases, each in its own listing (indices into the animal list).
    exact_i, near_i, cross_src_i, cross_dst_i, corrupt_i, single_i = (int(i) for i in rng.permutation(n)[:6])
    closed = set([int(i) for i in rng.permutation(n) if int(i) != single_i][:2])  # the animal went home

    photos: list[list[SamplePhoto]] = []
    for i, app in enumerate(appearances):
        count = 1 if i == single_i else int(rng.integers(2, 7))
        shot, images = _shoot(app, i, count, rng)
        if i == exact_i:
            shot.append(replace(shot[0], note=NOTE_EXACT))
        if i == near_i:
            img = images[0]
            smaller = img.resize((int(img.width * 0.94), int(img.height * 0.94)), Image.LANCZOS)
            shot.append(SamplePhoto(_encode(smaller, ".jpg", quality=70), ".jpg", NOTE_NEAR, depicts=i))
        if i == corrupt_i:
            whole = _encode(images[-1], ".jpg")
            shot.append(SamplePhoto(whole[: len(whole) // 2], ".jpg", NOTE_CORRUPT, depicts=i))
        photos.append(shot)
    # The same file in another animal's listing (e.g. a re-poster grabbed the wrong picture).
    photos[cross_dst_i].insert(1, replace(photos[cross_src_i][0], note=NOTE_CROSS))

    # Dates spread over ~90 days; ids increase with the date so the newest listing has the largest id.
    offsets = np.sort(rng.integers(0, 90, n))[::-1]
    order = rng.permutation(n)  # which animal gets which date slot
    number = 100000 + int(rng.integers(0, 400000))
    listings: list[SampleListing] = []
    for slot in range(n):
        i = int(order[slot])
        app = appearances[i]
        number += int(rng.integers(1, 60))
        listings.append(_listing(i, app, photos[i], END_DATE - dt.timedelta(days=int(offsets[slot])), number,
                                 i in closed, rng))
    return listings


def _listing(animal_id: int, app: Appearance, photos: list[SamplePhoto], date_added: dt.date, number: int,
             closed: bool, rng: np.random.Generator) -> SampleListing:
    kind = "lost" if rng.random() < 0.55 else "found"
    sex = None if rng.random() < 0.25 else ("male" if rng.random() < 0.5 else "female")
    noun, female = _noun(app.species, sex)
    breed = None if rng.random() < 0.3 else _pick(rng, _BREEDS[app.species])
    city = _pick(rng, _CITIES)
    street = _pick(rng, _STREETS)
    address = f"{street}, {int(rng.integers(1, 120))}"
    event = date_added - dt.timedelta(days=int(rng.integers(0, 6)))
    verb = {("lost", False): "Пропал", ("lost", True): "Пропала", ("found", False): "Найден",
            ("found", True): "Найдена"}[(kind, female)]
    title = f"{verb} {noun}, {city}, {street}"
    circumstance = _pick(rng, _CIRCUMSTANCES_LOST if kind == "lost" else _CIRCUMSTANCES_FOUND)
    paragraphs = [
        f"{verb} {noun} {event.strftime('%d.%m.%Y')} в районе {address} ({city}).",
        _describe(app, noun, female),
        _gender(circumstance, female),
        (f"Порода: {breed}. " if breed else "") + _pick(rng, _CONTACT),
    ]
    return SampleListing(
        animal_id=animal_id,
        listing_id=("rl" if kind == "lost" else "rf") + f"{number:06d}",
        kind=kind,
        species=app.species,
        breed=breed,
        sex=sex,
        date_added=date_added,
        date_event=event,
        city=city,
        address=address,
        lat=round(float(rng.uniform(55.57, 55.92)), 6),
        lng=round(float(rng.uniform(37.35, 37.85)), 6),
        title=title,
        description="\n".join(paragraphs),
        photos=tuple(photos),
        closed=closed,
        author=None if rng.random() < 0.3 else _pick(rng, _AUTHORS),
    )


# Caption openings with the grammatical gender of the animal they name.
_LOST_CAPTIONS = {"cat": (("Потерялась кошка", "female"), ("Пропал кот", "male"), ("Потерялся котик", "male")),
                  "dog": (("Потерялась собака", "female"), ("Убежал пёс", "male"), ("Пропала собака", "female"))}
_FOUND_CAPTIONS = {"cat": (("Найдена кошка", "female"), ("Найден кот", "male"), ("Нашли кошку", "female")),
                   "dog": (("Найден пёс", "male"), ("Найдена собака", "female"), ("Нашли собаку", "female"))}


def _build_posts(appearances: list[Appearance], first_animal: int, rng: np.random.Generator) -> list[SamplePost]:
    """Telegram posts: one album per remaining animal plus the non-animal posts, in date order."""
    drafts: list[dict[str, Any]] = []
    for i in range(first_animal, len(appearances)):
        app = appearances[i]
        lost = rng.random() < 0.5
        options = (_LOST_CAPTIONS if lost else _FOUND_CAPTIONS)[app.species]
        head, sex = options[int(rng.integers(len(options)))]
        street = _pick(rng, _STREETS)
        noun, female = _noun(app.species, sex)
        text = (f"{head}! {street}, {_pick(rng, _CITIES)}.\n{_describe(app, noun, female)}\n"
                f"{_pick(rng, _CONTACT)} Тел. +7 9{int(rng.integers(10, 99))} {int(rng.integers(100, 999))}-"
                f"{int(rng.integers(10, 99))}-{int(rng.integers(10, 99))}")
        photos, _ = _shoot(app, i, int(rng.integers(2, 5)), rng)
        drafts.append({"text": text, "photos": tuple(photos), "animal_id": i})

    adopt_app = random_appearance(rng, "cat")
    adopt_photos, _ = _shoot(adopt_app, -1, 1, rng)
    drafts += [
        {"text": "Друзья, спасибо всем за репосты! За месяц благодаря вам домой вернулись 12 потеряшек."},
        {"text": "Отдам котёнка в добрые руки. Мальчик, 3 месяца, приучен к лотку, ест всё. Самовывоз.",
         "photos": (replace(adopt_photos[0], depicts=None),)},
        {"text": "Продам переноску и когтеточку, почти новые, 1500 ₽. Самовывоз от метро Калужская.",
         "photos": (_still(rng),)},
        {"text": "Памятка: что делать в первые часы, если питомец пропал https://example.org/pamyatka-poterya",
         "link_preview": True},
        {"text": "Внимание водителям: ул. Коштоянца перекрыта на ремонт до пятницы, объезд по Ленинскому проспекту.",
         "photos": (_still(rng),)},
    ]
    drafts = [drafts[int(i)] for i in rng.permutation(len(drafts))]

    posts: list[SamplePost] = []
    message_id = 1000 + int(rng.integers(0, 500))
    when = dt.datetime.combine(END_DATE - dt.timedelta(days=60), dt.time(9, 0))
    for draft in drafts:
        when += dt.timedelta(minutes=int(rng.integers(60, 60 * 40)))
        photos = draft.get("photos", ())
        posts.append(SamplePost(message_id=message_id, date=when, text=draft["text"], photos=photos,
                                animal_id=draft.get("animal_id"), link_preview=draft.get("link_preview", False)))
        message_id += max(1, len(photos)) + int(rng.integers(0, 3))  # gaps: deleted or service messages
    return posts


def _still(rng: np.random.Generator) -> SamplePhoto:
    """A photo without an animal in it."""
    return SamplePhoto(_encode(background_photo(rng, PHOTO_SIZES[int(rng.integers(len(PHOTO_SIZES)))]), ".jpg"), ".jpg")


# ------------------------------------------------------------------------------------------------ ground truth

GROUND_TRUTH_COLUMNS = ("animal_id", "depicts", "source", "item_id", "message_id", "photo_index", "ext", "sha256",
                        "note")


def ground_truth_rows(world: SampleWorld) -> list[dict[str, Any]]:
    """One row per photo file: who owns it (``animal_id``), who is in it (``depicts``), where it is, its note.

    ``item_id`` is the listing id (pet911) or the post's first message id (Telegram); ``message_id`` is the id of
    the Telegram message holding that photo (album photos take consecutive ids), empty for pet911.
    """
    rows: list[dict[str, Any]] = []
    for listing in world.listings:
        for k, photo in enumerate(listing.photos):
            rows.append(_row(listing.animal_id, photo, "pet911", listing.listing_id, None, k))
    for post in world.posts:
        for k, photo in enumerate(post.photos):
            rows.append(_row(post.animal_id, photo, "telegram", str(post.message_id), post.message_id + k, k))
    return rows


def _row(animal_id: int | None, photo: SamplePhoto, source: str, item_id: str, message_id: int | None,
         index: int) -> dict[str, Any]:
    return {"animal_id": animal_id, "depicts": photo.depicts, "source": source, "item_id": item_id,
            "message_id": message_id, "photo_index": index, "ext": photo.ext,
            "sha256": hashlib.sha256(photo.data).hexdigest(), "note": photo.note}
