"""Build the synthetic sample world: pet911 listings and Telegram posts about procedurally drawn animals.

About 70% of the animals become pet911 listings, the rest Telegram posts, plus a few Telegram posts that are not
about a lost or found animal. Planted data-quality cases give every curation stage real work: an exact duplicate,
a near duplicate, the same photo in two different animals' listings, a truncated JPEG and a one-photo listing.

Planted matching cases give lost → found matching real work (``SampleWorld.planted``, see ``planted_counts``):

- pairs: ~22% of the pet911 animals (at least 3) are listed lost, then found again with new photos 1-10 days
  later, 1-8 km away in the same city; about a third of them are found as a Telegram post naming the city instead;
- decoys: for about half the pairs, another animal of the same species, breed, coat, marking colour and pattern
  (its own markings) is listed found 1-10 days after the loss, 1-8 km away: only the model can tell it apart;
- twins: the lost animal's appearance drawn again as another animal, listed found 1-10 days later in a city
  > 100 km away (far twin), or nearby but 92-99 days later (late twin): what the distance and date filters remove.

The decoys and twins are drawn from the pet911 animals, so ``n_animals`` stays the number of animals.

Descriptions are synthetic and noisy the way owners' and finders' texts are (:func:`describe`): the attributes —
coat, pattern, marking colour, white socks, tail tip, eye colour, collar, size — belong to the animal, so every
listing or post of one animal (and of its decoys and twins, which share all of them) tells the same story, but each
attribute is left out independently (``DROP_RATE``), a colour word is now and then a synonym or a neighbouring
colour (``SWAP_RATE``: grey → "дымчатый", brown → "шоколадный", cream → "бежевый" …), the order varies and some
listings carry no description sentence at all (``OMIT_RATE``). Telegram captions give a phone number in one of
several forms, some with a handle or a link (what ``petid.text.strip_pii`` removes at ingestion).

Everything is deterministic for a seed (no wall clock, no global RNG). Photos, dates, places and ids come from one
stream of the seed; collars and description noise from a second (``(seed, TEXT_STREAM)``), so text changes never
move a photo.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from petid_sample.model import (
    ROLE_DECOY,
    ROLE_FAR_TWIN,
    ROLE_LATE_TWIN,
    ROLE_MATCH,
    PlantedItem,
    PlantedMatch,
    SampleListing,
    SamplePhoto,
    SamplePost,
    SampleWorld,
)
from petid_sample.photos import (
    COAT_COLOURS,
    Appearance,
    background_photo,
    look_alike,
    random_appearance,
    render_photo,
)
from petid_sample.telegram_export import post_identity

LISTING_SHARE = 0.7
MIN_ANIMALS = 8  # enough listings to plant every data-quality case in a different one, and the matching cases
PAIR_SHARE = 0.22  # share of the pet911 animals listed lost and then found again
MIN_PAIRS = 3
PAIR_DAYS = (1, 10)  # a planted found listing (pair, decoy, far twin) comes this many days after the lost one
PAIR_KM = (1.0, 8.0)  # and lies this far from it (pair, decoy, late twin); a far twin lies > 100 km away
LATE_DAYS = (92, 99)  # a late twin comes this many days after the lost listing (beyond a 90-day window)
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
# What a writer says instead, now and then: a synonym or a wrong-but-plausible neighbour of the colour.
_COAT_ALT = {
    "black": (("тёмный", "тёмная"), ("тёмно-серый", "тёмно-серая")),
    "white": (("светлый", "светлая"), ("белоснежный", "белоснежная")),
    "ginger": (("рыжеватый", "рыжеватая"), ("персиковый", "персиковая")),
    "grey": (("дымчатый", "дымчатая"), ("голубой", "голубая")),
    "brown": (("шоколадный", "шоколадная"), ("тёмно-рыжий", "тёмно-рыжая")),
    "cream": (("бежевый", "бежевая"), ("палевый", "палевая")),
}
_MARK_WORDS = {"black": "чёрные", "white": "белые", "ginger": "рыжие", "grey": "серые", "brown": "коричневые",
               "cream": "кремовые"}
_MARK_ALT = {"black": ("тёмные",), "white": ("светлые",), "ginger": ("рыжеватые",), "grey": ("дымчатые",),
             "brown": ("шоколадные",), "cream": ("бежевые",)}
_PATTERN_WORDS = {  # the usual phrase first, then other ways to say it
    "spots": ("в пятнышках", "в мелких пятнах"),
    "stripes": ("полосатый окрас", "в полоску"),
    "patches": ("с крупными пятнами", "пятнистый окрас"),
}
_EYE_WORDS = {"green": "зелёные", "amber": "янтарные", "blue": "голубые", "brown": "карие", "yellow": "жёлтые"}
_EYE_ALT = {"green": ("зеленоватые",), "amber": ("жёлтые",), "blue": ("серо-голубые",), "brown": ("тёмные",),
            "yellow": ("янтарные",)}
_COLLAR_WORDS = {"red": "красном", "blue": "синем", "green": "зелёном", "black": "чёрном", "pink": "розовом",
                 "yellow": "жёлтом"}  # "в <...> ошейнике"
_COLLAR_ALT = {"red": ("бордовом",), "blue": ("голубом",), "green": ("салатовом",), "black": ("тёмном",),
               "pink": ("сиреневом",), "yellow": ("оранжевом",)}
_SIZE_WORDS = {"small": ("небольшой", "небольшая"), "medium": ("среднего размера", "среднего размера"),
               "large": ("крупный", "крупная")}
# Description noise: each attribute is left out independently with DROP_RATE, a colour word is swapped for a
# synonym or a neighbouring colour with SWAP_RATE, a pattern is phrased the other way with REPHRASE_RATE, and the
# whole description sentence is left out with OMIT_RATE.
DROP_RATE = 0.3
SWAP_RATE = 0.08
REPHRASE_RATE = 0.25
OMIT_RATE = 0.12
TEXT_STREAM = 18  # the text stream's seed is (seed, TEXT_STREAM): text noise never moves a photo
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
    "{Подошёл|Подошла} к нам на детской площадке, {ухоженный|ухоженная}, <collar>.",
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


def _word(canonical: str, alternatives: tuple[str, ...], rng: np.random.Generator) -> str:
    """The colour word a writer uses: usually ``canonical``, with SWAP_RATE one of ``alternatives``."""
    return _pick(rng, alternatives) if rng.random() < SWAP_RATE else canonical


def _mark_colour(app: Appearance) -> str:
    """The palette colour closest to the markings."""
    return min(COAT_COLOURS, key=lambda n: sum((a - b) ** 2 for a, b in zip(COAT_COLOURS[n], app.mark_rgb)))


def describe(app: Appearance, noun: str, female: bool, rng: np.random.Generator) -> str | None:
    """One sentence describing the animal as one writer would, or None when the writer describes nothing.

    The attributes — coat, pattern, marking colour, white socks, tail tip, eye colour, collar (its colour, or "без
    ошейника"), size — are the animal's own (identity-consistent: two listings of one animal never contradict each
    other beyond a swapped colour word), but each is left out independently with DROP_RATE, colour words are
    swapped with SWAP_RATE, patterns rephrased with REPHRASE_RATE, the attributes after the noun come in a random
    order, and with OMIT_RATE (or when every attribute was left out) there is no sentence at all. Draws come
    from ``rng`` only."""
    g = 1 if female else 0
    omit = rng.random() < OMIT_RATE
    coat = (_word(_COAT_WORDS[app.coat][g], tuple(w[g] for w in _COAT_ALT[app.coat]), rng)
            if rng.random() >= DROP_RATE else None)
    mark = _mark_colour(app)
    pattern = _PATTERN_WORDS[app.pattern]
    candidates = [
        pattern[1] if rng.random() < REPHRASE_RATE else pattern[0],
        f"отметины {_word(_MARK_WORDS[mark], _MARK_ALT[mark], rng)}",
        "белые «носочки» на лапах" if app.white_socks else None,
        "кончик хвоста другого цвета" if app.tail_tip else None,
        f"глаза {_word(_EYE_WORDS[app.eye_colour], _EYE_ALT[app.eye_colour], rng)}",
        (f"в {_word(_COLLAR_WORDS[app.collar], _COLLAR_ALT[app.collar], rng)} ошейнике" if app.collar
         else "без ошейника"),
        _SIZE_WORDS[app.size][g],
    ]
    kept = [bit for bit in candidates if bit is not None and rng.random() >= DROP_RATE]
    kept = [kept[int(i)] for i in rng.permutation(len(kept))]
    if omit or (coat is None and not kept):
        return None
    head = f"{coat} {noun}" if coat else noun
    return ", ".join([head.capitalize(), *kept]) + "."


def colour_words(coat: str) -> frozenset[str]:
    """Every word a description may use for a ``coat`` (both genders, the usual word and its swaps)."""
    return frozenset(w for pair in (_COAT_WORDS[coat], *_COAT_ALT[coat]) for w in pair)


def attribute_vocabulary() -> frozenset[str]:
    """Every lower-case word a description sentence may use for an attribute (not the nouns)."""
    phrases = [w for pair in (*_COAT_WORDS.values(), *(a for alts in _COAT_ALT.values() for a in alts)) for w in pair]
    phrases += [*_MARK_WORDS.values(), *(a for alts in _MARK_ALT.values() for a in alts), "отметины"]
    phrases += [p for pair in _PATTERN_WORDS.values() for p in pair]
    phrases += [*_EYE_WORDS.values(), *(a for alts in _EYE_ALT.values() for a in alts), "глаза"]
    phrases += [*_COLLAR_WORDS.values(), *(a for alts in _COLLAR_ALT.values() for a in alts), "ошейнике",
                "без ошейника"]
    phrases += [w for pair in _SIZE_WORDS.values() for w in pair]
    phrases += ["белые «носочки» на лапах", "кончик хвоста другого цвета"]
    return frozenset(w for p in phrases for w in re.findall(r"[\w-]+", p.lower()))


def _circumstance(template: str, app: Appearance, female: bool) -> str:
    """Fill a circumstance template: gender slots, and ``<collar>`` with what the animal wears."""
    collar = "в ошейнике без адресника" if app.collar else "без ошейника и адресника"
    return _gender(template, female).replace("<collar>", collar)


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


def _shoot(app: Appearance, animal_id: int, n: int,
           rng: np.random.Generator) -> tuple[list[SamplePhoto], list[Image.Image]]:
    """Render and encode ``n`` photos of one animal (mixed WebP/JPEG); also returns the rendered images."""
    photos, images = [], []
    for _ in range(n):
        size = PHOTO_SIZES[int(rng.integers(len(PHOTO_SIZES)))]
        img = render_photo(app, rng, size)
        ext = ".webp" if rng.random() < 0.5 else ".jpg"
        photos.append(SamplePhoto(_encode(img, ext), ext, depicts=animal_id))
        images.append(img)
    return photos, images


# ------------------------------------------------------------------------------------------------ geography

EARTH_RADIUS_KM = 6371.0088
_INNER_BOX = ((55.65, 55.84), (37.48, 37.72))  # planted lost listings: 8 km away still lies in the Moscow box
# Cities outside the Moscow region (> 100 km from any point of the box), with their centres.
_FAR_CITIES = (("Тверь", 56.8587, 35.9176), ("Ярославль", 57.6261, 39.8845), ("Тула", 54.1931, 37.6173),
               ("Рязань", 54.6269, 39.6916), ("Владимир", 56.1290, 40.4066), ("Калуга", 54.5293, 36.2754),
               ("Нижний Новгород", 56.3269, 44.0059), ("Санкт-Петербург", 59.9343, 30.3351))


def km_between(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle (haversine) distance in km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def _move(lat: float, lng: float, km: float, rng: np.random.Generator) -> tuple[float, float]:
    """The point ``km`` away from (lat, lng) in a random direction (rounded as listings store coordinates)."""
    bearing, d = float(rng.uniform(0, 2 * math.pi)), km / EARTH_RADIUS_KM
    p1, l1 = math.radians(lat), math.radians(lng)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(bearing))
    l2 = l1 + math.atan2(math.sin(bearing) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return round(math.degrees(p2), 6), round(math.degrees(l2), 6)


def _nearby(lost: SampleListing, rng: np.random.Generator) -> dict[str, Any]:
    """Coordinates 1-8 km from the lost listing, in its city."""
    lat, lng = _move(lost.lat, lost.lng, float(rng.uniform(PAIR_KM[0] + 0.05, PAIR_KM[1] - 0.05)), rng)
    return {"city": lost.city, "lat": lat, "lng": lng}


# ------------------------------------------------------------------------------------------------ the world


@dataclass(frozen=True)
class _Roles:
    """Which animals the matching cases use (indices into the pet911 animals)."""

    pairs: tuple[int, ...]  # listed lost on pet911 and found again
    cross: frozenset[int]  # pairs whose found side is a Telegram post
    decoys: dict[int, int]  # decoy animal -> the pair animal it looks like
    twins: dict[int, tuple[int, str]]  # twin animal -> (pair animal, ROLE_FAR_TWIN | ROLE_LATE_TWIN)

    @property
    def late_pair(self) -> int:
        return next(pair for pair, role in self.twins.values() if role == ROLE_LATE_TWIN)


def planted_counts(n_animals: int) -> dict[str, int]:
    """How many matching cases a world of ``n_animals`` plants: pairs (of which cross-source), decoys, twins."""
    n_listed = round(n_animals * LISTING_SHARE)
    pairs = max(MIN_PAIRS, round(n_listed * PAIR_SHARE))
    return {"pairs": pairs, "cross_source": max(1, pairs // 3), "decoys": max(1, pairs // 2), "twins": 2}


def _choose_roles(n_listed: int, counts: dict[str, int], avoid: set[int], rng: np.random.Generator) -> _Roles:
    """Pick the animals of the matching cases: pairs first, decoys, then twins; animals in ``avoid`` (the
    cross-duplicate's and the one-photo listing's) come last, so pairs stay clear of them."""
    perm = [int(i) for i in rng.permutation(n_listed)]
    ordered = [i for i in perm if i not in avoid] + [i for i in perm if i in avoid]
    n_pairs, n_decoys = counts["pairs"], counts["decoys"]
    pairs = tuple(ordered[:n_pairs])
    decoys = {ordered[n_pairs + k]: pairs[k] for k in range(n_decoys)}
    far, late = ordered[n_pairs + n_decoys], ordered[n_pairs + n_decoys + 1]
    twins = {far: (pairs[-2], ROLE_FAR_TWIN), late: (pairs[-1], ROLE_LATE_TWIN)}
    return _Roles(pairs, frozenset(pairs[:counts["cross_source"]]), decoys, twins)


def build_world(seed: int = 0, n_animals: int = 48, channel: str = "petid_sample_poteryashki") -> SampleWorld:
    """Build the whole sample world for ``seed``: same seed, same listings, posts and photo bytes."""
    if n_animals < MIN_ANIMALS:
        raise ValueError(f"n_animals={n_animals} is too small: the sample needs at least {MIN_ANIMALS} animals")
    rng = np.random.default_rng(seed)
    text = np.random.default_rng([seed, TEXT_STREAM])  # collars and description noise: a stream of their own
    appearances = [random_appearance(rng, "cat" if rng.random() < 0.5 else "dog", traits_rng=text)
                   for _ in range(n_animals)]
    n_listings = round(n_animals * LISTING_SHARE)
    # Planted data-quality cases, each in its own animal's listing (indices into the pet911 animals).
    dq = dict(zip(("exact", "near", "cross_src", "cross_dst", "corrupt", "single"),
                  (int(i) for i in rng.permutation(n_listings)[:6])))
    roles = _choose_roles(n_listings, planted_counts(n_animals), {dq["cross_src"], dq["cross_dst"], dq["single"]}, rng)
    for decoy, pair in roles.decoys.items():
        appearances[decoy] = look_alike(appearances[pair], rng)
    for twin, (pair, _) in roles.twins.items():
        appearances[twin] = appearances[pair]  # the same look drawn again: a different animal
    listings = _build_listings(appearances[:n_listings], dq, roles, rng, text)
    lost = {lst.animal_id: lst for lst in listings if lst.animal_id in roles.pairs and lst.kind == "lost"}
    posts = _build_posts(appearances, n_listings, [lost[a] for a in roles.pairs if a in roles.cross], rng, text)
    world = SampleWorld(listings=listings, channel=channel, posts=posts)
    world.planted = _planted(world, roles, appearances)
    return world


def _build_listings(appearances: list[Appearance], dq: dict[str, int], roles: _Roles,
                    rng: np.random.Generator, text: np.random.Generator) -> list[SampleListing]:
    n = len(appearances)
    single_i = dq["single"]
    # Two listings are closed (the animal went home), preferably ones outside the matching cases.
    matching = set(roles.pairs) | set(roles.decoys) | set(roles.twins)
    perm = [int(i) for i in rng.permutation(n) if int(i) != single_i]
    closed = set(sorted(perm, key=lambda i: i in matching)[:2])

    photos: list[list[SamplePhoto]] = []
    for i, app in enumerate(appearances):
        count = 1 if i == single_i else int(rng.integers(2, 7))
        shot, images = _shoot(app, i, count, rng)
        if i == dq["exact"]:
            shot.append(replace(shot[0], note=NOTE_EXACT))
        if i == dq["near"]:
            img = images[0]
            smaller = img.resize((int(img.width * 0.94), int(img.height * 0.94)), Image.LANCZOS)
            shot.append(SamplePhoto(_encode(smaller, ".jpg", quality=70), ".jpg", NOTE_NEAR, depicts=i))
        if i == dq["corrupt"]:
            whole = _encode(images[-1], ".jpg")
            shot.append(SamplePhoto(whole[: len(whole) // 2], ".jpg", NOTE_CORRUPT, depicts=i))
        photos.append(shot)
    # The same file in another animal's listing (e.g. a re-poster grabbed the wrong picture).
    photos[dq["cross_dst"]].insert(1, replace(photos[dq["cross_src"]][0], note=NOTE_CROSS))

    # Dates spread over the 90 days before END_DATE; the pair with a late twin was lost 100-115 days before it.
    offset = {i: int(rng.integers(0, 90)) for i in range(n)}
    planted = set(roles.decoys) | set(roles.twins)
    drafts: list[SampleListing] = []
    for i in range(n):
        if i in planted:
            continue
        fixed: dict[str, Any] = {}
        if i in roles.pairs:
            late = LATE_DAYS[1] + 1
            offset[i] = int(rng.integers(late, late + 16) if i == roles.late_pair else rng.integers(PAIR_DAYS[1], 90))
            (lat0, lat1), (lng0, lng1) = _INNER_BOX
            fixed = {"kind": "lost", "breed": _pick(rng, _BREEDS[appearances[i].species]),
                     "lat": round(float(rng.uniform(lat0, lat1)), 6), "lng": round(float(rng.uniform(lng0, lng1)), 6)}
        drafts.append(_listing(i, appearances[i], photos[i], END_DATE - dt.timedelta(days=offset[i]), i in closed,
                               rng, text, fixed))
    lost = {lst.animal_id: lst for lst in drafts if lst.animal_id in roles.pairs}

    def found(animal: int, pair: int, days: int, fixed: dict[str, Any], shot: list[SamplePhoto]) -> SampleListing:
        """A found listing planted against ``pair``'s lost listing, ``days`` after it."""
        of = lost[pair]
        return _listing(animal, appearances[animal], shot, of.date_added + dt.timedelta(days=days),
                        animal != pair and animal in closed, rng, text,
                        {"kind": "found", "breed": of.breed, "city": of.city} | fixed)

    for pair in roles.pairs:  # the second listing of the same animal: new photos, days later, a few km away
        if pair in roles.cross:
            continue
        of, shot = lost[pair], _shoot(appearances[pair], pair, int(rng.integers(2, 7)), rng)[0]
        drafts.append(found(pair, pair, _gap(rng), {"sex": of.sex, "event_not_before": of.date_event,
                                                   **_nearby(of, rng)}, shot))
    for decoy, pair in roles.decoys.items():
        drafts.append(found(decoy, pair, _gap(rng), _nearby(lost[pair], rng), photos[decoy]))
    for twin, (pair, role) in roles.twins.items():
        if role == ROLE_FAR_TWIN:
            city, lat, lng = _FAR_CITIES[int(rng.integers(len(_FAR_CITIES)))]
            lat, lng = _move(lat, lng, float(rng.uniform(0.5, 4.0)), rng)
            drafts.append(found(twin, pair, _gap(rng), {"city": city, "lat": lat, "lng": lng}, photos[twin]))
        else:
            days = int(rng.integers(LATE_DAYS[0], LATE_DAYS[1] + 1))
            drafts.append(found(twin, pair, days, _nearby(lost[pair], rng), photos[twin]))

    # Ids increase with the date, so the newest listing has the largest id.
    ties = {id(d): int(k) for d, k in zip(drafts, rng.permutation(len(drafts)))}
    drafts.sort(key=lambda d: (d.date_added, ties[id(d)]))
    number = 100000 + int(rng.integers(0, 400000))
    listings = []
    for draft in drafts:
        number += int(rng.integers(1, 60))
        listings.append(replace(draft, listing_id=("rl" if draft.kind == "lost" else "rf") + f"{number:06d}"))
    return listings


def _gap(rng: np.random.Generator) -> int:
    """Days from a lost listing to a planted found listing near it in time."""
    return int(rng.integers(PAIR_DAYS[0], PAIR_DAYS[1] + 1))


def _listing(animal_id: int, app: Appearance, photos: list[SamplePhoto], date_added: dt.date, closed: bool,
             rng: np.random.Generator, text: np.random.Generator,
             fixed: dict[str, Any] | None = None) -> SampleListing:
    """One listing without its id; ``fixed`` overrides drawn fields (``kind``, ``sex``, ``breed``, ``city``,
    ``lat``, ``lng``) and may set ``event_not_before`` (a found date cannot precede the loss). The description's
    noise comes from ``text``, everything else from ``rng``."""
    fixed = fixed or {}
    kind = fixed["kind"] if "kind" in fixed else ("lost" if rng.random() < 0.55 else "found")
    sex = fixed["sex"] if "sex" in fixed else (None if rng.random() < 0.25 else
                                                ("male" if rng.random() < 0.5 else "female"))
    noun, female = _noun(app.species, sex)
    breed = fixed["breed"] if "breed" in fixed else (None if rng.random() < 0.3 else _pick(rng, _BREEDS[app.species]))
    city = fixed.get("city") or _pick(rng, _CITIES)
    street = _pick(rng, _STREETS)
    address = f"{street}, {int(rng.integers(1, 120))}"
    event = date_added - dt.timedelta(days=int(rng.integers(0, 6)))
    event = max(event, fixed.get("event_not_before", event))
    verb = {("lost", False): "Пропал", ("lost", True): "Пропала", ("found", False): "Найден",
            ("found", True): "Найдена"}[(kind, female)]
    title = f"{verb} {noun}, {city}, {street}"
    circumstance = _pick(rng, _CIRCUMSTANCES_LOST if kind == "lost" else _CIRCUMSTANCES_FOUND)
    paragraphs = [
        f"{verb} {noun} {event.strftime('%d.%m.%Y')} в районе {address} ({city}).",
        describe(app, noun, female, text),
        _circumstance(circumstance, app, female),
        (f"Порода: {breed}. " if breed else "") + _pick(rng, _CONTACT),
    ]
    lat = round(float(rng.uniform(55.57, 55.92)), 6)
    lng = round(float(rng.uniform(37.35, 37.85)), 6)
    return SampleListing(
        animal_id=animal_id,
        listing_id="",
        kind=kind,
        species=app.species,
        breed=breed,
        sex=sex,
        date_added=date_added,
        date_event=event,
        city=city,
        address=address,
        lat=fixed.get("lat", lat),
        lng=fixed.get("lng", lng),
        title=title,
        description="\n".join(p for p in paragraphs if p),
        photos=tuple(photos),
        closed=closed,
        author=None if rng.random() < 0.3 else _pick(rng, _AUTHORS),
    )


# Caption openings with the grammatical gender of the animal they name.
_LOST_CAPTIONS = {"cat": (("Потерялась кошка", "female"), ("Пропал кот", "male"), ("Потерялся котик", "male")),
                  "dog": (("Потерялась собака", "female"), ("Убежал пёс", "male"), ("Пропала собака", "female"))}
_FOUND_CAPTIONS = {"cat": (("Найдена кошка", "female"), ("Найден кот", "male"), ("Нашли кошку", "female")),
                   "dog": (("Найден пёс", "male"), ("Найдена собака", "female"), ("Нашли собаку", "female"))}


_PHONE_FORMS = (  # how a post gives its number: {0} the operator code's last two digits, then the groups
    "Тел. +7 9{0} {1}-{2}-{3}", "Звоните: 8 (9{0}) {1} {2} {3}", "WhatsApp +79{0}{1}{2}{3}", "тел. 89{0}{1}{2}{3}",
    "+7-9{0}-{1}-{2}-{3}, пишите в Telegram @{4}", "Тел. 8 9{0} {1} {2} {3}, vk.com/{4}",
)
_HANDLES = ("poisk_pitomca", "anna_pets", "lapki_msk", "poteryashka24", "koshki_doma", "sergey_dog")


def _caption(app: Appearance, lost: bool, city: str, rng: np.random.Generator, text: np.random.Generator) -> str:
    """An animal post's text: caption opening, street and city, description (noise from ``text``), contact and
    phone (in one of several forms, some with a handle or a link)."""
    options = (_LOST_CAPTIONS if lost else _FOUND_CAPTIONS)[app.species]
    head, sex = options[int(rng.integers(len(options)))]
    street = _pick(rng, _STREETS)
    noun, female = _noun(app.species, sex)
    description = describe(app, noun, female, text)
    contact = _pick(rng, _CONTACT)
    groups = [int(rng.integers(10, 99)), int(rng.integers(100, 999)), int(rng.integers(10, 99)),
              int(rng.integers(10, 99))]
    phone = _pick(text, _PHONE_FORMS).format(*groups, _pick(text, _HANDLES))
    return f"{head}! {street}, {city}.\n" + (f"{description}\n" if description else "") + f"{contact} {phone}"


def _post_time(day: dt.date, rng: np.random.Generator) -> dt.datetime:
    """A time on ``day`` between 06:00 and 20:00 UTC (the same day in Moscow)."""
    return dt.datetime.combine(day, dt.time(6, 0)) + dt.timedelta(minutes=int(rng.integers(0, 14 * 60)))


def _build_posts(appearances: list[Appearance], first_animal: int, found_later: list[SampleListing],
                 rng: np.random.Generator, text: np.random.Generator) -> list[SamplePost]:
    """Telegram posts: one album per remaining animal, a found post for each lost listing in ``found_later``
    (1-10 days after it, naming its city) and the non-animal posts, in date order."""
    drafts: list[dict[str, Any]] = []
    for i in range(first_animal, len(appearances)):
        app = appearances[i]
        caption = _caption(app, rng.random() < 0.5, _pick(rng, _CITIES), rng, text)
        photos, _ = _shoot(app, i, int(rng.integers(2, 5)), rng)
        drafts.append({"text": caption, "photos": tuple(photos), "animal_id": i})
    for lost in found_later:
        app = appearances[lost.animal_id]
        caption = _caption(app, False, lost.city, rng, text)
        photos, _ = _shoot(app, lost.animal_id, int(rng.integers(2, 5)), rng)
        drafts.append({"text": caption, "photos": tuple(photos), "animal_id": lost.animal_id,
                       "date": _post_time(lost.date_added + dt.timedelta(days=_gap(rng)), rng)})

    adopt_app = random_appearance(rng, "cat", traits_rng=text)
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
    for draft in drafts:  # the channel's posts spread over the 60 days before END_DATE
        draft.setdefault("date", _post_time(END_DATE - dt.timedelta(days=int(rng.integers(1, 61))), rng))
    ties = [int(k) for k in rng.permutation(len(drafts))]
    drafts = [d for _, _, d in sorted(zip([d["date"] for d in drafts], ties, drafts), key=lambda t: t[:2])]

    posts: list[SamplePost] = []
    message_id = 1000 + int(rng.integers(0, 500))
    previous: dt.datetime | None = None
    for draft in drafts:
        when = draft["date"] if previous is None else max(draft["date"], previous + dt.timedelta(minutes=1))
        photos = draft.get("photos", ())
        posts.append(SamplePost(message_id=message_id, date=when, text=draft["text"], photos=photos,
                                animal_id=draft.get("animal_id"), link_preview=draft.get("link_preview", False)))
        message_id += max(1, len(photos)) + int(rng.integers(0, 3))  # gaps: deleted or service messages
        previous = when
    return posts


def _still(rng: np.random.Generator) -> SamplePhoto:
    """A photo without an animal in it."""
    return SamplePhoto(_encode(background_photo(rng, PHOTO_SIZES[int(rng.integers(len(PHOTO_SIZES)))]), ".jpg"), ".jpg")


# ------------------------------------------------------------------------------------------------ planted matches


def _listing_item(listing: SampleListing) -> PlantedItem:
    """The planted-case view of a pet911 listing (identity as the pet911 crawler names it)."""
    return PlantedItem("pet911", listing.listing_id, f"pet911:{listing.listing_id}", listing.animal_id,
                       listing.date_added, listing.city, listing.lat, listing.lng)


def _planted(world: SampleWorld, roles: _Roles, appearances: list[Appearance]) -> list[PlantedMatch]:
    """The matching ground truth: per pair, its true match, then the decoys and twins planted against it."""
    listing = {(lst.animal_id, lst.kind): lst for lst in world.listings
               if lst.animal_id in roles.pairs or lst.animal_id in roles.decoys or lst.animal_id in roles.twins}
    post = {p.animal_id: p for p in world.posts if p.animal_id in roles.cross}
    planted: list[PlantedMatch] = []
    for pair in roles.pairs:
        lost = listing[(pair, "lost")]
        lost_item = _listing_item(lost)
        if pair in roles.cross:
            p = post[pair]
            found = [(ROLE_MATCH, PlantedItem("telegram", str(p.message_id), post_identity(world.channel, p.message_id),
                                              pair, p.date.date(), lost.city))]
        else:
            found = [(ROLE_MATCH, _listing_item(listing[(pair, "found")]))]
        found += [(ROLE_DECOY, _listing_item(listing[(d, "found")])) for d, of in roles.decoys.items() if of == pair]
        found += [(role, _listing_item(listing[(t, "found")])) for t, (of, role) in roles.twins.items() if of == pair]
        for role, item in found:
            km = None if item.lat is None else round(km_between(lost.lat, lost.lng, item.lat, item.lng), 3)
            planted.append(PlantedMatch(role, lost_item, item, lost.species, lost.breed, appearances[pair].coat,
                                        (item.date - lost_item.date).days, km))
    return planted


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
