"""Asset checks on landed raw partitions: row counts, timestamp ordering, crossed books, sizes.

Each check reads the partition back from the lake (feature_store.qc), so it also catches a partition corrupted
after landing.
"""

import warnings

import dagster as dg

from dagster_project.assets.ingest import RAW_TABLES, raw_key
from dagster_project.partitions import daily_by_symbol
from dagster_project.resources import LakeResource
from feature_store.qc import check_landed_partition, outcomes_as_dict

# Partitioned asset checks are a Dagster preview feature; they are exactly what a daily x symbol lake needs.
warnings.filterwarnings(
    "ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*"
)


def _make_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=raw_key(table),
        name=f"{table}_partition_qc",
        description=f"{table}: rows present, ts ordered, no crossed books, positive sizes",
        partitions_def=daily_by_symbol,
    )
    def _check(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        keys = context.partition_key.keys_by_dimension
        outcomes = check_landed_partition(lake.get(), table, keys["symbol"], keys["date"])
        failed = [o for o in outcomes if not o.passed]
        return dg.AssetCheckResult(
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR,
            description="; ".join(o.detail for o in failed) or "all checks passed",
            metadata={"outcomes": dg.MetadataValue.json(outcomes_as_dict(outcomes))},
        )

    return _check


RAW_CHECKS = [_make_check(table) for table in RAW_TABLES]
