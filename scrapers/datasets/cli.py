"""``petid datasets inspect FORMAT:PATH [--json]``: photos-per-identity summary of an importer's catalogue."""

from __future__ import annotations

import argparse
import json


def _inspect(args: argparse.Namespace) -> int:
    """Errors are ``UserError``s: ``petid_app.cli`` prints them as one line and exits 2."""
    from petid.stats import photos_per_identity
    from scrapers.datasets import import_dataset, validate_imported

    imported = import_dataset(args.spec)
    table = validate_imported(imported, args.spec)
    summary = {"spec": args.spec, **photos_per_identity(table["identity_id"].to_pylist())}
    summary["species"] = dict(sorted(_count(table["species"].to_pylist()).items()))
    summary["skipped"] = imported.skipped_counts()
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        for key, value in summary.items():
            print(f"{key:>13}: {value}")
    return 0


def _count(values: list[str | None]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value or "unknown"] = counts.get(value or "unknown", 0) + 1
    return counts


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``petid datasets inspect``."""
    from scrapers.datasets import FORMATS

    parser = sub.add_parser("datasets", help="published re-ID datasets and generic layouts")
    inner = parser.add_subparsers(dest="datasets_command", required=True, metavar="ACTION")
    inspect = inner.add_parser("inspect", help="photos-per-identity summary of FORMAT:PATH")
    inspect.add_argument("spec", metavar="FORMAT:PATH", help=f"formats: {', '.join(FORMATS)}")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.set_defaults(func=_inspect)
