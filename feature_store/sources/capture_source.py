"""The Source interface over recorded Binance WebSocket captures (binance_capture.load_capture).

A capture is parsed once per process (files, market and grid as the key) and then served one (symbol, day) at a
time, so landing a capture that crosses midnight fills both day partitions from one parse. `binance-sample` is
the small real capture shipped in data/binance_sample (licence beside it): `scalper demo --source binance-sample`.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from feature_store.sources.binance_capture import CaptureResult, load_capture

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "binance_sample"
SAMPLE_FILES = {"usdm": "usdm_btcusdt_20240808_first60s.gz", "spot": "spot_ethusdt_20240808_first60s.gz"}
CAPTURE_TABLES = ("book_snapshots", "book_updates", "book_tickers", "trades", "mark_prices", "funding_rates")


@functools.lru_cache(maxsize=4)
def _parsed(paths: tuple[str, ...], market: str, grid_ms: int) -> CaptureResult:
    return load_capture(list(paths), market=market, grid_ms=grid_ms)


class CaptureSource:
    name = "binance-capture"

    def __init__(self, paths: list[str | Path], market: str = "usdm", grid_ms: int = 100):
        if not paths:
            raise ValueError(
                "a capture source needs at least one capture file (scalper ingest binance-capture FILE...)"
            )
        missing = [str(p) for p in paths if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(f"capture file(s) not found: {', '.join(missing)}")
        self.paths = tuple(str(Path(p).resolve()) for p in paths)
        self.market, self.grid_ms = market, grid_ms

    @classmethod
    def sample(cls, market: str = "usdm", grid_ms: int = 100) -> CaptureSource:
        return cls([SAMPLE_DIR / SAMPLE_FILES[market]], market=market, grid_ms=grid_ms)

    def result(self) -> CaptureResult:
        return _parsed(self.paths, self.market, self.grid_ms)

    def tables(self) -> tuple[str, ...]:
        return CAPTURE_TABLES

    def partitions(self) -> list[tuple[str, str]]:
        """The (symbol, date) pairs the capture holds rows for."""
        pairs: set[tuple[str, str]] = set()
        for table in self.result().tables.values():
            groups = table.select(["symbol", "date"]).group_by(["symbol", "date"]).aggregate([])
            pairs |= set(zip(groups["symbol"].to_pylist(), groups["date"].to_pylist(), strict=True))
        return sorted(pairs)

    def load_day(self, symbol: str, day: dt.date | str) -> dict[str, pa.Table]:
        date = day if isinstance(day, str) else day.isoformat()
        out = {}
        for name, table in self.result().tables.items():
            mask = pc.and_(pc.equal(table["symbol"], symbol), pc.equal(table["date"], date))
            out[name] = table.filter(mask)
        return out
