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


@dataclass
class SampleWorld:
    listings: list[SampleListing] = field(default_factory=list)
    channel: str = "petid_sample_poteryashki"
    posts: list[SamplePost] = field(default_factory=list)
