"""DogFaceNet (Mougeot et al. 2019; 8,363 face crops of 1,393 dogs, CC BY 4.0).

Layout implemented (the GitHub release ``DogFaceNet_Dataset_224_1.zip``, as read by wildlife-datasets):
``ROOT/after_4_bis/<dog id>/<dog id>.<n>.jpg`` — one numeric folder per dog. ``ROOT`` may also be the
``after_4_bis`` folder itself. The optional ``classes_train.txt``/``classes_test.txt`` split files are not needed
to build the catalogue. Identity ``dogfacenet:<dog id>``, species ``dog``.
"""

from __future__ import annotations

from pathlib import Path

from scrapers.datasets._common import DatasetLayoutError, Imported, list_images, require_dir

SOURCE = "dogfacenet"


def load(root: Path) -> Imported:
    """One identity per numeric folder under ``after_4_bis`` (or under ``root`` if that is the folder)."""
    root = require_dir(Path(root), SOURCE)
    base = root / "after_4_bis" if (root / "after_4_bis").is_dir() else root
    folders = sorted((p for p in base.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    if not folders:
        raise DatasetLayoutError(f"{SOURCE}: no numeric dog folders in {base} (expected after_4_bis/<id>/*.jpg)")
    imported = Imported(SOURCE)
    for folder in folders:
        imported.add(str(int(folder.name)), list_images(folder), species="dog")
    return imported
