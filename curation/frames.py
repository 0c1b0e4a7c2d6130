"""The one way a curated manifest (or an importer's catalogue, for ``--dataset``) becomes the photo frame that
training, evaluation and search read."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa

from petid.settings import Layout, petid_home


def model_frame(manifest: pa.Table | pd.DataFrame, splits: Sequence[str] | None = None) -> pd.DataFrame:
    """Manifest rows (only ``splits`` when given) with ``path`` = the detector's animal crop where it made one,
    the full curated photo otherwise. ``photo_path`` keeps the full photo; ``sha256`` then names the file ``path``
    points at (crops are content-addressed, ``crops/ab/<sha256>.jpg``), so a model version changes when the
    crops do, and the embedding cache keys on what was embedded."""
    frame = manifest.to_pandas() if isinstance(manifest, pa.Table) else manifest.copy()
    if splits is not None and "split" in frame:
        frame = frame[frame["split"].isin(list(splits))]
    frame = frame.reset_index(drop=True)
    frame["photo_path"] = frame["path"]
    if "crop_path" in frame:
        cropped = frame["crop_path"].notna()
        frame.loc[cropped, "path"] = frame.loc[cropped, "crop_path"]
        if "sha256" in frame:
            frame["photo_sha256"] = frame["sha256"]
            frame.loc[cropped, "sha256"] = [str(p).rsplit("/", 1)[-1].split(".")[0] for p in frame.loc[cropped, "crop_path"]]
    return frame


def load_dataset(spec: str, home: Path | None = None) -> pd.DataFrame:
    """Resolve a ``--dataset`` argument to a frame with at least ``path``, ``identity_id``, ``source``, ``species``
    (and ``split`` for manifests).

    ``manifest`` reads the curated image manifest under ``PETID_HOME``; ``manifest:PATH`` reads a given one (the
    crop where the detector made one, as in the graph); anything else is handed to the dataset importers
    (``identity-folders:DIR``, ``csv:FILE``, ...).
    """
    if spec == "manifest" or spec.startswith("manifest:"):
        path = Path(spec.partition(":")[2]) if ":" in spec else Layout(home or petid_home()).table("image_manifest")
        if not path.exists():
            raise FileNotFoundError(f"no image manifest at {path}: materialize `image_manifest` first (petid demo)")
        return model_frame(pd.read_parquet(path))
    from scrapers.datasets import load_catalogue  # importers live with the other ingestion code

    return load_catalogue(spec).to_pandas()


def by_listing(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``identity_id`` back at each photo's own listing where a merge (a reviewer's ``same``, the
    dedup merge policy) rewrote it: what listing-level scores such as hard negatives need."""
    if "merged_from" not in frame:
        return frame
    return frame.assign(identity_id=frame["merged_from"].where(frame["merged_from"].notna(), frame["identity_id"]))
