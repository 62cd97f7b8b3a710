"""The replay engine's market-data input: numpy arrays of book snapshots, trades, funding and mark prices.

This is the one narrow reader between the feature store and the simulator. `MarketData.from_tables` takes
Arrow tables with the lake's raw schemas (feature_store.records: book_snapshots, trades, funding_rates,
mark_prices); `MarketData.from_lake` reads those tables for one symbol and date range through
feature_store.lake.Lake. Times are int64 microseconds (UTC); book levels are (rows, 20) float arrays, level 1
first, padded with price NaN and size 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from feature_store.instruments import instrument

if TYPE_CHECKING:  # pyarrow is imported where tables are read: the compiled replay alone starts faster
    import pyarrow as pa

_EMPTY_I = np.zeros(0, dtype=np.int64)
_EMPTY_F = np.zeros(0, dtype=np.float64)


@dataclass(frozen=True)
class MarketData:
    symbol: str
    tick_size: float
    lot_size: float
    book_ts: np.ndarray
    book_recv_ts: np.ndarray
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray
    trade_ts: np.ndarray
    trade_recv_ts: np.ndarray
    trade_px: np.ndarray
    trade_qty: np.ndarray
    trade_side: np.ndarray  # +1 taker buy, -1 taker sell
    funding_ts: np.ndarray
    funding_rate: np.ndarray
    funding_mark: np.ndarray  # NaN where the source has none: the engine's mark is used
    mark_ts: np.ndarray
    mark_px: np.ndarray

    @property
    def start_us(self) -> int:
        return int(self.book_ts[0])

    @property
    def end_us(self) -> int:
        return int(self.book_ts[-1])

    @property
    def duration_s(self) -> float:
        return (self.end_us - self.start_us) / 1e6

    def __post_init__(self) -> None:
        n = self.book_ts.shape[0]
        if n == 0:
            raise ValueError(f"{self.symbol}: no book snapshots; the replay needs book_snapshots rows")
        for name in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
            arr = getattr(self, name)
            if arr.ndim != 2 or arr.shape[0] != n:
                raise ValueError(f"{self.symbol}: {name} must have shape ({n}, levels), got {arr.shape}")
        for name in ("book_ts", "trade_ts", "funding_ts", "mark_ts"):
            ts = getattr(self, name)
            if ts.shape[0] > 1 and np.any(np.diff(ts) < 0):
                raise ValueError(f"{self.symbol}: {name} is not sorted; build MarketData with from_tables")

    @classmethod
    def from_arrays(
        cls,
        symbol: str,
        book_ts,
        bid_px,
        bid_sz,
        ask_px,
        ask_sz,
        book_recv_ts=None,
        trade_ts=None,
        trade_px=None,
        trade_qty=None,
        trade_side=None,
        trade_recv_ts=None,
        funding_ts=None,
        funding_rate=None,
        funding_mark=None,
        mark_ts=None,
        mark_px=None,
        tick_size: float | None = None,
        lot_size: float | None = None,
    ) -> MarketData:
        """Arrays in, already sorted by time; missing receive times mean 'seen when it happened'."""
        inst = None
        if tick_size is None or lot_size is None:
            inst = instrument(symbol, "usdm")
        book_ts = np.ascontiguousarray(book_ts, dtype=np.int64)
        trade_ts = _i(trade_ts)
        funding_ts = _i(funding_ts)
        return cls(
            symbol=symbol,
            tick_size=float(tick_size if tick_size is not None else inst.tick_size),
            lot_size=float(lot_size if lot_size is not None else inst.lot_size),
            book_ts=book_ts,
            book_recv_ts=book_ts.copy() if book_recv_ts is None else _i(book_recv_ts),
            bid_px=_levels(bid_px),
            bid_sz=_levels(bid_sz),
            ask_px=_levels(ask_px),
            ask_sz=_levels(ask_sz),
            trade_ts=trade_ts,
            trade_recv_ts=trade_ts.copy() if trade_recv_ts is None else _i(trade_recv_ts),
            trade_px=_f(trade_px),
            trade_qty=_f(trade_qty),
            trade_side=np.ascontiguousarray(trade_side if trade_side is not None else [], dtype=np.int64),
            funding_ts=funding_ts,
            funding_rate=_f(funding_rate),
            funding_mark=_f(funding_mark)
            if funding_mark is not None
            else np.full(funding_ts.shape[0], np.nan),
            mark_ts=_i(mark_ts),
            mark_px=_f(mark_px),
        )

    @classmethod
    def from_tables(cls, tables: dict[str, pa.Table], symbol: str | None = None, market: str = "usdm"):
        """Build from raw-schema tables keyed by table name. book_snapshots is required; trades, funding_rates
        and mark_prices are optional. With several symbols in a table, pass `symbol`."""
        from feature_store.records import BookSnapshot, FundingRate, MarkPrice, TradeTick, conform

        if "book_snapshots" not in tables:
            raise ValueError(
                f"from_tables needs a 'book_snapshots' table; got {sorted(tables)}. Sample the book on a grid "
                "first (feature_store.book)"
            )
        books = _one_symbol(conform(BookSnapshot, tables["book_snapshots"]), symbol, "book_snapshots")
        if books.num_rows == 0:
            raise ValueError(f"book_snapshots has no rows for symbol {symbol!r}")
        sym = symbol or books.column("symbol")[0].as_py()
        inst = instrument(sym, market)
        books = books.sort_by([("ts", "ascending")])
        trades = _optional(tables, "trades", TradeTick, sym).sort_by(
            [("ts", "ascending"), ("trade_id", "ascending")]
        )
        funding = _optional(tables, "funding_rates", FundingRate, sym).sort_by([("ts", "ascending")])
        marks = _optional(tables, "mark_prices", MarkPrice, sym).sort_by([("ts", "ascending")])
        fmark = funding.column("mark_price").to_numpy(zero_copy_only=False)
        return cls(
            symbol=sym,
            tick_size=inst.tick_size,
            lot_size=inst.lot_size,
            book_ts=_ts(books, "ts"),
            book_recv_ts=_ts(books, "recv_ts"),
            bid_px=_list2d(books, "bid_px"),
            bid_sz=_list2d(books, "bid_sz"),
            ask_px=_list2d(books, "ask_px"),
            ask_sz=_list2d(books, "ask_sz"),
            trade_ts=_ts(trades, "ts"),
            trade_recv_ts=_ts(trades, "recv_ts"),
            trade_px=_col(trades, "price"),
            trade_qty=_col(trades, "qty"),
            trade_side=_col(trades, "side").astype(np.int64),
            funding_ts=_ts(funding, "ts"),
            funding_rate=_col(funding, "rate"),
            funding_mark=np.asarray(fmark, dtype=np.float64),
            mark_ts=_ts(marks, "ts"),
            mark_px=_col(marks, "mark_price"),
        )

    @classmethod
    def from_lake(cls, lake_root, symbol: str, start: str, end: str, market: str = "usdm") -> MarketData:
        """Read raw book_snapshots, trades, funding_rates and mark_prices for `symbol`, dates start..end
        (YYYY-MM-DD, inclusive) through feature_store.lake.Lake."""
        import pyarrow.compute as pc

        from feature_store.lake import Lake

        lake = Lake(lake_root)
        tables = {
            name: lake.read(name, symbol=symbol, start=start, end=end)
            for name in ("book_snapshots", "trades", "funding_rates", "mark_prices")
        }
        tables = {k: v.filter(pc.equal(v.column("market"), market)) for k, v in tables.items()}
        if tables["book_snapshots"].num_rows == 0:
            raise ValueError(
                f"lake {lake_root}: no {market} book_snapshots for {symbol} between {start} and {end}; "
                "land them first (scalper ingest ...)"
            )
        return cls.from_tables(tables, symbol=symbol, market=market)


def _i(x) -> np.ndarray:
    return _EMPTY_I if x is None else np.ascontiguousarray(x, dtype=np.int64)


def _f(x) -> np.ndarray:
    return _EMPTY_F if x is None else np.ascontiguousarray(x, dtype=np.float64)


def _levels(x) -> np.ndarray:
    arr = np.ascontiguousarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"book level arrays must be 2-D (rows, levels), got shape {arr.shape}")
    return arr


def _one_symbol(table: pa.Table, symbol: str | None, name: str) -> pa.Table:
    import pyarrow.compute as pc

    if symbol is not None:
        return table.filter(pc.equal(table.column("symbol"), symbol))
    syms = pc.unique(table.column("symbol")).to_pylist()
    if len(syms) > 1:
        raise ValueError(f"{name} holds several symbols {syms}; pass symbol=...")
    return table


def _optional(tables: dict[str, pa.Table], name: str, rtype, symbol: str) -> pa.Table:
    from feature_store.records import conform

    table = tables.get(name)
    if table is None:
        return rtype.schema.empty_table()
    return _one_symbol(conform(rtype, table), symbol, name)


def _ts(table: pa.Table, name: str) -> np.ndarray:
    import pyarrow as pa

    col = table.column(name)
    if col.num_chunks == 0 or len(col) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.ascontiguousarray(col.combine_chunks().cast(pa.int64()).to_numpy(), dtype=np.int64)


def _col(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name)
    if len(col) == 0:
        return np.zeros(0, dtype=np.float64)
    return np.ascontiguousarray(col.to_numpy(), dtype=np.float64)


def _list2d(table: pa.Table, name: str) -> np.ndarray:
    from feature_store.records import BOOK_LEVELS

    col = table.column(name).combine_chunks()
    flat = col.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(flat, dtype=np.float64).reshape(len(col), BOOK_LEVELS)
