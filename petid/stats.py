"""Photos-per-identity statistics (the seed paper's Table 2), shared by ingestion, manifests and the CLI."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np


def photos_per_identity(identity_ids: Iterable[str]) -> dict[str, float | int]:
    """``n_identities``, ``n_images`` and min/max/mean/median/std photos per identity (population std)."""
    counts = np.fromiter(Counter(identity_ids).values(), dtype=np.int64)
    if counts.size == 0:
        return {"n_identities": 0, "n_images": 0, "min": 0, "max": 0, "mean": 0.0, "median": 0.0, "std": 0.0}
    return {
        "n_identities": int(counts.size),
        "n_images": int(counts.sum()),
        "min": int(counts.min()),
        "max": int(counts.max()),
        "mean": round(float(counts.mean()), 3),
        "median": float(np.median(counts)),
        "std": round(float(counts.std()), 3),
    }
