"""Binance bulk archives (data.binance.vision): download, verify the sha256 CHECKSUM, parse into records.py tables.

Daily and monthly zips of aggTrades, trades, bookTicker, bookDepth, fundingRate, metrics and klines, for spot,
USD-M (futures/um) and COIN-M (futures/cm). Each zip holds one CSV, with a header row or without one (spot never
has one; futures files have had one since about 2022-08), with ms timestamps or µs ones (spot from 2025-01-01);
rows are re-sorted by time because some files interleave them. A zip whose sha256 differs from its published
CHECKSUM is refused with ChecksumMismatchError naming the file.

Where each kind lands: aggTrades/trades -> trades (trade_id = aggregate id / trade id; do not land both for one
symbol, their ids are different sequences), bookTicker -> book_tickers, bookDepth -> book_depth (cumulative depth
bands at +-1..5 % of mid, not price levels), fundingRate -> funding_rates, metrics -> open_interest (with the
long/short ratios), klines -> klines.
"""

from __future__ import annotations

import hashlib
import io
import random
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from loguru import logger
from tqdm import tqdm

from feature_store.records import (
    BookDepth,
    BookTicker,
    FundingRate,
    Kline,
    OpenInterest,
    RecordType,
    TradeTick,
    table_from_columns,
)

BASE_URL = "https://data.binance.vision"
EXCHANGE = "binance"
MARKET_PATHS = {"spot": "spot", "usdm": "futures/um", "coinm": "futures/cm"}
MICROS_THRESHOLD = 10**14  # an epoch value above this is in µs (in ms it would be the year 5138)


@dataclass(frozen=True)
class BulkKind:
    name: str
    table: str
    columns: tuple[str, ...]  # our names for the CSV's columns, by position
    text_time: bool = False  # a 'YYYY-MM-DD HH:MM:SS' time column instead of epoch numbers
    frequencies: tuple[str, ...] = ("daily", "monthly")
    markets: tuple[str, ...] = ("spot", "usdm", "coinm")


KINDS: dict[str, BulkKind] = {
    k.name: k
    for k in (
        BulkKind(
            "aggTrades", "trades", ("id", "price", "qty", "first_id", "last_id", "time", "is_buyer_maker")
        ),
        BulkKind("trades", "trades", ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker")),
        BulkKind(
            "bookTicker",
            "book_tickers",
            ("update_id", "bid_px", "bid_sz", "ask_px", "ask_sz", "transaction_time", "event_time"),
            markets=("usdm", "coinm"),
        ),
        BulkKind(
            "bookDepth",
            "book_depth",
            ("time", "percentage", "depth", "notional"),
            text_time=True,
            frequencies=("daily",),
            markets=("usdm", "coinm"),
        ),
        BulkKind(
            "fundingRate",
            "funding_rates",
            ("time", "interval_hours", "rate"),
            frequencies=("monthly",),
            markets=("usdm", "coinm"),
        ),
        BulkKind(
            "metrics",
            "open_interest",
            (
                "time",
                "symbol",
                "open_interest",
                "open_interest_value",
                "top_trader_ls_ratio_count",
                "top_trader_ls_ratio_sum",
                "ls_ratio_count",
                "taker_ls_vol_ratio",
            ),  # fmt: skip
            text_time=True,
            frequencies=("daily",),
            markets=("usdm", "coinm"),
        ),
        BulkKind(
            "klines",
            "klines",
            (
                "open_time",
                "open",
                "high",
                "low",
                "close",
                "volume",
                "close_time",
                "quote_volume",
                "count",
                "taker_buy_volume",
                "taker_buy_quote_volume",
                "ignore",
            ),  # fmt: skip
        ),
    )
}


class ChecksumMismatchError(ValueError):
    """A downloaded zip does not match its published sha256; the file is refused."""


class BulkFileMissingError(FileNotFoundError):
    """The archive has no such file (not published yet, or not for this kind / market / frequency)."""


# -- locations -------------------------------------------------------------------------------------------
def bulk_path(market: str, kind: str, symbol: str, period: str, interval: str | None = None) -> str:
    """Path of one archive under the base URL; period is YYYY-MM-DD (daily) or YYYY-MM (monthly)."""
    spec = _kind(kind, market)
    frequency = "daily" if len(period) == 10 else "monthly"
    if frequency not in spec.frequencies:
        raise ValueError(f"{kind} files are published {' and '.join(spec.frequencies)} only, not {frequency}")
    symbol = symbol.upper()
    if kind == "klines":
        if not interval:
            raise ValueError("klines files need an interval, e.g. interval='1m'")
        return f"data/{MARKET_PATHS[market]}/{frequency}/klines/{symbol}/{interval}/{symbol}-{interval}-{period}.zip"
    return f"data/{MARKET_PATHS[market]}/{frequency}/{kind}/{symbol}/{symbol}-{kind}-{period}.zip"


def _kind(kind: str, market: str) -> BulkKind:
    if market not in MARKET_PATHS:
        raise ValueError(f"unknown market {market!r}; use one of {', '.join(MARKET_PATHS)}")
    spec = KINDS.get(kind)
    if spec is None:
        raise ValueError(f"unknown bulk kind {kind!r}; use one of {', '.join(KINDS)}")
    if market not in spec.markets:
        raise ValueError(
            f"Binance publishes no {kind} archive for {market}; it exists for {', '.join(spec.markets)}"
        )
    return spec


def _day(value: str | date | datetime) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value[:10])


def periods(start: str | date, end: str | date, frequency: str) -> list[str]:
    """The daily (YYYY-MM-DD) or monthly (YYYY-MM) periods covering the days start..end, both inclusive."""
    first, last = _day(start), _day(end)
    if last < first:
        raise ValueError(f"empty range: end {last} is before start {first}")
    if frequency == "daily":
        return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    if frequency == "monthly":
        out, y, m = [], first.year, first.month
        while (y, m) <= (last.year, last.month):
            out.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out
    raise ValueError(f"frequency must be 'daily' or 'monthly', not {frequency!r}")


# -- download and verification ---------------------------------------------------------------------------
def parse_checksum(text: str, expected_name: str, source: str) -> str:
    """The sha256 hex of a `.CHECKSUM` file (`<sha256>  <file name>`)."""
    match = re.match(r"^\s*([0-9a-fA-F]{64})\s+\*?(\S+)", text)
    if not match:
        raise ChecksumMismatchError(f"{source}: not a sha256 checksum file (got {text[:80]!r})")
    digest, name = match.group(1).lower(), match.group(2)
    if name != expected_name:
        raise ChecksumMismatchError(f"{source}: the checksum is for {name!r}, not {expected_name!r}")
    return digest


def verify_zip(path: Path, expected_sha256: str, name: str) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    _check_digest(digest.hexdigest(), expected_sha256, name, path)


def _check_digest(actual: str, expected: str, name: str, path: Path | str) -> None:
    if actual != expected:
        raise ChecksumMismatchError(
            f"{name}: sha256 {actual} does not match the published CHECKSUM {expected}; the file is refused "
            f"(a corrupt download or a replaced file). Delete {path} if cached and fetch it again; if it "
            "persists, the archive itself is bad — skip that day."
        )


def _get_with_retries(
    client: httpx.Client, url: str, dest: Path | None, attempts: int, backoff_s: float
) -> bytes:
    """GET url (into dest when given, else into memory), retrying 5xx, transport errors and short bodies."""
    last = ""
    for attempt in range(attempts):
        try:
            with client.stream("GET", url) as resp:
                if resp.status_code == 404:
                    raise BulkFileMissingError(
                        f"{url}: not in the archive (HTTP 404); check symbol, market, kind and date "
                        "(daily files appear the next day; fundingRate is monthly only)"
                    )
                if resp.status_code >= 500 or resp.status_code == 429:
                    last = f"HTTP {resp.status_code}"
                    raise _Retry()
                if resp.status_code != 200:
                    raise RuntimeError(f"{url}: HTTP {resp.status_code}; the archive refused the request")
                if dest is None:
                    return resp.read()
                with open(dest, "wb") as fh:
                    for chunk in resp.iter_bytes(1 << 20):
                        fh.write(chunk)
                return b""
        except _Retry:
            pass
        except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        delay = random.uniform(0, min(30.0, backoff_s * 2**attempt))
        logger.debug(f"{url}: {last}; retry {attempt + 1} in {delay:.2f}s")
        time.sleep(delay)
    raise RuntimeError(f"{url}: gave up after {attempts} attempts (last: {last}); try again later")


class _Retry(Exception):
    pass


def download_verified(
    url: str,
    dest_dir: Path,
    client: httpx.Client | None = None,
    attempts: int = 6,
    backoff_s: float = 0.5,
) -> Path:
    """Download one zip and its `.CHECKSUM` into dest_dir and verify it; a cached copy that verifies is reused.

    Raises ChecksumMismatchError (and deletes the bad file) when the sha256 differs, BulkFileMissingError on 404.
    """
    own = client is None
    client = client or httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True)
    try:
        name = url.rsplit("/", 1)[1]
        target = dest_dir / name
        checksum_text = _get_with_retries(client, url + ".CHECKSUM", None, attempts, backoff_s).decode()
        expected = parse_checksum(checksum_text, name, url + ".CHECKSUM")
        if target.exists():
            try:
                verify_zip(target, expected, name)
                return target
            except ChecksumMismatchError:
                logger.warning(f"cached {target} does not verify; downloading it again")
        partial = target.with_suffix(".zip.part")
        _get_with_retries(client, url, partial, attempts, backoff_s)
        try:
            verify_zip(partial, expected, name)
        except ChecksumMismatchError:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        return target
    finally:
        if own:
            client.close()


# -- parsing ---------------------------------------------------------------------------------------------
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?")


def _has_header(first_line: str) -> bool:
    first_field = first_line.split(",", 1)[0].strip().strip('"')
    return not (_NUMBER.match(first_field) or _DATETIME.match(first_field))


def _epoch_to_us(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """ms or µs epoch numbers (decided per value, as files switch units) -> µs."""
    arr = np.asarray(values.to_numpy(), dtype=np.int64) if len(values) else np.zeros(0, np.int64)
    return np.where(arr >= MICROS_THRESHOLD, arr, arr * 1000)


def _text_to_us(values: pa.ChunkedArray) -> np.ndarray:
    strings = pc.utf8_slice_codeunits(pc.cast(values, pa.string()), 0, 19)
    strings = pc.replace_substring(strings, "T", " ")
    parsed = pc.strptime(strings, format="%Y-%m-%d %H:%M:%S", unit="s", error_is_null=True)
    if parsed.null_count:
        bad = pc.filter(strings, pc.is_null(parsed))[0].as_py()
        raise ValueError(f"unreadable time {bad!r}; expected 'YYYY-MM-DD HH:MM:SS'")
    return parsed.cast(pa.int64()).to_numpy() * 1_000_000


def parse_bulk_csv(
    data: bytes, kind: str, market: str, symbol: str, interval: str | None = None, source: str = "<csv>"
) -> pa.Table:
    """One archive CSV (header row or not, ms or µs times, rows in any order) -> records of `kind`'s table."""
    spec = _kind(kind, market)
    symbol = symbol.upper()
    first_line = data.split(b"\n", 1)[0].decode(errors="replace")
    if not first_line.strip():
        return _record_type(spec).schema.empty_table()
    header = _has_header(first_line)
    n_cols = len(first_line.split(","))
    names = list(spec.columns[:n_cols]) + [f"extra_{i}" for i in range(n_cols - len(spec.columns))]
    if n_cols < _required_columns(spec):
        raise ValueError(
            f"{source}: {n_cols} columns, but a {market} {kind} file has {len(spec.columns)}; is it a {kind} file?"
        )
    text_cols = {"time", "symbol"} if spec.text_time else set()
    types = {
        c: (pa.string() if c in text_cols else _column_type(c)) for c in names if not c.startswith("extra")
    }
    try:
        raw = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1 if header else 0),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                true_values=["true", "True", "TRUE"],
                false_values=["false", "False", "FALSE"],
            ),
        )
    except pa.ArrowInvalid as exc:
        raise ValueError(f"{source}: cannot parse as a {market} {kind} CSV: {exc}") from None
    table = _to_records(spec, raw, market, symbol, interval)
    return _sort_by_time(table, spec)


def _required_columns(spec: BulkKind) -> int:
    return {"aggTrades": 7, "trades": 6, "klines": 11}.get(spec.name, len(spec.columns))


def _column_type(name: str) -> pa.DataType:
    if name in ("id", "first_id", "last_id", "update_id", "time", "transaction_time", "event_time", "open_time",
                "close_time", "count"):  # fmt: skip
        return pa.int64()
    if name in ("is_buyer_maker",):
        return pa.bool_()
    if name == "ignore":
        return pa.string()
    return pa.float64()


def _record_type(spec: BulkKind) -> RecordType:
    return {
        "trades": TradeTick,
        "book_tickers": BookTicker,
        "book_depth": BookDepth,
        "funding_rates": FundingRate,
        "open_interest": OpenInterest,
        "klines": Kline,
    }[spec.table]


def _to_records(spec: BulkKind, raw: pa.Table, market: str, symbol: str, interval: str | None) -> pa.Table:
    common = {"exchange": EXCHANGE, "market": market, "symbol": symbol}
    col = raw.column
    if spec.name in ("aggTrades", "trades"):
        ts = _epoch_to_us(col("time"))
        maker = col("is_buyer_maker").to_numpy(zero_copy_only=False).astype(bool)
        return table_from_columns(
            TradeTick,
            {
                **common,
                "ts": ts,
                "recv_ts": ts,
                "trade_id": col("id"),
                "price": col("price"),
                "qty": col("qty"),
                "side": np.where(maker, -1, 1).astype(np.int8),
            },  # fmt: skip
        )
    if spec.name == "bookTicker":
        return table_from_columns(
            BookTicker,
            {
                **common,
                "ts": _epoch_to_us(col("transaction_time")),
                "recv_ts": _epoch_to_us(col("event_time")),
                "update_id": col("update_id"),
                "bid_px": col("bid_px"),
                "bid_sz": col("bid_sz"),
                "ask_px": col("ask_px"),
                "ask_sz": col("ask_sz"),
            },  # fmt: skip
        )
    if spec.name == "bookDepth":
        ts = _text_to_us(col("time"))
        return table_from_columns(
            BookDepth,
            {
                **common,
                "ts": ts,
                "recv_ts": ts,
                "percentage": col("percentage"),
                "depth": col("depth"),
                "notional": col("notional"),
            },  # fmt: skip
        )
    if spec.name == "fundingRate":
        ts = _epoch_to_us(col("time"))
        return table_from_columns(
            FundingRate,
            {**common, "ts": ts, "recv_ts": ts, "rate": col("rate"), "interval_hours": col("interval_hours")},
        )
    if spec.name == "metrics":
        ts = _text_to_us(col("time"))
        return table_from_columns(
            OpenInterest,
            {
                **common,
                "ts": ts,
                "recv_ts": ts,
                **{
                    c: col(c)
                    for c in (
                        "open_interest",
                        "open_interest_value",
                        "top_trader_ls_ratio_count",
                        "top_trader_ls_ratio_sum",
                        "ls_ratio_count",
                        "taker_ls_vol_ratio",
                    )
                },
            },  # fmt: skip
        )
    if spec.name == "klines":
        if not interval:
            raise ValueError("klines files need their interval, e.g. interval='1m'")
        close = _epoch_to_us(col("close_time"))
        return table_from_columns(
            Kline,
            {
                **common,
                "ts": _epoch_to_us(col("open_time")),
                "recv_ts": close,
                "close_ts": close,
                "interval": interval,
                "open": col("open"),
                "high": col("high"),
                "low": col("low"),
                "close": col("close"),
                "volume": col("volume"),
                "quote_volume": col("quote_volume"),
                "trade_count": col("count"),
                "taker_buy_volume": col("taker_buy_volume"),
                "taker_buy_quote_volume": col("taker_buy_quote_volume"),
            },  # fmt: skip
        )
    raise AssertionError(spec.name)


def _sort_by_time(table: pa.Table, spec: BulkKind) -> pa.Table:
    """Time order (ties by id / band), which the lake requires and some archive files break."""
    tie = {"trades": "trade_id", "book_tickers": "update_id", "book_depth": "percentage"}.get(spec.table)
    keys = [("ts", "ascending")] + ([(tie, "ascending")] if tie else [])
    return table.sort_by(keys)


def parse_bulk_zip(
    path: Path | str | bytes, kind: str, market: str, symbol: str, interval: str | None = None
) -> pa.Table:
    """A data.binance.vision zip (path or bytes) -> records. The zip must hold one CSV."""
    source = "<bytes>" if isinstance(path, bytes) else str(path)
    handle = io.BytesIO(path) if isinstance(path, bytes) else path
    try:
        with zipfile.ZipFile(handle) as zf:
            members = [n for n in zf.namelist() if n.lower().endswith(".csv")]
            if len(members) != 1:
                raise ValueError(f"{source}: expected one CSV inside, found {members or zf.namelist()}")
            data = zf.read(members[0])
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{source}: not a zip archive ({exc})") from None
    return parse_bulk_csv(data, kind, market, symbol, interval, source=f"{source}:{members[0]}")


# -- entry point -----------------------------------------------------------------------------------------
def load_bulk(
    market: str,
    kind: str,
    symbol: str,
    start: str | date,
    end: str | date,
    frequency: str | None = None,
    base_url: str = BASE_URL,
    cache_dir: str | Path | None = None,
    interval: str | None = None,
    skip_missing: bool = False,
    progress: bool | None = None,
    retry_backoff_s: float = 0.5,
) -> pa.Table:
    """Download, verify and parse the archives of one symbol for the days start..end (both inclusive).

    frequency: 'daily' or 'monthly' (default: daily where published, else monthly); monthly rows are trimmed to
    the requested days. cache_dir keeps verified zips for reuse (default: a temporary folder, removed after).
    skip_missing: log and skip files the archive does not have (default: raise BulkFileMissingError).
    retry_backoff_s: base of the jittered exponential backoff between retries of a failed download.
    Returns the records of the kind's table (see the module docstring); land them with Lake.write.
    """
    spec = _kind(kind, market)
    frequency = frequency or spec.frequencies[0]
    if frequency not in spec.frequencies:
        raise ValueError(f"{kind} files are published {' and '.join(spec.frequencies)} only, not {frequency}")
    first, last = _day(start), _day(end)
    wanted = periods(first, last, frequency)
    temp = None
    if cache_dir is None:
        temp = tempfile.mkdtemp(prefix="binance-bulk-")
        folder = Path(temp)
    else:
        folder = Path(cache_dir)
        folder.mkdir(parents=True, exist_ok=True)
    tables = []
    try:
        with httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True) as client:
            for period in tqdm(
                wanted,
                desc=f"{symbol} {kind}",
                unit="file",
                disable=None if progress is None else not progress,
            ):
                url = f"{base_url.rstrip('/')}/{bulk_path(market, kind, symbol, period, interval)}"
                try:
                    path = download_verified(url, folder, client, backoff_s=retry_backoff_s)
                except BulkFileMissingError:
                    if not skip_missing:
                        raise
                    logger.warning(f"{url}: missing from the archive, skipped")
                    continue
                tables.append(parse_bulk_zip(path, kind, market, symbol, interval))
                if temp is not None:
                    path.unlink(missing_ok=True)
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    rtype = _record_type(spec)
    if not tables:
        return rtype.schema.empty_table()
    table = pa.concat_tables(tables)
    lo = int(datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp() * 1_000_000)
    hi = lo + ((last - first).days + 1) * 86_400_000_000
    ts = table["ts"].cast(pa.int64())
    table = table.filter(pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi)))
    logger.info(
        f"{market} {symbol} {kind} {first}..{last}: {table.num_rows:,} rows from {len(tables)} file(s)"
    )
    return _sort_by_time(table, spec)


class BinanceBulkSource:
    """The sources.Source interface over `load_bulk`: one (symbol, UTC day) per call, one file per kind.

    Monthly-only kinds (fundingRate) read the month's file and keep the day; give cache_dir so the month is
    downloaded once. Days the archive lacks are skipped with a warning (skip_missing) rather than failing.
    """

    name = "binance-bulk"

    def __init__(
        self,
        market: str = "usdm",
        kinds: tuple[str, ...] = ("aggTrades", "bookTicker", "metrics"),
        base_url: str = BASE_URL,
        cache_dir: str | Path | None = None,
        skip_missing: bool = True,
    ):
        specs = [_kind(k, market) for k in kinds]
        tables = [s.table for s in specs]
        clash = sorted({t for t in tables if tables.count(t) > 1})
        if clash:
            raise ValueError(
                f"kinds {list(kinds)} fill the same table(s) {clash} with different id sequences "
                "(aggTrades and trades); pick one of them"
            )
        self.market, self.kinds, self.base_url = market, tuple(kinds), base_url
        self.cache_dir, self.skip_missing = cache_dir, skip_missing

    def tables(self) -> tuple[str, ...]:
        return tuple(KINDS[k].table for k in self.kinds)

    def load_day(self, symbol: str, day) -> dict[str, pa.Table]:
        return {
            KINDS[kind].table: load_bulk(
                self.market,
                kind,
                symbol,
                day,
                day,
                base_url=self.base_url,
                cache_dir=self.cache_dir,
                skip_missing=self.skip_missing,
            )  # fmt: skip
            for kind in self.kinds
        }
