"""Market data sources. Each yields, per (symbol, day), a dict of raw table name -> Arrow table of records.py.

`make_source(kind, ...)` is the one place that maps a source name (as given in resource config or on the CLI)
to its implementation; the modules are imported lazily so a source's dependencies load only when used.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

import pyarrow as pa

SOURCE_KINDS = ("synthetic", "binance-capture", "binance-sample")


class Source(Protocol):
    name: str

    def tables(self) -> tuple[str, ...]: ...

    def load_day(self, symbol: str, day: dt.date) -> dict[str, pa.Table]: ...


def make_source(kind: str, **params: Any) -> Source:
    if kind == "synthetic":
        from feature_store.sources.synthetic import SyntheticConfig, SyntheticSource

        state_dir = params.pop("state_dir", None)
        day_seconds = params.pop("day_seconds", None)
        return SyntheticSource(SyntheticConfig(**params), state_dir=state_dir, day_seconds=day_seconds)
    if kind in ("binance-capture", "binance-sample"):
        from feature_store.sources.capture_source import CaptureSource

        return CaptureSource.from_params(kind, **params)
    raise ValueError(f"unknown source {kind!r}; choose one of {', '.join(SOURCE_KINDS)}")
