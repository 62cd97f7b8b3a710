"""dbt-duckdb plugin that writes the published Parquet days of a model (feature_store.day_export.publish_days).

The materialization published_parquet (dbt/macros/published_parquet.sql) calls it through dbt-duckdb's
`adapter.store_relation`: `store` runs the model's compiled query on a cursor of the run's connection, copies its
rows into <lake>/features/<model>/symbol=<s>/date=<d>/part_0.parquet and makes the model's warehouse relation a view
of those files.  The query's rows are written once, as Parquet: a DuckDB table of them beside a Parquet export cost
a second write of every feature (dbt_project.yml).  The view names the files by their absolute path: a lake moved
or copied elsewhere shows its own files from its next build of the model on.

profiles.yml loads this module through `module_paths` (plugins/ next to profiles.yml, found via --profiles-dir).
"""

from __future__ import annotations

from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.duckdb.utils import TargetConfig
from duckdb import DuckDBPyConnection

from feature_store.day_export import publish_days, published_view_sql
from feature_store.feature_build import BuildWindow
from feature_store.sql_text import ident


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self._conn: DuckDBPyConnection | None = None

    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        self._conn = conn  # the run's connection, open for the whole run

    def store(self, target_config: TargetConfig) -> None:
        if self._conn is None:
            raise RuntimeError(
                "published_parquet plugin: store() before the DuckDB connection was configured"
            )
        config = target_config.config
        relation = target_config.relation
        folder = target_config.location.path
        window = BuildWindow(**config["window"])
        # a cursor of its own: the model's cursor holds dbt's open transaction
        cursor = self._conn.cursor()
        try:
            publish_days(
                cursor,
                config["sql"],
                folder,
                window,
                expected=config["expected"],
                full_refresh=config["full_refresh"],
                not_null=config["not_null"],
            )
            name = f"{ident(relation.database)}.{ident(relation.schema)}.{ident(relation.identifier)}"
            existing = cursor.execute(
                "SELECT table_type FROM information_schema.tables "
                "WHERE table_catalog = ? AND table_schema = ? AND table_name = ?",
                [relation.database, relation.schema, relation.identifier],
            ).fetchall()
            if existing and existing[0][0] != "VIEW":
                # the warehouse table of the layout before: its days were exported to these files
                cursor.execute(f"DROP TABLE {name}")
            cursor.execute(
                f"CREATE OR REPLACE VIEW {name} AS {published_view_sql(folder, config['columns'])}"
            )
        finally:
            cursor.close()
