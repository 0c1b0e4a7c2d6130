"""PetFace (Shinoda & Shiohara, ECCV 2024; 257,484 animals of 13 families; research use only).

Layout implemented (the official repository github.com/mapooon/PetFace: README.md "Dataset directory",
``src/dataset.py`` ``Train`` reading ``filename``/``label`` and joining ``filename`` to the image folder)::

    ROOT/images/<family>/<animal id>/<nn>.png          e.g. images/cat/000000/00.png
    ROOT/split/<family>/train.csv                      filename,label   (filename relative to images/)
    ROOT/split/<family>/reidentification.csv           filename,label
    ROOT/split/<family>/verification.csv               filename1,filename2,label (label = same animal)
    ROOT/split/<family>/val.txt, test.txt              one filename per line
    ROOT/annotations/<family>.csv                      (breed, sex, colour; not read)

Some copies are extracted without the ``images`` level (``ROOT/<family>/<animal id>/<nn>.png`` beside ``split/``
and ``annotations/``); both layouts are read. The repository's own evaluation scripts take the image folder as a
separate argument (``src/reidentification.py -b``, default ``data/PetFace/images``) and join it with the split
files' ``filename`` column, so either folder works as long as it holds the family folders.

``petface:ROOT`` imports every image under ``images/`` (or ``ROOT``'s family folders);
``petface:ROOT/split/<family>/<file>`` imports only the images one split file lists. The identity is always the
animal folder (``petface:<family>/<animal id>``), never the split's integer ``label`` (which is re-numbered per
split); a CSV whose label disagrees with the folders is reported. Species: ``cat``, ``dog`` (family
``dog``/``dogs``), else ``other``.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from scrapers.datasets._common import DatasetLayoutError, Imported, list_images, require_dir

SOURCE = "petface"
_SPECIES = {"cat": "cat", "cats": "cat", "dog": "dog", "dogs": "dog"}
_NOT_FAMILIES = frozenset({"split", "annotations", "images", "keypoints"})  # folders beside the family folders


def family_species(family: str) -> str:
    return _SPECIES.get(family.lower(), "other")


def _families(images: Path) -> list[Path]:
    return sorted(p for p in images.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.name.lower() not in _NOT_FAMILIES)


def _images_dir(root: Path) -> Path | None:
    """The folder holding the family folders: ``ROOT/images``, or ``ROOT`` itself when extracted without it."""
    if (root / "images").is_dir():
        return root / "images"
    if any(any(child.is_dir() for child in family.iterdir()) for family in _families(root)):
        return root
    return None


def _images_root(split_file: Path) -> Path:
    """``ROOT/split/<family>/file`` → ``ROOT/images`` (or ``ROOT``, for a copy without the images level)."""
    root = split_file.absolute().parents[2]
    images = _images_dir(root)
    if images is None:
        raise DatasetLayoutError(f"{SOURCE}: no images/ folder and no <family>/<animal id>/ folders in {root} "
                                 f"(beside the split/ folder of {split_file.name})")
    return images


def _split_filenames(split_file: Path) -> list[tuple[str, str | None]]:
    """(filename, label) pairs listed by one split file; label None where the file has none."""
    if split_file.suffix.lower() == ".txt":
        lines = split_file.read_text(encoding="utf-8").splitlines()
        return [(line.strip().split(",")[0], None) for line in lines if line.strip() and line.strip() != "filename"]
    with open(split_file, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = set(reader.fieldnames or [])
        if {"filename", "label"} <= fields:
            return [(row["filename"], row["label"]) for row in reader]
        if {"filename1", "filename2"} <= fields:
            return [(row[key], None) for row in reader for key in ("filename1", "filename2")]
    raise DatasetLayoutError(f"{SOURCE}: {split_file} has neither filename,label nor filename1,filename2 columns")


def _load_split(split_file: Path) -> Imported:
    images = _images_root(split_file)
    by_animal: dict[str, list[Path]] = defaultdict(list)
    labels: dict[str, set[str]] = defaultdict(set)
    for filename, label in _split_filenames(split_file):
        parts = Path(filename).parts
        if len(parts) < 3:
            raise DatasetLayoutError(f"{SOURCE}: {split_file}: {filename!r} is not <family>/<animal id>/<file>")
        animal = f"{parts[0]}/{parts[1]}"
        path = images / filename
        if path not in by_animal[animal]:
            by_animal[animal].append(path)
        if label is not None:
            labels[label].add(animal)
    mixed = sorted(f"label {label}: {sorted(animals)}" for label, animals in labels.items() if len(animals) > 1)
    if mixed:
        raise DatasetLayoutError(f"{SOURCE}: {split_file}: labels spanning several animal folders: {mixed[:5]}")
    imported = Imported(SOURCE)
    for animal in sorted(by_animal):
        imported.add(animal, sorted(by_animal[animal]), species=family_species(animal.split("/")[0]))
    return imported


def load(path: Path) -> Imported:
    """Every animal under ``ROOT/images`` (or only those of one split file, when ``path`` is one)."""
    path = Path(path)
    if path.is_file():
        return _load_split(path)
    require_dir(path, SOURCE)
    images = _images_dir(path)
    families = _families(images) if images is not None else []
    if not families:
        raise DatasetLayoutError(f"{SOURCE}: no family folders in {path} (expected images/<family>/<id>/*.png "
                                 "or <family>/<id>/*.png beside split/)")
    imported = Imported(SOURCE)
    for family in families:
        for animal in sorted(p for p in family.iterdir() if p.is_dir()):
            imported.add(f"{family.name}/{animal.name}", list_images(animal), species=family_species(family.name))
    return imported
