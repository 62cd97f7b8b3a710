"""Latency models: order entry (agent -> exchange), exchange ack (exchange -> agent) and market-data delay.

Each is constant, lognormal-jittered around a median, or replayed from the recorded exchange-vs-receive
timestamps of the market data (`recv_ts - ts`, step-interpolated at the time of the request, plus an offset).
Times are integer microseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

CONSTANT = 0
LOGNORMAL = 1
REPLAY = 2
LATENCY_KINDS = {"constant": CONSTANT, "lognormal": LOGNORMAL, "replay": REPLAY}


@dataclass(frozen=True)
class LatencyModel:
    """`kind`: constant | lognormal | replay. `base_us`: the constant, the lognormal median, or the offset added
    to the replayed latency. `sigma`: lognormal shape (0.3 gives a p99/p50 of about 2)."""

    kind: str = "constant"
    base_us: int = 10_000
    sigma: float = 0.3

    def code(self) -> int:
        try:
            return LATENCY_KINDS[self.kind]
        except KeyError:
            raise ValueError(
                f"unknown latency kind {self.kind!r}; choose one of {', '.join(LATENCY_KINDS)}"
            ) from None


@dataclass(frozen=True)
class LatencyConfig:
    """Order entry and ack default to 10 ms each; the market data is seen when it was recorded as received."""

    entry: LatencyModel = field(default_factory=LatencyModel)
    ack: LatencyModel = field(default_factory=LatencyModel)
    feed: LatencyModel = field(default_factory=lambda: LatencyModel(kind="replay", base_us=0))


@njit(cache=True)
def seed_rng(seed: int) -> None:
    """Seed numba's generator, which the compiled lognormal draws use (separate from numpy's)."""
    np.random.seed(seed)


@njit(cache=True)
def draw(kind: int, base_us: float, sigma: float, t: int, rec_ts: np.ndarray, rec_lat: np.ndarray) -> int:
    """One latency in microseconds (at least 1) for a message sent at time t."""
    if kind == LOGNORMAL:
        v = base_us * math.exp(sigma * np.random.standard_normal())
    elif kind == REPLAY:
        if rec_ts.shape[0] == 0:
            v = base_us
        else:
            i = np.searchsorted(rec_ts, t, side="right") - 1
            if i < 0:
                i = 0
            v = rec_lat[i] + base_us
    else:
        v = base_us
    iv = int(v + 0.5)
    return iv if iv > 0 else 1


def recorded_latency(ts: np.ndarray, recv_ts: np.ndarray, skew_us: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The recorded one-way latency series (ts, recv_ts + skew_us - ts), sorted by ts, clipped at 0."""
    order = np.argsort(ts, kind="stable")
    t = np.ascontiguousarray(ts[order], dtype=np.int64)
    lat = np.clip(recv_ts[order] + skew_us - ts[order], 0, None).astype(np.float64)
    return t, lat


def clock_skew(ts: np.ndarray, recv_ts: np.ndarray) -> int:
    """Microseconds to add to recorded receive times so that none is before its exchange time: a recorder whose
    clock runs behind the exchange's shows negative latencies (the USD-M captures: about -1.3 s). The same
    correction as hftbacktest's correct_local_timestamp with base latency 0."""
    if ts.shape[0] == 0:
        return 0
    return int(max(0, -int(np.min(recv_ts - ts))))


def feed_seen_ts(
    model: LatencyModel, ts: np.ndarray, recv_ts: np.ndarray, seed: int, skew_us: int = 0
) -> np.ndarray:
    """When the agent sees each market-data row. Replay: the recorded receive time corrected by `skew_us` plus
    base_us. The feed arrives in order (one TCP stream) and never before it happened, so the result is made
    non-decreasing and at least ts."""
    kind = model.code()
    if kind == REPLAY:
        seen = recv_ts.astype(np.int64) + int(skew_us) + int(model.base_us)
    elif kind == LOGNORMAL:
        rng = np.random.default_rng(seed)
        seen = ts + np.maximum(
            1, np.rint(model.base_us * np.exp(model.sigma * rng.standard_normal(ts.shape[0])))
        )
    else:
        seen = ts + int(model.base_us)
    seen = np.maximum(seen.astype(np.int64), ts.astype(np.int64))
    return np.maximum.accumulate(seen) if seen.shape[0] else seen
