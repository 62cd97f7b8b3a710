"""Synthetic market generation speed and memory for whole days, against a naive generator of the same size.

Prints the median of 3 runs of: one simulated day as Arrow tables (864,000 top-20 books plus trades, 1 s marks,
funding, on-chain) in rows/s, one chained day (state only, as when reaching a later day from the epoch), and the
baseline: a pure-numpy i.i.d. random-walk book (gaps and sizes drawn afresh every snapshot) with Poisson trades at
the touch, built into the same Arrow tables, with as many books and trades as the synthetic day. Peak RSS is for
the whole process (one day's arrays must bound it). Usage: python benchmarks/bench_synthetic.py [runs]
"""

from __future__ import annotations

import datetime as dt
import resource
import statistics
import sys
import time

import numpy as np
import pyarrow as pa

from feature_store import records
from feature_store.sources.synthetic import SyntheticConfig, initial_state, simulate_day

DAY = dt.date(2024, 8, 7)
SYMBOL = "BTCUSDT"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def naive_day(n_books: int, n_trades: int, seed: int) -> dict[str, pa.Table]:
    """I.i.d. random-walk books and touch trades, vectorized numpy, same table contract."""
    rng = np.random.default_rng(seed)
    day_us = int(dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC).timestamp()) * 1_000_000
    ts = day_us + np.arange(n_books, dtype=np.int64) * 100_000
    bid_ticks = 600_000 + np.cumsum(rng.choice([-1, 0, 0, 0, 1], n_books)).astype(np.int64)
    gaps = 1 + rng.geometric(0.6, size=(n_books, records.BOOK_LEVELS)) - 1
    gaps[:, 0] = 0
    bid_px = (bid_ticks[:, None] - np.cumsum(gaps, axis=1)) / 10.0
    ask_px = (bid_ticks[:, None] + 1 + np.cumsum(gaps, axis=1)) / 10.0
    bid_sz = np.round(rng.lognormal(0.5, 0.6, size=(n_books, records.BOOK_LEVELS)), 3) + 0.001
    ask_sz = np.round(rng.lognormal(0.5, 0.6, size=(n_books, records.BOOK_LEVELS)), 3) + 0.001
    common = {"exchange": "synthetic", "market": "usdm", "symbol": SYMBOL, "date": DAY.isoformat()}
    books = records.table_from_columns(
        records.BookSnapshot,
        {
            **{k: pa.repeat(pa.scalar(v), n_books) for k, v in common.items()},
            "ts": ts,
            "recv_ts": ts + 5_000,
            "update_id": np.zeros(n_books, np.int64),
            "bid_px": bid_px,
            "bid_sz": bid_sz,
            "ask_px": ask_px,
            "ask_sz": ask_sz,
        },
    )
    step = np.sort(rng.integers(0, n_books, n_trades))
    side = rng.choice(np.array([-1, 1], np.int8), n_trades)
    tts = ts[step] + rng.integers(0, 100_000, n_trades)
    trades = records.table_from_columns(
        records.TradeTick,
        {
            **{k: pa.repeat(pa.scalar(v), n_trades) for k, v in common.items()},
            "ts": np.sort(tts),
            "recv_ts": np.sort(tts) + 5_000,
            "trade_id": np.arange(1, n_trades + 1, dtype=np.int64),
            "price": np.where(side > 0, ask_px[step, 0], bid_px[step, 0]),
            "qty": np.round(rng.lognormal(-4.0, 1.7, n_trades), 3) + 0.001,
            "side": side,
        },
    )
    return {"book_snapshots": books, "trades": trades}


def _timed(fn):
    """(result, wall seconds, CPU seconds of this process): CPU time is the fairer figure on a shared machine."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def main(runs: int = 3) -> None:
    cfg = SyntheticConfig(seed=1, epoch=DAY)
    state = initial_state(cfg, SYMBOL)
    simulate_day(cfg, SYMBOL, DAY, state, n_steps=600)  # compile (or load the numba cache) outside the timing
    gen, chain, base = [], [], []
    rows = n_books = n_trades = base_rows = 0
    for _ in range(runs):
        day, wall, cpu = _timed(lambda: simulate_day(cfg, SYMBOL, DAY, state))
        gen.append((wall, cpu))
        rows = sum(t.num_rows for t in day.tables.values())
        n_books = day.tables["book_snapshots"].num_rows
        n_trades = day.tables["trades"].num_rows
        del day
        _, wall, cpu = _timed(lambda: simulate_day(cfg, SYMBOL, DAY, state, with_tables=False))
        chain.append((wall, cpu))
    rss_after_generation = peak_rss_mb()
    for i in range(runs):
        tables, wall, cpu = _timed(lambda i=i: naive_day(n_books, n_trades, seed=i))
        base.append((wall, cpu))
        base_rows = sum(t.num_rows for t in tables.values())
        del tables
    (g, gc), (c, cc), (b, bc) = (
        tuple(statistics.median(x) for x in zip(*m, strict=True)) for m in (gen, chain, base)
    )
    print(
        f"synthetic day: {n_books:,} books + {n_trades:,} trades ({rows:,} rows in all tables), medians of {runs}"
    )
    print(f"  generation (tables): {g:.2f} s wall, {gc:.2f} s CPU = {rows / g:,.0f} rows/s")
    print(f"  chaining (state only): {c:.2f} s wall, {cc:.2f} s CPU per day")
    print(f"  peak RSS after generation: {rss_after_generation:,.0f} MB")
    print(f"naive i.i.d. random-walk book generator, same books and trades: {b:.2f} s wall, {bc:.2f} s CPU")
    print(f"  = {base_rows / b:,.0f} rows/s")
    print(
        f"ratio synthetic / naive: {g / b:.2f}x wall, {gc / bc:.2f}x CPU (the naive book has no dynamics at all)"
    )
    print(f"peak RSS overall: {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
