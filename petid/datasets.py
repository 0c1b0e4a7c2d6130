"""Resolve a ``--dataset`` argument: ``manifest``, ``manifest:PATH`` or an importer's ``FORMAT:PATH``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from petid.settings import Layout, petid_home


def load_dataset(spec: str, home: Path | None = None) -> pd.DataFrame:
    """A DataFrame with at least ``path``, ``identity_id``, ``source``, ``species`` (and ``split`` for manifests).

    ``manifest`` reads the curated image manifest under ``PETID_HOME``; ``manifest:PATH`` reads a given one;
    anything else is handed to the dataset importers (``identity-folders:DIR``, ``csv:FILE``, ...).
    """
    if spec == "manifest" or spec.startswith("manifest:"):
        path = Path(spec.partition(":")[2]) if ":" in spec else Layout(home or petid_home()).table("image_manifest")
        if not path.exists():
            raise FileNotFoundError(f"no image manifest at {path}: materialize `image_manifest` first (petid demo)")
        from curation.frames import model_frame  # the crop when the detector made one, as in the graph

        return model_frame(pd.read_parquet(path))
    from scrapers.datasets import load_catalogue  # importers live with the other ingestion code

    return load_catalogue(spec).to_pandas()
