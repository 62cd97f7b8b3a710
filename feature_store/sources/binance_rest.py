"""Binance REST history: aggTrades, klines, funding, mark/index prices, open interest -> records.py tables.

The client stays inside the exchange's request-weight budget (read from exchangeInfo.rateLimits, corrected by the
X-MBX-USED-WEIGHT-* header of every response), waits out Retry-After on 429, stops on 418 (an IP ban), and retries
5xx, timeouts and truncated bodies with jittered exponential backoff. Pages that overlap earlier ones are trimmed.
With a lake root, fetched pages and the paging cursor are checkpointed in Delta tables under <root>/state/, so a
killed run resumes where it stopped, with no duplicate and no hole. Landing into lake/raw is the caller's job.

Entry points: `fetch_history` (sync) / `fetch_history_async`; parsers for recorded responses: `parse_depth_snapshot`,
`depth_to_book_snapshot`, `weight_rule_from_exchange_info`.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from loguru import logger
from tqdm import tqdm

from feature_store.records import (
    BOOK_LEVELS,
    BookSnapshot,
    BookUpdate,
    FundingRate,
    Kline,
    MarkPrice,
    OpenInterest,
    RecordType,
    TradeTick,
    table_from_columns,
)

EXCHANGE = "binance"
MS = 1000  # microseconds per millisecond
HOUR_MS = 3_600_000


# -- endpoints -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MarketApi:
    """Paths and request weights of one Binance market. Weights are estimates to reserve before sending;
    the X-MBX-USED-WEIGHT header of each response is what the limiter trusts."""

    default_base_url: str
    exchange_info: str
    agg_trades: str
    agg_trades_weight: int
    klines: str
    depth: str
    funding: str | None = None
    premium_index: str | None = None
    mark_price_klines: str | None = None
    index_price_klines: str | None = None
    open_interest_hist: str | None = None
    # Futures aggTrades refuse a startTime/endTime window of an hour or more.
    agg_window_ms: int = HOUR_MS - 1
    # coin-M index klines and open interest are keyed by pair (BTCUSD), not symbol (BTCUSD_PERP).
    by_pair: bool = False


MARKETS: dict[str, MarketApi] = {
    "spot": MarketApi(
        "https://api.binance.com",
        "/api/v3/exchangeInfo",
        "/api/v3/aggTrades",
        4,
        "/api/v3/klines",
        "/api/v3/depth",
    ),
    "usdm": MarketApi(
        "https://fapi.binance.com",
        "/fapi/v1/exchangeInfo",
        "/fapi/v1/aggTrades",
        20,
        "/fapi/v1/klines",
        "/fapi/v1/depth",
        funding="/fapi/v1/fundingRate",
        premium_index="/fapi/v1/premiumIndex",
        mark_price_klines="/fapi/v1/markPriceKlines",
        index_price_klines="/fapi/v1/indexPriceKlines",
        open_interest_hist="/futures/data/openInterestHist",
    ),
    "coinm": MarketApi(
        "https://dapi.binance.com",
        "/dapi/v1/exchangeInfo",
        "/dapi/v1/aggTrades",
        20,
        "/dapi/v1/klines",
        "/dapi/v1/depth",
        funding="/dapi/v1/fundingRate",
        premium_index="/dapi/v1/premiumIndex",
        mark_price_klines="/dapi/v1/markPriceKlines",
        index_price_klines="/dapi/v1/indexPriceKlines",
        open_interest_hist="/futures/data/openInterestHist",
        by_pair=True,
    ),
}

# What the caller may ask for, and the raw table each lands in.
DATASETS: dict[str, str] = {
    "aggTrades": "trades",
    "klines": "klines",
    "fundingRate": "funding_rates",
    "markPrice": "mark_prices",  # history: markPriceKlines + indexPriceKlines closes
    "premiumIndex": "mark_prices",  # the current premiumIndex snapshot (one row)
    "openInterest": "open_interest",  # openInterestHist: the exchange keeps only the last 30 days
}

INTERVAL_MS = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": 24 * HOUR_MS,
    "3d": 72 * HOUR_MS,
    "1w": 168 * HOUR_MS,
}
OPEN_INTEREST_DAYS = 30


def _klines_weight(market: str, limit: int) -> int:
    if market == "spot":
        return 2
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


# -- errors ----------------------------------------------------------------------------------------------
class BinanceRestError(RuntimeError):
    """A request failed for good; the message names the URL and what to do."""


class BinanceBannedError(BinanceRestError):
    """HTTP 418: the IP is banned. Everything stops; the checkpoint keeps what was fetched."""


# -- configuration ---------------------------------------------------------------------------------------
@dataclass
class RestConfig:
    base_url: str | None = None  # None: the market's public endpoint
    page_limit: int = 1000  # rows per request (capped per endpoint)
    kline_interval: str = "1m"
    open_interest_period: str = "5m"
    weight_safety: float = 0.8  # use at most this fraction of the published weight limit
    request_timeout_s: float = 10.0
    max_attempts: int = 8  # per request, for 5xx / timeouts / truncated bodies
    max_rate_limited: int = 20  # per request, for 429s
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    max_in_flight: int = 1  # >1 risks requests already in flight when a 429 arrives
    checkpoint_every_pages: int = 20
    checkpoint_every_s: float = 30.0
    progress: bool | None = None  # None: tqdm decides (off when not a terminal)


@dataclass
class FetchStats:
    requests: int = 0
    ok: int = 0
    rate_limited_429: int = 0
    server_errors_5xx: int = 0
    timeouts: int = 0
    truncated: int = 0
    retries: int = 0
    overlap_rows_dropped: int = 0
    throttle_waits: int = 0
    throttle_wait_s: float = 0.0
    checkpoints: int = 0
    resumed_jobs: int = 0
    id_gaps: int = 0

    def summary(self) -> str:
        return ", ".join(
            f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in vars(self).items()
        )


# -- weight limiter --------------------------------------------------------------------------------------
_INTERVAL_LETTER = {"SECOND": ("S", 1), "MINUTE": ("M", 60), "HOUR": ("H", 3600), "DAY": ("D", 86400)}


@dataclass(frozen=True)
class WeightRule:
    limit: int
    window_s: float
    header: str  # e.g. x-mbx-used-weight-1m (lower case)


def weight_rule_from_exchange_info(info: dict) -> WeightRule:
    """The REQUEST_WEIGHT rule of an exchangeInfo response (the shortest window if several)."""
    rules = []
    for rule in info.get("rateLimits", []):
        if rule.get("rateLimitType") != "REQUEST_WEIGHT":
            continue
        letter, seconds = _INTERVAL_LETTER[rule["interval"]]
        num = int(rule.get("intervalNum", 1))
        rules.append(
            WeightRule(int(rule["limit"]), seconds * num, f"x-mbx-used-weight-{num}{letter}".lower())
        )
    if not rules:
        raise BinanceRestError(
            "exchangeInfo has no REQUEST_WEIGHT rate limit; is the base URL a Binance REST endpoint?"
        )
    return min(rules, key=lambda r: r.window_s)


class WeightLimiter:
    """Reserves weight before each request inside fixed windows aligned to the server clock (as Binance counts),
    trusts the server's used-weight header over its own count, and pauses everyone after a 429."""

    def __init__(self, rule: WeightRule, safety: float, clock_offset_s: float, stats: FetchStats):
        self.rule = rule
        self.budget = max(1, int(rule.limit * safety))
        self.clock_offset_s = clock_offset_s  # server time - local time
        self.stats = stats
        self.window = -1
        self.used = 0
        self.pause_until = 0.0  # local monotonic-free wall time
        self._lock = asyncio.Lock()

    def _server_now(self) -> float:
        return time.time() + self.clock_offset_s

    async def acquire(self, weight: int) -> None:
        async with self._lock:
            while True:
                now = time.time()
                if now < self.pause_until:
                    await self._sleep(self.pause_until - now)
                    continue
                window = math.floor(self._server_now() / self.rule.window_s)
                if window != self.window:
                    self.window, self.used = window, 0
                if self.used + weight <= self.budget or self.used == 0:
                    self.used += weight
                    return
                # Wait for the next window, with a margin for clock error between us and the server.
                boundary = (window + 1) * self.rule.window_s
                margin = min(0.25, 0.05 * self.rule.window_s)
                await self._sleep(boundary - self._server_now() + margin)

    async def _sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.stats.throttle_waits += 1
        self.stats.throttle_wait_s += seconds
        await asyncio.sleep(seconds)

    def observe(self, headers) -> None:
        value = headers.get(self.rule.header)
        if value is None:
            return
        try:
            used = int(value)
        except ValueError:
            return
        window = math.floor(self._server_now() / self.rule.window_s)
        if window == self.window:
            self.used = max(self.used, used)

    def pause(self, seconds: float) -> None:
        self.pause_until = max(self.pause_until, time.time() + seconds)


# -- HTTP client -----------------------------------------------------------------------------------------
class BinanceRestClient:
    """One session against one base URL: weight-aware, retrying GETs that return parsed JSON."""

    def __init__(self, market: str, config: RestConfig, stats: FetchStats):
        if market not in MARKETS:
            raise ValueError(f"unknown market {market!r}; use one of {', '.join(MARKETS)}")
        self.market = market
        self.api = MARKETS[market]
        self.config = config
        self.stats = stats
        self.base_url = (config.base_url or self.api.default_base_url).rstrip("/")
        self.session: aiohttp.ClientSession | None = None
        self.limiter: WeightLimiter | None = None
        self._slots = asyncio.Semaphore(max(1, config.max_in_flight))
        self.server_time_offset_s = 0.0

    async def __aenter__(self) -> BinanceRestClient:
        timeout = aiohttp.ClientTimeout(total=self.config.request_timeout_s)
        self.session = aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(limit=max(1, self.config.max_in_flight))
        )
        await self._load_rate_limits()
        return self

    async def __aexit__(self, *exc) -> None:
        if self.session is not None:
            await self.session.close()

    async def _load_rate_limits(self) -> None:
        # Before exchangeInfo is known, a provisional one-request-at-a-time rule keeps the first call safe.
        self.limiter = WeightLimiter(WeightRule(1, 1.0, "x-mbx-used-weight-1m"), 1.0, 0.0, self.stats)
        sent = time.time()
        info = await self.get(self.api.exchange_info, {}, weight=20 if self.market == "spot" else 1)
        received = time.time()
        rule = weight_rule_from_exchange_info(info)
        if "serverTime" in info:
            self.server_time_offset_s = info["serverTime"] / 1000 - (sent + received) / 2
        self.limiter = WeightLimiter(rule, self.config.weight_safety, self.server_time_offset_s, self.stats)
        logger.info(
            f"{self.base_url}: weight limit {rule.limit} per {rule.window_s:g}s, "
            f"using at most {self.limiter.budget}; clock offset {self.server_time_offset_s * 1000:+.0f} ms"
        )

    def server_now_ms(self) -> int:
        return int((time.time() + self.server_time_offset_s) * 1000)

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.config.backoff_cap_s, self.config.backoff_base_s * 2**attempt))

    async def get(self, path: str, params: dict, weight: int):
        assert self.session is not None and self.limiter is not None
        url = f"{self.base_url}{path}"
        failures = rate_limited = 0
        while True:
            problem = None
            async with self._slots:
                await self.limiter.acquire(weight)
                self.stats.requests += 1
                try:
                    async with self.session.get(url, params=params) as resp:
                        self.limiter.observe(resp.headers)
                        if resp.status == 200:
                            body = await resp.read()
                            try:
                                data = json.loads(body)
                            except ValueError:
                                self.stats.truncated += 1
                                problem = f"unparseable body ({len(body)} bytes)"
                            else:
                                self.stats.ok += 1
                                return data
                        elif resp.status == 429:
                            retry_after = _retry_after(resp.headers, default=self.limiter.rule.window_s)
                            # Pause before releasing the slot: nothing else may go out until it passes.
                            self.limiter.pause(retry_after)
                            self.stats.rate_limited_429 += 1
                            rate_limited += 1
                            if rate_limited > self.config.max_rate_limited:
                                raise BinanceRestError(
                                    f"{url}: still rate limited after {rate_limited} waits; lower "
                                    "RestConfig.weight_safety or run fewer fetches at once"
                                )
                            logger.warning(f"429 from {url}; waiting Retry-After {retry_after:g}s")
                            continue
                        elif resp.status == 418:
                            retry_after = _retry_after(resp.headers, default=120.0)
                            raise BinanceBannedError(
                                f"{url}: HTTP 418, this IP is banned for {retry_after:g}s ({await resp.text()}); "
                                "stopped. What was fetched is checkpointed: rerun after the ban to resume."
                            )
                        elif resp.status >= 500:
                            self.stats.server_errors_5xx += 1
                            problem = f"HTTP {resp.status}"
                        else:
                            text = (await resp.text())[:300]
                            raise BinanceRestError(
                                f"{url} {params}: HTTP {resp.status} {text}; check the symbol, market and "
                                "time range (futures aggTrades windows must be < 1 h)"
                            )
                except TimeoutError:
                    self.stats.timeouts += 1
                    problem = "timeout"
                except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
                    self.stats.truncated += 1
                    problem = f"truncated response ({type(exc).__name__})"
                except aiohttp.ClientConnectionError as exc:
                    problem = f"connection error ({exc})"
            failures += 1
            if failures >= self.config.max_attempts:
                raise BinanceRestError(
                    f"{url} {params}: gave up after {failures} attempts (last: {problem}); "
                    "the endpoint is failing, retry later"
                )
            self.stats.retries += 1
            delay = self._backoff(failures - 1)
            logger.debug(f"{url}: {problem}; retry {failures} in {delay:.2f}s")
            await asyncio.sleep(delay)


def _retry_after(headers, default: float) -> float:
    value = headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


# -- page parsers ----------------------------------------------------------------------------------------
def _f64(values) -> np.ndarray:
    return np.asarray([float(v) if v not in (None, "") else np.nan for v in values], dtype=np.float64)


def _i64(values) -> np.ndarray:
    return np.asarray([int(v) for v in values], dtype=np.int64)


def _common(market: str, symbol: str, ts_us: np.ndarray, recv_us: np.ndarray | None = None) -> dict:
    return {
        "exchange": EXCHANGE,
        "market": market,
        "symbol": symbol,
        "ts": ts_us,
        "recv_ts": ts_us if recv_us is None else recv_us,
    }


def agg_trades_table(rows: list[dict], market: str, symbol: str) -> pa.Table:
    """aggTrades JSON rows -> trades (trade_id = aggregate trade id; m = buyer is maker -> seller aggressed).

    Historical rows have no local receive time: recv_ts is the exchange time.
    """
    ts = _i64([r["T"] for r in rows]) * MS
    return table_from_columns(
        TradeTick,
        {
            **_common(market, symbol, ts),
            "trade_id": _i64([r["a"] for r in rows]),
            "price": _f64([r["p"] for r in rows]),
            "qty": _f64([r["q"] for r in rows]),
            "side": np.where(np.asarray([bool(r["m"]) for r in rows], dtype=bool), -1, 1).astype(np.int8),
        },
    )


def klines_table(rows: list[list], market: str, symbol: str, interval: str) -> pa.Table:
    """klines JSON rows -> klines; recv_ts is the bar's close time (when its values became known)."""
    close_us = _i64([r[6] for r in rows]) * MS
    return table_from_columns(
        Kline,
        {
            **_common(market, symbol, _i64([r[0] for r in rows]) * MS, close_us),
            "interval": interval,
            "close_ts": close_us,
            "open": _f64([r[1] for r in rows]),
            "high": _f64([r[2] for r in rows]),
            "low": _f64([r[3] for r in rows]),
            "close": _f64([r[4] for r in rows]),
            "volume": _f64([r[5] for r in rows]),
            "quote_volume": _f64([r[7] for r in rows]),
            "trade_count": _i64([r[8] for r in rows]),
            "taker_buy_volume": _f64([r[9] for r in rows]),
            "taker_buy_quote_volume": _f64([r[10] for r in rows]),
        },
    )


def funding_table(rows: list[dict], market: str, symbol: str) -> pa.Table:
    """fundingRate JSON rows -> funding_rates. interval_hours is NaN here; `_fill_funding_intervals` sets it
    from the gaps between funding times once the whole range is known."""
    ts = _i64([r["fundingTime"] for r in rows]) * MS
    return table_from_columns(
        FundingRate,
        {
            **_common(market, symbol, ts),
            "rate": _f64([r["fundingRate"] for r in rows]),
            "mark_price": _f64([r.get("markPrice") for r in rows]),
            "interval_hours": np.full(len(rows), np.nan),
        },
    )


def premium_index_table(payload: dict, market: str, symbol: str) -> pa.Table:
    """One premiumIndex snapshot -> one mark_prices row."""
    ts = np.asarray([int(payload["time"]) * MS], dtype=np.int64)
    return table_from_columns(
        MarkPrice,
        {
            **_common(market, symbol, ts),
            "mark_price": _f64([payload["markPrice"]]),
            "index_price": _f64([payload.get("indexPrice")]),
            "est_funding_rate": _f64([payload.get("lastFundingRate")]),
            # 0 or absent (delivery contracts, settled symbols) means no next funding time.
            "next_funding_ts": pa.array(
                [int(payload["nextFundingTime"]) * MS if payload.get("nextFundingTime") else None],
                pa.timestamp("us", tz="UTC"),
            ),  # fmt: skip
        },
    )


def open_interest_table(rows: list[dict], market: str, symbol: str) -> pa.Table:
    ts = _i64([r["timestamp"] for r in rows]) * MS
    return table_from_columns(
        OpenInterest,
        {
            **_common(market, symbol, ts),
            "open_interest": _f64([r["sumOpenInterest"] for r in rows]),
            "open_interest_value": _f64([r.get("sumOpenInterestValue") for r in rows]),
        },
    )


def parse_depth_snapshot(payload: dict, market: str, symbol: str, recv_ts_us: int) -> pa.Table:
    """A REST depth snapshot -> book_updates rows with is_snapshot=True (one per level, bids then asks).

    Futures snapshots carry the transaction time T; spot ones carry none, so ts is the receive time.
    """
    ts_us = int(payload["T"]) * MS if "T" in payload else int(recv_ts_us)
    bids, asks = payload.get("bids", []), payload.get("asks", [])
    n = len(bids) + len(asks)
    levels = bids + asks
    update_id = int(payload["lastUpdateId"])
    return table_from_columns(
        BookUpdate,
        {
            **_common(
                market,
                symbol,
                np.full(n, ts_us, dtype=np.int64),
                np.full(n, int(recv_ts_us), dtype=np.int64),
            ),
            "first_update_id": np.full(n, update_id, dtype=np.int64),
            "last_update_id": np.full(n, update_id, dtype=np.int64),
            "prev_update_id": np.full(n, -1, dtype=np.int64),
            "side": np.concatenate([np.ones(len(bids), np.int8), -np.ones(len(asks), np.int8)]),
            "price": _f64([lv[0] for lv in levels]),
            "qty": _f64([lv[1] for lv in levels]),
            "is_snapshot": np.ones(n, dtype=bool),
        },
    )


def depth_to_book_snapshot(payload: dict, market: str, symbol: str, recv_ts_us: int) -> pa.Table:
    """A REST depth snapshot -> one book_snapshots row (top 20 levels; a thinner side pads with NaN / 0)."""

    def side(levels: list, descending: bool) -> tuple[np.ndarray, np.ndarray]:
        pairs = sorted(((float(p), float(q)) for p, q in levels if float(q) > 0), reverse=descending)
        px = np.full(BOOK_LEVELS, np.nan)
        sz = np.zeros(BOOK_LEVELS)
        top = pairs[:BOOK_LEVELS]
        if top:
            px[: len(top)], sz[: len(top)] = zip(*top, strict=True)
        return px, sz

    bid_px, bid_sz = side(payload.get("bids", []), descending=True)
    ask_px, ask_sz = side(payload.get("asks", []), descending=False)
    ts_us = int(payload["T"]) * MS if "T" in payload else int(recv_ts_us)
    return table_from_columns(
        BookSnapshot,
        {
            **_common(market, symbol, np.asarray([ts_us]), np.asarray([int(recv_ts_us)])),
            "update_id": np.asarray([int(payload["lastUpdateId"])]),
            "bid_px": bid_px[None, :],
            "bid_sz": bid_sz[None, :],
            "ask_px": ask_px[None, :],
            "ask_sz": ask_sz[None, :],
        },
    )


# -- checkpoints -----------------------------------------------------------------------------------------
_CURSOR_SCHEMA = pa.schema(
    [
        pa.field("job_id", pa.string()),
        pa.field("seq", pa.int64()),
        pa.field("cursor", pa.string()),
        pa.field("rows", pa.int64()),
        pa.field("done", pa.bool_()),
        pa.field("written_at", pa.timestamp("us", tz="UTC")),
    ]
)


class CheckpointStore:
    """Cursor and staged pages of resumable jobs, as two kinds of Delta tables in the lake's state zone:
    <root>/state/rest_cursors (one row per checkpoint) and <root>/state/rest_pages_<table> (the rows fetched,
    tagged with job_id and the checkpoint seq). Pages are written before the cursor that covers them; on resume,
    pages newer than the last cursor (a kill between the two commits) are deleted, so nothing is doubled."""

    def __init__(self, lake_root: str):
        from feature_store.lake import Lake  # local import: the lake is optional for in-memory fetches

        self.lake = Lake(lake_root)
        self.cursor_uri = self.lake.table_uri("rest_cursors", zone="state")

    def pages_uri(self, table: str) -> str:
        return self.lake.table_uri(f"rest_pages_{table}", zone="state")

    def _open(self, uri: str):
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(uri, storage_options=self.lake.storage_options)
        except TableNotFoundError:
            return None

    def load(self, job_id: str, table: str) -> tuple[int, dict | None, bool, list[pa.Table]]:
        """(last seq, cursor, done, staged page tables) of a job; seq 0 and no cursor for a new job."""
        import pyarrow.dataset as ds

        cursors = self._open(self.cursor_uri)
        if cursors is None:
            return 0, None, False, []
        rows = cursors.to_pyarrow_dataset().to_table(filter=ds.field("job_id") == job_id)
        if rows.num_rows == 0:
            return 0, None, False, []
        last = rows.sort_by([("seq", "descending")]).slice(0, 1).to_pylist()[0]
        pages = self._open(self.pages_uri(table))
        staged: list[pa.Table] = []
        if pages is not None:
            pages.delete(f"job_id = '{job_id}' AND seq > {int(last['seq'])}")
            data = pages.to_pyarrow_dataset().to_table(filter=ds.field("job_id") == job_id)
            if data.num_rows:
                staged.append(data.drop_columns(["job_id", "seq"]))
        return int(last["seq"]), json.loads(last["cursor"]), bool(last["done"]), staged

    def save(
        self, job_id: str, table: str, seq: int, rows: pa.Table | None, cursor: dict, total: int, done: bool
    ):
        from deltalake import write_deltalake

        if rows is not None and rows.num_rows:
            tagged = rows.append_column("job_id", pa.array([job_id] * rows.num_rows, pa.string()))
            tagged = tagged.append_column("seq", pa.array(np.full(rows.num_rows, seq, dtype=np.int64)))
            _retry_commit(
                lambda: write_deltalake(
                    self.pages_uri(table),
                    tagged,
                    mode="append",
                    partition_by=["job_id"],
                    storage_options=self.lake.storage_options,
                )
            )
        record = pa.Table.from_pylist(
            [
                {
                    "job_id": job_id,
                    "seq": seq,
                    "cursor": json.dumps(cursor),
                    "rows": total,
                    "done": done,
                    "written_at": datetime.now(UTC),
                }
            ],
            schema=_CURSOR_SCHEMA,
        )
        _retry_commit(
            lambda: write_deltalake(
                self.cursor_uri, record, mode="append", storage_options=self.lake.storage_options
            )
        )


def _retry_commit(write: Callable[[], object], attempts: int = 12) -> None:
    """Run a Delta append, retrying when another process committed to the same state table at the same time."""
    from deltalake.exceptions import CommitFailedError, DeltaError

    for attempt in range(attempts):
        try:
            write()
            return
        except (CommitFailedError, DeltaError) as exc:
            text = str(exc).lower()
            conflict = isinstance(exc, CommitFailedError) or any(
                s in text for s in ("conflict", "concurrent", "already exists", "version")
            )
            if not conflict or attempt == attempts - 1:
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))


def clear_checkpoints(lake_root: str, market: str | None = None, symbol: str | None = None) -> int:
    """Forget checkpointed REST jobs (all, or one market / symbol) so the next fetch asks the exchange again.

    Returns the number of jobs forgotten. Their staged pages are deleted with them.
    """
    store = CheckpointStore(lake_root)
    cursors = store._open(store.cursor_uri)
    if cursors is None:
        return 0
    prefix = "-".join(p for p in (market, symbol.upper() if symbol else None) if p)
    job_ids = {j for j in cursors.to_pyarrow_dataset().to_table(columns=["job_id"])["job_id"].to_pylist()
               if j.startswith(prefix)}  # fmt: skip
    if not job_ids:
        return 0
    quoted = ", ".join(f"'{j}'" for j in sorted(job_ids))
    cursors.delete(f"job_id IN ({quoted})")
    for table in set(DATASETS.values()) | {"klines"}:
        pages = store._open(store.pages_uri(table))
        if pages is not None:
            pages.delete(f"job_id IN ({quoted})")
    logger.info(f"forgot {len(job_ids)} checkpointed REST job(s) under {store.lake.root}/state")
    return len(job_ids)


# -- paged jobs ------------------------------------------------------------------------------------------
@dataclass
class PageResult:
    rows: pa.Table | None
    cursor: dict
    done: bool
    progress_ms: int  # how far in time this job has got


@dataclass
class Job:
    """One resumable paging loop: a dataset of one symbol over [start_ms, end_ms)."""

    job_id: str
    table: str  # the record table its rows have
    start_ms: int
    end_ms: int
    first_cursor: dict
    step: Callable[[dict], object]  # async: cursor -> PageResult
    rtype: RecordType
    staged: list[pa.Table] = field(default_factory=list)


def _job_id(market: str, symbol: str, name: str, start_ms: int, end_ms: int) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{market}-{symbol}-{name}-{start_ms}-{end_ms}")


def _trim(table: pa.Table, column: str, low_us: int, high_us: int) -> pa.Table:
    col = table[column].cast(pa.int64())
    return table.filter(pc.and_(pc.greater_equal(col, low_us), pc.less(col, high_us)))


class HistoryFetcher:
    def __init__(self, client: BinanceRestClient, market: str, symbol: str, store: CheckpointStore | None):
        self.client = client
        self.market = market
        self.symbol = symbol
        self.store = store
        self.stats = client.stats
        self.config = client.config
        self.api = client.api
        self._store_lock = asyncio.Lock()
        self._stale_pages = 0

    def _stale(self, rows: list, limit: int) -> bool:
        """A full page with nothing past the cursor: the server sent an overlapping page, not the end of the
        data. True to ask again (up to a few times), False when the page is short (the data really ends)."""
        if len(rows) < limit:
            return False
        self._stale_pages += 1
        if self._stale_pages > 5:
            raise BinanceRestError(
                f"{self.symbol}: the server keeps answering with pages older than the cursor; "
                "it is not paging as Binance documents — check the base URL"
            )
        return True

    @property
    def pair(self) -> str:
        return self.symbol.split("_")[0] if self.api.by_pair else self.symbol

    def _limit(self, maximum: int) -> int:
        return max(1, min(self.config.page_limit, maximum))

    # aggTrades: locate the first id at/after start by time, then page by fromId.
    def agg_trades_job(self, start_ms: int, end_ms: int) -> Job:
        limit = self._limit(1000)
        path, weight = self.api.agg_trades, self.api.agg_trades_weight

        async def step(cursor: dict) -> PageResult:
            if "from_id" not in cursor:
                t = cursor["t"]
                window_end = min(t + self.api.agg_window_ms, end_ms - 1)
                rows = await self.client.get(
                    path, {"symbol": self.symbol, "startTime": t, "endTime": window_end, "limit": 1}, weight
                )
                rows = [r for r in rows if t <= int(r["T"]) <= window_end]
                if rows:
                    return PageResult(None, {"from_id": int(rows[0]["a"])}, False, int(rows[0]["T"]))
                nxt = window_end + 1
                return PageResult(None, {"t": nxt}, nxt >= end_ms, nxt)
            from_id = cursor["from_id"]
            rows = await self.client.get(
                path, {"symbol": self.symbol, "fromId": from_id, "limit": limit}, weight
            )
            fresh = [r for r in rows if int(r["a"]) >= from_id]
            self.stats.overlap_rows_dropped += len(rows) - len(fresh)
            if not fresh and self._stale(rows, limit):
                return PageResult(None, cursor, False, start_ms)  # a full page of old rows: ask again
            if not fresh:
                return PageResult(None, cursor, True, end_ms)  # nothing newer exists yet
            self._stale_pages = 0
            if int(fresh[0]["a"]) != from_id:
                self.stats.id_gaps += 1
                logger.warning(
                    f"{self.symbol} aggTrades: ids {from_id}..{int(fresh[0]['a']) - 1} are missing"
                )
            in_range = [r for r in fresh if int(r["T"]) < end_ms]
            done = len(in_range) < len(fresh)
            table = agg_trades_table(in_range, self.market, self.symbol) if in_range else None
            last_t = int(in_range[-1]["T"]) if in_range else end_ms
            return PageResult(table, {"from_id": int(fresh[-1]["a"]) + 1}, done, last_t)

        return Job(
            _job_id(self.market, self.symbol, "aggTrades", start_ms, end_ms),
            "trades",
            start_ms,
            end_ms,
            {"t": start_ms},
            step,
            TradeTick,
        )

    def _time_paged_job(
        self,
        name: str,
        table: str,
        rtype: RecordType,
        path: str,
        params: dict,
        weight: int,
        time_of: Callable[[object], int],
        parse: Callable[[list], pa.Table],
        start_ms: int,
        end_ms: int,
    ) -> Job:
        """A job paged by startTime = last row's time + 1 (klines, funding, open interest)."""

        async def step(cursor: dict) -> PageResult:
            t = cursor["t"]
            rows = await self.client.get(path, {**params, "startTime": t, "endTime": end_ms - 1}, weight)
            fresh = [r for r in rows if t <= time_of(r) < end_ms]
            self.stats.overlap_rows_dropped += sum(1 for r in rows if time_of(r) < t)
            if not fresh and all(time_of(r) < t for r in rows) and self._stale(rows, params["limit"]):
                return PageResult(None, cursor, False, t)  # a full page of old rows: ask again
            if not fresh:
                return PageResult(None, cursor, True, end_ms)
            self._stale_pages = 0
            nxt = time_of(fresh[-1]) + 1
            return PageResult(parse(fresh), {"t": nxt}, nxt >= end_ms, nxt)

        return Job(_job_id(self.market, self.symbol, name, start_ms, end_ms), table, start_ms, end_ms,
                   {"t": start_ms}, step, rtype)  # fmt: skip

    def klines_job(self, start_ms: int, end_ms: int, path: str | None = None, name: str = "klines") -> Job:
        interval = self.config.kline_interval
        if interval not in INTERVAL_MS and interval != "1M":
            raise ValueError(f"unknown kline interval {interval!r}; use one of {', '.join(INTERVAL_MS)}, 1M")
        limit = self._limit(1500 if self.market != "spot" else 1000)
        key = "pair" if path == self.api.index_price_klines and self.api.by_pair else "symbol"
        key_value = self.pair if key == "pair" else self.symbol
        # Only finished bars: a bar still open would land a value that changes later.
        end_ms = min(end_ms, self._finished_bar_end(interval))
        return self._time_paged_job(
            f"{name}_{interval}",
            "klines",
            Kline,
            path or self.api.klines,
            {key: key_value, "interval": interval, "limit": limit},
            _klines_weight(self.market, limit),
            lambda r: int(r[0]),
            lambda rows: klines_table(rows, self.market, self.symbol, interval),
            start_ms,
            end_ms,
        )

    def _finished_bar_end(self, interval: str) -> int:
        """Open time of the bar in progress (server clock): bars before it are final."""
        now = self.client.server_now_ms()
        if interval == "1M":
            d = datetime.fromtimestamp(now / 1000, UTC)
            return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp() * 1000)
        step = INTERVAL_MS[interval]
        anchor = 4 * 24 * HOUR_MS if interval == "1w" else 0  # weekly bars open on Mondays (1970-01-05)
        return now - (now - anchor) % step

    def funding_job(self, start_ms: int, end_ms: int) -> Job:
        self._require("funding", "fundingRate")
        return self._time_paged_job(
            "fundingRate",
            "funding_rates",
            FundingRate,
            self.api.funding,
            {"symbol": self.symbol, "limit": self._limit(1000)},
            1,
            lambda r: int(r["fundingTime"]),
            lambda rows: funding_table(rows, self.market, self.symbol),
            start_ms,
            end_ms,
        )

    def open_interest_job(self, start_ms: int, end_ms: int) -> Job:
        self._require("open_interest_hist", "openInterest")
        oldest = self.client.server_now_ms() - OPEN_INTEREST_DAYS * 24 * HOUR_MS + HOUR_MS
        if start_ms < oldest:
            logger.warning(
                f"{self.symbol} openInterestHist keeps only {OPEN_INTEREST_DAYS} days: fetching from "
                f"{_iso(oldest)} instead of {_iso(start_ms)}; older history comes from the bulk 'metrics' files"
            )
            start_ms = min(oldest, end_ms)
        params = {"period": self.config.open_interest_period, "limit": self._limit(500)}
        if self.api.by_pair:
            params.update(pair=self.pair, contractType="PERPETUAL")
        else:
            params["symbol"] = self.symbol
        return self._time_paged_job(
            f"openInterest_{self.config.open_interest_period}",
            "open_interest",
            OpenInterest,
            self.api.open_interest_hist,
            params,
            1,
            lambda r: int(r["timestamp"]),
            lambda rows: open_interest_table(rows, self.market, self.symbol),
            start_ms,
            end_ms,
        )

    def _require(self, attr: str, what: str) -> None:
        if getattr(self.api, attr) is None:
            raise ValueError(f"{what} is not available on the {self.market} market; use usdm or coinm")

    async def run(self, job: Job, position: int = 0) -> pa.Table:
        """Page a job to its end, checkpointing as configured; returns all its rows (resumed ones included)."""
        seq, cursor, done, staged = 0, None, False, []
        if self.store is not None:
            async with self._store_lock:
                seq, cursor, done, staged = await asyncio.to_thread(self.store.load, job.job_id, job.table)
            if cursor is not None:
                self.stats.resumed_jobs += 1
                logger.info(
                    f"{job.job_id}: resuming at {cursor} ({sum(t.num_rows for t in staged):,} rows staged)"
                )
        cursor = cursor or dict(job.first_cursor)
        total = sum(t.num_rows for t in staged)
        buffer: list[pa.Table] = []
        pages_since, last_flush = 0, time.monotonic()
        bar = tqdm(
            total=max(1, (job.end_ms - job.start_ms) // 1000),
            unit="s",
            desc=f"{self.symbol} {job.job_id.split('-')[2]}",
            disable=None if self.config.progress is None else not self.config.progress,
            position=position,
            leave=False,
        )
        reached = job.start_ms
        try:
            while not done:
                page = await job.step(cursor)
                cursor, done = page.cursor, page.done
                if page.rows is not None and page.rows.num_rows:
                    buffer.append(page.rows)
                    total += page.rows.num_rows
                progress = min(max(page.progress_ms, reached), job.end_ms)
                bar.update((progress - reached) // 1000)
                reached = progress
                pages_since += 1
                flush_due = pages_since >= self.config.checkpoint_every_pages or (
                    time.monotonic() - last_flush >= self.config.checkpoint_every_s
                )
                if self.store is not None and (flush_due or done):
                    seq += 1
                    rows = pa.concat_tables(buffer) if buffer else None
                    async with self._store_lock:
                        await asyncio.to_thread(self.store.save, job.job_id, job.table, seq, rows, cursor,
                                                total, done)  # fmt: skip
                    self.stats.checkpoints += 1
                    staged.extend(buffer)
                    buffer, pages_since, last_flush = [], 0, time.monotonic()
        finally:
            bar.close()
        tables = staged + buffer
        out = pa.concat_tables(tables) if tables else job.rtype.schema.empty_table()
        return out.cast(job.rtype.schema)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def _fill_funding_intervals(table: pa.Table) -> pa.Table:
    """interval_hours of each funding row = hours since the previous funding time (the first row: until the
    next one), rounded to whole hours; a lone row keeps Binance's default of 8 h, with a warning."""
    if table.num_rows == 0:
        return table
    ts = table["ts"].cast(pa.int64()).to_numpy()
    if len(ts) == 1:
        logger.warning("a single funding row: its interval is unknown, assuming Binance's default 8 h")
        hours = np.array([8.0])
    else:
        gaps = np.diff(ts) / 3.6e9
        hours = np.maximum(1.0, np.round(np.concatenate([[gaps[0]], gaps])))
    idx = table.schema.get_field_index("interval_hours")
    return table.set_column(idx, table.schema.field(idx), pa.array(hours, pa.float64()))


def _mark_prices_from_klines(mark: pa.Table, index: pa.Table, market: str, symbol: str) -> pa.Table:
    """Mark-price bar closes joined with index-price bar closes -> mark_prices rows at each bar's close time."""
    if mark.num_rows == 0:
        return MarkPrice.schema.empty_table()
    index_close = dict(zip(index["ts"].cast(pa.int64()).to_pylist(), index["close"].to_pylist(), strict=True))
    open_us = mark["ts"].cast(pa.int64()).to_numpy()
    close_us = mark["close_ts"].cast(pa.int64()).to_numpy()
    return table_from_columns(
        MarkPrice,
        {
            **_common(market, symbol, close_us),
            "mark_price": mark["close"].to_numpy(),
            "index_price": np.asarray([index_close.get(int(t), np.nan) for t in open_us], dtype=np.float64),
        },
    )


def _sorted_unique(rtype: RecordType, table: pa.Table) -> pa.Table:
    """Sort by time (then natural key) and drop natural-key repeats, logging any (there should be none)."""
    if table.num_rows == 0:
        return table
    keys = [k for k in rtype.natural_key if k not in ("symbol", "ts")]
    table = table.sort_by([("ts", "ascending"), *[(k, "ascending") for k in keys]])
    key_table = table.select(list(rtype.natural_key))
    unique = key_table.group_by(list(rtype.natural_key), use_threads=False).aggregate([])
    if unique.num_rows != table.num_rows:
        logger.warning(f"{rtype.table}: {table.num_rows - unique.num_rows} duplicate rows dropped")
        indexed = key_table.append_column("_row", pa.array(np.arange(table.num_rows)))
        first = indexed.group_by(list(rtype.natural_key), use_threads=False).aggregate([("_row", "min")])
        table = table.take(pa.array(np.sort(first["_row_min"].to_numpy())))
    return table


# -- entry points ----------------------------------------------------------------------------------------
def _to_ms(value: str | datetime | int) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


async def fetch_history_async(
    market: str,
    symbol: str,
    start: str | datetime | int,
    end: str | datetime | int,
    what: list[str],
    base_url: str | None = None,
    lake_root: str | None = None,
    config: RestConfig | None = None,
    stats: FetchStats | None = None,
) -> dict[str, pa.Table]:
    """See `fetch_history`."""
    config = config or RestConfig()
    if base_url is not None:
        config = RestConfig(**{**vars(config), "base_url": base_url})
    stats = stats if stats is not None else FetchStats()
    unknown = [w for w in what if w not in DATASETS]
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; choose from {', '.join(DATASETS)}")
    start_ms, end_ms = _to_ms(start), _to_ms(end)
    if end_ms <= start_ms:
        raise ValueError(f"empty time range: start {start!r} is not before end {end!r}")
    symbol = symbol.upper()
    store = CheckpointStore(lake_root) if lake_root is not None else None

    async with BinanceRestClient(market, config, stats) as client:
        fetcher = HistoryFetcher(client, market, symbol, store)
        now_ms = client.server_now_ms()
        if end_ms > now_ms:
            # History only: cut at the last whole minute so a rerun in the same minute resumes the same jobs.
            end_ms = now_ms - now_ms % 60_000
            logger.warning(f"end {end!r} is in the future; fetching up to {_iso(end_ms)}")
        jobs: dict[str, Job] = {}
        for name in what:
            if name == "aggTrades":
                jobs[name] = fetcher.agg_trades_job(start_ms, end_ms)
            elif name == "klines":
                jobs[name] = fetcher.klines_job(start_ms, end_ms)
            elif name == "fundingRate":
                jobs[name] = fetcher.funding_job(start_ms, end_ms)
            elif name == "openInterest":
                jobs[name] = fetcher.open_interest_job(start_ms, end_ms)
            elif name == "markPrice":
                fetcher._require("mark_price_klines", "markPrice")
                jobs["markPrice.mark"] = fetcher.klines_job(
                    start_ms, end_ms, client.api.mark_price_klines, "mark"
                )
                jobs["markPrice.index"] = fetcher.klines_job(
                    start_ms, end_ms, client.api.index_price_klines, "index"
                )
        names = list(jobs)
        tasks = [asyncio.create_task(fetcher.run(jobs[n], i)) for i, n in enumerate(names)]
        try:
            results = dict(zip(names, await asyncio.gather(*tasks), strict=True))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        snapshot = None
        if "premiumIndex" in what:
            fetcher._require("premium_index", "premiumIndex")
            payload = await client.get(client.api.premium_index, {"symbol": symbol}, 1)
            if isinstance(payload, list):  # coin-M answers with a list even for one symbol
                payload = next(p for p in payload if p["symbol"] == symbol)
            snapshot = premium_index_table(payload, market, symbol)

    out: dict[str, pa.Table] = {}
    if "aggTrades" in results:
        out["trades"] = _sorted_unique(TradeTick, results["aggTrades"])
    if "klines" in results:
        out["klines"] = _sorted_unique(Kline, results["klines"])
    if "fundingRate" in results:
        out["funding_rates"] = _fill_funding_intervals(_sorted_unique(FundingRate, results["fundingRate"]))
    if "openInterest" in results:
        out["open_interest"] = _sorted_unique(OpenInterest, results["openInterest"])
    marks = []
    if "markPrice.mark" in results:
        mark = _sorted_unique(Kline, results["markPrice.mark"])
        index = _sorted_unique(Kline, results["markPrice.index"])
        marks.append(_mark_prices_from_klines(mark, index, market, symbol))
    if snapshot is not None:
        marks.append(snapshot)
    if marks:
        out["mark_prices"] = _sorted_unique(MarkPrice, pa.concat_tables(marks))
    logger.info(
        f"{market} {symbol} {_iso(start_ms)}..{_iso(end_ms)}: "
        + ", ".join(f"{k}={v.num_rows:,}" for k, v in out.items())
        + f" | {stats.summary()}"
    )
    return out


def fetch_history(
    market: str,
    symbol: str,
    start: str | datetime | int,
    end: str | datetime | int,
    what: list[str],
    base_url: str | None = None,
    lake_root: str | None = None,
    config: RestConfig | None = None,
    stats: FetchStats | None = None,
) -> dict[str, pa.Table]:
    """Fetch Binance REST history of one symbol over [start, end) and return record tables by raw table name.

    market: spot / usdm / coinm. start, end: ISO date-times (UTC when naive), datetimes or epoch ms; end is
    exclusive ('2024-08-02' ends with the last row of 2024-08-01). what: any of aggTrades, klines, fundingRate,
    markPrice, premiumIndex, openInterest (see DATASETS for the table each fills). base_url overrides the market's
    public endpoint. lake_root: checkpoint pages and cursors under <lake_root>/state so a killed run resumes
    (None: no checkpoints). The caller lands the tables with Lake.write.
    """
    coro = fetch_history_async(market, symbol, start, end, what, base_url, lake_root, config, stats)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside an event loop (a notebook, an async app): run on a private loop in a thread.
    box: dict[str, object] = {}

    def runner() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=runner, name="binance-rest")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


class BinanceRestSource:
    """The sources.Source interface over `fetch_history`: one (symbol, UTC day) per call.

    With lake_root, fetches are checkpointed under <lake_root>/state, so a re-run of a day that was cut off
    resumes it. openInterest only reaches 30 days back (use the bulk 'metrics' files for older days).
    """

    name = "binance-rest"

    def __init__(
        self,
        market: str = "usdm",
        what: tuple[str, ...] = ("aggTrades", "fundingRate", "markPrice"),
        base_url: str | None = None,
        lake_root: str | None = None,
        config: RestConfig | None = None,
    ):
        unknown = [w for w in what if w not in DATASETS]
        if unknown:
            raise ValueError(f"unknown dataset(s) {unknown}; choose from {', '.join(DATASETS)}")
        self.market, self.what, self.base_url = market, tuple(what), base_url
        self.lake_root, self.config = lake_root, config

    def tables(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(DATASETS[w] for w in self.what))

    def load_day(self, symbol: str, day) -> dict[str, pa.Table]:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        end_ms = int(start.timestamp() * 1000) + 24 * HOUR_MS
        return fetch_history(self.market, symbol, int(start.timestamp() * 1000), end_ms, list(self.what),
                             self.base_url, self.lake_root, self.config)  # fmt: skip
