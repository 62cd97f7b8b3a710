"""Raw landing assets: one asset per raw Delta table, daily x symbol partitions, computed together per partition.

The tables of one (symbol, day) come from one source run (trades and books must describe the same market), so a
single multi-asset produces them; any subset can be materialized.
"""

import dagster as dg

from dagster_project.partitions import daily_by_symbol
from dagster_project.resources import LakeResource, MarketSourceResource
from feature_store.ingest import land_day
from feature_store.records import RECORD_TYPES

RAW_TABLES = tuple(RECORD_TYPES)


def raw_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", table])


@dg.multi_asset(
    name="raw_market",
    specs=[
        dg.AssetSpec(
            raw_key(table),
            description=RECORD_TYPES[table].doc,
            partitions_def=daily_by_symbol,
            skippable=True,
            group_name="raw",
            kinds={"delta"},
            metadata={"natural_key": ", ".join(RECORD_TYPES[table].natural_key)},
        )
        for table in RAW_TABLES
    ],
    partitions_def=daily_by_symbol,
    can_subset=True,
)
def raw_market(context: dg.AssetExecutionContext, lake: LakeResource, market_source: MarketSourceResource):
    keys = context.partition_key.keys_by_dimension
    the_lake = lake.get()
    wanted = {key.path[-1] for key in context.selected_asset_keys}
    landing = land_day(
        the_lake,
        market_source.get(the_lake),
        keys["symbol"],
        keys["date"],
        wanted,
        grid_ms=market_source.grid_ms,
    )
    for table, report in landing.reports.items():
        yield dg.MaterializeResult(
            asset_key=raw_key(table),
            metadata={
                "rows_written": report.rows_written,
                "rows_quarantined": report.rows_quarantined,
                "quarantine_reasons": report.reasons,
                "duplicates_dropped": report.duplicates_dropped,
                "delta_version": report.version,
                "table_uri": the_lake.table_uri(table),
                "checks": {c.name: c.passed for c in landing.checks[table]},
                "qc": dg.MetadataValue.json(landing.counters),
                "qc_json": landing.metrics_uri,
            },
        )
