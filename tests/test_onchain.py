"""On-chain providers against fake Coin Metrics and blockchain.info servers on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from fake_binance import FakeBinance, FaultPlan

from feature_store.lake import Lake
from feature_store.sources.onchain import (
    BlockchainInfoCharts,
    CoinMetricsCommunity,
    OnChainError,
    OnChainSource,
    fetch_onchain,
)

DAY_US = 86_400_000_000


def day_us(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1_000_000)


@pytest.fixture(scope="module")
def providers():
    rng = np.random.default_rng(9)
    rows = []
    for k in range(91):
        day = (date(2024, 1, 1) + timedelta(days=k)).isoformat()
        values = {"PriceUSD": f"{42000 + 100 * rng.normal():.8f}"}
        if k % 10:  # some days have no active-address value
            values["AdrActCnt"] = str(int(rng.integers(700_000, 1_000_000)))
        rows.append((day, values))
    charts = {"n-transactions": {"unit": "Transactions",
                                 "values": [{"x": day_us("2024-02-01") // 1_000_000 + 86_400 * k, "y": 300_000 + k}
                                            for k in range(10)]}}  # fmt: skip
    onchain = {
        "coinmetrics": {"btc": {"metrics": {"PriceUSD", "AdrActCnt"}, "rows": rows}},
        "blockchain": charts,
    }
    with FakeBinance(faults=FaultPlan(rate=0.3, retry_after_s=0.05), onchain=onchain, seed=4) as server:
        yield server, rows


def test_coin_metrics_pages_retries_and_never_looks_ahead(providers, tmp_path: Path) -> None:
    server, rows = providers
    cm = CoinMetricsCommunity(base_url=server.base_url + "/v4", backoff_s=0.01)
    cm.page_size, cm.window_s = 7, 0.2  # many pages, and a short rate window so the test stays fast
    table = fetch_onchain(cm, "btc", ["PriceUSD", "AdrActCnt"], "2024-01-05", "2024-03-20")
    expected = sorted(
        (day_us(day), metric, float(v))
        for day, values in rows
        if "2024-01-05" <= day <= "2024-03-20"
        for metric, v in values.items()
    )
    for symbol in ("BTCUSDT", "BTCUSD_PERP"):
        part = table.filter(pa.compute.equal(table["symbol"], symbol))
        got = sorted(zip(part["ts"].cast(pa.int64()).to_pylist(), part["metric"].to_pylist(),
                         part["value"].to_pylist(), strict=True))  # fmt: skip
        assert got == expected
    # Available only after the day ends plus Coin Metrics' 7 h refresh delay.
    ts = table["ts"].cast(pa.int64()).to_numpy()
    assert np.all(table["available_at"].cast(pa.int64()).to_numpy() == ts + DAY_US + 7 * 3_600_000_000)
    assert table["recv_ts"].equals(table["available_at"])
    assert server.stats.faults["cm_429"] > 0 and cm.retries >= server.stats.faults["cm_429"]
    report = Lake(tmp_path / "lake").write("onchain_metrics", table)
    assert report.rows_quarantined == 0 and report.rows_written == table.num_rows


def test_coin_metrics_errors_name_the_problem(providers) -> None:
    server, _ = providers
    cm = CoinMetricsCommunity(base_url=server.base_url + "/v4", backoff_s=0.01)
    cm.window_s = 0.2
    with pytest.raises(OnChainError, match="coinmetrics.*HTTP 400.*Bad metrics 'NoSuchMetric'"):
        cm.fetch("btc", ["PriceUSD", "NoSuchMetric"], "2024-01-01", "2024-01-02")
    with pytest.raises(ValueError, match="no instrument has base asset 'DOGE'"):
        cm.fetch("doge", ["PriceUSD"], "2024-01-01", "2024-01-02")


def test_blockchain_info_chart_with_custom_lag(providers) -> None:
    server, _ = providers
    table = fetch_onchain("blockchain.info", "btc", ["n-transactions"], "2024-02-03", "2024-02-05",
                          base_url=server.base_url, symbols=["BTCUSDT"], lag=timedelta(hours=2))  # fmt: skip
    assert table["value"].to_pylist() == [300_002.0, 300_003.0, 300_004.0]
    ts = table["ts"].cast(pa.int64()).to_numpy()
    assert list(ts) == [day_us("2024-02-03"), day_us("2024-02-04"), day_us("2024-02-05")]
    assert np.all(table["available_at"].cast(pa.int64()).to_numpy() == ts + DAY_US + 2 * 3_600_000_000)
    with pytest.raises(ValueError, match="Bitcoin only"):
        BlockchainInfoCharts(base_url=server.base_url).fetch(
            "eth", ["n-transactions"], "2024-02-03", "2024-02-05"
        )
    with pytest.raises(ValueError, match="unknown on-chain provider"):
        fetch_onchain("glassnode", "btc", ["x"], "2024-02-03", "2024-02-05")


def test_onchain_source_loads_the_base_asset_of_a_symbol(providers) -> None:
    server, rows = providers
    source = OnChainSource("coinmetrics", metrics=("PriceUSD",), base_url=server.base_url + "/v4")
    source.provider.window_s, source.provider.backoff_s = 0.2, 0.01
    out = source.load_day("BTCUSD_PERP", date(2024, 2, 1))["onchain_metrics"]
    assert out["symbol"].to_pylist() == ["BTCUSD_PERP"] and out["market"].to_pylist() == ["coinm"]
    assert out["value"].to_pylist() == [float(dict(rows)["2024-02-01"]["PriceUSD"])]
