"""The one IO manager: tables (pyarrow or pandas) as Parquet under ``<PETID_HOME>/tables``.

Images, crops and checkpoints never pass through here: assets write them as content-addressed files and hand
their paths along in tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext

from assets._metadata import table_metadata
from dagster_project.resources import StorageResource
from petid.paths import atomic_write_parquet


class ParquetIOManager(ConfigurableIOManager):
    """Stores each table asset at ``tables/<asset key>.parquet`` (written atomically) and attaches the standard table
    metadata to every output: ``dagster/row_count`` and ``dagster/column_schema`` (the UI's Columns section)."""

    storage: StorageResource

    def _path(self, context: InputContext | OutputContext) -> Path:
        key = "__".join(context.asset_key.path)
        return self.storage.layout.table(key)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return
        table = obj if isinstance(obj, pa.Table) else pa.Table.from_pandas(obj, preserve_index=False)
        path = atomic_write_parquet(table, self._path(context))
        context.add_output_metadata({**table_metadata(table), "parquet_path": MetadataValue.path(str(path))})

    def load_input(self, context: InputContext) -> Any:
        path = self._path(context)
        if not path.exists():
            raise FileNotFoundError(f"table {path} is missing: materialize {context.asset_key.to_user_string()} first")
        table = pq.read_table(path)
        import pandas as pd

        if context.dagster_type.typing_type is pd.DataFrame:
            return table.to_pandas()
        return table
