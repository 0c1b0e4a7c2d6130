"""Generate the sample source once per storage root, safely when several processes ask at the same time."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from petid_sample.model import SampleWorld


class SampleDirs:
    """Where a generated sample source lives (the world itself is not reloaded)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pet911_site_dir = root / "pet911"
        self.telegram_export_dir = root / "telegram"
        self.planted_matches_csv = root / "planted_matches.csv"  # petid_sample.load_planted(root) reads it


_MARKER = ".complete"
WORLD_VERSION = 3  # bump when the generator changes what a seed produces (2: planted lost/found matches; 3: noisy
# descriptions with collar and size)


def ensure_sample(out_dir: Path, seed: int = 0, n_animals: int = 48) -> SampleDirs:
    """Return the sample under ``out_dir/v<WORLD_VERSION>-seed-<seed>-n<n_animals>``, generating it first if it is missing.

    Generation happens in a temporary sibling directory that is renamed into place, so a concurrent or killed
    generator never leaves a half-written sample behind.
    """
    from petid_sample import generate_sample

    target = Path(out_dir) / f"v{WORLD_VERSION}-seed-{seed}-n{n_animals}"  # an older generator's cache is not reused
    if (target / _MARKER).exists():
        return SampleDirs(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-sample-"))
    try:
        generate_sample(tmp, seed=seed, n_animals=n_animals)
        (tmp / _MARKER).write_text("ok\n")
        try:
            os.rename(tmp, target)
        except OSError:  # another process won the race; its sample is identical
            if not (target / _MARKER).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return SampleDirs(target)


__all__ = ["SampleDirs", "SampleWorld", "ensure_sample"]
