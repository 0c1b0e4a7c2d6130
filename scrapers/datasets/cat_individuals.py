"""Cat Individual Images (Kaggle ``timost1234/cat-individuals``; 13,536 photos of 518 cats, CC BY 4.0).

Layout implemented (as read by wildlife-datasets): ``ROOT/<top folder>/<cat id>/<photo>``, where the top folder
is the archive's single directory (``cat_individuals_dataset``). ``ROOT`` may also be that top folder. Photos in
deeper sub-folders are the archive's known duplicates and are skipped. A ``.heic`` photo is kept only when no
same-named JPEG/PNG sits beside it (curation rejects undecodable files with a reason). Identity
``cat-individuals:<cat id>``, species ``cat``.
"""

from __future__ import annotations

from pathlib import Path

from scrapers.datasets._common import DatasetLayoutError, Imported, list_images, require_dir

SOURCE = "cat-individuals"


def _photos(folder: Path) -> list[Path]:
    photos = list_images(folder)
    stems = {p.stem for p in photos}
    heic = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".heic" and p.stem not in stems]
    return sorted(photos + heic)


def _id_folders(base: Path) -> list[Path]:
    return [p for p in base.iterdir() if p.is_dir() and p.name.isdigit()]


def load(root: Path) -> Imported:
    """One identity per numeric folder, found directly in ``root`` or in its single top folder."""
    root = require_dir(Path(root), SOURCE)
    base = root
    if not _id_folders(root):
        tops = [p for p in root.iterdir() if p.is_dir() and _id_folders(p)]
        if len(tops) != 1:
            raise DatasetLayoutError(f"{SOURCE}: expected numeric cat folders in {root} or one sub-folder of it")
        base = tops[0]
    imported = Imported(SOURCE)
    for folder in sorted(_id_folders(base), key=lambda p: int(p.name)):
        imported.add(str(int(folder.name)), _photos(folder), species="cat")
    return imported
