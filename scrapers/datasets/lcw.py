"""LCW — Labeled Cats in the Wild (cat identities; distributed without a published layout spec).

Layout implemented (uncertain: no official layout document could be found): one folder per cat, optionally
below split folders and/or an ``images`` folder, e.g. ``ROOT/<cat id>/*.jpg`` or
``ROOT/{train,val,test}/<cat id>/*.jpg``. The same id under two split folders is one cat. Identity
``lcw:<cat id>`` (nested non-split folders joined with ``/``), species ``cat``.
"""

from __future__ import annotations

from pathlib import Path

from scrapers.datasets._common import DatasetLayoutError, Imported, leaf_identity_folders, require_dir

SOURCE = "lcw"


def load(root: Path, source: str = SOURCE, species: str = "cat") -> Imported:
    """One identity per image-holding folder (split and ``images`` levels folded away)."""
    root = require_dir(Path(root), source)
    folders = leaf_identity_folders(root)
    if not folders:
        raise DatasetLayoutError(f"{source}: no identity folders with images under {root}")
    imported = Imported(source)
    for key in sorted(folders):
        imported.add(key, sorted(folders[key]), species=species)
    return imported
