"""The planted matching cases as a file: ``planted_matches.csv`` beside ``ground_truth.csv`` in a generated sample.

One row per planted lost → found relation (:class:`~petid_sample.model.PlantedMatch`): ``role`` is ``match`` (the
same animal found again), ``decoy`` (a look-alike found nearby), ``far-twin`` (the same look found > 100 km away)
or ``late-twin`` (the same look found nearby > 90 days later). ``lost_*`` and ``found_*`` describe the two listings
or posts; ``*_identity_id`` is the id the scrapers give them (``pet911:<listing id>``,
``telegram:c<chat id>:<first message id>``), so a matching step can score recall@k from the catalogues alone.
Empty cells are None (a Telegram post has no coordinates, hence no ``km_apart``). Reading needs only the standard
library: no numpy, no image code.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from petid_sample.model import ROLE_MATCH, PlantedItem, PlantedMatch

PLANTED_FILE = "planted_matches.csv"
_ITEM_FIELDS = ("source", "item_id", "identity_id", "animal_id", "date", "city", "lat", "lng")
PLANTED_COLUMNS = ("role", "species", "breed", "coat", "days_apart", "km_apart",
                   *(f"lost_{f}" for f in _ITEM_FIELDS), *(f"found_{f}" for f in _ITEM_FIELDS))


def planted_rows(planted: Iterable[PlantedMatch]) -> list[dict[str, Any]]:
    """One flat row per planted case (columns ``PLANTED_COLUMNS``; None for missing values)."""
    rows = []
    for case in planted:
        row: dict[str, Any] = {"role": case.role, "species": case.species, "breed": case.breed, "coat": case.coat,
                               "days_apart": case.days_apart, "km_apart": case.km_apart}
        for side, item in (("lost", case.lost), ("found", case.found)):
            row |= {f"{side}_{f}": getattr(item, f) for f in _ITEM_FIELDS}
            row[f"{side}_date"] = item.date.isoformat()
        rows.append(row)
    return rows


def write_planted(planted: Iterable[PlantedMatch], path: Path) -> Path:
    """Write ``planted`` as CSV to ``path`` (empty cells for None)."""
    return write_csv(planted_rows(planted), PLANTED_COLUMNS, path)


def write_csv(rows: Iterable[dict[str, Any]], columns: Sequence[str], path: str | Path) -> Path:
    """``rows`` as CSV with a header (empty cells for None): the sample's ground-truth files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return path


def _opt_float(text: str) -> float | None:
    return float(text) if text else None


def _item(row: dict[str, str], side: str) -> PlantedItem:
    get = {f: row[f"{side}_{f}"] for f in _ITEM_FIELDS}
    return PlantedItem(source=get["source"], item_id=get["item_id"], identity_id=get["identity_id"],
                       animal_id=int(get["animal_id"]), date=dt.date.fromisoformat(get["date"]), city=get["city"],
                       lat=_opt_float(get["lat"]), lng=_opt_float(get["lng"]))


def load_planted(sample_dir: str | Path) -> list[PlantedMatch]:
    """Every planted case of a generated sample (``sample_dir`` is the folder ``generate_sample`` wrote, or the CSV
    itself), in file order: per lost listing, its true match, then its decoys and twins."""
    path = Path(sample_dir)
    if path.is_dir():
        path = path / PLANTED_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no planted matches (a sample generated before they were planted? "
                                "delete the sample folder to regenerate it)")
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = set(PLANTED_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        return [PlantedMatch(role=row["role"], lost=_item(row, "lost"), found=_item(row, "found"),
                             species=row["species"], breed=row["breed"] or None, coat=row["coat"],
                             days_apart=int(row["days_apart"]), km_apart=_opt_float(row["km_apart"]))
                for row in reader]


def load_planted_matches(sample_dir: str | Path) -> list[PlantedMatch]:
    """The true lost → found pairs of a generated sample (``role == "match"``); see :func:`load_planted`."""
    return [case for case in load_planted(sample_dir) if case.role == ROLE_MATCH]
