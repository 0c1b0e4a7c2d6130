"""One validator for every catalogue an importer produces.

Checks: required columns, non-empty identity ids that start with ``<source>:``, unique ``(identity_id, path)``
rows, absolute paths of files that exist, at least one image per identity (including identities an importer
declared but found no images for) and the species/kind vocabularies. Failures raise
:class:`CatalogueValidationError` whose message names the offending rows (the first few and the total count).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable

import pyarrow as pa

from petid.errors import UserError
from petid.records import CATALOGUE_SCHEMA, KINDS, SPECIES

_SHOW = 5  # offending rows named in a message


class CatalogueValidationError(UserError, ValueError):
    """A catalogue failed validation; ``problems`` maps each check to its offending rows (as strings)."""

    def __init__(self, name: str, problems: dict[str, list[str]]) -> None:
        self.problems = problems
        lines = [f"catalogue {name!r} failed validation:"]
        for check, rows in problems.items():
            shown = "; ".join(rows[:_SHOW])
            more = f" (+{len(rows) - _SHOW} more)" if len(rows) > _SHOW else ""
            lines.append(f"  {check}: {len(rows)} row(s): {shown}{more}")
        super().__init__("\n".join(lines))


def validate_catalogue(
    table: pa.Table,
    name: str = "catalogue",
    *,
    check_files: bool = True,
    declared_identities: Iterable[str] | None = None,
) -> pa.Table:
    """Return ``table`` cast to ``CATALOGUE_SCHEMA`` if it passes every check, else raise CatalogueValidationError.

    ``declared_identities`` are identity ids the importer saw (e.g. one per folder); any of them without a row
    fails the "≥1 image per identity" check. ``check_files=False`` skips the file-existence check.
    """
    missing_cols = [c for c in CATALOGUE_SCHEMA.names if c not in table.column_names]
    if missing_cols:
        raise CatalogueValidationError(name, {"missing columns": missing_cols})
    table = table.select(CATALOGUE_SCHEMA.names)
    cols = {c: table.column(c).to_pylist() for c in ("identity_id", "source", "species", "kind", "path")}
    problems: dict[str, list[str]] = {}

    def flag(check: str, i: int, detail: str = "") -> None:
        row = f"row {i} ({cols['identity_id'][i]!s}, {cols['path'][i]!s})"
        problems.setdefault(check, []).append(f"{row} {detail}".rstrip())

    seen: Counter[tuple[str, str]] = Counter()
    for i in range(table.num_rows):
        ident, source, path = cols["identity_id"][i], cols["source"][i], cols["path"][i]
        if not ident or not source or not str(ident).startswith(f"{source}:") or ident == f"{source}:":
            flag("identity_id not '<source>:<id>'", i, f"source={source!r}")
        if not path:
            flag("no image path", i)
            continue
        key = (ident, path)
        seen[key] += 1
        if seen[key] == 2:
            flag("duplicate (identity_id, path)", i)
        if not os.path.isabs(path):
            flag("path not absolute", i)
        elif check_files and not os.path.isfile(path):
            flag("file missing", i)
        if cols["species"][i] not in (None, *SPECIES):
            flag(f"species not in {SPECIES}", i, f"species={cols['species'][i]!r}")
        if cols["kind"][i] not in (None, *KINDS):
            flag(f"kind not in {KINDS}", i, f"kind={cols['kind'][i]!r}")
    if declared_identities is not None:
        present = {ident for ident, path in zip(cols["identity_id"], cols["path"]) if path}
        for ident in sorted(set(declared_identities) - present):
            problems.setdefault("identity without images", []).append(f"identity {ident}")
    if problems:
        raise CatalogueValidationError(name, problems)
    try:
        return table.cast(CATALOGUE_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise CatalogueValidationError(name, {"schema": [str(exc)]}) from exc
