"""Shared fixtures: small, real record tables and a fresh lake per test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from feature_store.lake import Lake
from feature_store.records import BookSnapshot, TradeTick, table_from_columns

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DAY_US = 1_723_075_200_000_000  # 2024-08-08 00:00:00 UTC


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


def make_books(
    n: int = 50, start_us: int = DAY_US, symbol: str = "BTCUSDT", mid0: float = 60000.0
) -> pa.Table:
    rng = np.random.default_rng(n)
    steps = np.arange(20) * 0.1
    mid = mid0 + np.round(np.cumsum(rng.normal(0, 0.2, n)), 1)
    ts = start_us + np.arange(n, dtype=np.int64) * 100_000
    return table_from_columns(
        BookSnapshot,
        dict(
            exchange="synthetic",
            market="usdm",
            symbol=symbol,
            ts=ts,
            recv_ts=ts + 3_000,
            update_id=np.arange(n, dtype=np.int64),
            bid_px=mid[:, None] - 0.05 - steps,
            bid_sz=rng.uniform(0.1, 5, (n, 20)),
            ask_px=mid[:, None] + 0.05 + steps,
            ask_sz=rng.uniform(0.1, 5, (n, 20)),
        ),
    )


def make_trades(n: int = 40, start_us: int = DAY_US, symbol: str = "BTCUSDT") -> pa.Table:
    rng = np.random.default_rng(n + 1)
    ts = start_us + np.sort(rng.integers(0, 5_000_000, n))
    return table_from_columns(
        TradeTick,
        dict(
            exchange="synthetic",
            market="usdm",
            symbol=symbol,
            ts=ts,
            recv_ts=ts + 2_000,
            trade_id=np.arange(n, dtype=np.int64) + (start_us - DAY_US) // 1_000_000 + 1000,
            price=60000 + np.round(rng.normal(0, 1, n), 1),
            qty=rng.uniform(0.001, 1, n),
            side=rng.choice(np.array([-1, 1], dtype=np.int8), n),
        ),
    )
