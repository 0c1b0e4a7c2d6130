"""``petid telegram import-export DIR [--raw-dir DIR] [--channel NAME] [--vocabulary YAML] [--json]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _import_export(args: argparse.Namespace) -> int:
    from petid.settings import Layout, petid_home
    from scrapers.telegram.export import import_export
    from scrapers.telegram.keywords import Vocabulary
    from scrapers.telegram.normalize import TelegramError

    raw_dir = Path(args.raw_dir) if args.raw_dir else Layout(petid_home()).raw / "telegram"
    try:
        vocabulary = Vocabulary.from_yaml(args.vocabulary) if args.vocabulary else None
    except ValueError as exc:  # petid_app.cli prints UserErrors as one line, exit 2
        raise TelegramError(f"vocabulary {args.vocabulary}: {exc}") from exc
    result = import_export(Path(args.dir), raw_dir, vocabulary=vocabulary, channel=args.channel)
    summary = {"raw_dir": str(raw_dir), "posts": result.posts.num_rows, "photos": result.catalogue.num_rows,
               "channels": sorted(set(result.posts["channel"].to_pylist())), **result.stats,
               "skipped": result.skipped}
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        for key, value in summary.items():
            if key == "skipped":
                for entry in value:
                    detail = f"message {entry['message_id']}: {entry['reason']} ({entry['detail']})"
                    print(f"{'skipped photo':>24}: {detail}")
                continue
            print(f"{key:>24}: {value}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``petid telegram import-export``."""
    parser = sub.add_parser("telegram", help="Telegram channels (Desktop exports; live capture runs in Dagster)")
    inner = parser.add_subparsers(dest="telegram_command", required=True, metavar="ACTION")
    imp = inner.add_parser("import-export", help="import a Telegram Desktop channel export (result.json + photos/)")
    imp.add_argument("dir", help="export folder holding result.json")
    imp.add_argument("--raw-dir", help="capture folder (default: $PETID_HOME/raw/telegram)")
    imp.add_argument("--channel", help="channel name for identities/URLs (default: from the export)")
    imp.add_argument("--vocabulary", help="YAML file overriding the keyword vocabulary")
    imp.add_argument("--json", action="store_true", help="print one JSON object")
    imp.set_defaults(func=_import_export)
