"""Report figures: ROC curves, genuine/impostor histograms (matplotlib, Agg) and photo contact sheets (Pillow)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def roc_plot(curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]], path: str | os.PathLike[str]) -> Path:
    """One ROC curve per model: ``{name: (fpr, tpr, auc)}``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="Verification ROC", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def score_histograms(
    results: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike[str]
) -> Path:
    """Genuine (same animal) and impostor similarity histograms, one panel per model: ``{name: (scores, labels)}``."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), dpi=100, squeeze=False)
    bins = np.linspace(-1, 1, 61)
    for ax, (name, (scores, labels)) in zip(axes[0], results.items()):
        labels = np.asarray(labels, dtype=bool)
        ax.hist(scores[labels], bins=bins, alpha=0.6, label="genuine", color="tab:green")
        ax.hist(scores[~labels], bins=bins, alpha=0.6, label="impostor", color="tab:red")
        ax.set(title=name, xlabel="cosine similarity", ylabel="pairs")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def _thumb(path: str, size: int):
    from PIL import Image, ImageOps

    canvas = Image.new("RGB", (size, size), (230, 230, 230))
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img).convert("RGB")
            img.thumbnail((size, size))
            canvas.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    except (OSError, ValueError):  # unreadable photo: grey tile, the caption still names it
        pass
    return canvas


def contact_sheet(
    rows: Sequence[tuple[Sequence[str], str]],
    path: str | os.PathLike[str],
    thumb: int = 160,
    title: str | None = None,
) -> Path:
    """A PNG grid: each row is (photo paths left to right, caption under the row)."""
    from PIL import Image, ImageDraw

    columns = max((len(photos) for photos, _ in rows), default=1)
    caption_h, title_h, pad = 18, 24 if title else 0, 4
    width = columns * (thumb + pad) + pad
    height = title_h + max(1, len(rows)) * (thumb + caption_h + pad) + pad
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, 4), title, fill="black")
    if not rows:
        draw.text((pad, title_h + pad), "(nothing to show)", fill="black")
    for r, (photos, caption) in enumerate(rows):
        y = title_h + pad + r * (thumb + caption_h + pad)
        for c, photo in enumerate(photos):
            sheet.paste(_thumb(photo, thumb), (pad + c * (thumb + pad), y))
        draw.text((pad, y + thumb + 2), caption[: max(10, width // 6)], fill="black")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return Path(path)
