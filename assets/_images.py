"""Pictures in asset metadata: photo grids and scaled-down plots as Markdown images with base64 data URIs.

The Dagster UI renders Markdown metadata with react-markdown and rehype-sanitize, whose schema there allows
``data:`` image sources (``ui-core/src/ui/MarkdownWithPlugins.tsx``); raw HTML such as ``<img>`` is not rendered,
so every picture is a Markdown ``![alt](data:image/...;base64,...)``. Each entry is shrunk until it fits
``MAX_BYTES``: metadata is stored with every materialization event and sent whole to the browser.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
from dagster import MetadataValue

if TYPE_CHECKING:
    from PIL.Image import Image

MAX_BYTES = 150_000  # of base64 text per metadata entry
TILE = 112  # pixels of a square photo tile
CAPTION_H, PAD = 16, 4

Row = tuple[Sequence[str], str]  # photo paths left to right, caption under them


def _tile(path: str | None, side: int) -> Image:
    """The photo fitted into a grey square (a grey square alone when it cannot be read)."""
    from PIL import Image, ImageOps

    canvas = Image.new("RGB", (side, side), (230, 230, 230))
    if not path:
        return canvas
    try:
        with Image.open(path) as img:
            img.draft("RGB", (side, side))  # JPEG: decode at a reduced scale
            img = ImageOps.exif_transpose(img).convert("RGB")
            img.thumbnail((side, side))
            canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    except (OSError, ValueError):
        pass
    return canvas


def grid(rows: Sequence[Row], tile: int = TILE) -> Image:
    """One picture: each row's photos side by side with its caption underneath."""
    from PIL import Image, ImageDraw

    columns = max((len(photos) for photos, _ in rows), default=1)
    width = max(1, columns) * (tile + PAD) + PAD
    sheet = Image.new("RGB", (width, max(1, len(rows)) * (tile + CAPTION_H + PAD) + PAD), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (photos, caption) in enumerate(rows):
        y = PAD + r * (tile + CAPTION_H + PAD)
        for c, photo in enumerate(photos):
            sheet.paste(_tile(photo, tile), (PAD + c * (tile + PAD), y))
        draw.text((PAD, y + tile + 2), caption[: max(10, width // 6)], fill="black")
    return sheet


def data_uri(image: Image, fmt: str = "JPEG", max_bytes: int = MAX_BYTES) -> str:
    """``data:image/...;base64,...`` of ``image``, made smaller (by a quarter at a time) until it fits."""
    mime = "png" if fmt == "PNG" else "jpeg"
    while True:
        buffer = io.BytesIO()
        if fmt == "PNG":
            image.save(buffer, format="PNG", optimize=True)
        else:
            image.convert("RGB").save(buffer, format="JPEG", quality=80, optimize=True)
        text = base64.b64encode(buffer.getvalue()).decode("ascii")
        if len(text) <= max_bytes or min(image.size) < 32:
            return f"data:image/{mime};base64,{text}"
        image = image.resize((max(1, image.width * 3 // 4), max(1, image.height * 3 // 4)))


def markdown(title: str, uri: str, note: str = "") -> MetadataValue:
    """A Markdown metadata entry: the picture under a one-line title (and an optional note)."""
    return MetadataValue.md(f"**{title}**{' — ' + note if note else ''}\n\n![{title}]({uri})")


def photo_grid(title: str, rows: Sequence[Row], tile: int = TILE, empty: str = "nothing to show") -> MetadataValue:
    """Rows of photos (with captions) as one JPEG grid in a Markdown entry."""
    if not rows:
        return MetadataValue.md(f"**{title}** — _{empty}_")
    return markdown(title, data_uri(grid(rows, tile)))


def plot(title: str, path: str | Path, max_width: int = 640, fmt: str | None = None) -> MetadataValue:
    """A figure file written by the libraries (ROC, histograms, curves, contact sheets), scaled to ``max_width``,
    as ``fmt`` (default: PNG for a PNG file; JPEG suits sheets of photos); a missing file is said so in the entry."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        return MetadataValue.md(f"**{title}** — _not written ({path.name} is missing)_")
    with Image.open(path) as img:
        img = img.convert("RGB")
    if img.width > max_width:
        img = img.resize((max_width, max(1, img.height * max_width // img.width)))
    fmt = fmt or ("PNG" if path.suffix.lower() == ".png" else "JPEG")
    return markdown(title, data_uri(img, fmt=fmt), note=path.name)


def identity_rows(table: pa.Table, identities: int = 6, per_identity: int = 4, path: str = "path") -> list[Row]:
    """Up to ``per_identity`` photos of each of the first ``identities`` animals (by id) with two photos or more
    (any animals when none has two), captioned with the identity and its photo count."""
    by_identity: dict[str, list[str]] = {}
    for identity, photo in zip(table.column("identity_id").to_pylist(), table.column(path).to_pylist()):
        by_identity.setdefault(identity, []).append(photo)
    chosen = sorted(i for i, photos in by_identity.items() if len(photos) >= 2) or sorted(by_identity)
    return [(by_identity[i][:per_identity], f"{i} ({len(by_identity[i])} photos)") for i in chosen[:identities]]
