"""Feature assets: the dbt models (day-partitioned builds, the train window as config) and the snapshot."""

import datetime as dt
import os
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from dagster_project.dbt_project import dbt_project, ensure_manifest
from dagster_project.partitions import daily
from dagster_project.resources import LakeResource
from feature_store import snapshots
from feature_store.feature_build import BuildWindow, dbt_env_vars, dbt_target_path


class FeatureBuildConfig(dg.Config):
    """The train split (inclusive days) that every train-fit statistic reads: normalization, clip bounds,
    micro-price g-table, OFI weights, regime thresholds."""

    train_start: str = "2000-01-01"
    train_end: str = "2099-12-31"


@contextmanager
def lake_env(root: Path, window: BuildWindow):
    """dagster-dbt's dbt process inherits this process's environment: scope the variables a build of the lake at
    `root` for `window` needs (feature_build.dbt_env_vars, as run_dbt gives them) to this build."""
    wanted = dbt_env_vars(root, window)
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dbt_assets(
    manifest=ensure_manifest(),
    project=dbt_project,
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def feature_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, lake: LakeResource, config: FeatureBuildConfig
):
    window = context.partition_time_window
    last_day = (window.end - dt.timedelta(days=1)).date().isoformat()
    build = BuildWindow(window.start.date().isoformat(), last_day, config.train_start, config.train_end)
    root = Path(lake.get().root).resolve()
    with lake_env(root, build):
        # the lake's own target folder (not a fresh one per run): its partial-parse state matches this lake's profile,
        # so the next partition skips parsing; a copy of dbt/target's (parsed without a lake) never matches
        yield from dbt.cli(["build"], context=context, target_path=dbt_target_path(root)).stream()


class SnapshotConfig(dg.Config):
    """Split windows as 'YYYY-MM-DD:YYYY-MM-DD' (inclusive days); ordered and disjoint."""

    train: str
    val: str
    test: str
    symbols: list[str] = []


def parse_window(value: str, name: str) -> tuple[str, str]:
    parts = value.split(":")
    if len(parts) != 2:
        raise ValueError(f"{name} window {value!r} must look like 2024-08-07:2024-08-08")
    for day in parts:
        dt.date.fromisoformat(day)
    return parts[0], parts[1]


@dg.asset(
    key=["features", "snapshot"],
    deps=[feature_models],
    group_name="features",
    kinds={"parquet"},
    description="A content-addressed feature snapshot (pinned Delta versions, schema hash, train-fit stats).",
)
def feature_snapshot(context: dg.AssetExecutionContext, lake: LakeResource, config: SnapshotConfig):
    root = lake.get().root
    snapshot_id = snapshots.create(
        root,
        train=parse_window(config.train, "train"),
        val=parse_window(config.val, "val"),
        test=parse_window(config.test, "test"),
        symbols=config.symbols or None,
    )
    meta = snapshots.metadata(root, snapshot_id)
    return dg.MaterializeResult(
        metadata={
            "snapshot_id": snapshot_id,
            "schema_hash": meta.get("schema_hash"),
            "splits": dg.MetadataValue.json(meta.get("splits", {})),
            "regime_coverage": dg.MetadataValue.json(meta.get("regime_coverage", {})),
        }
    )
