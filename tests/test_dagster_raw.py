"""Raw landing through real `dagster.materialize`: partitions, Delta tables, QC metadata, asset checks."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from deltalake import write_deltalake

from dagster_project.assets.ingest import RAW_TABLES, raw_key, raw_market
from dagster_project.checks import RAW_CHECKS
from dagster_project.definitions import defs
from dagster_project.partitions import daily_by_symbol, partition_key
from dagster_project.resources import LakeResource, MarketSourceResource
from feature_store.lake import Lake
from feature_store.records import BookSnapshot, table_from_columns
from feature_store.sources.synthetic import TABLES as SYNTHETIC_TABLES

DAYS = ("2024-08-07", "2024-08-08")
# A day's on-chain value is published after the day ends, so 300-second days have none (an empty table).
PARTIAL_DAY_TABLES = set(SYNTHETIC_TABLES) - {"onchain_metrics"}


def _resources(root: Path) -> dict:
    return {
        "lake": LakeResource(root=str(root)),
        "market_source": MarketSourceResource(kind="synthetic", seed=3, epoch=DAYS[0], day_seconds=300),
    }


def _materialize(root: Path, day: str):
    return dg.materialize(
        [raw_market, *RAW_CHECKS],
        selection=dg.AssetSelection.assets(*[raw_key(t) for t in SYNTHETIC_TABLES]),
        partition_key=partition_key("BTCUSDT", day),
        resources=_resources(root),
        raise_on_error=False,
    )


def _run_checks_only(root: Path, day: str):
    """The checks alone, as the UI runs them on an already landed partition."""
    job = dg.define_asset_job(
        "raw_checks",
        selection=dg.AssetSelection.checks_for_assets(*[raw_key(t) for t in SYNTHETIC_TABLES]),
    )
    test_defs = dg.Definitions(
        assets=[raw_market], asset_checks=RAW_CHECKS, jobs=[job], resources=_resources(root)
    )
    key = partition_key("BTCUSDT", day)
    tags = {
        "dagster/partition": str(key),
        **{f"dagster/partition/{d}": k for d, k in key.keys_by_dimension.items()},
    }
    return test_defs.resolve_job_def("raw_checks").execute_in_process(tags=tags, raise_on_error=False)


@pytest.fixture(scope="module")
def landed(tmp_path_factory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("dagster") / "lake"
    results = [_materialize(root, day) for day in DAYS]
    return root, results


def test_definitions_have_one_partitioned_asset_and_check_per_raw_table():
    graph = defs.resolve_asset_graph()
    for table in RAW_TABLES:
        node = graph.get(raw_key(table))
        assert node.partitions_def == daily_by_symbol
    raw_checks = {key.asset_key for key in graph.asset_check_keys if key.asset_key.path[0] == "raw"}
    assert raw_checks == {raw_key(t) for t in RAW_TABLES}


def test_materialize_lands_every_synthetic_table_per_partition(landed):
    root, results = landed
    assert all(r.success for r in results)
    lake = Lake(root)
    info = {i.table: i for i in lake.describe(zones=("raw",))}
    assert set(info) == set(SYNTHETIC_TABLES)
    assert {t for t, i in info.items() if i.rows} == PARTIAL_DAY_TABLES
    books = info["book_snapshots"].partitions
    assert books == {("BTCUSDT", DAYS[0]): 3000, ("BTCUSDT", DAYS[1]): 3000}  # 300 s at 100 ms
    assert set(info["trades"].partitions) == {("BTCUSDT", d) for d in DAYS}


def test_materializations_carry_qc_metadata_and_checks_pass(landed):
    root, results = landed
    for result in results:
        mats = {m.asset_key: m for m in result.get_asset_materialization_events()}
        books = mats[raw_key("book_snapshots")].materialization.metadata
        assert books["rows_written"].value == 3000
        assert books["rows_quarantined"].value == 0
        qc = books["qc"].value
        assert qc["book_rows"] == 3000 and qc["spread_one_tick_share"] > 0.8 and qc["book_gap_rate"] == 0.0
        evaluations = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}
        assert set(evaluations) == set(SYNTHETIC_TABLES)
        failed = {t: e.description for t, e in evaluations.items() if not e.passed}
        assert failed == {"onchain_metrics": "0 rows"}
    metrics = json.loads((root / "metrics" / "ingest" / "BTCUSDT" / f"{DAYS[0]}.json").read_text())
    assert metrics["rows_book_snapshots"] == 3000 and metrics["trade_rows"] > 0


def test_rematerializing_a_partition_does_not_duplicate(landed):
    root, _ = landed
    before = Lake(root).read("trades", symbol="BTCUSDT", start=DAYS[1], end=DAYS[1]).num_rows
    assert _materialize(root, DAYS[1]).success
    after = Lake(root).read("trades", symbol="BTCUSDT", start=DAYS[1], end=DAYS[1]).num_rows
    assert after == before


def test_check_fails_on_a_corrupted_partition(tmp_path):
    root = tmp_path / "lake"
    assert _materialize(root, DAYS[0]).success
    # Corrupt the landed partition behind the lake's back: append a crossed book at the day's end.
    ts = np.array([1_723_075_199_000_000 - 1], dtype=np.int64)  # 2024-08-07 23:59:59
    crossed = table_from_columns(
        BookSnapshot,
        dict(
            exchange="synthetic", market="usdm", symbol="BTCUSDT", ts=ts, recv_ts=ts, update_id=np.zeros(1, np.int64),
            bid_px=np.full((1, 20), 60010.0) - np.arange(20) * 0.1, bid_sz=np.ones((1, 20)),
            ask_px=np.full((1, 20), 60000.0) + np.arange(20) * 0.1, ask_sz=np.ones((1, 20)),
        ),
    )  # fmt: skip
    write_deltalake(
        str(root / "raw" / "book_snapshots"), crossed, mode="append", partition_by=["symbol", "date"]
    )
    result = _run_checks_only(root, DAYS[0])
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert (
        not result.get_asset_materialization_events()
    )  # the checks ran on what was landed, nothing re-landed
    assert not evaluations["book_snapshots_partition_qc"].passed
    assert "1 crossed or locked books" in evaluations["book_snapshots_partition_qc"].description
    assert evaluations["trades_partition_qc"].passed
