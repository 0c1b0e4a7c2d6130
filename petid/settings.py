"""Where petid keeps its files. Everything lives under one storage root, ``PETID_HOME`` (default ``./data``)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = "./data"


def petid_home() -> Path:
    return Path(os.environ.get("PETID_HOME", DEFAULT_HOME)).expanduser().resolve()


class Layout:
    """The directory layout under the storage root. Files are content-addressed; tables are Parquet."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    raw = property(lambda self: self.root / "raw")  # untouched captures: pages, photos, exports
    images = property(lambda self: self.root / "images")  # curated JPEGs, content-addressed
    crops = property(lambda self: self.root / "crops")  # detector crops, content-addressed
    tables = property(lambda self: self.root / "tables")  # Parquet written by the IO manager
    models = property(lambda self: self.root / "models")  # the versioned model registry
    reports = property(lambda self: self.root / "reports")  # evaluation reports per model version
    index = property(lambda self: self.root / "index")  # search indexes per model version
    cache = property(lambda self: self.root / "cache")  # embedding and resized-image caches
    dagster_home = property(lambda self: self.root / "dagster")  # Dagster's SQLite instance
    review = property(lambda self: self.root / "review")  # match review pages per run, and the decision log
    decisions = property(lambda self: self.root / "review" / "decisions.sqlite")
    duckdb_path = property(lambda self: self.root / "petid.duckdb")

    def table(self, name: str) -> Path:
        return self.tables / f"{name}.parquet"
