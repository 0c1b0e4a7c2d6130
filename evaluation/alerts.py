"""Alerts for new lost ↔ found candidates: the JSON a webhook receives, and the one POST that sends it.

A team routes the webhook to Telegram, Slack or a ticket queue. Only candidates at or above the threshold and not
sent before are posted; a failing webhook is a one-line ``AlertError`` and the caller keeps its cursor, so nothing
is lost (the next evaluation sends them again).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from petid.errors import UserError

ALERT_FIELDS = ("query_id", "candidate_id", "rank", "score", "statement", "distance_km", "day_gap", "rule",
                "query_url", "candidate_url", "model_version")


class AlertError(UserError):
    """The webhook could not be reached or refused the alert."""


def alert_rows(candidates: pa.Table, min_score: float, already_sent: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Candidates with ``score >= min_score`` whose ``pair_id`` was not sent before, best first, with the fields a
    person needs to act (those present in the table)."""
    from curation.decisions import pair_id

    sent = set(already_sent)
    rows = []
    for row in candidates.to_pylist():
        pid = pair_id(row["query_id"], row["candidate_id"])
        if row.get("score") is not None and row["score"] >= min_score and pid not in sent:
            rows.append({"pair_id": pid, **{k: row[k] for k in ALERT_FIELDS if k in row}})
    return sorted(rows, key=lambda r: -r["score"])


def post_alerts(url: str, rows: list[Mapping[str, Any]], source: str = "petid", timeout_s: float = 10.0) -> int:
    """POST ``{"source", "count", "candidates": [...]}`` as JSON; returns the HTTP status (2xx) or raises."""
    import httpx

    payload = {"source": source, "count": len(rows), "candidates": list(rows)}
    try:
        response = httpx.post(url, content=json.dumps(payload, default=str, ensure_ascii=False).encode(),
                              headers={"Content-Type": "application/json"}, timeout=timeout_s, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise AlertError(f"alert webhook {url}: {type(exc).__name__}: {exc}") from None
    if not 200 <= response.status_code < 300:
        raise AlertError(f"alert webhook {url}: HTTP {response.status_code}")
    return response.status_code
