"""Image datasets for training and embedding, with an optional decoded-and-resized in-memory cache.

The cache decodes every photo once (in a thread pool), shrinks it so the shorter side is ``cache_side`` pixels and
keeps the uint8 arrays; DataLoader workers are forked after it is filled, so they share it copy-on-write and the
per-step cost is augmentation only. Imports torch at the top (training code path only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset


class ImageReadError(OSError):
    """A photo cannot be read or decoded; the message names the file."""


def read_rgb(path: str | Path, shorter_side: int | None = None) -> Image.Image:
    """Decode ``path`` to RGB, optionally shrinking so the shorter side is ``shorter_side`` (never enlarging)."""
    try:
        with Image.open(path) as image:
            if shorter_side is not None:
                image.draft("RGB", (shorter_side, shorter_side))  # JPEG: decode at reduced scale
            rgb = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc
    if shorter_side is not None and min(rgb.size) > shorter_side:
        scale = shorter_side / min(rgb.size)
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.BILINEAR)
    return rgb


def decode_all(paths: Sequence[str], shorter_side: int, threads: int = 4) -> list[np.ndarray]:
    """Decode and shrink every photo (thread pool; PIL releases the GIL while decoding)."""
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return list(pool.map(lambda p: np.asarray(read_rgb(p, shorter_side)), paths))


class ImageDataset(Dataset):
    """``(transform(image), label)`` per photo; ``cache`` holds pre-decoded uint8 arrays parallel to ``paths``."""

    def __init__(self, paths: Sequence[str], labels: Sequence[int], transform: Callable,
                 cache: list[np.ndarray] | None = None) -> None:
        if len(paths) != len(labels) or (cache is not None and len(cache) != len(paths)):
            raise ValueError("paths, labels and cache must have the same length")
        self.paths, self.labels, self.transform, self.cache = list(paths), list(labels), transform, cache

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = Image.fromarray(self.cache[index]) if self.cache is not None else read_rgb(self.paths[index])
        return self.transform(image), self.labels[index]


class ListingDataset(ImageDataset):
    """``(image, text ids, label)`` per photo: ``tokenizer`` (the text encoder's, run here in the loader workers)
    encodes the photo's listing text; ``with_images=False`` yields an empty image tensor (text-only models);
    ``text_dropout`` hides the text of that share of items and ``word_dropout`` drops each word with that
    probability (text augmentation: two people describing one animal never write the same words), both drawn from
    torch's generator, which the DataLoader seeds per worker from the run's seed."""

    def __init__(self, paths: Sequence[str], labels: Sequence[int], transform: Callable, texts: Sequence[str | None],
                 tokenizer: Callable, cache: list[np.ndarray] | None = None, with_images: bool = True,
                 text_dropout: float = 0.0, word_dropout: float = 0.0) -> None:
        super().__init__(paths, labels, transform, cache)
        if len(texts) != len(paths):
            raise ValueError("paths and texts must have the same length")
        self.texts, self.tokenizer, self.with_images = list(texts), tokenizer, with_images
        self.text_dropout, self.word_dropout = text_dropout, word_dropout

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image = super().__getitem__(index)[0] if self.with_images else torch.zeros(0)
        text = self.texts[index]
        if self.text_dropout and float(torch.rand(())) < self.text_dropout:
            text = None
        if text and self.word_dropout:
            words = text.split()
            keep = torch.rand(len(words)) >= self.word_dropout
            text = " ".join(w for w, k in zip(words, keep.tolist()) if k) or None
        return image, torch.from_numpy(self.tokenizer([text])[0]), self.labels[index]
