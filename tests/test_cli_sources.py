"""The ingest commands for real-data sources, end to end through the CLI, Dagster and the lake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fake_binance import HOUR_MS, FakeBinance, make_market

from feature_store.lake import Lake

SCALPER = [sys.executable, "-m", "dagster_project.cli"]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(cwd / "dh")}
    return subprocess.run(SCALPER + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_demo_on_the_shipped_real_capture(tmp_path: Path):
    result = run(["demo", "--source", "binance-sample", "--lake", str(tmp_path / "lake")], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "BTCUSDT: 0 sequence gaps, 0 crossed books" in result.stdout
    lake = Lake(tmp_path / "lake")
    tables = {i.table: i.rows for i in lake.describe(zones=("raw",))}
    assert tables["trades"] == 2501  # every trade event of the 60 s sample
    assert tables["book_snapshots"] > 500 and tables["book_tickers"] > 10_000
    assert not lake.describe(zones=("quarantine",))


def test_capture_command_refuses_a_missing_file(tmp_path: Path):
    result = run(
        ["ingest", "binance-capture", str(tmp_path / "nope.gz"), "--lake", str(tmp_path / "lake")], tmp_path
    )
    assert result.returncode == 2
    assert "capture file(s) not found" in result.stderr


def test_rest_command_lands_a_day_from_a_binance_compatible_server(tmp_path: Path):
    market = make_market(start_ms=1_722_470_400_000, n_trades=400, trade_span_ms=6 * HOUR_MS, funding_days=3)
    day_end = 1_722_470_400_000 + 24 * HOUR_MS
    expected = [t for t in market.agg_trades if t["T"] < day_end]
    with FakeBinance({"BTCUSDT": market}, weight_limit=2400, window_s=60) as server:
        result = run(
            ["ingest", "binance-rest", "--symbol", "BTCUSDT", "--start", "2024-08-01", "--end", "2024-08-01",
             "--what", "aggTrades,fundingRate", "--base-url", server.base_url, "--lake", str(tmp_path / "lake")],
            tmp_path,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    trades = Lake(tmp_path / "lake").read("trades")
    assert trades["trade_id"].to_pylist() == [t["a"] for t in expected]
    assert Lake(tmp_path / "lake").read("funding_rates").num_rows == 3  # 00, 08, 16 UTC


def test_rest_command_names_an_unknown_dataset(tmp_path: Path):
    args = [
        "ingest",
        "binance-rest",
        "--start",
        "2024-08-01",
        "--end",
        "2024-08-01",
        "--what",
        "aggTrades,candles",
    ]
    result = run(args, tmp_path)
    assert result.returncode == 2
    assert "--what 'aggTrades,candles': unknown candles" in result.stderr
