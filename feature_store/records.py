"""Normalized market records and their Arrow schemas: the contract of lake/raw.

Every source (synthetic, Binance captures, REST, bulk files, Tardis, on-chain providers) yields Arrow record
batches with exactly one of these schemas. Every row carries the exchange time `ts` and the local receive time
`recv_ts` (UTC, microseconds), `exchange`, `market` (spot / usdm / coinm) and `symbol`; `date` (YYYY-MM-DD of
`ts` in UTC) is the day partition. A table's natural key makes re-landing idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

BOOK_LEVELS = 20
MARKETS = ("spot", "usdm", "coinm")

TS = pa.timestamp("us", tz="UTC")
LEVELS = pa.list_(pa.float64(), BOOK_LEVELS)

_COMMON = [
    pa.field("exchange", pa.string(), nullable=False),
    pa.field("market", pa.string(), nullable=False),
    pa.field("symbol", pa.string(), nullable=False),
    pa.field("date", pa.string(), nullable=False),
    pa.field("ts", TS, nullable=False),
    pa.field("recv_ts", TS, nullable=False),
]


@dataclass(frozen=True)
class RecordType:
    """One raw table: its name under lake/raw, its schema and the columns that identify a row."""

    table: str
    schema: pa.Schema
    natural_key: tuple[str, ...]
    doc: str

    @property
    def partition_by(self) -> tuple[str, str]:
        return ("symbol", "date")


def _schema(*fields: pa.Field) -> pa.Schema:
    return pa.schema([*_COMMON, *fields])


TradeTick = RecordType(
    table="trades",
    schema=_schema(
        pa.field("trade_id", pa.int64(), nullable=False),
        pa.field("price", pa.float64(), nullable=False),
        pa.field("qty", pa.float64(), nullable=False),
        # +1: the buyer was the aggressor (taker buy), -1: the seller was.
        pa.field("side", pa.int8(), nullable=False),
    ),
    natural_key=("symbol", "trade_id"),
    doc="One executed trade (or aggregated trade): price, base quantity, aggressor side.",
)

BookSnapshot = RecordType(
    table="book_snapshots",
    schema=_schema(
        # Last exchange update id folded into this book (0 where the source has none, e.g. synthetic).
        pa.field("update_id", pa.int64(), nullable=False),
        # Level 1 first. A book thinner than 20 levels pads its tail with price NaN and size 0.
        pa.field("bid_px", LEVELS, nullable=False),
        pa.field("bid_sz", LEVELS, nullable=False),
        pa.field("ask_px", LEVELS, nullable=False),
        pa.field("ask_sz", LEVELS, nullable=False),
    ),
    natural_key=("symbol", "ts"),
    doc="Top-20 book sampled on a fixed time grid (default 100 ms): the book as of ts.",
)

BookUpdate = RecordType(
    table="book_updates",
    schema=_schema(
        pa.field("first_update_id", pa.int64(), nullable=False),
        pa.field("last_update_id", pa.int64(), nullable=False),
        # The previous event's last id (futures `pu`); -1 where the exchange does not send it (spot).
        pa.field("prev_update_id", pa.int64(), nullable=False),
        pa.field("side", pa.int8(), nullable=False),  # +1 bid, -1 ask
        pa.field("price", pa.float64(), nullable=False),
        pa.field("qty", pa.float64(), nullable=False),  # new absolute size at price; 0 removes the level
        pa.field("is_snapshot", pa.bool_(), nullable=False),  # a row of a full REST snapshot, not a diff
    ),
    natural_key=("symbol", "last_update_id", "is_snapshot", "side", "price"),
    doc="One price level changed by a depth-diff event (long format: one row per level in the event).",
)

BookTicker = RecordType(
    table="book_tickers",
    schema=_schema(
        pa.field("update_id", pa.int64(), nullable=False),
        pa.field("bid_px", pa.float64(), nullable=False),
        pa.field("bid_sz", pa.float64(), nullable=False),
        pa.field("ask_px", pa.float64(), nullable=False),
        pa.field("ask_sz", pa.float64(), nullable=False),
    ),
    natural_key=("symbol", "update_id", "ts"),
    doc="Best bid/ask event (Binance bookTicker).",
)

FundingRate = RecordType(
    table="funding_rates",
    schema=_schema(
        pa.field("rate", pa.float64(), nullable=False),  # per funding interval, e.g. 0.0001 = 1 bp per 8 h
        pa.field("mark_price", pa.float64(), nullable=True),
        pa.field("interval_hours", pa.float64(), nullable=False),
    ),
    natural_key=("symbol", "ts"),
    doc="A settled funding rate; ts is the funding time. Longs pay shorts when rate > 0.",
)

MarkPrice = RecordType(
    table="mark_prices",
    schema=_schema(
        pa.field("mark_price", pa.float64(), nullable=False),
        pa.field("index_price", pa.float64(), nullable=True),
        pa.field("est_funding_rate", pa.float64(), nullable=True),
        pa.field("next_funding_ts", TS, nullable=True),
    ),
    natural_key=("symbol", "ts"),
    doc="Mark price, index price and the predicted funding rate (Binance markPrice stream / premiumIndex).",
)

OnChainMetric = RecordType(
    table="onchain_metrics",
    schema=_schema(
        pa.field("asset", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        # When the value could first have been known: publication time plus the provider's lag.
        pa.field("available_at", TS, nullable=False),
    ),
    natural_key=("symbol", "metric", "ts"),
    doc="A daily (or coarser) on-chain metric of the symbol's base asset; ts is the period it describes.",
)

Kline = RecordType(
    table="klines",
    schema=_schema(
        pa.field("interval", pa.string(), nullable=False),  # Binance interval code: 1m, 1h, 1d, ...
        # The last instant of the bar: its values are known only after it.
        pa.field("close_ts", TS, nullable=False),
        pa.field("open", pa.float64(), nullable=False),
        pa.field("high", pa.float64(), nullable=False),
        pa.field("low", pa.float64(), nullable=False),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("volume", pa.float64(), nullable=False),
        pa.field("quote_volume", pa.float64(), nullable=False),
        pa.field("trade_count", pa.int64(), nullable=False),
        pa.field("taker_buy_volume", pa.float64(), nullable=False),
        pa.field("taker_buy_quote_volume", pa.float64(), nullable=False),
    ),
    natural_key=("symbol", "interval", "ts"),
    doc="An OHLCV bar; ts is the bar's open time, close_ts its last instant (REST klines, bulk klines).",
)

OpenInterest = RecordType(
    table="open_interest",
    schema=_schema(
        pa.field("open_interest", pa.float64(), nullable=False),  # contracts (base units on USD-M)
        pa.field("open_interest_value", pa.float64(), nullable=True),  # quote currency
        # Binance metrics archive only (null elsewhere): long/short account and taker volume ratios.
        pa.field("top_trader_ls_ratio_count", pa.float64(), nullable=True),
        pa.field("top_trader_ls_ratio_sum", pa.float64(), nullable=True),
        pa.field("ls_ratio_count", pa.float64(), nullable=True),
        pa.field("taker_ls_vol_ratio", pa.float64(), nullable=True),
    ),
    natural_key=("symbol", "ts"),
    doc="Open interest at ts (REST openInterestHist, bulk metrics, Tardis derivative_ticker).",
)

BookDepth = RecordType(
    table="book_depth",
    schema=_schema(
        # Signed distance from mid in percent: -5..-1 bid side, 1..5 ask side (Binance bookDepth archive).
        pa.field("percentage", pa.float64(), nullable=False),
        pa.field("depth", pa.float64(), nullable=False),  # cumulative base quantity within the band
        pa.field("notional", pa.float64(), nullable=False),  # cumulative quote notional within the band
    ),
    natural_key=("symbol", "ts", "percentage"),
    doc="Cumulative depth within +-N % of mid (Binance bookDepth archive): bands, not price levels.",
)

RECORD_TYPES: dict[str, RecordType] = {
    r.table: r
    for r in (
        TradeTick,
        BookSnapshot,
        BookUpdate,
        BookTicker,
        FundingRate,
        MarkPrice,
        OnChainMetric,
        Kline,
        OpenInterest,
        BookDepth,
    )
}


def record_type(table: str) -> RecordType:
    try:
        return RECORD_TYPES[table]
    except KeyError:
        raise KeyError(f"unknown raw table {table!r}; known tables: {', '.join(RECORD_TYPES)}") from None


def date_of(ts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """UTC calendar day (YYYY-MM-DD) of microsecond timestamps: the `date` partition value."""
    if isinstance(ts, pa.ChunkedArray):
        ts = ts.combine_chunks()
    if ts.null_count or len(ts) == 0:
        return pc.strftime(ts, format="%Y-%m-%d")
    # Per distinct day, not per row: strftime on every row costs seconds on a day of ticks.
    days = np.floor_divide(ts.cast(pa.int64()).to_numpy(), 86_400_000_000)
    unique, inverse = np.unique(days, return_inverse=True)
    labels = pa.array(np.datetime_as_string(unique.astype("datetime64[D]"), unit="D"))
    return pc.take(labels, pa.array(inverse.astype(np.int32)))


def us_to_ts(values_us: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(values_us, dtype=np.int64), type=pa.int64()).cast(TS)


def table_from_columns(rtype: RecordType, columns: dict[str, object]) -> pa.Table:
    """Build a table of `rtype` from plain columns (numpy arrays, lists or scalars broadcast to the row count).

    Timestamps may be given as int64 microseconds; `date` is derived from `ts` when absent; book level columns
    may be 2-D numpy arrays of shape (rows, 20).
    """
    n = None
    for value in columns.values():
        if isinstance(value, np.ndarray | list | pa.Array):
            n = len(value)
            break
    if n is None:
        raise ValueError(f"{rtype.table}: at least one column must be an array to fix the row count")
    arrays = []
    for field in rtype.schema:
        if field.name == "date" and "date" not in columns:
            arrays.append(None)  # filled below from ts
            continue
        if field.name not in columns:
            if field.nullable:
                arrays.append(pa.nulls(n, field.type))
                continue
            raise ValueError(f"{rtype.table}: missing required column {field.name!r}")
        arrays.append(_to_arrow(columns[field.name], field.type, n))
    ts_index = rtype.schema.get_field_index("ts")
    date_index = rtype.schema.get_field_index("date")
    if arrays[date_index] is None:
        arrays[date_index] = date_of(arrays[ts_index])
    return pa.Table.from_arrays(arrays, schema=rtype.schema)


def _to_arrow(value: object, typ: pa.DataType, n: int) -> pa.Array:
    if isinstance(value, pa.Array | pa.ChunkedArray):
        return value.cast(typ)
    if isinstance(value, np.ndarray | list):
        arr = np.asarray(value)
        if pa.types.is_fixed_size_list(typ):
            if arr.ndim != 2 or arr.shape[1] != typ.list_size:
                raise ValueError(
                    f"book level column must have shape (rows, {typ.list_size}), got {arr.shape}"
                )
            flat = pa.array(np.ascontiguousarray(arr, dtype=np.float64).ravel())
            return pa.FixedSizeListArray.from_arrays(flat, typ.list_size)
        if pa.types.is_timestamp(typ) and arr.dtype.kind in "iu":
            return us_to_ts(arr)
        return pa.array(arr).cast(typ)
    # a scalar broadcast to every row
    if pa.types.is_timestamp(typ) and isinstance(value, int):
        return us_to_ts(np.full(n, value, dtype=np.int64))
    return pa.array([value] * n).cast(typ)


def conform(rtype: RecordType, table: pa.Table) -> pa.Table:
    """Cast a table read back from the lake (or built elsewhere) to the record schema, column order included.

    Delta has no fixed-size list type, so book levels come back as variable lists and are cast back here.
    """
    missing = [f.name for f in rtype.schema if f.name not in table.column_names]
    if missing:
        raise ValueError(f"{rtype.table}: columns {missing} are missing; is this a {rtype.table} table?")
    return table.select(rtype.schema.names).cast(rtype.schema)
