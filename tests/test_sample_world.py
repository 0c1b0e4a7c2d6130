"""The synthetic sample world: determinism, planted data-quality cases, formats, texts, identity consistency."""

from __future__ import annotations

import csv
import io
import re
from itertools import combinations, pairwise
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from petid_sample import GROUND_TRUTH_COLUMNS, build_world, ground_truth_rows
from petid_sample.model import SampleListing, SampleWorld
from petid_sample.photos import COAT_COLOURS, random_appearance, render_photo


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
    assert len(listings) == round(48 * 0.7)
    ids = [lst.listing_id for lst in listings]
    assert len(set(ids)) == len(ids)
    for lst in listings:
        assert re.fullmatch(r"r[lf]\d{6}", lst.listing_id), lst.listing_id
        assert lst.listing_id[1] == ("l" if lst.kind == "lost" else "f")
        assert lst.species in ("cat", "dog") and lst.sex in (None, "male", "female")
        assert 55.5 < lst.lat < 56.0 and 37.3 < lst.lng < 37.9
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
    assert len({lst.animal_id for lst in listings}) == len(listings)


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
    assert len(animal_posts) == 48 - round(48 * 0.7)
    listing_animals = {lst.animal_id for lst in world.listings}
    for post in animal_posts:
        assert 2 <= len(post.photos) <= 4 and post.animal_id not in listing_animals
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
