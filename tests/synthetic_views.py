"""Test data for the env tests: MarketViews over the first minutes of a synthetic day, cached per process."""

from __future__ import annotations

from functools import lru_cache

from agent.market_view import MarketView, ViewConfig
from feature_store.sources.synthetic import SyntheticConfig, initial_state, simulate_day


@lru_cache(maxsize=16)
def synthetic_tables(signal: float = 0.0, seed: int = 1, minutes: int = 20) -> dict:
    cfg = SyntheticConfig(seed=seed, signal_strength=signal)
    steps = minutes * 60 * (1000 // cfg.grid_ms)
    return simulate_day(cfg, "BTCUSDT", cfg.first_day, initial_state(cfg, "BTCUSDT"), n_steps=steps).tables


@lru_cache(maxsize=16)
def synthetic_view(
    signal: float = 0.0, seed: int = 1, minutes: int = 20, config: ViewConfig | None = None
) -> MarketView:
    return MarketView.from_tables(synthetic_tables(signal, seed, minutes), config)
