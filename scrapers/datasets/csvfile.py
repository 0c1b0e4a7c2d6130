"""``csv:FILE``: a CSV with columns ``path``, ``identity`` and optional ``species``.

Relative paths resolve against the CSV's folder. The source is the CSV's folder name (generic names such as
``images`` skipped, as for identity folders). Extra columns are ignored.
"""

from __future__ import annotations

import csv
from pathlib import Path

from scrapers.datasets._common import DatasetLayoutError, Imported, normalise_species
from scrapers.datasets.folders import source_name


def load(csv_path: Path, source: str | None = None) -> Imported:
    """Read the CSV rows in order; photos keep the file's order within each identity."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetLayoutError(f"csv: {csv_path} is not a file")
    base = csv_path.absolute().parent
    imported = Imported(source or source_name(base))
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in reader.fieldnames or []]
        missing = {"path", "identity"} - set(fields)
        if missing:
            raise DatasetLayoutError(f"csv: {csv_path} lacks column(s) {sorted(missing)} (has {fields})")
        for line, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            if not row["identity"]:
                raise DatasetLayoutError(f"csv: {csv_path} line {line}: empty identity (path {row['path']!r})")
            path = base / row["path"] if row["path"] else Path("")
            imported.add(row["identity"], [path] if row["path"] else [], normalise_species(row.get("species")))
    return imported
