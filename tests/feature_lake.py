"""Random raw lakes for the feature-store tests and the feature benchmark.

Builds lake/raw Delta tables (book snapshots on a regular grid, trades aligned to them, funding, mark prices,
on-chain metrics) from a seeded random market, written straight with deltalake so that tests can also plant
rows the validated `Lake.write` would quarantine (crossed books) or leave holes in the grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from deltalake import WriterProperties, write_deltalake

from feature_store.instruments import instrument
from feature_store.records import (
    BOOK_LEVELS,
    BookSnapshot,
    FundingRate,
    MarkPrice,
    OnChainMetric,
    TradeTick,
    table_from_columns,
)

DAY_US = 86_400_000_000


@dataclass(frozen=True)
class MarketParams:
    """Knobs of the random market; hypothesis draws these."""

    grid_ms: int = 1000
    move_prob: float = 0.3  # chance the best bid moves one tick per snapshot
    trade_rate: float = 1.5  # mean trades per snapshot interval
    thin_prob: float = 0.05  # chance a snapshot shows fewer than 20 levels
    size_sigma: float = 0.8
    base_price: float = 60_000.0


def day_start_us(day: str) -> int:
    return int(np.datetime64(day, "us").astype(np.int64))


def random_books(
    rng: np.random.Generator,
    symbol: str,
    ts_us: np.ndarray,
    p: MarketParams,
    flow_sign: np.ndarray | None = None,
) -> pa.Table:
    """Top-20 books at the given times: a tick random walk (moving with `flow_sign`, the dominant taker side of
    each interval, when given) with random level gaps and lognormal sizes."""
    inst = instrument(symbol)
    tick = inst.tick_size
    n = len(ts_us)
    sign = flow_sign if flow_sign is not None else rng.choice([-1, 1], n)
    steps = np.where(rng.random(n) < p.move_prob, sign, 0)
    bid1 = np.round(p.base_price / tick) + np.cumsum(steps)
    spread = rng.choice([1, 2, 3], size=n, p=[0.7, 0.2, 0.1])
    gaps = 1 + (rng.random((n, BOOK_LEVELS - 1)) < 0.15)
    bid_ticks = bid1[:, None] - np.concatenate([np.zeros((n, 1)), np.cumsum(gaps, axis=1)], axis=1)
    ask_ticks = (bid1 + spread)[:, None] + np.concatenate(
        [np.zeros((n, 1)), np.cumsum(gaps[:, ::-1], axis=1)], axis=1
    )
    bid_px, ask_px = bid_ticks * tick, ask_ticks * tick
    bid_sz = np.round(rng.lognormal(0.0, p.size_sigma, (n, BOOK_LEVELS)), 3) + inst.lot_size
    ask_sz = np.round(rng.lognormal(0.0, p.size_sigma, (n, BOOK_LEVELS)), 3) + inst.lot_size
    # some snapshots are thin: their tail levels are absent (price NaN, size 0)
    depth = np.where(rng.random(n) < p.thin_prob, rng.integers(3, BOOK_LEVELS, n), BOOK_LEVELS)
    absent = np.arange(BOOK_LEVELS)[None, :] >= depth[:, None]
    for px, sz in ((bid_px, bid_sz), (ask_px, ask_sz)):
        px[absent] = np.nan
        sz[absent] = 0.0
    return table_from_columns(
        BookSnapshot,
        {
            "exchange": "binance",
            "market": inst.market,
            "symbol": symbol,
            "ts": ts_us,
            "recv_ts": ts_us + 3_000,
            "update_id": np.arange(n, dtype=np.int64),
            "bid_px": bid_px,
            "bid_sz": bid_sz,
            "ask_px": ask_px,
            "ask_sz": ask_sz,
        },
    )


def random_trades(
    rng: np.random.Generator,
    symbol: str,
    books: pa.Table,
    p: MarketParams,
    flow_sign: np.ndarray | None = None,
) -> pa.Table:
    """Trades between snapshots, mostly at the best price of the book before them; 70 % of a interval's trades
    take the side of its `flow_sign` (the side the mid moves with), the rest are random."""
    ts = books["ts"].cast(pa.int64()).to_numpy()
    flat_bid = books["bid_px"].combine_chunks().flatten().to_numpy().reshape(-1, BOOK_LEVELS)
    flat_ask = books["ask_px"].combine_chunks().flatten().to_numpy().reshape(-1, BOOK_LEVELS)
    bid1, ask1 = flat_bid[:, 0], flat_ask[:, 0]
    counts = rng.poisson(p.trade_rate, len(ts))
    counts[0] = 0  # a trade needs a book before it
    book_idx = np.repeat(np.arange(len(ts)), counts)  # the book the trade lands in
    hit = book_idx - 1  # ... after hitting the one before
    gap = ts[book_idx] - ts[hit]
    trade_ts = ts[hit] + 1 + (rng.random(len(book_idx)) * (gap - 1)).astype(np.int64)
    trade_ts = np.sort(trade_ts)
    side = rng.choice(np.array([-1, 1], dtype=np.int8), len(book_idx))
    if flow_sign is not None:
        follow = rng.random(len(book_idx)) < 0.7
        side = np.where(follow, flow_sign[book_idx], side).astype(np.int8)
    tick = instrument(symbol).tick_size
    through = rng.random(len(book_idx)) < 0.2  # a fifth walk one tick through the touch
    price = np.where(side > 0, ask1[hit] + through * tick, bid1[hit] - through * tick)
    qty = np.round(rng.lognormal(-1.0, 1.0, len(book_idx)), 3) + 0.001
    return table_from_columns(
        TradeTick,
        {
            "exchange": "binance",
            "market": instrument(symbol).market,
            "symbol": symbol,
            "ts": trade_ts,
            "recv_ts": trade_ts + 2_000,
            "trade_id": np.arange(len(trade_ts), dtype=np.int64) + int(ts[0] // 1000),
            "price": price,
            "qty": qty,
            "side": side,
        },
    )


def funding_and_marks(rng: np.random.Generator, symbol: str, day: str, mark_every_s: int = 10):
    start = day_start_us(day)
    inst = instrument(symbol)
    f_ts = start + np.arange(3, dtype=np.int64) * 8 * 3_600_000_000
    funding = table_from_columns(
        FundingRate,
        {
            "exchange": "binance",
            "market": inst.market,
            "symbol": symbol,
            "ts": f_ts,
            "recv_ts": f_ts + 1_000_000,
            "rate": rng.normal(1e-4, 5e-5, 3),
            "interval_hours": 8.0,
        },
    )
    m_ts = start + np.arange(0, 86_400, mark_every_s, dtype=np.int64) * 1_000_000
    mark = 60_000 + np.cumsum(rng.normal(0, 5, len(m_ts)))
    next_funding = (m_ts // (8 * 3_600_000_000) + 1) * 8 * 3_600_000_000
    marks = table_from_columns(
        MarkPrice,
        {
            "exchange": "binance",
            "market": inst.market,
            "symbol": symbol,
            "ts": m_ts,
            "recv_ts": m_ts + 50_000,
            "mark_price": mark,
            "index_price": mark * (1 - rng.normal(0, 2e-4, len(m_ts))),
            "est_funding_rate": rng.normal(1e-4, 3e-5, len(m_ts)),
            "next_funding_ts": next_funding,
        },
    )
    return funding, marks


def onchain(rng: np.random.Generator, symbol: str, day: str, lag_hours: float = 2.0) -> pa.Table:
    """Metrics describing the day before `day`, published at `day` 00:00 plus the provider's lag."""
    period = day_start_us(day) - DAY_US
    avail = day_start_us(day) + int(lag_hours * 3_600_000_000)
    metrics = ["active_addresses", "tx_count"]
    return table_from_columns(
        OnChainMetric,
        {
            "exchange": "coinmetrics",
            "market": instrument(symbol).market,
            "symbol": symbol,
            "ts": np.full(len(metrics), period, dtype=np.int64),
            "recv_ts": np.full(len(metrics), avail, dtype=np.int64),
            "asset": instrument(symbol).base,
            "metric": metrics,
            "value": rng.lognormal(13, 0.2, len(metrics)),
            "available_at": np.full(len(metrics), avail, dtype=np.int64),
        },
    )


def _plain_lists(table: pa.Table) -> pa.Table:
    """Delta has no fixed-size list: store book levels as plain lists (records.conform casts them back)."""
    fields = [
        pa.field(f.name, pa.list_(f.type.value_type), f.nullable)
        if pa.types.is_fixed_size_list(f.type)
        else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


# Row groups of 128k rows: a reader of the day's book levels then streams them a row group at a time instead of
# decoding the whole day's lists at once (1.4 GB for 864k books of 20 levels).
WRITER = WriterProperties(compression="ZSTD", compression_level=3, max_row_group_size=131_072)


def write_raw(root: str | Path, table_name: str, table: pa.Table, mode: str = "append") -> None:
    write_deltalake(
        str(Path(root) / "raw" / table_name),
        _plain_lists(table),
        mode=mode,
        partition_by=["symbol", "date"],
        writer_properties=WRITER,
    )


def build_raw_lake(
    root: str | Path,
    symbols: tuple[str, ...] = ("BTCUSDT",),
    days: tuple[str, ...] = ("2024-01-01", "2024-01-02", "2024-01-03"),
    params: MarketParams = MarketParams(),
    seed: int = 7,
    day_seconds: int = 86_400,
    drop_seconds: dict[str, tuple[int, int]] | None = None,
    crossed_rows: dict[str, int] | None = None,
) -> dict[str, pa.Table]:
    """Write every raw table for `symbols` x `days`; returns the books and trades written (for references).

    day_seconds < 86400 keeps only the last `day_seconds` of each day (books stay contiguous across midnight
    when days are consecutive only for a full day).  drop_seconds[day] = (from_s, to_s) removes that span of
    books (a gap); crossed_rows[day] = k crosses k books of that day (best bid above best ask).
    """
    rng = np.random.default_rng(seed)
    out_books, out_trades = [], []
    grid_us = params.grid_ms * 1000
    for symbol in symbols:
        for day in days:
            start = day_start_us(day) + (86_400 - day_seconds) * 1_000_000
            ts = np.arange(start, day_start_us(day) + DAY_US, grid_us, dtype=np.int64)
            if drop_seconds and day in drop_seconds:
                lo, hi = drop_seconds[day]
                sec = (ts - day_start_us(day)) // 1_000_000
                ts = ts[(sec < lo) | (sec >= hi)]
            sign = rng.choice([-1, 1], len(ts))
            books = random_books(rng, symbol, ts, params, sign)
            trades = random_trades(rng, symbol, books, params, sign)
            if crossed_rows and day in crossed_rows:
                books = _cross(books, crossed_rows[day])
            funding, marks = funding_and_marks(rng, symbol, day)
            for name, table in (
                ("book_snapshots", books),
                ("trades", trades),
                ("funding_rates", funding),
                ("mark_prices", marks),
                ("onchain_metrics", onchain(rng, symbol, day)),
            ):
                write_raw(root, name, table)
            out_books.append(books)
            out_trades.append(trades)
    return {"book_snapshots": pa.concat_tables(out_books), "trades": pa.concat_tables(out_trades)}


def _cross(books: pa.Table, k: int) -> pa.Table:
    """Cross k books in the middle of the table: the best bid is set one unit above the best ask."""
    bid = books["bid_px"].combine_chunks().flatten().to_numpy().reshape(-1, BOOK_LEVELS).copy()
    ask = books["ask_px"].combine_chunks().flatten().to_numpy().reshape(-1, BOOK_LEVELS)
    mid = books.num_rows // 2
    bid[mid : mid + k, 0] = ask[mid : mid + k, 0] + 1.0
    arr = pa.FixedSizeListArray.from_arrays(pa.array(bid.ravel()), BOOK_LEVELS)
    i = books.schema.get_field_index("bid_px")
    return books.set_column(i, books.schema.field(i), arr)


# -- one built lake per test process ------------------------------------------------------------------------
TEST_DAYS = ("2024-01-01", "2024-01-02", "2024-01-03")
TEST_VARS = {"warmup_s": 900, "regime_window_s": 900, "grid_ms": 1000}
BAD_DAY = TEST_DAYS[-1]


@dataclass
class BuiltLake:
    root: Path
    raw: dict[str, pa.Table]
    window: object  # feature_store.feature_build.BuildWindow
    extra_vars: dict
    build_stdout: str
    build_returncode: int


_SHARED: dict[str, BuiltLake] = {}


def shared_lake() -> BuiltLake:
    """Three full synthetic days of BTCUSDT on a 1 s grid, built once per process through `dbt build`
    (models and tests), one day per run as a daily schedule runs it, with train = day 1, and reused by every
    dbt-backed test.  Days 1 and 2 are regular grids (the streaming plan of the rolling features); day 3 is planted
    bad: a 60 s hole in the book grid (the RANGE-frame plan) and 5 crossed books, so its QC tests fail (the last
    run's exit code and output are kept)."""
    if "lake" not in _SHARED:
        import atexit
        import shutil
        import tempfile

        from feature_store.feature_build import BuildWindow, run_dbt

        root = Path(tempfile.mkdtemp(prefix="scalper_feature_lake_"))
        atexit.register(shutil.rmtree, root, True)
        raw = build_raw_lake(
            root,
            symbols=("BTCUSDT",),
            days=TEST_DAYS,
            params=MarketParams(grid_ms=1000),
            drop_seconds={BAD_DAY: (40_000, 40_060)},
            crossed_rows={BAD_DAY: 5},
        )
        for day in TEST_DAYS:
            window = BuildWindow(day, day, train_start=TEST_DAYS[0], train_end=TEST_DAYS[0])
            proc = run_dbt(root, "build", window, extra_vars=TEST_VARS, check=day != BAD_DAY)
        window = BuildWindow(TEST_DAYS[0], TEST_DAYS[-1], train_start=TEST_DAYS[0], train_end=TEST_DAYS[0])
        _SHARED["lake"] = BuiltLake(root, raw, window, dict(TEST_VARS), proc.stdout, proc.returncode)
    return _SHARED["lake"]


def warehouse_table(root: Path, sql: str) -> pa.Table:
    import duckdb

    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        return con.sql(sql).arrow().read_all()
    finally:
        con.close()


def assert_close(name: str, got, want, tol: float = 1e-9) -> None:
    """The feature tests' tolerance: relative `tol` and absolute `tol` x the column's scale (max |want|);
    NaN / NULL must match NaN / NULL."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape, f"{name}: {got.shape} rows vs {want.shape} expected"
    scale = np.nanmax(np.abs(want)) if np.isfinite(want).any() else 1.0
    bad = ~np.isclose(got, want, rtol=tol, atol=tol * max(scale, 1e-300), equal_nan=True)
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise AssertionError(
            f"{name}: {bad.sum()} of {len(got)} rows differ; first at row {i}: got {got[i]!r} expected {want[i]!r}"
        )
