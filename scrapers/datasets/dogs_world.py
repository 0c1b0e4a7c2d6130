"""Dogs-World (Kaggle dog re-identification set; cited by the seed corpus beside PetFace and LCW).

Layout implemented (uncertain: the Kaggle page's file tree could not be consulted offline): one folder per dog,
optionally below split folders and/or an ``images`` folder, e.g. ``ROOT/<dog id>/*.jpg`` or
``ROOT/{train,test}/<dog id>/*.jpg``. The same id under two split folders is one dog. Identity
``dogs-world:<dog id>``, species ``dog``.
"""

from __future__ import annotations

from pathlib import Path

from scrapers.datasets import lcw
from scrapers.datasets._common import Imported

SOURCE = "dogs-world"


def load(root: Path) -> Imported:
    """Same folder rules as LCW, with source ``dogs-world`` and species ``dog``."""
    return lcw.load(Path(root), source=SOURCE, species="dog")
