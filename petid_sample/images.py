"""Photo-like synthetic images (smooth gradients, soft shapes, sensor noise) for benchmarks and tests (part of the
sample package: the libraries never import it).

They compress and hash like real photos (unlike flat test patterns), are deterministic for a seed, and are distinct
from each other for different seeds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def photo(seed: int, size: tuple[int, int] = (640, 480), noise: float = 6.0):  # -> PIL.Image.Image
    """A deterministic photo-like RGB image of ``size`` (width, height)."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.zeros((height, width, 3), np.float32)
    for channel in range(3):
        angle = rng.uniform(0, 2 * np.pi)
        freq = rng.uniform(0.5, 3.0) * 2 * np.pi / max(width, height)
        phase = rng.uniform(0, 2 * np.pi)
        base[..., channel] = 128 + 90 * np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
    img = Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(4, 9))):
        x0, y0 = rng.uniform(0, width * 0.8), rng.uniform(0, height * 0.8)
        w, h = rng.uniform(0.1, 0.5) * width, rng.uniform(0.1, 0.5) * height
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        box = (x0, y0, min(width - 1, x0 + w), min(height - 1, y0 + h))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(radius=max(1.0, min(width, height) / 200)))
    arr = np.asarray(img).astype(np.float32) + rng.normal(0, noise, (height, width, 3))
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGB")


def write_photos(folder: Path, count: int, size: tuple[int, int] = (1024, 768), formats: tuple[str, ...] = ("JPEG", "WEBP"),
                 seed: int = 0, quality: int = 90) -> list[Path]:
    """Write ``count`` photo-like images to ``folder``, cycling through ``formats``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        fmt = formats[k % len(formats)]
        path = folder / f"photo_{k:05d}.{'jpg' if fmt == 'JPEG' else fmt.lower()}"
        photo(seed + k, size).save(path, fmt, quality=quality)
        paths.append(path)
    return paths
