"""dbt-duckdb plugin for the lake/raw Delta sources: DuckDB's native Parquet reader over the table's active files.

Each time a model renders `source('raw', ...)` in a run, `load` asks deltalake for the table's current version and
returns a DuckDB relation scanning exactly its data files (feature_store.raw_scan), so a `date` filter prunes
files by path and the 20-level list columns stream from Parquet instead of passing through Arrow batches (half the
CPU and memory of the pyarrow-dataset read of dbt-duckdb's `delta` plugin for a day of 100 ms books).  That scan is
kept as a persistent view of the warehouse (_SourceViews), which every cursor resolves by itself, rather than
registered again on each new cursor.  A table the file-list scan cannot honour (deletion vectors, column mapping,
remote storage, escaped partition values) is read as the `delta` plugin reads it, with a warning naming the table
and the reason.

profiles.yml loads this module through `module_paths` (plugins/ next to profiles.yml, found via --profiles-dir).
"""

from __future__ import annotations

import threading
from typing import Any

from dbt.adapters.duckdb.connections import DuckDBConnectionManager
from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.duckdb.utils import SourceConfig
from dbt.adapters.events.logging import AdapterLogger
from deltalake import DeltaTable
from duckdb import DuckDBPyConnection

from feature_store.raw_scan import UnsupportedDeltaTable, delta_file_scan
from feature_store.sql_text import ident

logger = AdapterLogger("DeltaFiles")


class _SourceViews(dict):
    """dbt-duckdb's dict of the loaded source relations (LocalEnvironment._REGISTERED_DF), which it registers on every
    new cursor, some 50 a build.  A relation this plugin returned is not kept there: dbt-duckdb's view of the source
    reads the relation by this dict key, and the key becomes a persistent view of the same scan, which every cursor
    resolves by itself.  Registering binds the scan, 1 ms per table and cursor for the 3 files of a benchmark table
    and 4 ms for the 365 of a year (measured): 0.37 s of a build's Python over its 5 raw tables, growing with the
    history.  Other relations (the pyarrow fallback) are kept and registered as before.

    Iterated over a snapshot: with dbt threads > 1 one model loads a source (adds an entry) while another opens a
    cursor (iterates the dict), and a plain dict raises "dictionary changed size during iteration" (dbt-duckdb
    1.11.1, environments/__init__.py initialize_cursor).  list() of a dict's items is taken under the GIL in one
    step."""

    def __init__(self, entries: dict, plugin: Plugin):
        super().__init__(entries)
        self._plugin = plugin

    def __setitem__(self, name: str, relation: Any) -> None:
        if not self._plugin.persist_scan(name, relation):
            super().__setitem__(name, relation)

    def items(self):
        return list(super().items())


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self._conn: DuckDBPyConnection | None = None
        # the schemas of the sources this plugin serves (profiles.yml: plugins.config.schemas)
        self._schemas: list[str] = list(plugin_config.get("schemas", []))
        # the scan SQL of each relation load() returned, until dbt-duckdb files it under its name (persist_scan);
        # the relation is held so that its id stays its own
        self._scans: dict[int, tuple[Any, str]] = {}
        self._lock = threading.Lock()

    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        # the relations this plugin returns are built on the run's own connection, which dbt-duckdb keeps open for
        # the whole run (keep_open) and registers on every cursor as a view
        self._conn = conn
        # Called once, while dbt-duckdb opens the run's connection (in the main thread, under its lock), before any
        # model runs.  Two models loading their first sources at once would both create the source schema, and
        # DuckDB refuses the second (catalog write-write conflict): create it here.
        for schema in self._schemas:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        try:
            # re-entrant lock: this thread holds it while it opens the connection
            env = DuckDBConnectionManager.env()
        except Exception:  # dbt-duckdb raises a bare Exception when no dbt run created the environment
            return
        registered = getattr(env, "_REGISTERED_DF", None)
        if type(registered) is dict:
            env._REGISTERED_DF = _SourceViews(registered, self)

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
        # a cursor of its own: with dbt threads > 1 two models may load their sources at once, and a DuckDB
        # connection refuses a second concurrent call
        sql = scan.sql()
        relation = self._conn.cursor().sql(sql)
        with self._lock:
            self._scans[id(relation)] = (relation, sql)
        return relation

    def persist_scan(self, name: str, relation: Any) -> bool:
        """Make `name` a persistent view of the scan behind `relation` if load() returned it; False otherwise."""
        with self._lock:
            scan = self._scans.pop(id(relation), None)
            if scan is None:
                return False
            # under the lock: two models loading the same source at once would conflict in DuckDB's catalog
            self._conn.cursor().execute(f"CREATE OR REPLACE VIEW main.{ident(name)} AS {scan[1]}")
        return True

    def default_materialization(self) -> str:
        return "view"
