"""Market data sources. Each yields, per (symbol, day), a dict of raw table name -> Arrow table of records.py.

`make_source(kind, ...)` is the one place that maps a source name (as given in resource config or on the CLI)
to its implementation; the modules are imported lazily so a source's dependencies load only when used.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

import pyarrow as pa

SOURCE_KINDS = (
    "synthetic",
    "binance-sample",
    "binance-capture",
    "binance-rest",
    "binance-bulk",
    "tardis",
    "onchain",
)


class Source(Protocol):
    name: str

    def tables(self) -> tuple[str, ...]: ...

    def load_day(self, symbol: str, day: dt.date) -> dict[str, pa.Table]: ...


def make_source(kind: str, **params: Any) -> Source:
    """Build a source by name. Parameters a source does not use are ignored, so one config shape serves all."""
    p = {k: v for k, v in params.items() if v is not None}
    market = p.get("market", "usdm")
    if kind == "synthetic":
        from feature_store.sources.synthetic import SyntheticConfig, SyntheticSource

        knobs = {k: p[k] for k in ("seed", "signal_strength", "grid_ms", "epoch", "start_price") if k in p}
        return SyntheticSource(
            SyntheticConfig(**knobs), state_dir=p.get("state_dir"), day_seconds=p.get("day_seconds")
        )
    if kind == "binance-sample":
        from feature_store.sources.capture_source import CaptureSource

        return CaptureSource.sample(market, grid_ms=p.get("grid_ms", 100))
    if kind == "binance-capture":
        from feature_store.sources.capture_source import CaptureSource

        return CaptureSource(p.get("paths") or [], market=market, grid_ms=p.get("grid_ms", 100))
    if kind == "binance-rest":
        from feature_store.sources.binance_rest import BinanceRestSource

        what = tuple(p["what"]) if p.get("what") else ("aggTrades", "fundingRate", "markPrice")
        return BinanceRestSource(market, what=what, base_url=p.get("base_url"), lake_root=p.get("lake_root"))
    if kind == "binance-bulk":
        from feature_store.sources.binance_bulk import BASE_URL, BinanceBulkSource

        kinds = tuple(p["kinds"]) if p.get("kinds") else ("aggTrades", "bookTicker", "metrics")
        return BinanceBulkSource(
            market, kinds=kinds, base_url=p.get("base_url") or BASE_URL, cache_dir=p.get("cache_dir")
        )
    if kind == "tardis":
        from feature_store.sources.tardis import KINDS, TardisSource

        if not p.get("folder"):
            raise ValueError("the tardis source needs a folder of Tardis CSV files (--folder)")
        kinds = tuple(p["kinds"]) if p.get("kinds") else KINDS
        return TardisSource(p["folder"], kinds=kinds, market=p.get("market"), grid_ms=p.get("grid_ms", 100))
    if kind == "onchain":
        from feature_store.sources.onchain import OnChainSource

        metrics = tuple(p["metrics"]) if p.get("metrics") else ("AdrActCnt", "TxCnt")
        return OnChainSource(p.get("provider", "coinmetrics"), metrics=metrics, base_url=p.get("base_url"))
    raise ValueError(f"unknown source {kind!r}; choose one of {', '.join(SOURCE_KINDS)}")
