"""Binance WebSocket captures -> the raw tables of feature_store.records, with the book rebuilt exactly.

Capture format (as recorded by hftbacktest's collector, see ../shared/data/binance/README.md): gzip (or plain)
text, one message per line, `<local receive timestamp> <raw JSON exactly as Binance sent it>`. The receive
timestamp is in ns, µs or ms (detected per file from its magnitude) and becomes µs. Messages are combined-stream
envelopes `{"stream": ..., "data": ...}` (a bare event is accepted too), plus bare REST depth snapshots
`{"lastUpdateId": ..., "bids": [...], "asks": [...]}` (futures snapshots add "E" and "T") taken by the recorder.

Several files are read in the order given as one stream (a capture split by day continues across the files).
Each symbol's depth diffs and snapshots go through feature_store.book (Binance's sequencing rules, gaps counted
and never papered over); the rebuilt book is sampled on a fixed grid into book_snapshots.

Timestamps: `ts` is exchange time, ms -> µs: depth diffs use E on spot and T (transaction time) on futures; trades
use T; futures bookTicker uses T; markPrice uses E. Spot bookTicker carries no timestamp at all and spot REST
snapshots neither: for those rows `ts` is the local receive time (on a recorder whose clock is off, that time is
off too — compare `recv_ts - ts` on the other streams to see by how much).
COIN-M quantities (depth, trades, bookTicker) stay in contracts; the contract size per symbol is in the QC.

Tables: trades (@trade; @aggTrade only where a symbol has no @trade stream), book_updates (every level of every
diff and snapshot), book_tickers, book_snapshots (the rebuilt book on the grid), mark_prices and funding_rates
(@markPrice). Anything else (klines, top-N partial depth, futures insurance-fund/ADL prints) is counted in the QC,
not landed. A malformed line is counted with its file and line number (or raises, with strict=True); it is never
skipped silently. The whole capture is held in memory: hour-scale files are fine, day-scale ones need chunking.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from loguru import logger

from ..book import BookQC, DepthEvents, RebuildResult, rebuild_book, sequence_rule
from ..instruments import UnknownSymbolError, instrument
from ..records import (
    BOOK_LEVELS,
    BookSnapshot,
    BookTicker,
    BookUpdate,
    FundingRate,
    MarkPrice,
    TradeTick,
    table_from_columns,
)

EXCHANGE = "binance"
# (name, lowest value, bound, divide by, multiply by) to get µs; since 1973 (ms) / 2001 (µs, ns)
_RECV_UNITS = (
    ("ns", 10**17, 10**20, 1000, 1),
    ("us", 10**14, 10**17, 1, 1),
    ("ms", 10**11, 10**14, 1, 1000),
)
_JSON = json.JSONDecoder()


class CaptureFormatError(ValueError):
    """A capture line (or the whole capture) does not have the expected format; the message names file:line."""


@dataclass
class MalformedLine:
    file: str
    line: int
    reason: str


@dataclass
class TickerMatch:
    """Reconstructed best bid/ask against the bookTicker stream, compared where the update ids line up.

    exact: bookTicker events whose u equals the u of an applied diff (the book state at that id is known
    exactly); prices and sizes on both sides must be equal.
    as_of: after every applied diff, the last bookTicker with u <= that diff's u (only where a later bookTicker
    exists, so the ticker stream covers the moment); bookTicker pushes every change of the best level, so the
    two must agree.
    """

    exact_candidates: int = 0
    exact_matches: int = 0
    as_of_candidates: int = 0
    as_of_matches: int = 0
    mismatch_examples: list[dict] = field(default_factory=list)

    @property
    def exact_rate(self) -> float | None:
        return self.exact_matches / self.exact_candidates if self.exact_candidates else None

    @property
    def as_of_rate(self) -> float | None:
        return self.as_of_matches / self.as_of_candidates if self.as_of_candidates else None


@dataclass
class SymbolQC:
    symbol: str
    market: str
    contract_size: (
        float | None
    )  # coin-M: value of one contract; None when the symbol is not in instruments.py
    event_counts: dict[str, int]
    book: BookQC
    ticker_match: TickerMatch
    trades_landed: int = 0
    trades_source: str = "trade"  # the stream landed as trades: trade, or aggTrade when no @trade stream
    trades_not_landed: dict[str, int] = field(default_factory=dict)  # reason -> count
    trade_id_gaps: int = 0  # places where consecutive landed trade ids differ by more than 1
    trade_id_duplicates: int = 0


@dataclass
class CaptureQC:
    files: list[str]
    lines: int = 0
    recv_ts_unit: dict[str, str] = field(default_factory=dict)  # file -> ns / us / ms
    malformed: list[MalformedLine] = field(default_factory=list)
    blank_lines: int = 0
    other_symbols: dict[str, int] = field(default_factory=dict)  # events of symbols filtered out
    unsupported: dict[str, int] = field(default_factory=dict)  # event types this loader does not land
    symbols: dict[str, SymbolQC] = field(default_factory=dict)

    @property
    def malformed_count(self) -> int:
        return len(self.malformed)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["malformed_count"] = self.malformed_count
        for name, sym in self.symbols.items():
            out["symbols"][name]["book"] = sym.book.to_dict()
            out["symbols"][name]["ticker_match"]["exact_rate"] = sym.ticker_match.exact_rate
            out["symbols"][name]["ticker_match"]["as_of_rate"] = sym.ticker_match.as_of_rate
        return out


@dataclass
class CaptureResult:
    # Raw tables keyed by records table name (only tables the capture has rows for); may hold several symbols
    # and dates: the lake writer splits them by partition.
    tables: dict[str, pa.Table]
    qc: CaptureQC
    # Per symbol: the rebuild (per-diff top of book, grid samples) and the parsed depth stream it came from.
    books: dict[str, RebuildResult] = field(default_factory=dict)
    depth: dict[str, DepthEvents] = field(default_factory=dict)


class _Collector:
    """Everything parsed for one symbol, in arrival order."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        # depth diffs: (seq, ts, recv, U, u, pu, bids (k,2), asks (k,2))
        self.depth: list[tuple] = []
        self.trades: list[tuple] = []  # (ts, recv, id, price, qty, side)
        self.agg_trades: list[tuple] = []
        self.tickers: list[tuple] = []  # (ts, recv, u, b, B, a, A)
        self.marks: list[tuple] = []  # (ts, recv, mark, index, rate, next_funding_ms)
        self.trades_not_landed: Counter[str] = Counter()


@dataclass
class _Snapshot:
    seq: int
    file: str
    line: int
    ts: int
    recv: int
    last_update_id: int
    bids: np.ndarray
    asks: np.ndarray


def load_capture(
    paths: list[Path] | list[str],
    market: str,
    symbol: str | None = None,
    grid_ms: int = 100,
    strict: bool = False,
) -> CaptureResult:
    """Parse WebSocket capture files (read in the given order as one stream) into raw tables plus QC.

    market: spot, usdm or coinm (decides the sequencing rule; a capture of the other kind is refused).
    symbol: keep only this symbol (others are counted in qc.other_symbols); None keeps every symbol.
    strict: raise CaptureFormatError at the first malformed line instead of counting it in qc.malformed.
    """
    rule = sequence_rule(market)
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("load_capture needs at least one capture file")
    wanted = symbol.upper() if symbol else None
    qc = CaptureQC(files=[str(p) for p in paths])
    collectors: dict[str, _Collector] = {}
    snapshots: dict[str, list[_Snapshot]] = {}
    seq = 0
    previous_last_recv: tuple[str, int] | None = None
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"capture file {path} does not exist")
        file_snapshots: list[_Snapshot] = []
        file_depth_symbols: set[str] = set()
        first_recv = last_recv = None
        unit: tuple | None = None
        for line_no, raw in _read_lines(path, qc, strict):
            qc.lines += 1
            seq += 1
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                qc.blank_lines += 1
                continue
            try:
                recv, unit, msg = _split_line(line, unit)
                if not isinstance(msg, dict):
                    raise CaptureFormatError("the JSON is not an object")
                if "lastUpdateId" in msg:
                    file_snapshots.append(_parse_snapshot(msg, seq, str(path), line_no, recv))
                else:
                    data = msg["data"] if "stream" in msg and "data" in msg else msg
                    is_depth = data.get("e") == "depthUpdate"
                    if (is_depth or "lastUpdateId" in data) and _is_partial_depth(msg.get("stream")):
                        # Top-N book streams (<symbol>@depth5/10/20) look like diffs or snapshots, are neither.
                        kind = "partial depth (" + msg["stream"].split("@", 1)[1] + ")"
                        qc.unsupported[kind] = qc.unsupported.get(kind, 0) + 1
                    else:
                        _dispatch(data, seq, recv, market, wanted, collectors, qc)
                        if is_depth:
                            file_depth_symbols.add(str(data["s"]).upper())
            except _MarketMismatch as exc:
                raise CaptureFormatError(f"{path}:{line_no}: {exc}") from None
            except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
                reason = _reason(exc)
                if strict:
                    raise CaptureFormatError(f"{path}:{line_no}: {reason}") from exc
                qc.malformed.append(MalformedLine(file=str(path), line=line_no, reason=reason))
                continue
            if first_recv is None:
                first_recv = recv
                if previous_last_recv is not None and first_recv < previous_last_recv[1]:
                    raise CaptureFormatError(
                        f"{path} starts (receive time {first_recv} µs) before {previous_last_recv[0]} ends "
                        f"({previous_last_recv[1]} µs): pass the capture files in time order"
                    )
            last_recv = recv
        if unit is not None:
            qc.recv_ts_unit[str(path)] = unit[0]
        if last_recv is not None:
            previous_last_recv = (str(path), last_recv)
        for snap in file_snapshots:
            owner = _snapshot_owner(snap, path, file_depth_symbols, wanted, collectors)
            if owner is None:
                reason = (
                    "a REST depth snapshot carries no symbol and this file's depth streams "
                    f"({sorted(file_depth_symbols) or 'none'}) do not tell which it belongs to; "
                    "record each symbol's depth stream and snapshots in a file of its own"
                )
                if strict:
                    raise CaptureFormatError(f"{path}:{snap.line}: {reason}")
                qc.malformed.append(MalformedLine(file=str(path), line=snap.line, reason=reason))
            elif wanted is None or owner == wanted:
                snapshots.setdefault(owner, []).append(snap)
                collectors.setdefault(owner, _Collector()).counts["depth_snapshot"] += 1
            else:
                qc.other_symbols[owner] = qc.other_symbols.get(owner, 0) + 1
    for malformed in qc.malformed[:5]:
        logger.warning(
            "capture line skipped as malformed: {}:{}: {}", malformed.file, malformed.line, malformed.reason
        )
    if qc.malformed_count > 5:
        logger.warning("{} malformed capture lines in all (see qc.malformed)", qc.malformed_count)
    return _build(collectors, snapshots, market, rule, grid_ms, qc)


def _is_partial_depth(stream: object) -> bool:
    if not isinstance(stream, str):
        return False
    at = stream.find("@depth")
    return at >= 0 and stream[at + 6 : at + 7].isdigit()


class _MarketMismatch(Exception):
    pass


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON ({exc.msg} at column {exc.pos})"
    return str(exc) or type(exc).__name__


def _read_lines(path: Path, qc: CaptureQC, strict: bool):
    with path.open("rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    line_no = 0
    with gzip.open(path, "rb") if gz else path.open("rb") as fh:
        try:
            for line_no, raw in enumerate(fh, 1):  # noqa: B007 - line_no is used after the loop
                yield line_no, raw
        except (EOFError, gzip.BadGzipFile, OSError) as exc:
            reason = f"the gzip stream is cut or corrupt after this line ({exc})"
            if strict:
                raise CaptureFormatError(f"{path}:{line_no}: {reason}") from exc
            qc.malformed.append(MalformedLine(file=str(path), line=line_no, reason=reason))


def _split_line(line: bytes, unit: tuple | None) -> tuple[int, tuple, object]:
    """`<receive timestamp> <JSON>` -> (receive time in µs, the file's timestamp unit, the parsed JSON)."""
    text = line.decode("utf-8")
    space = text.find(" ")
    if space <= 0:
        raise CaptureFormatError("expected '<receive timestamp> <JSON>'")
    try:
        value = int(text[:space])
    except ValueError:
        raise CaptureFormatError(f"receive timestamp {text[:space][:30]!r} is not an integer") from None
    if unit is None or not unit[1] <= value < unit[2]:
        found = next((u for u in _RECV_UNITS if u[1] <= value < u[2]), None)
        if found is None:
            raise CaptureFormatError(f"receive timestamp {value} is neither ns, µs nor ms since the epoch")
        if unit is not None:
            raise CaptureFormatError(
                f"receive timestamp {value} is in {found[0]}, the file's earlier lines in {unit[0]}"
            )
        unit = found
    # raw_decode skips json.loads' per-call overhead; anything after the document must be blank.
    msg, end = _JSON.raw_decode(text, space + 1)
    if end != len(text) and not text[end:].isspace():
        raise CaptureFormatError(f"unexpected text after the JSON at column {end}")
    return value // unit[3] * unit[4], unit, msg


def _parse_snapshot(msg: dict, seq: int, file: str, line: int, recv: int) -> _Snapshot:
    bids = _levels(msg["bids"])
    asks = _levels(msg["asks"])
    exchange_ms = msg.get("T", msg.get("E"))
    return _Snapshot(
        seq=seq,
        file=file,
        line=line,
        ts=int(exchange_ms) * 1000 if exchange_ms is not None else recv,
        recv=recv,
        last_update_id=int(msg["lastUpdateId"]),
        bids=bids,
        asks=asks,
    )


def _levels(pairs: list) -> np.ndarray:
    if not isinstance(pairs, list):
        raise CaptureFormatError("price levels are not a list of [price, qty] pairs")
    if not pairs:
        return np.zeros((0, 2))
    levels = np.array(pairs, dtype=np.float64)
    if levels.ndim != 2 or levels.shape[1] != 2:
        raise CaptureFormatError("price levels are not a list of [price, qty] pairs")
    if not np.isfinite(levels).all() or (levels < 0).any():
        raise CaptureFormatError("a price level has a negative or non-finite price or quantity")
    return levels


def _dispatch(
    data: dict, seq: int, recv: int, market: str, wanted: str | None, collectors: dict, qc: CaptureQC
) -> None:
    """Parse one event into its symbol's collector (events of other symbols than `wanted` are only counted)."""
    etype = data.get("e")
    if etype is None and "u" in data and "B" in data and "A" in data:
        etype = "bookTicker"  # spot bookTicker carries no "e"
    if etype is None:
        raise CaptureFormatError("neither a stream event (no 'e') nor a REST depth snapshot")
    sym = str(data["s"]).upper()
    if wanted is not None and sym != wanted:
        qc.other_symbols[sym] = qc.other_symbols.get(sym, 0) + 1
        return
    if etype == "depthUpdate":
        has_pu = "pu" in data
        if market == "spot" and has_pu:
            raise _MarketMismatch("this depth event has 'pu' (a futures stream) but market is 'spot'")
        if market != "spot" and not has_pu:
            raise _MarketMismatch(f"this depth event has no 'pu' (a spot stream) but market is {market!r}")
        if market == "usdm" and "ps" in data:
            raise _MarketMismatch("this depth event has 'ps' (a COIN-M stream) but market is 'usdm'")
        exchange_ms = data["E"] if market == "spot" else data.get("T", data["E"])
        item = (
            seq,
            int(exchange_ms) * 1000,
            recv,
            int(data["U"]),
            int(data["u"]),
            int(data["pu"]) if has_pu else -1,
            _levels(data["b"]),
            _levels(data["a"]),
        )
        col = _collector(collectors, sym)
        col.depth.append(item)
    elif etype == "trade" or etype == "aggTrade":
        trade_id = int(data["t"] if etype == "trade" else data["a"])
        maker = data["m"]
        if not isinstance(maker, bool):
            raise CaptureFormatError(f"trade field 'm' is {maker!r}, not true/false")
        item = (int(data["T"]) * 1000, recv, trade_id, float(data["p"]), float(data["q"]), -1 if maker else 1)
        kind = data.get("X", "MARKET")
        col = _collector(collectors, sym)
        if kind != "MARKET":
            # Futures insurance-fund / ADL prints are not market trades: counted, not landed.
            col.trades_not_landed[f"{etype} X={kind}"] += 1
        elif etype == "trade":
            col.trades.append(item)
        else:
            col.agg_trades.append(item)
    elif etype == "bookTicker":
        exchange_ms = data.get("T", data.get("E"))
        item = (
            int(exchange_ms) * 1000 if exchange_ms is not None else recv,
            recv,
            int(data["u"]),
            float(data["b"]),
            float(data["B"]),
            float(data["a"]),
            float(data["A"]),
        )
        col = _collector(collectors, sym)
        col.tickers.append(item)
    elif etype == "markPriceUpdate":
        index = data.get("i")
        rate = data.get("r")
        next_funding = data.get("T")
        item = (
            int(data["E"]) * 1000,
            recv,
            float(data["p"]),
            float(index) if index not in (None, "") else np.nan,
            float(rate) if rate not in (None, "") else np.nan,
            int(next_funding) if next_funding not in (None, 0, "") else -1,
        )
        col = _collector(collectors, sym)
        col.marks.append(item)
    else:
        qc.unsupported[etype] = qc.unsupported.get(etype, 0) + 1
        return
    col.counts[etype] += 1


def _collector(collectors: dict[str, _Collector], sym: str) -> _Collector:
    col = collectors.get(sym)
    if col is None:
        col = collectors[sym] = _Collector()
    return col


def _snapshot_owner(
    snap: _Snapshot, path: Path, depth_symbols: set[str], wanted: str | None, collectors: dict
) -> str | None:
    """The symbol a bare REST snapshot belongs to: the only symbol whose depth stream is in the same file.

    With several depth symbols in one file the snapshot is ambiguous (futures update ids are shared across
    symbols, so its lastUpdateId cannot tell), and loading it into the wrong book could pass the sequence check.
    """
    candidates = depth_symbols
    if not candidates:
        candidates = set(collectors) if wanted is None else {wanted}
    return next(iter(candidates)) if len(candidates) == 1 else None


def _depth_events(col: _Collector, snaps: list[_Snapshot]) -> DepthEvents:
    items = [(d[0], False, d[1], d[2], d[3], d[4], d[5], d[6], d[7]) for d in col.depth]
    items += [
        (s.seq, True, s.ts, s.recv, s.last_update_id, s.last_update_id, -1, s.bids, s.asks) for s in snaps
    ]
    items.sort(key=lambda item: item[0])
    n = len(items)
    counts = np.array([len(it[7]) + len(it[8]) for it in items], dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    blocks = [block for it in items for block in (it[7], it[8])]
    levels = np.concatenate(blocks) if blocks else np.zeros((0, 2))
    sides = np.concatenate(
        [np.repeat(np.array([1, -1], dtype=np.int8), [len(it[7]), len(it[8])]) for it in items]
        or [np.zeros(0, dtype=np.int8)]
    )
    return DepthEvents(
        is_snapshot=np.array([it[1] for it in items], dtype=bool),
        ts_us=np.array([it[2] for it in items], dtype=np.int64),
        recv_us=np.array([it[3] for it in items], dtype=np.int64),
        first_id=np.array([it[4] for it in items], dtype=np.int64),
        last_id=np.array([it[5] for it in items], dtype=np.int64),
        prev_id=np.array([it[6] for it in items], dtype=np.int64),
        level_offsets=offsets,
        level_side=sides,
        level_price=np.ascontiguousarray(levels[:, 0]),
        level_qty=np.ascontiguousarray(levels[:, 1]),
    )


def _build(collectors, snapshots, market, rule, grid_ms, qc: CaptureQC) -> CaptureResult:
    parts: dict[str, list[pa.Table]] = {}
    books: dict[str, RebuildResult] = {}
    depth: dict[str, DepthEvents] = {}
    for sym in sorted(collectors):
        col = collectors[sym]
        base = {"exchange": EXCHANGE, "market": market, "symbol": sym}
        events = _depth_events(col, snapshots.get(sym, []))
        rebuilt = rebuild_book(events, rule, grid_ms=grid_ms, depth=BOOK_LEVELS)
        books[sym] = rebuilt
        depth[sym] = events
        tables = {
            "book_updates": _book_updates(events, base),
            "book_snapshots": _book_snapshots(rebuilt, base),
        }
        trades, landed_kind = col.trades, "trade"
        if not trades and col.agg_trades:
            trades, landed_kind = col.agg_trades, "aggTrade"
        elif col.agg_trades:
            # Trade and aggTrade ids are different sequences; the finer @trade stream wins.
            col.trades_not_landed["aggTrade (the @trade stream of this symbol is landed)"] += len(
                col.agg_trades
            )
        tables["trades"] = _trades(trades, base)
        tables["book_tickers"] = _tickers(col.tickers, base)
        tables["mark_prices"], tables["funding_rates"] = _marks(col.marks, base)
        for name, table in tables.items():
            if table is not None and table.num_rows:
                parts.setdefault(name, []).append(table)
        ids = np.array([t[2] for t in trades], dtype=np.int64)
        unique_ids = np.unique(ids)
        try:
            contract_size = instrument(sym, market).contract_size
        except UnknownSymbolError:
            contract_size = None
        qc.symbols[sym] = SymbolQC(
            symbol=sym,
            market=market,
            contract_size=contract_size,
            event_counts=dict(col.counts),
            book=rebuilt.qc,
            ticker_match=_ticker_match(events, rebuilt, col.tickers),
            trades_landed=len(trades),
            trades_source=landed_kind,
            trades_not_landed=dict(col.trades_not_landed),
            trade_id_gaps=int((np.diff(unique_ids) > 1).sum()),
            trade_id_duplicates=int(len(ids) - len(unique_ids)),
        )
    tables = {name: pa.concat_tables(tabs) for name, tabs in parts.items()}
    return CaptureResult(tables=tables, qc=qc, books=books, depth=depth)


def _table(rtype, columns: dict) -> pa.Table:
    """records.table_from_columns with the `date` partition computed per distinct day (strftime per row is slow)."""
    ts = np.asarray(columns["ts"], dtype=np.int64)
    days, inverse = np.unique(ts // 86_400_000_000, return_inverse=True)
    labels = pa.array(np.datetime_as_string(days.astype("datetime64[D]")))
    dates = pa.DictionaryArray.from_arrays(pa.array(inverse.astype(np.int32)), labels).cast(pa.string())
    return table_from_columns(rtype, {**columns, "date": dates})


def _book_updates(events: DepthEvents, base: dict) -> pa.Table:
    """Long format, in exchange-time order (stable: arrival order within one ts).

    A REST snapshot arrives after diffs with later exchange times (futures: its T is older; spot: its ts is the
    local receive time), so arrival order would run time backwards; replay by update id, not by row order.
    """
    events = events.take(np.argsort(events.ts_us, kind="stable"))
    return _table(BookUpdate, {**base, **events.update_columns()})


def _book_snapshots(rebuilt: RebuildResult, base: dict) -> pa.Table:
    return _table(BookSnapshot, {**base, **rebuilt.samples.snapshot_columns()})


def _trades(trades: list[tuple], base: dict) -> pa.Table | None:
    if not trades:
        return None
    arr = list(zip(*trades, strict=True))
    return _table(
        TradeTick,
        {
            **base,
            "ts": np.array(arr[0], dtype=np.int64),
            "recv_ts": np.array(arr[1], dtype=np.int64),
            "trade_id": np.array(arr[2], dtype=np.int64),
            "price": np.array(arr[3], dtype=np.float64),
            "qty": np.array(arr[4], dtype=np.float64),
            "side": np.array(arr[5], dtype=np.int8),
        },
    )


def _tickers(tickers: list[tuple], base: dict) -> pa.Table | None:
    if not tickers:
        return None
    arr = list(zip(*tickers, strict=True))
    return _table(
        BookTicker,
        {
            **base,
            "ts": np.array(arr[0], dtype=np.int64),
            "recv_ts": np.array(arr[1], dtype=np.int64),
            "update_id": np.array(arr[2], dtype=np.int64),
            "bid_px": np.array(arr[3]),
            "bid_sz": np.array(arr[4]),
            "ask_px": np.array(arr[5]),
            "ask_sz": np.array(arr[6]),
        },
    )


def _marks(marks: list[tuple], base: dict) -> tuple[pa.Table | None, pa.Table | None]:
    """mark_prices from every markPrice event; funding_rates where the capture crosses a funding time.

    The stream does not publish the settled rate. For a funding time T0 that the capture spans (events announce
    T0 as the next funding time before it, and a later T1 after it), the row takes the last predicted rate `r`
    published at or before T0 — what Binance settles unless it moved in the final second — with the mark price
    of that event and interval_hours = T1 - T0. Events just after T0 that still announce T0 are not used.
    """
    if not marks:
        return None, None
    ts, recv, mark, index, rate, next_ms = (np.array(c) for c in zip(*marks, strict=True))
    next_us = np.where(next_ms > 0, next_ms * 1000, 0).astype(np.int64)
    mark_table = _table(
        MarkPrice,
        {
            **base,
            "ts": ts.astype(np.int64),
            "recv_ts": recv.astype(np.int64),
            "mark_price": mark.astype(np.float64),
            "index_price": pa.array(index, mask=np.isnan(index)),
            "est_funding_rate": pa.array(rate, mask=np.isnan(rate)),
            "next_funding_ts": pa.array(next_us, mask=next_ms <= 0).cast(pa.timestamp("us", tz="UTC")),
        },
    )
    order = np.argsort(ts, kind="stable")
    ts, recv, mark, rate, next_ms = ts[order], recv[order], mark[order], rate[order], next_ms[order]
    rows = []
    for t0 in np.unique(next_ms[next_ms > 0]):
        later = np.flatnonzero(next_ms > t0)
        before = np.flatnonzero((next_ms == t0) & (ts <= t0 * 1000) & ~np.isnan(rate))
        if not len(later) or not len(before) or ts[later[0]] < t0 * 1000:
            continue  # the capture does not cover this funding time from both sides
        k = before[-1]
        interval_hours = (next_ms[later[0]] - t0) / 3_600_000
        rows.append((t0 * 1000, recv[k], rate[k], mark[k], interval_hours))
    if not rows:
        return mark_table, None
    cols = list(zip(*rows, strict=True))
    funding = _table(
        FundingRate,
        {
            **base,
            "ts": np.array(cols[0], dtype=np.int64),
            "recv_ts": np.array(cols[1], dtype=np.int64),
            "rate": np.array(cols[2], dtype=np.float64),
            "mark_price": np.array(cols[3], dtype=np.float64),
            "interval_hours": np.array(cols[4], dtype=np.float64),
        },
    )
    return mark_table, funding


def _ticker_match(events: DepthEvents, rebuilt: RebuildResult, tickers: list[tuple]) -> TickerMatch:
    out = TickerMatch()
    if not tickers or not rebuilt.applied.any():
        return out
    tick = np.array([t[2:] for t in tickers], dtype=np.float64)  # u, b, B, a, A
    tick_u = np.array([t[2] for t in tickers], dtype=np.int64)
    order = np.argsort(tick_u, kind="stable")
    tick_u, tick = tick_u[order], tick[order]
    applied = np.flatnonzero(rebuilt.applied)
    ev_u = events.last_id[applied]
    ev_best = rebuilt.best[applied]
    ev_order = np.argsort(ev_u, kind="stable")
    ev_u, ev_best, applied = ev_u[ev_order], ev_best[ev_order], applied[ev_order]

    pos = np.searchsorted(ev_u, tick_u)
    inside = pos < len(ev_u)
    hit = np.zeros(len(tick_u), dtype=bool)
    hit[inside] = ev_u[pos[inside]] == tick_u[inside]
    equal = np.all(ev_best[pos[hit]] == tick[hit, 1:], axis=1)
    out.exact_candidates = int(hit.sum())
    out.exact_matches = int(equal.sum())
    for k in np.flatnonzero(hit)[~equal][:3]:
        out.mismatch_examples.append(_mismatch("exact", tick[k], ev_best[pos[k]], int(ev_u[pos[k]])))

    last_le = np.searchsorted(tick_u, ev_u, side="right") - 1
    covered = (last_le >= 0) & (last_le + 1 < len(tick_u))
    equal = np.all(ev_best[covered] == tick[last_le[covered], 1:], axis=1)
    out.as_of_candidates = int(covered.sum())
    out.as_of_matches = int(equal.sum())
    for k in np.flatnonzero(covered)[~equal][:3]:
        out.mismatch_examples.append(_mismatch("as_of", tick[last_le[k]], ev_best[k], int(ev_u[k])))
    return out


def _mismatch(kind: str, ticker: np.ndarray, book: np.ndarray, diff_u: int) -> dict:
    return {
        "kind": kind,
        "diff_u": diff_u,
        "ticker_u": int(ticker[0]),
        "ticker": [float(v) for v in ticker[1:]],
        "book": [float(v) for v in book],
    }
