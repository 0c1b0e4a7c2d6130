"""Published re-ID datasets and generic layouts → validated catalogues (``petid.records.CATALOGUE_SCHEMA``).

``load_catalogue("FORMAT:PATH")`` picks the importer module for FORMAT, reads the local copy at PATH and runs the
shared validator. Each importer module exposes ``load(path) -> Imported``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pyarrow as pa

from scrapers.datasets._common import DatasetLayoutError, Imported
from scrapers.datasets.validate import CatalogueValidationError, validate_catalogue

# FORMAT -> importer module (imported on demand)
FORMATS: dict[str, str] = {
    "identity-folders": "scrapers.datasets.folders",
    "csv": "scrapers.datasets.csvfile",
    "dogfacenet": "scrapers.datasets.dogfacenet",
    "cat-individuals": "scrapers.datasets.cat_individuals",
    "cat-individual-images": "scrapers.datasets.cat_individuals",
    "petface": "scrapers.datasets.petface",
    "lcw": "scrapers.datasets.lcw",
    "dogs-world": "scrapers.datasets.dogs_world",
}


def parse_spec(spec: str) -> tuple[str, Path]:
    """Split ``FORMAT:PATH``; an unknown format raises ValueError listing the known ones."""
    fmt, sep, path = spec.partition(":")
    fmt = fmt.strip().lower()
    if not sep or not path:
        raise ValueError(f"dataset spec {spec!r} is not FORMAT:PATH; known formats: {', '.join(FORMATS)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r} in {spec!r}; known formats: {', '.join(FORMATS)}")
    return fmt, Path(path).expanduser()


def import_dataset(spec: str) -> Imported:
    """Run the importer for ``FORMAT:PATH`` without validating (rows + declared identities)."""
    fmt, path = parse_spec(spec)
    if not path.exists():
        raise FileNotFoundError(f"{fmt}: {path} does not exist")
    return importlib.import_module(FORMATS[fmt]).load(path)


def load_catalogue(spec: str, check_files: bool = True) -> pa.Table:
    """A validated catalogue table for ``FORMAT:PATH`` (e.g. ``identity-folders:DIR``, ``csv:FILE``).

    Raises ValueError for an unknown format, DatasetLayoutError for a copy without the expected layout and
    CatalogueValidationError (naming the offending rows) for a catalogue that fails validation.
    """
    imported = import_dataset(spec)
    return validate_catalogue(
        imported.table(), name=spec, check_files=check_files, declared_identities=imported.identities
    )


__all__ = [
    "FORMATS",
    "CatalogueValidationError",
    "DatasetLayoutError",
    "Imported",
    "import_dataset",
    "load_catalogue",
    "parse_spec",
    "validate_catalogue",
]
