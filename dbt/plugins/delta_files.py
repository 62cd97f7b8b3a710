"""dbt-duckdb plugin for the lake/raw Delta sources: DuckDB's native Parquet reader over the table's active files.

Each time a model renders `source('raw', ...)` in a run, `load` asks deltalake for the table's current version and
registers a DuckDB relation scanning exactly its data files (feature_store.raw_scan), so a `date` filter prunes
files by path and the 20-level list columns stream from Parquet instead of passing through Arrow batches (half the
CPU and memory of the pyarrow-dataset read of dbt-duckdb's `delta` plugin for a day of 100 ms books).  A table the
file-list scan cannot honour (deletion vectors, column mapping, remote storage, escaped partition values) is read
as the `delta` plugin reads it, with a warning naming the table and the reason.

profiles.yml loads this module through `module_paths` (plugins/ next to profiles.yml, found via --profiles-dir).
"""

from __future__ import annotations

from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.duckdb.utils import SourceConfig
from dbt.adapters.events.logging import AdapterLogger
from deltalake import DeltaTable
from duckdb import DuckDBPyConnection

from feature_store.raw_scan import UnsupportedDeltaTable, delta_file_scan

logger = AdapterLogger("DeltaFiles")


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self._conn: DuckDBPyConnection | None = None

    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        # the relations this plugin returns are built on the run's own connection, which dbt-duckdb keeps open for
        # the whole run (keep_open) and registers on every cursor as a view
        self._conn = conn

    def load(self, source_config: SourceConfig):
        if "delta_table_path" not in source_config:
            raise ValueError(
                f"source {source_config.table_name()}: the delta_files plugin needs meta.delta_table_path "
                "(the Delta table's folder)"
            )
        if self._conn is None:
            raise RuntimeError("delta_files plugin: load() before the DuckDB connection was configured")
        path = source_config["delta_table_path"]
        storage_options = source_config.get("storage_options")
        try:
            scan = delta_file_scan(path, storage_options=storage_options)
        except UnsupportedDeltaTable as exc:
            logger.warning(f"{exc}; reading {path} as a pyarrow dataset (more memory) instead")
            return DeltaTable(path, storage_options=storage_options).to_pyarrow_dataset()
        logger.debug(
            f"{source_config.table_name()}: Delta version {scan.version}, {len(scan.files)} data file(s)"
        )
        return self._conn.sql(scan.sql())

    def default_materialization(self) -> str:
        return "view"
