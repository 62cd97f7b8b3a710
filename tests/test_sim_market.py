"""MarketData: the engine's one reader of the lake's raw tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from agent.sim import MarketData, SimConfig, Simulator
from feature_store.records import BookSnapshot, FundingRate, MarkPrice, TradeTick, table_from_columns

T0 = 1_723_161_600_000_000


def _tables(symbol="BTCUSDT", n=5):
    ts = T0 + np.arange(n, dtype=np.int64) * 100_000
    bid = np.full((n, 20), np.nan)
    bid[:, :3] = [60_000.0, 59_999.9, 59_999.8]
    bsz = np.where(np.isnan(bid), 0.0, 1.5)
    ask = np.full((n, 20), np.nan)
    ask[:, :3] = [60_000.1, 60_000.2, 60_000.3]
    common = {"exchange": "binance", "market": "usdm", "symbol": symbol}
    books = table_from_columns(
        BookSnapshot,
        {
            **common,
            "ts": ts,
            "recv_ts": ts + 5,
            "update_id": np.arange(n),
            "bid_px": bid,
            "bid_sz": bsz,
            "ask_px": ask,
            "ask_sz": bsz,
        },
    )
    trades = table_from_columns(
        TradeTick,
        {
            **common,
            "ts": np.array([T0 + 10, T0 + 50, T0 + 50]),
            "recv_ts": np.array([T0 + 60] * 3),
            "trade_id": np.array([1, 2, 3]),
            "price": [60_000.0] * 3,
            "qty": [0.3, 0.2, 0.1],
            "side": np.array([-1, 1, -1], dtype=np.int8),
        },
    )
    funding = table_from_columns(
        FundingRate,
        {
            **common,
            "ts": np.array([T0 + 200_000]),
            "recv_ts": np.array([T0 + 200_000]),
            "rate": [0.0001],
            "mark_price": pa.array([None], pa.float64()),
            "interval_hours": [8.0],
        },
    )
    marks = table_from_columns(
        MarkPrice,
        {
            **common,
            "ts": np.array([T0 + 1_000]),
            "recv_ts": np.array([T0 + 1_000]),
            "mark_price": [60_000.05],
        },
    )
    return {"book_snapshots": books, "trades": trades, "funding_rates": funding, "mark_prices": marks}


def test_from_tables_sorts_and_keeps_every_column():
    tables = _tables()
    tables["trades"] = tables["trades"].take([2, 0, 1])  # shuffled rows come back in (ts, trade_id) order
    tables["book_snapshots"] = tables["book_snapshots"].take([4, 3, 2, 1, 0])
    m = MarketData.from_tables(tables)
    assert m.symbol == "BTCUSDT" and m.tick_size == 0.1 and m.lot_size == 0.001
    assert np.all(np.diff(m.book_ts) > 0) and np.array_equal(m.book_recv_ts - m.book_ts, np.full(5, 5))
    assert m.bid_px.shape == (5, 20) and np.isnan(m.bid_px[0, 3]) and m.bid_sz[0, 3] == 0.0
    assert list(m.trade_qty) == [0.3, 0.2, 0.1]  # by time, then trade id
    assert list(m.trade_side) == [-1, 1, -1]
    assert np.isnan(m.funding_mark[0]) and m.funding_rate[0] == 0.0001
    assert m.mark_px[0] == 60_000.05


def test_from_tables_refuses_mixed_symbols_and_missing_books():
    t = _tables()
    other = _tables("ETHUSDT")
    mixed = {k: pa.concat_tables([t[k], other[k]]) for k in t}
    with pytest.raises(ValueError, match="several symbols"):
        MarketData.from_tables(mixed)
    assert MarketData.from_tables(mixed, symbol="ETHUSDT").tick_size == 0.01
    with pytest.raises(ValueError, match="book_snapshots"):
        MarketData.from_tables({"trades": t["trades"]})


def test_from_lake_reads_what_the_lake_holds(tmp_path):
    from feature_store.lake import Lake

    lake = Lake(tmp_path / "lake")
    for name, table in _tables().items():
        lake.write(name, table)
    m = MarketData.from_lake(tmp_path / "lake", "BTCUSDT", "2024-08-09", "2024-08-09")
    direct = MarketData.from_tables(_tables())
    for field in (
        "book_ts",
        "book_recv_ts",
        "bid_sz",
        "ask_sz",
        "trade_ts",
        "trade_qty",
        "funding_ts",
        "mark_px",
    ):
        assert np.array_equal(getattr(m, field), getattr(direct, field)), field
    assert np.array_equal(np.isnan(m.bid_px), np.isnan(direct.bid_px))
    sim = Simulator()
    assert sim.reset(m, SimConfig()).account.mark == 60_000.05
    with pytest.raises(ValueError, match="no usdm book_snapshots"):
        MarketData.from_lake(tmp_path / "lake", "BTCUSDT", "2024-08-10", "2024-08-11")
