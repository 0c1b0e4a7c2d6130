"""The synthetic sample world: what the offline sample source contains, before it is written as a site/export."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SamplePhoto:
    data: bytes  # encoded file bytes: JPEG or WebP, or deliberately broken
    ext: str  # ".jpg" | ".webp"
    note: str = ""  # "" | "exact-duplicate" | "near-duplicate" | "cross-duplicate" | "corrupt"
    depicts: int | None = None  # ground truth: the animal actually shown (None: no animal, or unknown)


@dataclass(frozen=True)
class SampleListing:
    """One pet911 listing (one animal)."""

    animal_id: int  # ground-truth identity
    listing_id: str  # "rl100001" (lost) / "rf100002" (found)
    kind: str  # "lost" | "found"
    species: str  # "cat" | "dog"
    breed: str | None
    sex: str | None  # "male" | "female" | None
    date_added: dt.date
    date_event: dt.date
    city: str
    address: str
    lat: float
    lng: float
    title: str
    description: str  # paragraphs joined with "\n"
    photos: tuple[SamplePhoto, ...]
    closed: bool = False
    author: str | None = None


@dataclass(frozen=True)
class SamplePost:
    """One Telegram channel message or album. ``photos`` empty for text-only posts."""

    message_id: int  # id of the first message; an album takes ids message_id .. message_id+len(photos)-1
    date: dt.datetime
    text: str
    photos: tuple[SamplePhoto, ...] = ()
    animal_id: int | None = None  # ground truth; None for posts that are not about one animal
    link_preview: bool = False  # a text post with a web-page preview image (must not count as a photo)


ROLE_MATCH = "match"  # the same animal, lost then found
ROLE_DECOY = "decoy"  # a look-alike found nearby, days later: only the model can tell it apart
ROLE_FAR_TWIN = "far-twin"  # the same appearance found in another city (> 100 km): the distance filter's case
ROLE_LATE_TWIN = "late-twin"  # the same appearance found nearby > 90 days later: the date window's case
PLANTED_ROLES = (ROLE_MATCH, ROLE_DECOY, ROLE_FAR_TWIN, ROLE_LATE_TWIN)


@dataclass(frozen=True)
class PlantedItem:
    """One listing or post of a planted case, named as the catalogues name it."""

    source: str  # "pet911" | "telegram"
    item_id: str  # the listing id, or the post's first message id (as in ground_truth.csv)
    identity_id: str  # as the scrapers name it: "pet911:<listing id>" | "telegram:c<channel id>:<first message id>"
    animal_id: int  # ground truth: the animal shown
    date: dt.date  # pet911: date_added; Telegram: the post's date (what the catalogues' ``date`` column holds)
    city: str  # the listing's city, or the city the post's text names
    lat: float | None = None  # None for Telegram posts (they carry no coordinates)
    lng: float | None = None


@dataclass(frozen=True)
class PlantedMatch:
    """A planted lost → found relation: the lost animal's true found listing (``role="match"``) or a found
    listing of another animal that looks like it (``decoy``, ``far-twin``, ``late-twin``)."""

    role: str  # one of PLANTED_ROLES
    lost: PlantedItem
    found: PlantedItem
    species: str
    breed: str | None  # the lost listing's breed (a decoy's listing names the same one)
    coat: str  # base coat colour shared by both animals
    days_apart: int  # found.date - lost.date
    km_apart: float | None  # great-circle distance; None when one side is a Telegram post


@dataclass
class SampleWorld:
    listings: list[SampleListing] = field(default_factory=list)
    channel: str = "petid_sample_poteryashki"
    posts: list[SamplePost] = field(default_factory=list)
    planted: list[PlantedMatch] = field(default_factory=list)  # ground truth for matching: pairs, decoys, twins

    @property
    def planted_matches(self) -> list[PlantedMatch]:
        """The true lost → found pairs."""
        return [p for p in self.planted if p.role == ROLE_MATCH]

    @property
    def decoys(self) -> list[PlantedMatch]:
        return [p for p in self.planted if p.role == ROLE_DECOY]

    @property
    def twins(self) -> list[PlantedMatch]:
        return [p for p in self.planted if p.role in (ROLE_FAR_TWIN, ROLE_LATE_TWIN)]
