"""Tardis.dev downloadable CSV files (incremental_book_L2, book_snapshot_25, trades, derivative_ticker) -> records.

Tardis CSVs have a header row, µs timestamps (`timestamp` = exchange time, `local_timestamp` = Tardis's receive
time) and may be gzipped. Where each lands:
- incremental_book_L2 -> book_updates (one row per level change) and book_snapshots (the exact book rebuilt by
  feature_store.book and sampled top-20 on the grid). Tardis carries no exchange update ids, so each message
  (rows sharing local_timestamp and is_snapshot) gets a synthetic id: first local_timestamp of the file x 1000 +
  message number. Ids are therefore contiguous within a file and increase across files; a snapshot message
  (the start of each file, and after each reconnect) resets the book: the stream is rebuilt segment by segment.
- book_snapshot_25 -> book_snapshots: the top 20 of 25 levels, sampled as-of on the same grid (the last snapshot
  at or before each grid time), update_id 0 (none in the source).
- trades -> trades (side: buy +1, sell -1; 'unknown' becomes 0, which the lake quarantines as bad_side).
- derivative_ticker -> mark_prices (est_funding_rate = the exchange's current funding rate, next_funding_ts =
  funding_timestamp) and open_interest (the rows where open interest changed).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from loguru import logger
from tqdm import tqdm

from feature_store.book import SPOT, DepthEvents, rebuild_book
from feature_store.records import (
    BOOK_LEVELS,
    BookSnapshot,
    BookUpdate,
    MarkPrice,
    OpenInterest,
    TradeTick,
    table_from_columns,
)

KINDS = ("incremental_book_L2", "book_snapshot_25", "trades", "derivative_ticker")
# Tardis exchange ids -> (records exchange, market)
EXCHANGES = {
    "binance": ("binance", "spot"),
    "binance-futures": ("binance", "usdm"),
    "binance-delivery": ("binance", "coinm"),
}
SNAPSHOT_DEPTH = 25


class TardisFormatError(ValueError):
    """A file is not the Tardis CSV it was taken for; the message names the file and what is wrong."""


def kind_of(path: str | Path) -> str:
    """The Tardis data type in a file name such as binance-futures_trades_2024-08-01_BTCUSDT.csv.gz."""
    name = Path(path).name
    for kind in sorted(KINDS, key=len, reverse=True):
        if kind in name:
            return kind
    raise TardisFormatError(
        f"{path}: cannot tell the Tardis data type from the name; pass kind= one of {KINDS}"
    )


def _read(path: Path, columns: dict[str, pa.DataType]) -> pa.Table:
    """Read the named columns of a Tardis CSV (gzip is detected from the extension)."""
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types=columns,
                include_columns=list(columns),
                strings_can_be_null=True,
                true_values=["true", "True"],
                false_values=["false", "False"],
            ),
        )
    except (pa.ArrowInvalid, KeyError) as exc:
        raise TardisFormatError(
            f"{path}: not a readable Tardis CSV with columns {list(columns)}: {exc}"
        ) from None
    return table


def _origin(table: pa.Table, path: Path, market: str | None) -> tuple[str, str, str]:
    """(exchange, market, symbol) of a one-symbol file."""
    exchanges = pc.unique(table["exchange"]).to_pylist()
    symbols = pc.unique(table["symbol"]).to_pylist()
    if len(symbols) != 1 or len(exchanges) != 1:
        raise TardisFormatError(
            f"{path}: holds {len(symbols)} symbols on {exchanges}; load one file per symbol "
            "(Tardis 'datasets' downloads are one symbol per file)"
        )
    exchange, symbol = exchanges[0], symbols[0].upper()
    if exchange in EXCHANGES:
        name, default_market = EXCHANGES[exchange]
        return name, market or default_market, symbol
    if market is None:
        raise TardisFormatError(
            f"{path}: exchange {exchange!r} has no known market; pass market=spot/usdm/coinm"
        )
    return exchange, market, symbol


def _i64(table: pa.Table, name: str) -> np.ndarray:
    return table[name].to_numpy().astype(np.int64)


# -- incremental_book_L2 ---------------------------------------------------------------------------------
def _depth_events(table: pa.Table, path: Path) -> DepthEvents:
    """Group rows into messages (consecutive diff rows sharing local_timestamp; a run of snapshot rows) and give
    them synthetic ids."""
    n = table.num_rows
    local = _i64(table, "local_timestamp")
    snap = table["is_snapshot"].to_numpy(zero_copy_only=False).astype(bool)
    side_text = table["side"].to_numpy(zero_copy_only=False)
    bad = ~np.isin(side_text, ["bid", "ask"])
    if bad.any():
        raise TardisFormatError(
            f"{path}: side {side_text[bad][0]!r} at row {int(np.argmax(bad)) + 2}; expected bid/ask"
        )
    # A snapshot is one message even if its rows straddle several receive times.
    new_message = (snap[1:] != snap[:-1]) | (~snap[1:] & (local[1:] != local[:-1]))
    starts = np.flatnonzero(np.r_[True, new_message]) if n else np.zeros(0, np.int64)
    offsets = np.r_[starts, n].astype(np.int64)
    base = int(local[0]) * 1000 if n else 0
    ids = base + np.arange(len(starts), dtype=np.int64)
    is_snapshot = snap[starts] if n else np.zeros(0, bool)
    return DepthEvents(
        is_snapshot=is_snapshot,
        ts_us=_i64(table, "timestamp")[starts] if n else np.zeros(0, np.int64),
        recv_us=local[starts] if n else np.zeros(0, np.int64),
        first_id=ids,
        last_id=ids,
        prev_id=np.where(is_snapshot, -1, ids - 1),
        level_offsets=offsets,
        level_side=np.where(side_text == "bid", 1, -1).astype(np.int8),
        level_price=table["price"].to_numpy().astype(np.float64),
        level_qty=table["amount"].to_numpy().astype(np.float64),
    )


def _segments(events: DepthEvents) -> list[np.ndarray]:
    """Event indices split before every snapshot message: each segment is one snapshot and its diffs."""
    snaps = np.flatnonzero(events.is_snapshot)
    bounds = np.r_[0, snaps[snaps > 0], len(events)] if len(events) else np.zeros(1, np.int64)
    return [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def load_incremental_book(
    path: str | Path, market: str | None = None, grid_ms: int = 100
) -> dict[str, pa.Table]:
    path = Path(path)
    table = _read(
        path,
        {
            "exchange": pa.string(),
            "symbol": pa.string(),
            "timestamp": pa.int64(),
            "local_timestamp": pa.int64(),
            "is_snapshot": pa.bool_(),
            "side": pa.string(),
            "price": pa.float64(),
            "amount": pa.float64(),
        },  # fmt: skip
    )
    exchange, market, symbol = _origin(table, path, market)
    events = _depth_events(table, path)
    base = {"exchange": exchange, "market": market, "symbol": symbol}
    updates = table_from_columns(BookUpdate, {**base, **events.update_columns()})
    parts = []
    gaps = 0
    for segment in _segments(events):
        # Synthetic ids chain like spot's U == previous u + 1; each segment starts with its snapshot.
        rebuilt = rebuild_book(events.take(segment), SPOT, grid_ms=grid_ms, depth=BOOK_LEVELS)
        gaps += rebuilt.qc.gaps
        if len(rebuilt.samples):
            parts.append(table_from_columns(BookSnapshot, {**base, **rebuilt.samples.snapshot_columns()}))
    if gaps:
        logger.warning(f"{path}: {gaps} sequence gaps in the synthetic message chain (a bug: please report)")
    snapshots = pa.concat_tables(parts) if parts else BookSnapshot.schema.empty_table()
    return {"book_updates": updates, "book_snapshots": snapshots}


# -- book_snapshot_25 ------------------------------------------------------------------------------------
def sample_asof(ts_us: np.ndarray, grid_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid times from the first to the last timestamp and, for each, the index of the last row at or before it."""
    if len(ts_us) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    grid_us = grid_ms * 1000
    order_ok = np.all(np.diff(ts_us) >= 0)
    if not order_ok:
        raise ValueError("snapshot times go backwards; sort the rows by timestamp first")
    first = -((-int(ts_us[0])) // grid_us) * grid_us
    ticks = np.arange(first, int(ts_us[-1]) + 1, grid_us, dtype=np.int64)
    return ticks, np.searchsorted(ts_us, ticks, side="right") - 1


def load_book_snapshot_25(path: str | Path, market: str | None = None, grid_ms: int | None = 100) -> pa.Table:
    """book_snapshot_25 rows -> book_snapshots (top 20), as-of sampled on the grid (grid_ms=None: every row)."""
    path = Path(path)
    cols = {
        "exchange": pa.string(),
        "symbol": pa.string(),
        "timestamp": pa.int64(),
        "local_timestamp": pa.int64(),
    }
    for side in ("asks", "bids"):
        for i in range(BOOK_LEVELS):
            cols[f"{side}[{i}].price"] = pa.float64()
            cols[f"{side}[{i}].amount"] = pa.float64()
    table = _read(path, cols)
    exchange, market, symbol = _origin(table, path, market)
    table = table.sort_by([("timestamp", "ascending"), ("local_timestamp", "ascending")])

    def levels(side: str, what: str) -> np.ndarray:
        out = np.column_stack(
            [table[f"{side}[{i}].{what}"].to_numpy(zero_copy_only=False) for i in range(BOOK_LEVELS)]
        )
        return out.astype(np.float64)

    bid_px, bid_sz, ask_px, ask_sz = (
        levels("bids", "price"),
        levels("bids", "amount"),
        levels("asks", "price"),
        levels("asks", "amount"),
    )
    # Empty levels are blank in the CSV: price NaN, size 0 (the records convention for a thin book).
    for px, sz in ((bid_px, bid_sz), (ask_px, ask_sz)):
        missing = np.isnan(px) | np.isnan(sz) | (sz == 0)
        px[missing], sz[missing] = np.nan, 0.0
    ts, recv = _i64(table, "timestamp"), _i64(table, "local_timestamp")
    if grid_ms is not None:
        ticks, rows = sample_asof(ts, grid_ms)
        bid_px, bid_sz, ask_px, ask_sz, recv = (
            bid_px[rows],
            bid_sz[rows],
            ask_px[rows],
            ask_sz[rows],
            recv[rows],
        )
        ts = ticks
    return table_from_columns(
        BookSnapshot,
        {
            "exchange": exchange,
            "market": market,
            "symbol": symbol,
            "ts": ts,
            "recv_ts": recv,
            "update_id": np.zeros(len(ts), np.int64),
            "bid_px": bid_px,
            "bid_sz": bid_sz,
            "ask_px": ask_px,
            "ask_sz": ask_sz,
        },  # fmt: skip
    )


# -- trades and derivative_ticker ------------------------------------------------------------------------
def load_trades(path: str | Path, market: str | None = None) -> pa.Table:
    path = Path(path)
    table = _read(
        path,
        {
            "exchange": pa.string(),
            "symbol": pa.string(),
            "timestamp": pa.int64(),
            "local_timestamp": pa.int64(),
            "id": pa.string(),
            "side": pa.string(),
            "price": pa.float64(),
            "amount": pa.float64(),
        },  # fmt: skip
    )
    exchange, market, symbol = _origin(table, path, market)
    ids = table["id"].to_numpy(zero_copy_only=False)
    numeric = np.asarray([bool(re.fullmatch(r"\d+", str(i))) for i in ids], dtype=bool)
    if not numeric.all():
        raise TardisFormatError(
            f"{path}: trade id {ids[~numeric][0]!r} is not an integer; the trades table keys on integer ids"
        )
    side = table["side"].to_numpy(zero_copy_only=False)
    out = table_from_columns(
        TradeTick,
        {
            "exchange": exchange,
            "market": market,
            "symbol": symbol,
            "ts": _i64(table, "timestamp"),
            "recv_ts": _i64(table, "local_timestamp"),
            "trade_id": ids.astype(np.int64),
            "price": table["price"],
            "qty": table["amount"],
            "side": np.select([side == "buy", side == "sell"], [1, -1], 0).astype(np.int8),
        },  # fmt: skip
    )
    return out.sort_by([("ts", "ascending"), ("trade_id", "ascending")])


def load_derivative_ticker(path: str | Path, market: str | None = None) -> dict[str, pa.Table]:
    path = Path(path)
    table = _read(
        path,
        {
            "exchange": pa.string(),
            "symbol": pa.string(),
            "timestamp": pa.int64(),
            "local_timestamp": pa.int64(),
            "funding_timestamp": pa.int64(),
            "funding_rate": pa.float64(),
            "open_interest": pa.float64(),
            "index_price": pa.float64(),
            "mark_price": pa.float64(),
        },  # fmt: skip
    )
    exchange, market, symbol = _origin(table, path, market)
    table = table.sort_by([("timestamp", "ascending"), ("local_timestamp", "ascending")])
    base = {"exchange": exchange, "market": market, "symbol": symbol}
    marks = table.filter(pc.is_valid(table["mark_price"]))
    mark_prices = table_from_columns(
        MarkPrice,
        {
            **base,
            "ts": _i64(marks, "timestamp"),
            "recv_ts": _i64(marks, "local_timestamp"),
            "mark_price": marks["mark_price"],
            "index_price": marks["index_price"],
            "est_funding_rate": marks["funding_rate"],
            "next_funding_ts": marks["funding_timestamp"],
        },  # fmt: skip
    )
    with_oi = table.filter(pc.is_valid(table["open_interest"]))
    oi = with_oi["open_interest"].to_numpy()
    changed = np.r_[True, oi[1:] != oi[:-1]] if len(oi) else np.zeros(0, bool)
    with_oi = with_oi.filter(pa.array(changed))
    open_interest = table_from_columns(
        OpenInterest,
        {
            **base,
            "ts": _i64(with_oi, "timestamp"),
            "recv_ts": _i64(with_oi, "local_timestamp"),
            "open_interest": with_oi["open_interest"],
        },  # fmt: skip
    )
    return {"mark_prices": _dedupe_ts(mark_prices), "open_interest": _dedupe_ts(open_interest)}


def _dedupe_ts(table: pa.Table) -> pa.Table:
    """Keep the last row of each exchange timestamp (the natural key is (symbol, ts))."""
    if table.num_rows < 2:
        return table
    ts = table["ts"].cast(pa.int64()).to_numpy()
    keep = np.r_[ts[1:] != ts[:-1], True]
    return table.filter(pa.array(keep))


# -- entry point -----------------------------------------------------------------------------------------
def load_tardis(
    paths: list[str | Path] | str | Path,
    kind: str | None = None,
    market: str | None = None,
    grid_ms: int = 100,
    progress: bool | None = None,
) -> dict[str, pa.Table]:
    """Parse Tardis CSV files into record tables keyed by raw table name (tables from several files concatenated).

    kind: one of KINDS, or None to read it from each file name. market: overrides the market implied by the
    Tardis exchange id (binance -> spot, binance-futures -> usdm, binance-delivery -> coinm). grid_ms: the
    book_snapshots sampling grid. Land the tables with Lake.write.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    out: dict[str, list[pa.Table]] = {}
    for path in tqdm(
        paths, desc="tardis files", unit="file", disable=None if progress is None else not progress
    ):
        file_kind = kind or kind_of(path)
        if file_kind not in KINDS:
            raise ValueError(f"unknown Tardis kind {file_kind!r}; use one of {KINDS}")
        if file_kind == "incremental_book_L2":
            tables = load_incremental_book(path, market, grid_ms)
        elif file_kind == "book_snapshot_25":
            tables = {"book_snapshots": load_book_snapshot_25(path, market, grid_ms)}
        elif file_kind == "trades":
            tables = {"trades": load_trades(path, market)}
        else:
            tables = load_derivative_ticker(path, market)
        for name, table in tables.items():
            out.setdefault(name, []).append(table)
        logger.info(f"{path}: " + ", ".join(f"{k}={v.num_rows:,}" for k, v in tables.items()))
    return {name: pa.concat_tables(tables) for name, tables in out.items()}


class TardisSource:
    """The sources.Source interface over a folder of Tardis 'datasets' downloads, named as Tardis names them:
    <exchange>_<data type>_<YYYY-MM-DD>_<SYMBOL>.csv.gz. A day without a file of some type yields no table of it."""

    name = "tardis"

    def __init__(
        self,
        folder: str | Path,
        kinds: tuple[str, ...] = KINDS,
        market: str | None = None,
        grid_ms: int = 100,
    ):
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown Tardis kind(s) {unknown}; use {KINDS}")
        self.folder, self.kinds, self.market, self.grid_ms = Path(folder), tuple(kinds), market, grid_ms

    def tables(self) -> tuple[str, ...]:
        names = {"incremental_book_L2": ("book_updates", "book_snapshots"), "book_snapshot_25": ("book_snapshots",),
                 "trades": ("trades",), "derivative_ticker": ("mark_prices", "open_interest")}  # fmt: skip
        return tuple(dict.fromkeys(t for k in self.kinds for t in names[k]))

    def load_day(self, symbol: str, day) -> dict[str, pa.Table]:
        paths = []
        for kind in self.kinds:
            found = sorted(self.folder.glob(f"*_{kind}_{day.isoformat()}_{symbol.upper()}.csv*"))
            paths += found
        if not paths:
            logger.warning(f"{self.folder}: no Tardis file for {symbol} on {day}")
            return {}
        return load_tardis(paths, market=self.market, grid_ms=self.grid_ms, progress=False)
