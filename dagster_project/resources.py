"""Dagster resources: where the lake is and which market source feeds the raw assets (config only)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from feature_store.lake import Lake, default_root
from feature_store.sources import Source, make_source


class LakeResource(dg.ConfigurableResource):
    """The lake root: a path or any URI delta-rs accepts; credentials come from the environment."""

    root: str = Field(default_factory=default_root)

    def get(self) -> Lake:
        return Lake(self.root)


class MarketSourceResource(dg.ConfigurableResource):
    """Which source the raw assets land from, and its parameters."""

    kind: str = "synthetic"
    seed: int = 0
    signal_strength: float = 0.0
    grid_ms: int = 100
    epoch: str | None = Field(default=None, description="synthetic: first day of the simulated history")
    day_seconds: int | None = Field(
        default=None, description="synthetic: land only the first seconds of a day"
    )
    market: str = "usdm"
    paths: list[str] = Field(default_factory=list, description="capture files (binance-capture)")

    def get(self, lake: Lake) -> Source:
        if self.kind == "synthetic":
            import datetime as dt

            state_dir = lake.local_path("state", "synthetic") if lake.is_local else None
            return make_source(
                "synthetic",
                seed=self.seed,
                signal_strength=self.signal_strength,
                grid_ms=self.grid_ms,
                epoch=dt.date.fromisoformat(self.epoch) if self.epoch else None,
                state_dir=state_dir,
                day_seconds=self.day_seconds,
            )
        return make_source(self.kind, market=self.market, paths=self.paths, grid_ms=self.grid_ms)
