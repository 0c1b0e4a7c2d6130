"""``petid review``: record a decision on a lost ↔ found candidate pair, list what is pending, show the history.

Decisions go to the durable log ``$PETID_HOME/review/decisions.sqlite`` (``curation.decisions``); the next
materialization of the graph uses them (``same`` merges the two listings into one identity, ``different`` becomes a
hard negative in evaluation).
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_commands(sub: Any) -> None:
    review = sub.add_parser("review", help="record and list decisions on lost/found candidate pairs")
    review.add_argument("--home", help="storage root (default: $PETID_HOME or ./data)")
    actions = review.add_subparsers(dest="review_command", required=True, metavar="ACTION")
    decide = actions.add_parser("decide", help="record a decision: LISTING_A LISTING_B same|different|unsure")
    decide.add_argument("listing_a")
    decide.add_argument("listing_b")
    decide.add_argument("decision", choices=("same", "different", "unsure"))
    decide.add_argument("--reviewer", required=True, help="who decided (kept with the decision)")
    decide.add_argument("--note", default="", help="why, in a few words")
    decide.set_defaults(func=_decide)
    pending = actions.add_parser("pending", help="candidate pairs of the latest matching run without a decision")
    pending.add_argument("--limit", type=int, default=20)
    pending.add_argument("--json", action="store_true")
    pending.set_defaults(func=_pending)
    history = actions.add_parser("history", help="every decision recorded, oldest first")
    history.add_argument("--json", action="store_true")
    history.set_defaults(func=_history)


def _layout(args: argparse.Namespace) -> Any:
    from petid.settings import Layout, petid_home

    return Layout(args.home or petid_home())


def _decide(args: argparse.Namespace) -> int:
    from curation.decisions import DecisionLog

    log = DecisionLog(_layout(args).decisions)
    pid = log.record(args.listing_a, args.listing_b, args.decision, args.reviewer, note=args.note)
    print(f"recorded {args.decision} for pair {pid} ({args.listing_a} ↔ {args.listing_b}) by {args.reviewer.strip()} "
          f"in {log.path}")
    return 0


def _print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, default=str, ensure_ascii=False, indent=1))
        return
    from petid.tables import markdown_table

    print(markdown_table(list(rows[0]), ([r.get(k) for k in rows[0]] for r in rows)) if rows else "(none)")


def _pending(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from curation.decisions import DecisionLog, pair_id
    from petid.errors import UserError

    layout = _layout(args)
    path = layout.table("match_candidates")
    if not path.exists():
        raise UserError(f"no candidates at {path}: materialize `match_candidates` first (petid demo)")
    decided = set(DecisionLog(layout.decisions).latest().column("pair_id").to_pylist())
    columns = ["query_id", "candidate_id", "rank", "score", "distance_km", "day_gap"]
    table = pq.read_table(path)
    rows = [{k: r.get(k) for k in columns if k in r} for r in table.to_pylist()
            if pair_id(r["query_id"], r["candidate_id"]) not in decided]
    _print_rows(rows[: args.limit], args.json)
    return 0


def _history(args: argparse.Namespace) -> int:
    from curation.decisions import DecisionLog

    _print_rows(DecisionLog(_layout(args).decisions).history().to_pylist(), args.json)
    return 0
