"""Helpers shared by the dataset importers: image listing, species words, row building."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from petid.errors import UserError
from petid.records import CATALOGUE_SCHEMA

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
_SPECIES_WORDS = {"cat": "cat", "cats": "cat", "kitten": "cat", "dog": "dog", "dogs": "dog", "puppy": "dog"}
_SPECIES_WORDS |= {"other": "other", "": None}  # "" / missing column -> unknown


class DatasetLayoutError(UserError, ValueError):
    """A local copy does not have the on-disk layout its importer expects."""


class DatasetSpecError(UserError, ValueError):
    """A ``FORMAT:PATH`` argument is malformed or names an unknown format."""


class DatasetNotFoundError(DatasetLayoutError, FileNotFoundError):
    """The PATH of a ``FORMAT:PATH`` argument does not exist."""


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTS and not path.name.startswith(".")


def list_images(directory: Path, recursive: bool = False) -> list[Path]:
    """Image files in ``directory`` (optionally below it), sorted by name for stable positions."""
    pattern = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(p for p in pattern if is_image(p))


def normalise_species(value: Any) -> str | None:
    """``Dog``/``dogs``/``cat``… → ``dog``/``cat``; unknown words pass through for the validator to name."""
    if value is None:
        return None
    text = str(value).strip().lower()
    return _SPECIES_WORDS.get(text, text)


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetLayoutError(f"{what}: {path} is not a directory")
    return path


@dataclass
class Imported:
    """Rows an importer found plus every identity it declared (so empty identities can be reported)."""

    source: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    identities: set[str] = field(default_factory=set)
    skipped: list[dict[str, str]] = field(default_factory=list)  # photos left out on purpose: path, reason, detail
    _counts: dict[str, int] = field(default_factory=dict, repr=False)

    def skip(self, path: Path | str, reason: str, detail: str = "") -> None:
        """Record a photo (or metadata file) the importer leaves out on purpose, with why."""
        self.skipped.append({"path": os.path.abspath(path), "reason": reason, "detail": detail})

    def skipped_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.skipped:
            counts[entry["reason"]] = counts.get(entry["reason"], 0) + 1
        return dict(sorted(counts.items()))

    def add(self, local_id: str, paths: Iterable[Path], species: str | None = None, **extra: Any) -> str:
        """Declare identity ``<source>:<local_id>`` with its photos (positions follow ``paths`` order)."""
        identity_id = f"{self.source}:{local_id}"
        self.identities.add(identity_id)
        for path in paths:
            position = self._counts.get(identity_id, 0)
            self._counts[identity_id] = position + 1
            self.rows.append(
                {"identity_id": identity_id, "source": self.source, "species": species,
                 "path": os.path.abspath(path), "position": position, **extra}
            )
        return identity_id

    def table(self) -> pa.Table:
        """The rows as a table in the catalogue column order (vocabulary checks are the validator's job)."""
        columns = {name: [row.get(name) for row in self.rows] for name in CATALOGUE_SCHEMA.names}
        return pa.Table.from_pydict(columns, schema=CATALOGUE_SCHEMA)


SPLIT_NAMES = frozenset({"train", "training", "val", "valid", "validation", "test", "testing", "query", "gallery"})


def leaf_identity_folders(root: Path, skip: frozenset[str] = frozenset()) -> dict[str, list[Path]]:
    """Folders that directly hold images, keyed by their path under ``root`` without split/generic levels.

    ``root/train/123/a.jpg`` and ``root/test/123/b.jpg`` both give key ``123`` (same animal, two splits);
    ``root/images/123/a.jpg`` gives ``123``. Folder names in ``skip`` (lower-case) are ignored entirely.
    """
    found: dict[str, list[Path]] = {}
    for directory in sorted(p for p in [root, *root.rglob("*")] if p.is_dir()):
        rel_parts = directory.relative_to(root).parts
        if any(part.lower() in skip or part.startswith(".") for part in rel_parts):
            continue
        images = list_images(directory)
        if not images or directory == root:
            continue
        key_parts = [p for p in rel_parts if p.lower() not in SPLIT_NAMES and p.lower() not in {"images", "imgs"}]
        key = "/".join(key_parts) or directory.name
        found.setdefault(key, []).extend(images)
    return found
