"""Table-2 statistics on a hand-made manifest, DuckDB views over Parquet, and ``petid sql``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.db import DatabaseError, query, refresh_views
from curation.identity_stats import identity_stats, split_counts, stats_markdown


def _manifest() -> pa.Table:
    # pet911: a=1, b=2, c=3 photos; telegram: t1=4, t2=4, t3=1 photos
    photos = {"pet911:a": 1, "pet911:b": 2, "pet911:c": 3, "telegram:t1": 4, "telegram:t2": 4, "telegram:t3": 1}
    rows = [
        {"image_id": f"{i}-{k}", "identity_id": i, "source": i.split(":")[0], "split": "excluded" if n < 2 else "train"}
        for i, n in photos.items()
        for k in range(n)
    ]
    return pa.Table.from_pylist(rows)


def test_identity_stats_per_source_and_total() -> None:
    stats = {r["source"]: r for r in identity_stats(_manifest()).to_pylist()}
    assert list(stats) == ["pet911", "telegram", "total"]
    assert stats["pet911"] == {"source": "pet911", "identities": 3, "photos": 6, "min": 1, "max": 3, "mean": 2.0,
                               "median": 2.0, "std": 0.816}
    assert stats["telegram"] == {"source": "telegram", "identities": 3, "photos": 9, "min": 1, "max": 4, "mean": 3.0,
                                 "median": 4.0, "std": 1.414}
    # total over counts [1, 2, 3, 4, 4, 1]: mean 2.5, median 2.5, population std sqrt(1.5833) = 1.258
    assert stats["total"] == {"source": "total", "identities": 6, "photos": 15, "min": 1, "max": 4, "mean": 2.5,
                              "median": 2.5, "std": 1.258}


def test_identity_stats_min_photos_and_markdown() -> None:
    stats = {r["source"]: r for r in identity_stats(_manifest(), min_photos=2).to_pylist()}
    assert (stats["total"]["identities"], stats["total"]["photos"], stats["total"]["min"]) == (4, 13, 2)
    assert (stats["telegram"]["identities"], stats["telegram"]["mean"]) == (2, 4.0)
    md = stats_markdown(identity_stats(_manifest())).splitlines()
    assert md[0] == "| Source | Identities | Photos | Min | Max | Mean | Median | Std |"
    assert md[2] == "| pet911 | 3 | 6 | 1 | 3 | 2.00 | 2 | 0.82 |"
    assert md[-1] == "| **total** | **6** | **15** | **1** | **4** | **2.50** | **2.5** | **1.26** |"
    empty = identity_stats(_manifest().slice(0, 0)).to_pylist()
    assert empty == [{"source": "total", "identities": 0, "photos": 0, "min": 0, "max": 0, "mean": 0.0, "median": 0.0,
                      "std": 0.0}]
    assert split_counts(_manifest()).to_pylist() == [
        {"split": "excluded", "identities": 2, "images": 2}, {"split": "train", "identities": 4, "images": 13}
    ]


def test_duckdb_views_follow_the_parquet_tables(tmp_path: Path) -> None:
    tables, db = tmp_path / "tables", tmp_path / "petid.duckdb"
    tables.mkdir()
    manifest = _manifest().append_column("species", pa.array(["dog"] * 15)).append_column(
        "crop_status", pa.array(["disabled"] * 15)
    )
    pq.write_table(manifest, tables / "image_manifest.parquet")
    pq.write_table(identity_stats(manifest), tables / "identity_stats.parquet")
    views = refresh_views(db, tables)
    assert views == ["crop_summary", "identity_stats", "image_manifest", "split_summary"]
    result = query(db, "SELECT split, count(DISTINCT identity_id) AS n FROM image_manifest GROUP BY split ORDER BY split")
    assert result.to_pylist() == [{"split": "excluded", "n": 2}, {"split": "train", "n": 4}]
    summary = query(db, "SELECT * FROM split_summary WHERE source = 'telegram' AND split = 'train'").to_pylist()
    assert summary == [{"source": "telegram", "species": "dog", "split": "train", "identities": 2, "images": 8}]
    # a rewritten file is seen without any copy; a removed file drops its view
    pq.write_table(manifest.slice(0, 3), tables / "image_manifest.parquet")
    assert query(db, "SELECT count(*) AS n FROM image_manifest").to_pylist() == [{"n": 3}]
    (tables / "identity_stats.parquet").unlink()
    assert "identity_stats" not in refresh_views(db, tables)
    with pytest.raises(DatabaseError, match="identity_stats"):
        query(db, "SELECT * FROM identity_stats")
    with pytest.raises(DatabaseError, match="no database"):
        query(tmp_path / "absent.duckdb", "SELECT 1")


def test_petid_sql_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from petid_app.cli import main

    monkeypatch.setenv("PETID_HOME", str(tmp_path))
    assert main(["sql", "SELECT 1"]) == 2
    assert "no tables yet" in capsys.readouterr().err
    (tmp_path / "tables").mkdir()
    pq.write_table(_manifest(), tmp_path / "tables" / "image_manifest.parquet")
    sql = "SELECT source, count(*) AS photos FROM image_manifest GROUP BY source ORDER BY source"
    assert main(["sql", sql, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"source": "pet911", "photos": 6}, {"source": "telegram", "photos": 9}]
    assert main(["sql", sql, "--csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["source,photos", "pet911,6", "telegram,9"]
    assert main(["sql", sql]) == 0
    out = capsys.readouterr().out
    assert "pet911" in out and "(2 rows)" in out
    assert main(["sql", "SELECT * FROM nowhere"]) == 1
    assert "nowhere" in capsys.readouterr().err
    assert os.path.exists(tmp_path / "petid.duckdb")
