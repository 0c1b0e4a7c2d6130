"""Published re-ID datasets and generic layouts → validated catalogues (``petid.records.CATALOGUE_SCHEMA``).

``load_catalogue("FORMAT:PATH")`` picks the importer module for FORMAT, reads the local copy at PATH and runs the
shared validator. Each importer module exposes ``load(path) -> Imported``. Every error a user can fix (bad spec,
missing path, wrong layout, failed validation) is a ``petid.errors.UserError``. Photos an importer leaves out on
purpose (e.g. Dogs-World photos of several dogs) are counted in the returned table's schema metadata under
``petid.skipped`` (JSON ``{reason: count}``) and listed by ``import_dataset(...).skipped``.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pyarrow as pa

from scrapers.datasets._common import DatasetLayoutError, DatasetNotFoundError, DatasetSpecError, Imported
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
    """Split ``FORMAT:PATH``; an unknown format raises DatasetSpecError (a ValueError) listing the known ones."""
    fmt, sep, path = spec.partition(":")
    fmt = fmt.strip().lower()
    if not sep or not path:
        raise DatasetSpecError(f"dataset spec {spec!r} is not FORMAT:PATH; known formats: {', '.join(FORMATS)}")
    if fmt not in FORMATS:
        raise DatasetSpecError(f"unknown dataset format {fmt!r} in {spec!r}; known formats: {', '.join(FORMATS)}")
    return fmt, Path(path).expanduser()


def import_dataset(spec: str) -> Imported:
    """Run the importer for ``FORMAT:PATH`` without validating (rows + declared identities + skipped photos)."""
    fmt, path = parse_spec(spec)
    if not path.exists():
        raise DatasetNotFoundError(f"{fmt}: {path} does not exist")
    return importlib.import_module(FORMATS[fmt]).load(path)


def validate_imported(imported: Imported, spec: str, check_files: bool = True) -> pa.Table:
    """Validate an importer's result; the skipped-photo counts ride along in the schema metadata."""
    table = validate_catalogue(imported.table(), name=spec, check_files=check_files,
                               declared_identities=imported.identities)
    if imported.skipped:
        table = table.replace_schema_metadata({"petid.skipped": json.dumps(imported.skipped_counts())})
    return table


def load_catalogue(spec: str, check_files: bool = True) -> pa.Table:
    """A validated catalogue table for ``FORMAT:PATH`` (e.g. ``identity-folders:DIR``, ``csv:FILE``).

    Raises DatasetSpecError for a malformed spec or unknown format, DatasetNotFoundError for a missing PATH,
    DatasetLayoutError for a copy without the expected layout and CatalogueValidationError (naming the offending
    rows) for a catalogue that fails validation; all are ``petid.errors.UserError``s.
    """
    return validate_imported(import_dataset(spec), spec, check_files=check_files)


__all__ = [
    "FORMATS",
    "CatalogueValidationError",
    "DatasetLayoutError",
    "DatasetNotFoundError",
    "DatasetSpecError",
    "Imported",
    "import_dataset",
    "load_catalogue",
    "parse_spec",
    "validate_catalogue",
    "validate_imported",
]
