"""On-chain metrics from public providers -> onchain_metrics rows that cannot leak the future.

A provider turns (asset, metrics, days) into observations: the period a value describes and the value. Every row
then gets `available_at` = end of the period + the provider's publication lag, the first instant the value could
have been known; `recv_ts` is set to the same instant (a historical fetch has no real receive time). Later stages
join on available_at, never on ts, so a daily value is only used after it was published.

Providers:
- Coin Metrics community API v4 (no key; 10 requests per 6 s per IP; CC BY-NC 4.0). Daily values are stamped at
  the start of their day; Coin Metrics' FAQ says the data refreshes 7 hours after the 00:00 UTC daily close,
  so the default lag is 7 h after the day ends.
- blockchain.info charts (Bitcoin only). It publishes no schedule; the default lag is a conservative 24 h after
  the period ends. Pass lag= to either provider to change it.
Rows are written once per perpetual instrument whose base is the asset (BTC -> BTCUSDT, BTCUSD_PERP), because the
lake partitions by symbol; pass symbols= to choose.
"""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
import numpy as np
import pyarrow as pa
from loguru import logger

from feature_store.instruments import INSTRUMENTS, instrument
from feature_store.records import OnChainMetric, table_from_columns

DAY_US = 86_400_000_000
_PERIOD_US = {"minute": 60_000_000, "hour": 3_600_000_000, "day": DAY_US, "week": 7 * DAY_US}


class OnChainError(RuntimeError):
    """A provider refused or failed a request; the message names the provider, asset, metric and the fix."""


@dataclass(frozen=True)
class Observation:
    asset: str
    metric: str
    period_start_us: int
    period_us: int
    value: float


def _day(value: str | date | datetime) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value[:10])


def _day_us(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1_000_000)


class OnChainProvider(ABC):
    """A source of on-chain observations. Subclasses implement `observations`; `fetch` makes the rows."""

    name: str = ""
    default_base_url: str = ""
    default_lag: timedelta = timedelta(hours=24)
    requests_per_window: int = 10
    window_s: float = 6.0

    def __init__(
        self,
        base_url: str | None = None,
        lag: timedelta | None = None,
        max_attempts: int = 6,
        backoff_s: float = 0.5,
        timeout_s: float = 30.0,
    ):
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.lag = self.default_lag if lag is None else lag
        if self.lag < timedelta(0):
            raise ValueError(f"{self.name}: lag must not be negative, got {self.lag}")
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._sent: deque[float] = deque()
        self.requests = 0
        self.retries = 0

    @abstractmethod
    def observations(self, asset: str, metrics: list[str], start: date, end: date) -> list[Observation]:
        """Values of `metrics` for `asset` over the days start..end (both inclusive)."""

    def _throttle(self) -> None:
        """Stay under the provider's request rate (a sliding window)."""
        now = time.monotonic()
        while self._sent and now - self._sent[0] >= self.window_s:
            self._sent.popleft()
        if len(self._sent) >= self.requests_per_window:
            time.sleep(self.window_s - (now - self._sent[0]))
            self._sent.popleft()
        self._sent.append(time.monotonic())

    def get_json(self, client: httpx.Client, url: str, params: dict | None = None) -> dict:
        last = ""
        for attempt in range(self.max_attempts):
            self._throttle()
            self.requests += 1
            try:
                resp = client.get(url, params=params)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code == 200:
                    try:
                        return resp.json()
                    except ValueError:
                        last = "unparseable body"
                elif resp.status_code == 429 or resp.status_code >= 500:
                    last = f"HTTP {resp.status_code}"
                    retry_after = resp.headers.get("Retry-After")
                    if resp.status_code == 429 and retry_after is not None:
                        self.retries += 1
                        time.sleep(max(0.0, float(retry_after)))
                        continue
                else:
                    raise OnChainError(f"{self.name}: {url} {params or ''} -> HTTP {resp.status_code}: "
                                       f"{_error_text(resp)}; check the asset and metric names")  # fmt: skip
            self.retries += 1
            delay = random.uniform(0, min(30.0, self.backoff_s * 2**attempt))
            logger.debug(f"{self.name}: {url}: {last}; retry in {delay:.2f}s")
            time.sleep(delay)
        raise OnChainError(
            f"{self.name}: {url} failed {self.max_attempts} times (last: {last}); try again later"
        )

    def fetch(
        self,
        asset: str,
        metrics: list[str],
        start: str | date,
        end: str | date,
        symbols: list[str] | None = None,
    ) -> pa.Table:
        """onchain_metrics rows of `asset` for the days start..end (inclusive), one copy per symbol."""
        first, last = _day(start), _day(end)
        if last < first:
            raise ValueError(f"empty range: end {last} is before start {first}")
        if not metrics:
            raise ValueError(f"{self.name}: name at least one metric")
        targets = _symbols_for(asset, symbols)
        obs = [o for o in self.observations(asset.lower(), metrics, first, last)
               if _day_us(first) <= o.period_start_us < _day_us(last) + DAY_US]  # fmt: skip
        lag_us = int(self.lag.total_seconds() * 1_000_000)
        parts = []
        for inst in targets:
            ts = np.asarray([o.period_start_us for o in obs], dtype=np.int64)
            available = ts + np.asarray([o.period_us for o in obs], dtype=np.int64) + lag_us
            parts.append(
                table_from_columns(
                    OnChainMetric,
                    {
                        "exchange": self.name,
                        "market": inst.market,
                        "symbol": inst.symbol,
                        "ts": ts,
                        "recv_ts": available,
                        "asset": [o.asset.upper() for o in obs],
                        "metric": [o.metric for o in obs],
                        "value": np.asarray([o.value for o in obs], dtype=np.float64),
                        "available_at": available,
                    },  # fmt: skip
                )
            )
        table = pa.concat_tables(parts).sort_by([("symbol", "ascending"), ("ts", "ascending"),
                                                 ("metric", "ascending")])  # fmt: skip
        logger.info(
            f"{self.name} {asset} {metrics} {first}..{last}: {len(obs)} values x {len(targets)} symbol(s)"
        )
        return table


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200]
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", body["error"]))
    return str(body)[:200]


def _symbols_for(asset: str, symbols: list[str] | None):
    if symbols is not None:
        out = []
        for s in symbols:
            inst = INSTRUMENTS.get(s.upper())
            if inst is None:
                inst = instrument(s, "spot")  # raises a clear error when unknown
            out.append(inst)
        return out
    out = [i for i in INSTRUMENTS.values() if i.base == asset.upper()]
    if not out:
        raise ValueError(
            f"no instrument has base asset {asset.upper()!r}; pass symbols= or add one to feature_store/instruments.py"
        )
    return out


class CoinMetricsCommunity(OnChainProvider):
    """Coin Metrics community API v4: GET /timeseries/asset-metrics, paged by next_page_url."""

    name = "coinmetrics"
    default_base_url = "https://community-api.coinmetrics.io/v4"
    default_lag = timedelta(
        hours=7
    )  # "the data refreshes 7 hours after the daily close" (coinmetrics.io/faq)
    requests_per_window = 10
    window_s = 6.0
    page_size = 1000

    def observations(self, asset: str, metrics: list[str], start: date, end: date) -> list[Observation]:
        params = {
            "assets": asset,
            "metrics": ",".join(metrics),
            "frequency": "1d",
            "start_time": start.isoformat(),
            "end_time": end.isoformat(),
            "page_size": self.page_size,
        }
        out: list[Observation] = []
        url: str | None = f"{self.base_url}/timeseries/asset-metrics"
        with httpx.Client(timeout=self.timeout_s, follow_redirects=True) as client:
            while url:
                body = self.get_json(client, url, params)
                if "error" in body:
                    raise OnChainError(f"{self.name}: {asset} {metrics}: {_error_text_body(body)}")
                for row in body.get("data", []):
                    period_start = _parse_time_us(row["time"])
                    for metric in metrics:
                        value = row.get(metric)
                        if value is None or value == "":
                            continue  # the metric has no value that day: no row rather than a NaN
                        out.append(Observation(row["asset"], metric, period_start, DAY_US, float(value)))
                url, params = body.get("next_page_url"), None  # the next page URL carries every parameter
        return out


def _error_text_body(body: dict) -> str:
    err = body.get("error")
    return str(err.get("message", err)) if isinstance(err, dict) else str(err)


def _parse_time_us(text: str) -> int:
    """Coin Metrics time '2024-01-01T00:00:00.000000000Z' -> µs (nanosecond digits cut to µs)."""
    head, _, frac = text.rstrip("Z").partition(".")
    base = datetime.fromisoformat(head).replace(tzinfo=UTC)
    micros = int((frac + "000000")[:6]) if frac else 0
    return int(base.timestamp()) * 1_000_000 + micros


class BlockchainInfoCharts(OnChainProvider):
    """blockchain.info charts API (Bitcoin): GET /charts/{name}?timespan=..&start=..&format=json&sampled=false."""

    name = "blockchain.info"
    default_base_url = "https://api.blockchain.info"
    default_lag = timedelta(hours=24)  # no published schedule: a conservative day after the period ends
    requests_per_window = 5
    window_s = 10.0

    def observations(self, asset: str, metrics: list[str], start: date, end: date) -> list[Observation]:
        if asset.lower() != "btc":
            raise ValueError(f"{self.name} charts cover Bitcoin only, not {asset!r}; use Coin Metrics for it")
        out: list[Observation] = []
        days = (end - start).days + 1
        with httpx.Client(timeout=self.timeout_s, follow_redirects=True) as client:
            for chart in metrics:
                body = self.get_json(
                    client,
                    f"{self.base_url}/charts/{chart}",
                    {
                        "timespan": f"{days}days",
                        "start": start.isoformat(),
                        "format": "json",
                        "sampled": "false",
                    },
                )
                if body.get("status") not in (None, "ok"):
                    raise OnChainError(f"{self.name}: chart {chart!r}: {body}")
                period = _PERIOD_US.get(str(body.get("period", "day")).lower())
                if period is None:
                    raise OnChainError(
                        f"{self.name}: chart {chart!r} has an unknown period {body.get('period')!r}"
                    )
                for point in body.get("values", []):
                    out.append(
                        Observation("btc", chart, int(point["x"]) * 1_000_000, period, float(point["y"]))
                    )
        return out


PROVIDERS: dict[str, type[OnChainProvider]] = {
    CoinMetricsCommunity.name: CoinMetricsCommunity,
    BlockchainInfoCharts.name: BlockchainInfoCharts,
}


def fetch_onchain(
    provider: str | OnChainProvider,
    asset: str,
    metrics: list[str],
    start: str | date,
    end: str | date,
    base_url: str | None = None,
    symbols: list[str] | None = None,
    lag: timedelta | None = None,
) -> pa.Table:
    """onchain_metrics rows for `asset` (e.g. 'btc') over the days start..end (inclusive).

    provider: 'coinmetrics', 'blockchain.info' or an OnChainProvider instance. base_url and lag override the
    provider's defaults. Land the table with Lake.write('onchain_metrics', ...).
    """
    if isinstance(provider, str):
        cls = PROVIDERS.get(provider)
        if cls is None:
            raise ValueError(f"unknown on-chain provider {provider!r}; use one of {', '.join(PROVIDERS)}")
        provider = cls(base_url=base_url, lag=lag)
    return provider.fetch(asset, metrics, start, end, symbols)


class OnChainSource:
    """The sources.Source interface over `fetch_onchain`: one (symbol, UTC day) per call, for the symbol's base
    asset (BTCUSDT -> btc)."""

    name = "onchain"

    def __init__(
        self,
        provider: str = CoinMetricsCommunity.name,
        metrics: tuple[str, ...] = ("AdrActCnt", "TxCnt"),
        base_url: str | None = None,
        lag: timedelta | None = None,
    ):
        cls = PROVIDERS.get(provider)
        if cls is None:
            raise ValueError(f"unknown on-chain provider {provider!r}; use one of {', '.join(PROVIDERS)}")
        self.provider = cls(base_url=base_url, lag=lag)
        self.metrics = tuple(metrics)

    def tables(self) -> tuple[str, ...]:
        return ("onchain_metrics",)

    def load_day(self, symbol: str, day) -> dict[str, pa.Table]:
        inst = INSTRUMENTS.get(symbol.upper()) or instrument(symbol, "spot")
        table = self.provider.fetch(inst.base.lower(), list(self.metrics), day, day, symbols=[inst.symbol])
        return {"onchain_metrics": table}
