"""The static review page: each candidate pair side by side (photos, titles, descriptions, dates, distance, score)
with links to both listings and the command that records a decision.

The page is self-contained: thumbnails are written next to it (``thumbs/<name>.jpg``, scaled with Pillow), every
text is escaped, and nothing is loaded from the network, so it can be opened from disk or published as is.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from petid.paths import atomic_write_bytes

THUMB = 220  # pixels, longest side
MAX_PHOTOS = 4  # per listing on the page

_STYLE = """body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
h1{font-size:1.4rem} .pair{background:#fff;border:1px solid #ddd;border-radius:8px;margin:1rem 0;padding:1rem}
.sides{display:flex;gap:1.5rem;flex-wrap:wrap} .side{flex:1;min-width:320px} .photos img{height:160px;margin:2px;
border-radius:4px;object-fit:cover} .meta{color:#555;font-size:.9rem} .score{font-size:1.1rem;font-weight:600}
code{background:#f0f0f0;padding:.1rem .3rem;border-radius:3px;font-size:.85rem} .decided{color:#0a6d2c}
.text{white-space:pre-wrap;font-size:.9rem;max-height:8em;overflow:auto}"""


@dataclass(frozen=True)
class ListingCard:
    """What a reviewer sees of one listing."""

    listing_id: str
    kind: str | None = None
    species: str | None = None
    date: str | None = None
    place: str | None = None  # city / address as the listing gives it
    title: str | None = None
    text: str | None = None
    url: str | None = None
    photos: Sequence[str] = field(default_factory=tuple)


def _thumb(source: str, out_dir: Path) -> str | None:
    """A scaled JPEG copy of ``source`` under ``out_dir/thumbs`` (reused when present); its relative path."""
    from PIL import Image, ImageOps

    path = Path(source)
    target = out_dir / "thumbs" / f"{path.stem}.jpg"
    if not target.exists():
        try:
            with Image.open(path) as img:
                img.draft("RGB", (THUMB, THUMB))
                img = ImageOps.exif_transpose(img).convert("RGB")
                img.thumbnail((THUMB, THUMB))
                buffer = io.BytesIO()
                img.save(buffer, "JPEG", quality=85)
        except (OSError, ValueError):
            return None
        atomic_write_bytes(target, buffer.getvalue())
    return f"thumbs/{target.name}"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _side(card: ListingCard, out_dir: Path) -> str:
    photos = [t for t in (_thumb(p, out_dir) for p in list(card.photos)[:MAX_PHOTOS]) if t]
    images = "".join(f'<img src="{_e(t)}" alt="photo of {_e(card.listing_id)}">' for t in photos) or "<em>no photo</em>"
    link = f'<a href="{_e(card.url)}">{_e(card.listing_id)}</a>' if card.url else _e(card.listing_id)
    meta = " · ".join(_e(v) for v in (card.kind, card.species, card.date, card.place) if v)
    return (f'<div class="side"><h3>{_e(card.title or card.listing_id)}</h3><div class="meta">{link} · {meta}</div>'
            f'<div class="photos">{images}</div><div class="text">{_e(card.text)}</div></div>')


def _pair(row: Mapping[str, Any], cards: Mapping[str, ListingCard], decision: str | None, out_dir: Path) -> str:
    query, candidate = row["query_id"], row["candidate_id"]
    facts = [f'<span class="score">score {row["score"]:.3f}</span>', f'rank {row.get("rank")}']
    if row.get("statement"):
        facts.append(_e(row["statement"]))
    if row.get("distance_km") is not None:
        facts.append(f'{row["distance_km"]:.1f} km')
    if row.get("day_gap") is not None:
        facts.append(f'{row["day_gap"]} days apart')
    if row.get("rule"):
        facts.append(f'location rule: {_e(row["rule"])}')
    status = (f'<span class="decided">decided: {_e(decision)}</span>' if decision else
              f'<code>petid review decide {_e(query)} {_e(candidate)} same|different|unsure --reviewer YOU</code>')
    return (f'<div class="pair" id="{_e(row.get("pair_id", ""))}"><div class="meta">{" · ".join(facts)}</div>'
            f'<div class="sides">{_side(cards.get(query, ListingCard(query)), out_dir)}'
            f'{_side(cards.get(candidate, ListingCard(candidate)), out_dir)}</div><p>{status}</p></div>')


def write_review_page(rows: Sequence[Mapping[str, Any]], cards: Mapping[str, ListingCard], out_dir: str | Path,
                      decisions: Mapping[str, str] | None = None, title: str = "petid — lost ↔ found candidates",
                      subtitle: str = "") -> Path:
    """Write ``out_dir/index.html`` for candidate ``rows`` (``query_id``, ``candidate_id``, ``score``,
    optional ``pair_id``, ``rank``, ``statement``, ``distance_km``, ``day_gap``, ``rule``); ``decisions`` maps
    pair ids to a recorded verdict. Pairs still to decide come first, best score first. Returns the page's path."""
    out = Path(out_dir)
    decisions = decisions or {}
    rows = sorted(rows, key=lambda r: (str(r.get("pair_id")) in decisions, -float(r["score"])))
    body = "".join(_pair(r, cards, decisions.get(str(r.get("pair_id"))), out) for r in rows) or (
        "<p>No candidate pairs in this run.</p>")
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1><p class=\"meta\">{_e(subtitle)}</p>"
            f"{body}</body></html>")
    return atomic_write_bytes(out / "index.html", page.encode("utf-8"))
