"""LCW — Labeled Cats In The Wild (cat identities, Apache-2.0).

Layout implemented: one folder per cat, named by the cat's id, its photos directly inside::

    ROOT/CatFullDataset/<cat id>/<photo>.jpg      (ROOT may also be CatFullDataset itself)

Sources read: no layout document of the publisher is in any reference corpus available offline; the layout is
the one a published reader of a real copy uses, github.com/harwoon/for_mate
``ML/scripts/train_dinov2_projection.py`` (``read_lcw``: the id root is the given folder or its
``CatFullDataset`` sub-folder, "folder name = identity", mostly numeric names; some files are corrupt, which
curation rejects with a reason).

Identity ``lcw:<cat id>``: the cat folder's own name, never its path relative to the folder given, so
``lcw:ROOT`` and ``lcw:ROOT/CatFullDataset`` give the same ids. Folders of the same name below different split
folders (``train/17``, ``test/17``) are one cat; the same name in two other places is ambiguous and raises
DatasetLayoutError. Species ``cat``.
"""

from __future__ import annotations

from pathlib import Path

from scrapers.datasets._common import SPLIT_NAMES, DatasetLayoutError, Imported, list_images, require_dir

SOURCE = "lcw"
_FOLDED = SPLIT_NAMES | {"images", "imgs", "catfulldataset"}  # levels that do not tell two cats apart


def identity_folders(root: Path, source: str = SOURCE) -> dict[str, list[Path]]:
    """Image-holding folders under ``root`` keyed by their own name (the dataset's identity label)."""
    found: dict[str, list[Path]] = {}
    context: dict[str, tuple[str, ...]] = {}
    for directory in sorted(p for p in root.rglob("*") if p.is_dir()):
        rel = directory.relative_to(root).parts
        if any(part.startswith(".") for part in rel):
            continue
        images = list_images(directory)
        if not images:
            continue
        name = directory.name
        where = tuple(p for p in rel[:-1] if p.lower() not in _FOLDED)
        if name in context and context[name] != where:
            raise DatasetLayoutError(
                f"{source}: two different folders are named {name!r} ({'/'.join(context[name]) or '.'} and "
                f"{'/'.join(where) or '.'} under {root}); point at the folder holding the cat folders")
        context[name] = where
        found.setdefault(name, []).extend(images)
    return found


def load(root: Path, source: str = SOURCE, species: str = "cat") -> Imported:
    """One identity per cat folder (split, ``images`` and ``CatFullDataset`` levels folded away)."""
    root = require_dir(Path(root), source)
    folders = identity_folders(root, source)
    if not folders:
        raise DatasetLayoutError(f"{source}: no cat folders with images under {root} (expected <cat id>/*.jpg)")
    imported = Imported(source)
    for key in sorted(folders, key=lambda x: (len(x), x)):
        imported.add(key, sorted(folders[key]), species=species)
    return imported
