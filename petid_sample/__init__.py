"""The offline sample source: a synthetic pet911-format site and a Telegram Desktop export, with ground truth.

``ground_truth.csv`` says who owns and who is in every photo file; ``planted_matches.csv`` lists the planted lost →
found pairs and the decoys and twins planted against them (:func:`load_planted`, :func:`load_planted_matches`).
Everything here is synthetic: the animals are drawn procedurally (``photos.py``) and the listings and posts are
generated (``world.py``); nothing is copied from the real sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from petid_sample.model import (
    PLANTED_ROLES,
    PlantedItem,
    PlantedMatch,
    SampleListing,
    SamplePhoto,
    SamplePost,
    SampleWorld,
)
from petid_sample.planted import (
    PLANTED_COLUMNS,
    PLANTED_FILE,
    load_planted,
    load_planted_matches,
    planted_rows,
    write_csv,
    write_planted,
)
from petid_sample.world import GROUND_TRUTH_COLUMNS, build_world, ground_truth_rows, planted_counts

GROUND_TRUTH_FILE = "ground_truth.csv"


@dataclass
class SampleSource:
    """A generated sample source on disk, with the world it was written from."""

    root: Path
    pet911_site_dir: Path
    telegram_export_dir: Path
    world: SampleWorld

    @property
    def ground_truth_csv(self) -> Path:
        return self.root / GROUND_TRUTH_FILE

    @property
    def planted_matches_csv(self) -> Path:
        return self.root / PLANTED_FILE


def write_ground_truth(world: SampleWorld, path: Path) -> Path:
    """Write one CSV row per photo file (columns ``GROUND_TRUTH_COLUMNS``; empty cells for None)."""
    return write_csv(ground_truth_rows(world), GROUND_TRUTH_COLUMNS, path)


def generate_sample(out_dir: Path, seed: int = 0, n_animals: int = 48) -> SampleSource:
    """Build the world for ``seed`` and write it under ``out_dir``: ``pet911/`` (site), ``telegram/`` (export),
    ``ground_truth.csv`` and ``planted_matches.csv``."""
    from petid_sample.pet911_site import write_site
    from petid_sample.telegram_export import write_export

    out_dir = Path(out_dir)
    world = build_world(seed=seed, n_animals=n_animals)
    site_dir, export_dir = out_dir / "pet911", out_dir / "telegram"
    write_site(world.listings, site_dir)
    write_export(world.channel, world.posts, export_dir)
    write_ground_truth(world, out_dir / GROUND_TRUTH_FILE)
    write_planted(world.planted, out_dir / PLANTED_FILE)
    return SampleSource(root=out_dir, pet911_site_dir=site_dir, telegram_export_dir=export_dir, world=world)


__all__ = [
    "GROUND_TRUTH_COLUMNS",
    "PLANTED_COLUMNS",
    "PLANTED_FILE",
    "PLANTED_ROLES",
    "PlantedItem",
    "PlantedMatch",
    "SampleListing",
    "SamplePhoto",
    "SamplePost",
    "SampleSource",
    "SampleWorld",
    "build_world",
    "generate_sample",
    "ground_truth_rows",
    "load_planted",
    "load_planted_matches",
    "planted_counts",
    "planted_rows",
    "write_ground_truth",
    "write_planted",
]
