"""``petid`` command line. Each library registers its own sub-commands; heavy imports happen inside them."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from petid.errors import UserError

# Modules exposing ``add_commands(subparsers)``. Each sub-command sets ``func(args) -> int``.
COMMAND_MODULES = (
    "petid_app.demo",
    "scrapers.pet911.cli",
    "scrapers.telegram.cli",
    "scrapers.datasets.cli",
    "curation.cli",
    "curation.sql_cli",
    "curation.review_cli",
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
    """Run one sub-command. Errors come out as one line on stderr: status 2 for the user's, 1 for petid's own."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"petid {args.command}: interrupted", file=sys.stderr)
        return 130
    except (UserError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        print(f"petid {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get("PETID_DEBUG"):
            raise
        print(
            f"petid {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(rerun with PETID_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
