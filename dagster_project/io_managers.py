"""The one IO manager: tables (pyarrow or pandas) as Parquet under ``<PETID_HOME>/tables`` — and, when the storage
has an object store (``PETID_OBJECT_STORE``), at ``<object store>/tables`` too, so a step on another machine reads
what this one wrote.

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
    metadata to every output: ``dagster/row_count`` and ``dagster/column_schema`` (the UI's Columns section).

    With an object store the store is the shared copy and the local file a mirror: an output is written locally,
    then uploaded to ``<object store>/tables/<asset key>.parquet`` (one atomic PUT); an input is downloaded from the
    store into the mirror (atomically) and read from there, so code that reads ``layout.table(...)`` directly still
    sees the current table. A table the store does not have yet (materialized before the store was configured) is
    read from the local mirror when there is one."""

    storage: StorageResource

    def _key(self, context: InputContext | OutputContext) -> str:
        return "__".join(context.asset_key.path)

    def _path(self, context: InputContext | OutputContext) -> Path:
        return self.storage.layout.table(self._key(context))

    def _object_key(self, context: InputContext | OutputContext) -> str:
        return f"tables/{self._key(context)}.parquet"

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return
        table = obj if isinstance(obj, pa.Table) else pa.Table.from_pandas(obj, preserve_index=False)
        path = atomic_write_parquet(table, self._path(context))
        metadata = {**table_metadata(table), "parquet_path": MetadataValue.path(str(path))}
        if (store := self.storage.objects()) is not None:
            metadata["object_url"] = MetadataValue.url(store.put_file(path, self._object_key(context)))
        context.add_output_metadata(metadata)

    def load_input(self, context: InputContext) -> Any:
        from petid.objectstore import ObjectNotFoundError

        path = self._path(context)
        if (store := self.storage.objects()) is not None:
            try:
                store.get_file(self._object_key(context), path)
            except ObjectNotFoundError:
                if not path.exists():
                    raise FileNotFoundError(f"table {store.url_for(self._object_key(context))} is missing (and no "
                                            f"local {path}): materialize {context.asset_key.to_user_string()} "
                                            "first") from None
                context.log.warning(f"{store.url_for(self._object_key(context))} is missing: reading the local {path}")
        if not path.exists():
            raise FileNotFoundError(f"table {path} is missing: materialize {context.asset_key.to_user_string()} first")
        table = pq.read_table(path)
        import pandas as pd

        if context.dagster_type.typing_type is pd.DataFrame:
            return table.to_pandas()
        return table
