"""The review decision log: durable, latest-wins, merges for ``same`` and hard negatives for ``different``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from curation.decisions import (
    DecisionError,
    DecisionLog,
    apply_identity_merges,
    hard_negatives,
    identity_merges,
    pair_id,
)

T0 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.timezone.utc)


def test_latest_decision_wins_and_history_is_kept(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "review" / "decisions.sqlite")
    assert log.latest().num_rows == 0
    pid = log.record("pet911:rf1", "pet911:rl2", "unsure", "anna", when=T0)
    assert pid == pair_id("pet911:rl2", "pet911:rf1")  # unordered
    log.record("pet911:rl2", "pet911:rf1", "same", "boris", note="same white sock", when=T0 + dt.timedelta(hours=1))
    log.record("pet911:rf3", "pet911:rl4", "different", "anna", when=T0)
    latest = {r["pair_id"]: r for r in log.latest().to_pylist()}
    assert latest[pid]["decision"] == "same" and latest[pid]["reviewer"] == "boris"
    assert latest[pid]["decided_at"] == T0 + dt.timedelta(hours=1)
    assert log.history().num_rows == 3
    # a second log object on the same file (another process, a rerun) sees everything
    assert DecisionLog(log.path).latest().num_rows == 2


@pytest.mark.parametrize(("a", "b", "verdict", "reviewer", "message"), [
    ("x", "y", "maybe", "anna", "use one of same, different, unsure"),
    ("x", "x", "same", "anna", "cannot be paired with itself"),
    ("x", "y", "same", " ", "needs a reviewer"),
])
def test_bad_decisions_are_one_line_errors(tmp_path: Path, a: str, b: str, verdict: str, reviewer: str,
                                           message: str) -> None:
    with pytest.raises(DecisionError, match=message):
        DecisionLog(tmp_path / "d.sqlite").record(a, b, verdict, reviewer)


def test_same_pairs_merge_identities_transitively_and_different_pairs_are_hard_negatives(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "d.sqlite")
    log.record("c", "b", "same", "anna", when=T0)
    log.record("b", "a", "same", "anna", when=T0)
    log.record("d", "e", "different", "anna", when=T0)
    log.record("e", "f", "same", "anna", when=T0)
    log.record("e", "f", "different", "boris", when=T0 + dt.timedelta(minutes=5))  # changed mind: latest counts
    decisions = log.latest()
    assert identity_merges(decisions) == {"a": "a", "b": "a", "c": "a"}
    assert sorted(hard_negatives(decisions)) == [("d", "e"), ("e", "f")]
    table = pa.table({"identity_id": ["a", "b", "c", "d"], "merged_from": [None, None, None, "z"]})
    merged = apply_identity_merges(table, identity_merges(decisions))
    assert merged.column("identity_id").to_pylist() == ["a", "a", "a", "d"]
    assert merged.column("merged_from").to_pylist() == [None, "b", "c", "z"]


def test_petid_review_records_and_lists_decisions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow.parquet as pq

    from petid_app.cli import main

    home = tmp_path / "home"
    (home / "tables").mkdir(parents=True)
    pq.write_table(pa.table({"query_id": ["f1", "f1"], "candidate_id": ["l1", "l2"], "rank": [1, 2],
                             "score": [0.9, 0.5]}), home / "tables" / "match_candidates.parquet")
    assert main(["review", "--home", str(home), "decide", "f1", "l1", "same", "--reviewer", "anna"]) == 0
    assert "recorded same" in capsys.readouterr().out
    assert main(["review", "--home", str(home), "pending", "--json"]) == 0
    pending = capsys.readouterr().out
    assert '"l2"' in pending and '"l1"' not in pending
    assert main(["review", "--home", str(home), "history"]) == 0
    assert "anna" in capsys.readouterr().out
    assert main(["review", "--home", str(home), "decide", "f1", "f1", "same", "--reviewer", "anna"]) == 2
    assert "cannot be paired with itself" in capsys.readouterr().err
