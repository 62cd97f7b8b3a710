"""Hand-built markets for the replay-engine tests: a ladder book on a 100 ms grid plus chosen trades, marks and
funding rows, so every expected number in a test can be worked out by hand."""

from __future__ import annotations

import numpy as np

from agent.sim import MarketData

T0 = 1_723_161_600_000_000  # 2024-08-09 00:00:00 UTC, µs
STEP = 100_000
LEVELS = 20


def ladder(
    n: int = 50,
    bid: float = 60_000.0,
    ask: float = 60_000.1,
    size: float = 1.0,
    tick: float = 0.1,
    bid_sz: np.ndarray | None = None,
    ask_sz: np.ndarray | None = None,
    bid_top=None,
    trades: list[tuple[int, float, float, int]] = (),
    marks: list[tuple[int, float]] | None = None,
    funding: list[tuple[int, float, float]] | None = None,
    feed_lag_us: int = 0,
    symbol: str = "BTCUSDT",
) -> MarketData:
    """n snapshots every 100 ms from T0; levels one tick apart from `bid`/`ask` (or `bid_top[i]` per snapshot);
    trades as (µs after T0, price, qty, aggressor side); marks as (µs after T0, price); funding as
    (µs after T0, rate, mark). Everything is received feed_lag_us after it happens."""
    ts = T0 + np.arange(n, dtype=np.int64) * STEP
    k = np.arange(LEVELS)
    top_b = np.full(n, bid) if bid_top is None else np.asarray(bid_top, dtype=float)
    spread = ask - bid
    bid_px = np.round(top_b[:, None] - tick * k[None, :], 8)
    ask_px = np.round(top_b[:, None] + spread + tick * k[None, :], 8)
    bsz = np.full((n, LEVELS), size) if bid_sz is None else bid_sz
    asz = np.full((n, LEVELS), size) if ask_sz is None else ask_sz
    tr = sorted(trades)
    kw = {}
    if tr:
        kw.update(
            trade_ts=T0 + np.array([t[0] for t in tr], dtype=np.int64),
            trade_px=[t[1] for t in tr],
            trade_qty=[t[2] for t in tr],
            trade_side=[t[3] for t in tr],
        )
        kw["trade_recv_ts"] = kw["trade_ts"] + feed_lag_us
    if marks:
        kw.update(mark_ts=T0 + np.array([m[0] for m in marks], dtype=np.int64), mark_px=[m[1] for m in marks])
    if funding:
        kw.update(
            funding_ts=T0 + np.array([f[0] for f in funding], dtype=np.int64),
            funding_rate=[f[1] for f in funding],
            funding_mark=[f[2] for f in funding],
        )
    return MarketData.from_arrays(symbol, ts, bid_px, bsz, ask_px, asz, book_recv_ts=ts + feed_lag_us, **kw)
