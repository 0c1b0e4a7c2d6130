"""Dependency-free stand-ins for tests and smoke runs: synthetic identity photos and a pixel-statistics embedder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


class PixelEmbedder:
    """Embedding = the photo downsampled to 8×8 RGB, centred and L2-normalised (the same interface as
    ``training.embedder.Embedder``). ``noise`` adds a fixed random projection so two instances differ."""

    def __init__(self, model_id: str = "fake-pixels", noise: float = 0.0, seed: int = 0) -> None:
        self.model_id = model_id
        self.calls: list[int] = []
        rng = np.random.default_rng(seed)
        self._mix = np.eye(192, dtype=np.float32) + noise * rng.standard_normal((192, 192)).astype(np.float32)

    def embed(self, paths: list[str], batch_size: int = 32) -> np.ndarray:
        from PIL import Image

        self.calls.append(len(paths))
        rows = []
        for path in paths:
            with Image.open(path) as img:
                small = np.asarray(img.convert("RGB").resize((8, 8)), dtype=np.float32).reshape(-1)
            vec = (small - small.mean()) @ self._mix
            rows.append(vec / (np.linalg.norm(vec) or 1.0))
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, 192), np.float32)


def make_photos(
    root: Path, n_identities: int = 6, per_identity: int = 4, noise: float = 25.0, seed: int = 0,
    spread: float = 1.0,
) -> pd.DataFrame:
    """Write JPEGs of ``n_identities`` animals (a random 4×4 colour pattern each, noisy copies) and return a frame
    with ``path``, ``identity_id``, ``source``, ``species``, ``kind``, ``date``, ``url``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_identities):
        # spread < 1 pulls every animal's pattern towards mid-grey: harder to tell apart
        pattern = 128.0 + spread * (rng.random((4, 4, 3)).astype(np.float32) - 0.5) * 255.0
        base = np.kron(pattern, np.ones((16, 16, 1), dtype=np.float32))
        folder = root / f"animal{i}"
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(per_identity):
            pixels = np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)
            path = folder / f"{j}.jpg"
            Image.fromarray(pixels).save(path, quality=95)
            rows.append(
                {
                    "path": str(path),
                    "identity_id": f"test:{i}",
                    "source": "alpha" if i % 2 == 0 else "beta",
                    "species": "dog" if i % 3 else "cat",
                    "kind": "lost" if i % 2 == 0 else "found",
                    "date": f"2024-01-{i + 1:02d}",
                    "url": f"https://example.org/{i}",
                }
            )
    return pd.DataFrame(rows)


def blend_photos(a: str | Path, b: str | Path, weight_a: float, out: Path) -> str:
    """Write ``weight_a`` × photo ``a`` + (1 − ``weight_a``) × photo ``b`` (same size) as a JPEG: an ambiguous
    photo that looks more like ``b`` when ``weight_a < 0.5``; returns its path."""
    from PIL import Image

    with Image.open(a) as img_a, Image.open(b) as img_b:
        pixels = weight_a * np.asarray(img_a.convert("RGB"), np.float32) + \
            (1 - weight_a) * np.asarray(img_b.convert("RGB"), np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, quality=95)
    return str(out)
