"""``identity-folders:DIR``: one sub-folder per animal, its images directly inside (or below) it.

``DIR/<identity>/*.jpg`` → identity ``<source>:<identity>``. The source is the folder's name, or its parent's
name when the folder has a generic name (``images``, ``photos``, ``data``…), so ``kennel_dev/images`` gives
source ``kennel_dev``. Species is unknown (null). Images in nested sub-folders of an identity folder count for it.
"""

from __future__ import annotations

from pathlib import Path

from scrapers.datasets._common import Imported, list_images, require_dir

GENERIC_NAMES = frozenset({"images", "image", "imgs", "photos", "pictures", "data", "dataset", "train", "test", "val"})


def source_name(directory: Path) -> str:
    """The folder name, skipping generic names such as ``images`` in favour of the parent's."""
    directory = Path(directory).absolute()
    for part in (directory, *directory.parents):
        if part.name and part.name.lower() not in GENERIC_NAMES:
            return part.name
    return "folders"


def load(directory: Path, source: str | None = None, species: str | None = None) -> Imported:
    """Every sub-folder of ``directory`` is one identity; an empty one is declared (and fails validation)."""
    directory = require_dir(Path(directory), "identity-folders")
    imported = Imported(source or source_name(directory))
    for sub in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
        imported.add(sub.name, list_images(sub, recursive=True), species=species)
    return imported
