"""The synthetic sample world: determinism, planted data-quality and matching cases, formats, texts, identity
consistency."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from itertools import combinations, pairwise
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from petid_sample import GROUND_TRUTH_COLUMNS, build_world, ground_truth_rows, planted_counts
from petid_sample.model import SampleListing, SamplePost, SampleWorld
from petid_sample.photos import COAT_COLOURS, random_appearance, render_photo
from petid_sample.world import DROP_RATE, OMIT_RATE, SWAP_RATE, attribute_vocabulary, colour_words, describe


@pytest.fixture(scope="module")
def world() -> SampleWorld:
    return build_world(seed=0, n_animals=48)


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _photo_with_note(world: SampleWorld, note: str) -> tuple[SampleListing, int]:
    found = [(lst, k) for lst in world.listings for k, p in enumerate(lst.photos) if p.note == note]
    assert len(found) == 1, f"expected exactly one {note!r} photo, found {len(found)}"
    return found[0]


def test_same_seed_same_world_and_other_seed_differs() -> None:
    first, second = build_world(seed=3, n_animals=10), build_world(seed=3, n_animals=10)
    assert first == second  # dataclass equality covers every field and every photo's bytes
    other = build_world(seed=4, n_animals=10)
    first_bytes = {p.data for lst in first.listings for p in lst.photos}
    assert not first_bytes & {p.data for lst in other.listings for p in lst.photos}


def test_render_is_deterministic_and_sized() -> None:
    app = random_appearance(np.random.default_rng(5), "dog")
    a = render_photo(app, np.random.default_rng(9), (512, 384))
    b = render_photo(app, np.random.default_rng(9), (512, 384))
    assert a.size == (512, 384) and a.mode == "RGB"
    assert a.tobytes() == b.tobytes()
    assert render_photo(app, np.random.default_rng(10), (512, 384)).tobytes() != a.tobytes()


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="'horse'"):
        random_appearance(np.random.default_rng(0), "horse")
    with pytest.raises(ValueError, match="n_animals=3"):
        build_world(n_animals=3)


def test_listings_shape(world: SampleWorld) -> None:
    listings = world.listings
    counts = planted_counts(48)
    assert len(listings) == round(48 * 0.7) + counts["pairs"] - counts["cross_source"]  # + pet911 found again
    ids = [lst.listing_id for lst in listings]
    assert len(set(ids)) == len(ids)
    for lst in listings:
        assert re.fullmatch(r"r[lf]\d{6}", lst.listing_id), lst.listing_id
        assert lst.listing_id[1] == ("l" if lst.kind == "lost" else "f")
        assert lst.species in ("cat", "dog") and lst.sex in (None, "male", "female")
        far = lst.listing_id in {t.found.item_id for t in world.twins if t.role == "far-twin"}
        assert far or (55.5 < lst.lat < 56.0 and 37.3 < lst.lng < 37.9)
        assert lst.date_event <= lst.date_added
        assert len(lst.description.split("\n")) >= 3 and re.search("[а-яё]", lst.description)
        assert re.search("[а-яё]", lst.title) and lst.city and lst.address
    # Ids increase with the date: the newest listing has the largest id.
    by_date = sorted(listings, key=lambda lst: (lst.date_added, int(lst.listing_id[2:])))
    numbers = [int(lst.listing_id[2:]) for lst in by_date]
    assert numbers == sorted(numbers)
    assert max(listings, key=lambda lst: int(lst.listing_id[2:])).date_added == max(lst.date_added for lst in listings)
    assert {lst.species for lst in listings} == {"cat", "dog"} and {lst.kind for lst in listings} == {"lost", "found"}
    assert any(lst.breed is None for lst in listings) and any(lst.sex is None for lst in listings)
    assert sum(lst.closed for lst in listings) == 2
    # One listing per animal, except the planted pairs found again on pet911: one lost and one found listing.
    twice = {m.lost.animal_id for m in world.planted_matches if m.found.source == "pet911"}
    per_animal: dict[int, list[str]] = {}
    for lst in listings:
        per_animal.setdefault(lst.animal_id, []).append(lst.kind)
    assert {a for a, kinds in per_animal.items() if len(kinds) > 1} == twice
    assert all(sorted(per_animal[a]) == ["found", "lost"] for a in twice)


def test_photos_decode_as_declared(world: SampleWorld) -> None:
    photos = [p for lst in world.listings for p in lst.photos] + [p for post in world.posts for p in post.photos]
    assert {p.ext for p in photos} == {".jpg", ".webp"}
    for photo in photos:
        if photo.note == "corrupt":
            continue
        img = _open(photo.data)
        assert img.format == {".jpg": "JPEG", ".webp": "WEBP"}[photo.ext]
        assert 360 <= img.width <= 640 and 280 <= img.height <= 640
    own_counts = sorted(sum(not p.note for p in lst.photos) for lst in world.listings)
    assert own_counts[0] == 1 and own_counts[1] >= 2 and own_counts[-1] <= 6  # one single-photo listing


def test_planted_cases(world: SampleWorld) -> None:
    exact, k = _photo_with_note(world, "exact-duplicate")
    assert sum(p.data == exact.photos[k].data for p in exact.photos) == 2

    near, k = _photo_with_note(world, "near-duplicate")
    original = near.photos[0]
    assert near.photos[k].data != original.data
    a, b = _open(original.data), _open(near.photos[k].data)
    assert b.size != a.size
    assert imagehash.phash(a) - imagehash.phash(b) <= 8

    cross, k = _photo_with_note(world, "cross-duplicate")
    holders = [lst for lst in world.listings if any(p.data == cross.photos[k].data for p in lst.photos)]
    assert len(holders) == 2 and holders[0].animal_id != holders[1].animal_id
    assert cross.photos[k].depicts != cross.animal_id  # it shows the other listing's animal

    corrupt, k = _photo_with_note(world, "corrupt")
    data = corrupt.photos[k].data
    assert data.startswith(b"\xff\xd8") and corrupt.photos[k].ext == ".jpg"
    with pytest.raises(OSError):
        _open(data)

    assert sum(len(lst.photos) == 1 for lst in world.listings) == 1
    planted = {exact.listing_id, near.listing_id, cross.listing_id, corrupt.listing_id}
    assert len(planted) == 4  # each case in its own listing


def test_telegram_posts(world: SampleWorld) -> None:
    posts = world.posts
    assert world.channel == "petid_sample_poteryashki"
    for before, after in pairwise(posts):  # album ids do not overlap, dates and ids increase
        assert after.message_id >= before.message_id + max(1, len(before.photos))
        assert after.date > before.date
    animal_posts = [p for p in posts if p.animal_id is not None]
    assert len(animal_posts) == 48 - round(48 * 0.7) + planted_counts(48)["cross_source"]
    listing_animals = {lst.animal_id for lst in world.listings}
    found_again = {m.lost.animal_id for m in world.planted_matches if m.found.source == "telegram"}
    for post in animal_posts:
        assert 2 <= len(post.photos) <= 4 and (post.animal_id not in listing_animals or post.animal_id in found_again)
        assert re.search(r"Потерял|Пропал|Убежал|Найден|Нашли", post.text), post.text
        assert re.search(r"кошк|кот|собак|пёс", post.text), post.text
    others = [p for p in posts if p.animal_id is None]
    assert any(not p.photos and not p.link_preview for p in others)  # text only
    adoption = [p for p in others if "Отдам котёнка в добрые руки" in p.text]
    assert len(adoption) == 1 and len(adoption[0].photos) == 1
    assert any("Продам" in p.text and p.photos for p in others)
    preview = [p for p in others if p.link_preview]
    assert len(preview) == 1 and not preview[0].photos and "https://" in preview[0].text
    street = [p for p in others if "ул. Коштоянца" in p.text]
    assert len(street) == 1 and not re.search(r"кошк|собак", street[0].text)


def test_ground_truth_rows(world: SampleWorld) -> None:
    rows = ground_truth_rows(world)
    n_photos = sum(len(lst.photos) for lst in world.listings) + sum(len(p.photos) for p in world.posts)
    assert len(rows) == n_photos and all(set(r) == set(GROUND_TRUTH_COLUMNS) for r in rows)
    notes = {r["note"] for r in rows}
    assert {"exact-duplicate", "near-duplicate", "cross-duplicate", "corrupt"} <= notes
    album = next(p for p in world.posts if len(p.photos) >= 2)
    ids = [r["message_id"] for r in rows if r["item_id"] == str(album.message_id) and r["source"] == "telegram"]
    assert ids == list(range(album.message_id, album.message_id + len(album.photos)))


def _region_histogram(img: Image.Image, mask: Image.Image) -> np.ndarray:
    """Colour histogram of the animal's pixels, brightness-normalised (lighting varies per photo)."""
    pixels = np.asarray(img, dtype=np.float32)[np.asarray(mask) > 0]
    pixels = pixels / max(float(pixels.mean()), 1.0) * 128
    q = np.clip(pixels // 48, 0, 5).astype(int)
    hist = np.bincount(q[:, 0] * 36 + q[:, 1] * 6 + q[:, 2], minlength=216).astype(np.float64)
    return hist / hist.sum()


def test_same_animal_looks_alike_across_photos() -> None:
    rng = np.random.default_rng(7)
    # Two animals per base coat, so colour alone cannot tell them apart.
    apps = [random_appearance(rng) for _ in range(40)]
    by_coat: dict[str, list] = {}
    for app in apps:
        by_coat.setdefault(app.coat, []).append(app)
    chosen = [a for coat in COAT_COLOURS for a in by_coat.get(coat, [])[:2]]
    assert len(chosen) >= 10
    descs = []
    for i, app in enumerate(chosen):
        shots = [render_photo(app, np.random.default_rng(1000 * i + k), (320, 240), with_mask=True) for k in range(4)]
        descs.append([_region_histogram(img, mask) for img, mask in shots])

    def sim(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.minimum(x, y).sum())

    same = [sim(d[a], d[b]) for d in descs for a, b in combinations(range(4), 2)]
    different = [sim(descs[i][0], descs[j][1]) for i in range(len(chosen)) for j in range(len(chosen)) if i != j]
    same_coat = [sim(descs[i][0], descs[j][1]) for i in range(len(chosen)) for j in range(len(chosen))
                 if i != j and chosen[i].coat == chosen[j].coat]
    assert np.mean(same) > np.mean(different) + 0.15
    assert np.mean(same) > np.mean(same_coat) + 0.1
    # And per animal: its own photos are closer on average than photos of its same-coat neighbour.
    wins = sum(
        np.mean([sim(descs[i][0], descs[i][k]) for k in (1, 2, 3)])
        > np.mean([sim(descs[i][0], descs[j][k]) for k in (0, 1, 2, 3)])
        for i in range(len(chosen)) for j in range(len(chosen)) if i != j and chosen[i].coat == chosen[j].coat
    )
    assert wins >= 0.75 * len(same_coat)


def test_generate_sample_writes_site_export_and_ground_truth(tmp_path: Path) -> None:
    pytest.importorskip("petid_sample.pet911_site", reason="the pet911 site writer is not in this checkout yet")
    pytest.importorskip("petid_sample.telegram_export", reason="the Telegram export writer is not in this checkout yet")
    from petid_sample import generate_sample

    source = generate_sample(tmp_path / "sample", seed=1, n_animals=10)
    assert source.pet911_site_dir.is_dir() and any(source.pet911_site_dir.rglob("*"))
    assert source.telegram_export_dir.is_dir() and any(source.telegram_export_dir.rglob("*"))
    with source.ground_truth_csv.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(ground_truth_rows(source.world))
    assert tuple(rows[0]) == GROUND_TRUTH_COLUMNS


# ------------------------------------------------------------------------------------------------ planted matches


def _km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Haversine distance in km (written here, independent of the generator's)."""
    phi1, phi2, dphi, dlmb = map(np.radians, (lat1, lat2, lat2 - lat1, lng2 - lng1))
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2
    return float(2 * 6371.0 * np.arcsin(np.sqrt(a)))


def _items(world: SampleWorld) -> dict[str, SampleListing | SamplePost]:
    """Every listing and post by the identity id the scrapers give it."""
    from petid_sample.telegram_export import post_identity

    items: dict[str, SampleListing | SamplePost] = {f"pet911:{lst.listing_id}": lst for lst in world.listings}
    items |= {post_identity(world.channel, p.message_id): p for p in world.posts}
    return items


def _date(item: SampleListing | SamplePost) -> dt.date:
    return item.date_added if isinstance(item, SampleListing) else item.date.date()


@pytest.mark.parametrize("n_animals, pairs, cross, decoys", [(8, 3, 1, 1), (36, 6, 2, 3), (48, 7, 2, 3)])
def test_planted_counts(n_animals: int, pairs: int, cross: int, decoys: int) -> None:
    assert planted_counts(n_animals) == {"pairs": pairs, "cross_source": cross, "decoys": decoys, "twins": 2}
    share = pairs / round(n_animals * 0.7)
    assert pairs >= 3 and (n_animals < 24 or 0.15 <= share <= 0.3)


@pytest.mark.parametrize("n_animals", [8, 48])
def test_planted_pairs_are_the_same_animal_lost_then_found(n_animals: int, world: SampleWorld) -> None:
    world = world if n_animals == 48 else build_world(seed=2, n_animals=n_animals)
    counts, items = planted_counts(n_animals), _items(world)
    matches = world.planted_matches
    assert len(matches) == counts["pairs"] and len({m.lost.identity_id for m in matches}) == len(matches)
    assert sum(m.found.source == "telegram" for m in matches) == counts["cross_source"]
    for m in matches:
        lost, found = items[m.lost.identity_id], items[m.found.identity_id]
        assert isinstance(lost, SampleListing) and lost.kind == "lost" and m.lost.source == "pet911"
        assert lost.animal_id == found.animal_id == m.lost.animal_id == m.found.animal_id
        assert lost.species == m.species and lost.breed == m.breed and lost.breed is not None
        assert 1 <= (_date(found) - _date(lost)).days == m.days_apart <= 10
        assert not {p.data for p in lost.photos} & {p.data for p in found.photos}  # new photos, not copies
        assert all(p.depicts == lost.animal_id for p in found.photos)
        if isinstance(found, SampleListing):
            assert found.kind == "found" and found.species == lost.species and found.city == lost.city
            assert found.date_event >= lost.date_event
            km = _km(lost.lat, lost.lng, found.lat, found.lng)
            assert 1.0 <= km <= 8.0 and km == pytest.approx(m.km_apart, abs=0.01)
        else:  # found again as a Telegram post: a found caption that names the lost listing's city
            assert re.match(r"(Найден|Нашли)", found.text) and f", {lost.city}." in found.text.split("\n")[0]
            assert m.km_apart is None and m.found.lat is None and m.found.city == lost.city
            assert re.search({"cat": r"кошк|кот", "dog": r"собак|пёс"}[lost.species], found.text)


def _coat_words(item: SampleListing | SamplePost) -> set[str]:
    """The coat words an item's text uses (any coat's)."""
    every = set().union(*(colour_words(c) for c in COAT_COLOURS))
    return {w for w in re.findall(r"[\w-]+", _text(item).lower()) if w in every}


def _text(item: SampleListing | SamplePost) -> str:
    return item.description if isinstance(item, SampleListing) else item.text


def _attribute_words(item: SampleListing | SamplePost) -> set[str]:
    return set(re.findall(r"[\w-]+", _text(item).lower())) & attribute_vocabulary()


def test_descriptions_are_noisy_but_consistent() -> None:
    """Each attribute is left out about DROP_RATE of the time, colour words swapped about SWAP_RATE, the order
    varies, some listings have no sentence; every colour word used belongs to the animal's colour."""
    assert 0.25 <= DROP_RATE <= 0.35 and 0.05 <= SWAP_RATE <= 0.1 and 0 < OMIT_RATE < 0.25
    rng = np.random.default_rng(11)
    apps = [a for a in (random_appearance(rng, "dog") for _ in range(60)) if a.white_socks and a.tail_tip and a.collar]
    app = apps[0]
    texts = [describe(app, "пёс", False, np.random.default_rng(k)) for k in range(3000)]
    assert texts[:20] == [describe(app, "пёс", False, np.random.default_rng(k)) for k in range(20)]  # deterministic
    said = [t for t in texts if t is not None]
    omitted = 1 - len(said) / len(texts)
    assert abs(omitted - OMIT_RATE) < 0.03, omitted
    coat_words = colour_words(app.coat)
    usual = {"black": "чёрный", "white": "белый", "ginger": "рыжий", "grey": "серый", "brown": "коричневый",
             "cream": "кремовый"}[app.coat]
    checks = {"coat": lambda t: bool(set(t.lower().replace(",", " ").split()) & coat_words),
              "marks": lambda t: "отметины" in t, "socks": lambda t: "носочки" in t,
              "tail": lambda t: "кончик хвоста" in t, "eyes": lambda t: "глаза" in t,
              "collar": lambda t: "ошейнике" in t, "size": lambda t: any(w in t for w in ("небольшой", "среднего",
                                                                                           "крупный"))}
    for name, present in checks.items():
        rate = sum(map(present, said)) / len(said)
        assert abs(rate - (1 - DROP_RATE)) < 0.05, (name, rate)
    coats = [w for t in said for w in t.lower().replace(",", " ").split() if w in coat_words]
    swapped = sum(w != usual for w in coats) / len(coats)
    assert abs(swapped - SWAP_RATE) < 0.03, swapped
    assert all(w in coat_words for w in coats)
    eye = {"green": "зелёные", "amber": "янтарные", "blue": "голубые", "brown": "карие", "yellow": "жёлтые"}
    other_eyes = set(eye.values()) - {eye[app.eye_colour]} - ({"жёлтые"} if app.eye_colour == "amber" else
                                                              {"янтарные"} if app.eye_colour == "yellow" else set())
    assert not any(f"глаза {w}" in t for t in said for w in other_eyes)  # never another eye colour than its swap
    orders = {tuple(p.split(" ")[0] for p in t.rstrip(".").split(", ")[1:]) for t in said}
    assert len(orders) > 100
    no_collar = next(a for a in (random_appearance(rng, "cat") for _ in range(60)) if a.collar is None)
    assert not any("ошейнике" in (describe(no_collar, "кот", False, np.random.default_rng(k)) or "")
                   for k in range(300))


def test_listings_of_one_animal_differ_and_look_alikes_share_words(world: SampleWorld) -> None:
    items = _items(world)
    pair = lambda m: (items[m.lost.identity_id], items[m.found.identity_id])  # noqa: E731
    same_animal = [pair(m) for m in world.planted_matches]
    look_alikes = [pair(m) for m in world.decoys + world.twins]
    sentences = lambda a: {line for line in _text(a).split("\n") if "глаза" in line or "ошейник" in line}  # noqa: E731
    assert any(sentences(a) != sentences(b) for a, b in same_animal)  # described differently
    for m in world.planted:  # but consistently: every coat word used is the planted coat's
        a, b = pair(m)
        assert _coat_words(a) | _coat_words(b) <= colour_words(m.coat), (m.role, _text(a), _text(b))

    def overlap(a: SampleListing | SamplePost, b: SampleListing | SamplePost) -> float:
        x, y = _attribute_words(a), _attribute_words(b)
        return len(x & y) / max(1, len(x | y))

    lost = [a for a, _ in look_alikes]
    unrelated = [overlap(a, b) for a in lost for b in world.listings
                 if b.animal_id != a.animal_id and not _coat_words(b) & _coat_words(a) and b.species == a.species]
    assert np.mean([overlap(a, b) for a, b in look_alikes]) > np.mean(unrelated) + 0.1
    # across the world, some sentences are missing and some colour words are swapped
    assert any(not any("глаза" in line or "ошейник" in line for line in lst.description.split("\n"))
               for lst in world.listings)
    usual = {w for pair in (("чёрный", "чёрная"), ("белый", "белая"), ("рыжий", "рыжая"), ("серый", "серая"),
                            ("коричневый", "коричневая"), ("кремовый", "кремовая")) for w in pair}
    every = set().union(*(colour_words(c) for c in COAT_COLOURS))
    assert any(_coat_words(lst) & (every - usual) for lst in world.listings)


def test_decoys_look_alike_nearby_but_are_other_animals(world: SampleWorld) -> None:
    items = _items(world)
    decoys = world.decoys
    assert len(decoys) == planted_counts(48)["decoys"]
    assert any(d.lost.identity_id in {m.lost.identity_id for m in world.planted_matches if m.found.source == "telegram"}
               for d in decoys)  # a cross-source pair has a pet911 decoy too
    for d in decoys:
        lost, decoy = items[d.lost.identity_id], items[d.found.identity_id]
        assert isinstance(decoy, SampleListing) and decoy.kind == "found"
        assert decoy.animal_id != lost.animal_id and all(p.depicts == decoy.animal_id for p in decoy.photos)
        assert (decoy.species, decoy.breed, decoy.city) == (lost.species, lost.breed, lost.city)
        assert _coat_words(decoy) <= colour_words(d.coat) and _coat_words(lost) <= colour_words(d.coat)
        assert 1.0 <= _km(lost.lat, lost.lng, decoy.lat, decoy.lng) <= 8.0
        assert 1 <= (decoy.date_added - lost.date_added).days <= 10


def test_twins_are_far_away_or_out_of_the_date_window(world: SampleWorld) -> None:
    items = _items(world)
    twins = {t.role: t for t in world.twins}
    assert sorted(twins) == ["far-twin", "late-twin"] and len(world.twins) == 2
    for t in twins.values():
        lost, twin = items[t.lost.identity_id], items[t.found.identity_id]
        assert isinstance(twin, SampleListing) and twin.kind == "found" and twin.animal_id != lost.animal_id
        assert (twin.species, twin.breed) == (lost.species, lost.breed)
        assert _coat_words(twin) <= colour_words(t.coat) and _coat_words(lost) <= colour_words(t.coat)
    far, late = twins["far-twin"], twins["late-twin"]
    far_lost, far_twin = items[far.lost.identity_id], items[far.found.identity_id]
    assert _km(far_lost.lat, far_lost.lng, far_twin.lat, far_twin.lng) > 100 and far_twin.city != far_lost.city
    assert 1 <= far.days_apart <= 10  # only the distance separates it
    late_lost, late_twin = items[late.lost.identity_id], items[late.found.identity_id]
    assert (late_twin.date_added - late_lost.date_added).days == late.days_apart > 90
    assert _km(late_lost.lat, late_lost.lng, late_twin.lat, late_twin.lng) <= 8.0  # only the date separates it


def test_planted_cases_name_what_the_telegram_importer_stores(tmp_path: Path) -> None:
    from petid_sample.telegram_export import write_export
    from scrapers.telegram.export import import_export

    world = build_world(seed=5, n_animals=10)
    write_export(world.channel, world.posts, tmp_path / "exp")
    stored = set(import_export(tmp_path / "exp", tmp_path / "raw").catalogue["identity_id"].to_pylist())
    telegram = {m.found.identity_id for m in world.planted if m.found.source == "telegram"}
    assert telegram and telegram <= stored
    assert all(m.lost.identity_id == f"pet911:{m.lost.item_id}" for m in world.planted)


def test_planted_matches_file_round_trips(tmp_path: Path) -> None:
    from petid_sample import PLANTED_COLUMNS, generate_sample, load_planted, load_planted_matches

    source = generate_sample(tmp_path / "sample", seed=1, n_animals=8)
    with source.planted_matches_csv.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == PLANTED_COLUMNS and len(rows) == len(source.world.planted)
    assert load_planted(source.root) == source.world.planted == load_planted(source.planted_matches_csv)
    assert load_planted_matches(source.root) == source.world.planted_matches
    assert {r["role"] for r in rows} == {"match", "decoy", "far-twin", "late-twin"}
    # the planted items are in the ground truth: the found side of a pair shows the lost side's animal
    truth = {(r["source"], r["item_id"]): r["animal_id"] for r in ground_truth_rows(source.world)}
    for m in load_planted_matches(source.root):
        assert truth[(m.lost.source, m.lost.item_id)] == truth[(m.found.source, m.found.item_id)] == m.lost.animal_id
    with pytest.raises(FileNotFoundError, match="no planted matches"):
        load_planted(tmp_path)
