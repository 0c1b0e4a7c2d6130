"""A synthetic identity set (coloured shapes, consistent per identity) for tests, smoke runs and the training
benchmark (part of the sample package: the libraries never import it)."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd


def make_identity_set(root: str | Path, n_identities: int = 12, photos_per_identity: int = 4, size: int = 64,
                      val_identities: int = 4, seed: int = 0) -> pd.DataFrame:
    """Write JPEGs under ``root/id<i>/<j>.jpg``: each identity has its own shape, colour and background; photos vary
    in position and scale. Returns ``path``, ``identity_id``, ``split`` (the last ``val_identities`` are ``val``)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    rows = []
    for i in range(n_identities):
        colour = tuple(rng.randrange(60, 256) for _ in range(3))
        background = tuple(rng.randrange(0, 100) for _ in range(3))
        shape = i % 3
        for j in range(photos_per_identity):
            image = Image.new("RGB", (size, size), background)
            draw = ImageDraw.Draw(image)
            offset, shrink = rng.randrange(0, size // 6), rng.randrange(0, size // 8)
            box = (offset + size // 8, offset + size // 8, size - size // 8 - shrink, size - size // 8 - shrink)
            if shape == 0:
                draw.ellipse(box, fill=colour)
            elif shape == 1:
                draw.rectangle(box, fill=colour)
            else:
                draw.polygon([(box[0], box[3]), ((box[0] + box[2]) // 2, box[1]), (box[2], box[3])], fill=colour)
            path = Path(root) / f"id{i}" / f"{j}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path, quality=90)
            split = "val" if i >= n_identities - val_identities else "train"
            rows.append({"path": str(path), "identity_id": f"synthetic:{i}", "split": split})
    return pd.DataFrame(rows)
