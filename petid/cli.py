"""``petid`` command line. Each library registers its own sub-commands; heavy imports happen inside them."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules exposing ``add_commands(subparsers)``. Each sub-command sets ``func(args) -> int``.
COMMAND_MODULES = (
    "petid.demo_cli",
    "scrapers.pet911.cli",
    "scrapers.telegram.cli",
    "scrapers.datasets.cli",
    "curation.cli",
    "curation.sql_cli",
    "training.cli",
    "evaluation.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="petid", description="petid: scrape, curate, train, evaluate and search lost/found pet photos."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise
            continue
        module.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
