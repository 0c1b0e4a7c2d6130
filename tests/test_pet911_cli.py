"""``petid crawl`` / ``petid reparse``: every user error is one line on stderr with exit status 2, before any
request is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from petid_app.cli import main


def crawl(tmp_path: Path, *extra: str) -> list[str]:
    return ["crawl", "--base-url", "http://127.0.0.1:9", "--raw-dir", str(tmp_path / "raw"), *extra]


@pytest.mark.parametrize("extra, message", [
    (["--rate-limit", "0"], "--rate-limit must be a number > 0, got '0'"),
    (["--rate-limit", "-2"], "--rate-limit must be a number > 0, got '-2'"),
    (["--rate-limit", "fast"], "--rate-limit must be a number > 0, got 'fast'"),
    (["--rate-limit", "nan"], "--rate-limit must be a number > 0"),
    (["--rate-limit", "inf"], "--rate-limit must be a number > 0"),
    (["--max-pages", "2.5"], "--max-pages must be an integer > 0"),
    (["--max-retries", "-1"], "--max-retries must be an integer >= 0"),
    (["--deadline", "0"], "--deadline must be a number > 0"),
    (["--feed", "lost-hamster"], "unknown word 'hamster'"),
    (["--feed", "lost@north,south"], "region needs numbers"),
    (["--feed", ""], "empty"),
    (["--private-host", "127.0.0.1:99999"], "invalid port"),
])
def test_bad_crawl_options_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               extra: list[str], message: str) -> None:
    assert main(crawl(tmp_path, *extra)) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and err.startswith("petid crawl: ") and message in err, err
    assert "Traceback" not in err and captured.out == ""
    assert not (tmp_path / "raw" / "state.sqlite").exists()  # refused before anything was started


def test_bad_base_url_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crawl", "--base-url", "ftp://pet911.ru", "--raw-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--base-url must be an http(s) URL" in err


def test_reparse_reports_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["reparse", "--raw-dir", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["listings"] == 0 and out["failed"] == 0 and out["failures"] == []
