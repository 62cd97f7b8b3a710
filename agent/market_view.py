"""What the agent can know of the market on its decision grid: the env's one data reader.

`MarketView` wraps the replay engine's `MarketData` (book snapshots, trades, funding, marks) plus optional on-chain
metrics and precomputes, once per dataset and vectorized, every market-side input of the observation on the
decision grid t_k = t_0 + k * step_s: a per-step micro feature row, macro aggregates over trailing horizons,
funding and on-chain features, the realized volatility the risk caps use and a regime label. The account-side part
of the observation is added by agent/obs.py from the engine's state.

Causality: the value at t_k uses only rows the agent has *received* by t_k (receive times through the engine's
feed-latency model, exactly as the engine releases them), on-chain values only once `available_at` <= t_k, and
trailing windows only. Nothing is fit on the data (no normalization statistics), so there is nothing to leak.

Regime labels: from raw tables (`from_tables`, `from_lake`) the label is derived here, causally, from the trailing
`regime_window_s`: z = (sum of step log returns) / sqrt(sum of squared step log returns), a trend t-statistic;
bull when z > regime_threshold, bear when z < -regime_threshold, else range. `from_snapshot` reads a feature
snapshot (feature_store/snapshots.py) instead: the snapshot's published features (train-normalized) are appended
to the micro columns and its regime labels (fit on train by the feature store) replace the derived ones; the
replay still runs on the raw tables at the Delta versions the snapshot pinned. Nothing else in the env changes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from agent.sim.latency import LatencyModel, clock_skew, feed_seen_ts
from agent.sim.market import MarketData

REGIMES = ("range", "bull", "bear")
RANGE, BULL, BEAR = 0, 1, 2
SEC_US = 1_000_000
FEATURE_BOUND = 1e6  # every precomputed feature is clipped to +-this (the observation space's bounds)
DAY_US = 86_400 * SEC_US

MICRO_FEATURES = (
    "ret_bp",  # log mid return over the step, bp
    "spread_ticks",
    "imbalance_l1",  # (bid1 - ask1) / (bid1 + ask1) sizes
    "imbalance_l5",
    "microprice_ticks",  # size-weighted microprice minus mid, ticks
    "buy_volume",  # log1p(taker-buy notional in the step / notional_scale)
    "sell_volume",
    "trade_count",  # log1p(trades in the step)
    "ofi",  # level-1 order-flow imbalance (Cont, Kukanov, Stoikov 2014) over the step / level-1 depth
    "realized_vol_bp",  # sqrt of summed squared snapshot-to-snapshot log mid returns within the step, bp
)
FUNDING_FEATURES = ("last_funding_bp", "time_to_funding", "mark_premium_bp")


def macro_feature_names(horizons_s: tuple[float, ...]) -> tuple[str, ...]:
    names = []
    for h in horizons_s:
        tag = f"{int(h)}s"
        names += [f"ret_bp_{tag}", f"vol_bp_{tag}", f"volume_{tag}", f"flow_imbalance_{tag}"]
    return (*names, "regime_range", "regime_bull", "regime_bear", "tod_sin", "tod_cos")


def onchain_feature_names(metrics: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n for m in metrics for n in (f"{m}_change", f"{m}_known"))


@dataclass(frozen=True)
class ViewConfig:
    """Decision grid and the windows of the precomputed features.

    step_s: decision interval. micro_window: steps in the micro sequence. macro_horizons_s: trailing horizons of
    the macro aggregates (a horizon longer than the history available uses what exists). vol_window_s: trailing
    realized volatility for the risk caps. notional_scale: quote notional that maps to log1p(1) in size features.
    feed: how market data reaches the agent (the engine's feed-latency model; default: recorded receive times).
    """

    step_s: float = 1.0
    micro_window: int = 60
    macro_horizons_s: tuple[float, ...] = (60.0, 300.0, 900.0, 3600.0)
    vol_window_s: float = 300.0
    regime_window_s: float = 900.0
    regime_threshold: float = 1.0
    notional_scale: float = 10_000.0
    funding_interval_h: float = 8.0
    onchain_metrics: tuple[str, ...] = ("active_addresses", "tx_count", "exchange_netflow")
    feed: LatencyModel = dataclasses.field(default_factory=lambda: LatencyModel(kind="replay", base_us=0))

    def __post_init__(self) -> None:
        if not self.step_s > 0 or abs(self.step_s * SEC_US - round(self.step_s * SEC_US)) > 1e-6:
            raise ValueError(f"step_s={self.step_s} must be a positive whole number of microseconds")
        if self.micro_window < 1:
            raise ValueError(f"micro_window={self.micro_window} must be >= 1 step")
        if not self.macro_horizons_s or min(self.macro_horizons_s) < self.step_s:
            raise ValueError(f"macro_horizons_s={self.macro_horizons_s} must be non-empty and each >= step_s")

    @property
    def step_us(self) -> int:
        return int(round(self.step_s * SEC_US))

    def steps(self, seconds: float) -> int:
        return max(1, int(round(seconds / self.step_s)))


@dataclass(frozen=True)
class ExternalFeatures:
    """Feature rows computed elsewhere (e.g. the published dbt features of a snapshot), one per book snapshot:
    `values[i]` is known at exchange time `ts_us[i]` (sorted)."""

    ts_us: np.ndarray
    names: tuple[str, ...]
    values: np.ndarray  # (rows, len(names))

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape != (self.ts_us.shape[0], len(self.names)):
            raise ValueError(
                f"ExternalFeatures: values must have shape (rows={self.ts_us.shape[0]}, {len(self.names)}), "
                f"got {self.values.shape}"
            )
        if self.ts_us.shape[0] > 1 and np.any(np.diff(self.ts_us) < 0):
            raise ValueError("ExternalFeatures: ts_us must be sorted")


@dataclass(frozen=True)
class MarketView:
    """Per-step market arrays on the decision grid (k = 0..n-1) and the MarketData the engine replays."""

    config: ViewConfig
    market: MarketData
    t: np.ndarray  # decision times, µs
    book_index: np.ndarray  # snapshot seen at t_k (always >= 0)
    mid: np.ndarray
    micro: np.ndarray  # (n, len(MICRO_FEATURES)) float32
    macro: np.ndarray  # (n, len(macro_feature_names)) float32
    funding: np.ndarray  # (n, len(FUNDING_FEATURES)) float32
    onchain: np.ndarray  # (n, 2 * len(onchain_metrics)) float32
    sigma: np.ndarray  # trailing per-step realized volatility (fraction), for the risk caps
    regime: np.ndarray  # int8 codes into REGIMES
    micro_names: tuple[str, ...] = MICRO_FEATURES  # MICRO_FEATURES, then any external feature columns

    @property
    def n_steps(self) -> int:
        return int(self.t.shape[0])

    # -- constructors: the one place that knows where market data comes from ----------------------------------
    @classmethod
    def from_tables(
        cls, tables: dict[str, pa.Table], config: ViewConfig | None = None, symbol: str | None = None
    ) -> MarketView:
        """Raw-schema tables keyed by name (book_snapshots required; trades, funding_rates, mark_prices,
        onchain_metrics optional), e.g. a SyntheticSource day or a lake read."""
        market = MarketData.from_tables(tables, symbol=symbol)
        return cls.build(market, tables.get("onchain_metrics"), config)

    @classmethod
    def from_lake(
        cls, lake_root, symbol: str, start: str, end: str, config: ViewConfig | None = None
    ) -> MarketView:
        """Read one symbol's raw tables for dates start..end (inclusive) from the lake."""
        from datetime import date, timedelta

        from feature_store.lake import Lake

        market = MarketData.from_lake(lake_root, symbol, start, end)
        # on-chain values become available after the day they describe: read a few days before the window
        early = (date.fromisoformat(start) - timedelta(days=3)).isoformat()
        onchain = Lake(lake_root).read("onchain_metrics", symbol=symbol, start=early, end=end)
        return cls.build(market, onchain, config)

    @classmethod
    def from_snapshot(
        cls,
        lake_root,
        snapshot_id: str,
        split: str,
        symbol: str,
        config: ViewConfig | None = None,
        expected_schema_hash: str | None = None,
        market: str = "usdm",
    ) -> MarketView:
        """A feature snapshot's split (feature_store.snapshots): its published feature columns, normalized with
        the train-fit statistics, join the micro features; its regime labels replace the derived ones; the
        replay reads the raw tables of the split's days at the Delta versions the snapshot pinned."""
        from datetime import date, timedelta

        from feature_store import snapshots
        from feature_store.lake import Lake

        meta = snapshots.metadata(lake_root, snapshot_id)
        rows = snapshots.load(
            lake_root, snapshot_id, split, expected_schema_hash=expected_schema_hash, normalize=True
        )
        rows = rows.filter(pc.equal(rows.column("symbol"), symbol)).sort_by("ts_us")
        if rows.num_rows == 0:
            raise ValueError(
                f"snapshot {snapshot_id} split {split!r} has no rows for {symbol!r}; its symbols: {meta['symbols']}"
            )
        window, versions = meta["splits"][split], meta["delta_versions"]
        lake = Lake(lake_root)

        def read(name: str, start: str) -> pa.Table:
            table = lake.read(name, symbol=symbol, start=start, end=window["end"], version=versions.get(name))
            return table.filter(pc.equal(table.column("market"), market))

        tables = {
            n: read(n, window["start"]) for n in ("book_snapshots", "trades", "funding_rates", "mark_prices")
        }
        early = (date.fromisoformat(window["start"]) - timedelta(days=3)).isoformat()
        data = MarketData.from_tables(tables, symbol=symbol, market=market)
        names = tuple(snapshots.feature_columns(meta))
        ts = np.ascontiguousarray(rows.column("ts_us").to_numpy(), dtype=np.int64)
        features = ExternalFeatures(ts, names, snapshots.as_numpy(rows, list(names), dtype=np.float64))
        labels = rows.column("regime").to_pylist()
        codes = np.array([REGIMES.index(r) if r in REGIMES else RANGE for r in labels], dtype=np.int8)
        return cls.build(data, read("onchain_metrics", early), config, features, (ts, codes))

    @classmethod
    def build(
        cls,
        market: MarketData,
        onchain: pa.Table | None = None,
        config: ViewConfig | None = None,
        features: ExternalFeatures | None = None,
        regime_labels: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> MarketView:
        """Precompute the per-step arrays. `features`: per-snapshot feature rows from elsewhere (a feature
        snapshot), appended to the micro columns; `regime_labels`: (ts_us, codes into REGIMES) replacing the
        derived labels. Both are aligned to the snapshot the agent has seen at each step (its exchange time)."""
        cfg = config or ViewConfig()
        step_us = cfg.step_us
        # the same receive-time model as the engine (agent/sim/engine.Simulator._set_market)
        skew = clock_skew(
            np.concatenate([market.book_ts, market.trade_ts]),
            np.concatenate([market.book_recv_ts, market.trade_recv_ts]),
        )
        book_seen = feed_seen_ts(cfg.feed, market.book_ts, market.book_recv_ts, 0, skew)
        trade_seen = feed_seen_ts(cfg.feed, market.trade_ts, market.trade_recv_ts, 1, skew)
        t0 = -(-int(book_seen[0]) // step_us) * step_us  # first grid time with a book seen
        n = (int(book_seen[-1]) - t0) // step_us + 1
        if n < 2:
            raise ValueError(
                f"{market.symbol}: the market data spans {market.duration_s:.1f} s, less than two decision steps "
                f"of {cfg.step_s} s; give more data or a shorter step_s"
            )
        t = t0 + np.arange(n, dtype=np.int64) * step_us
        j = np.searchsorted(book_seen, t, side="right") - 1

        bid1, ask1 = market.bid_px[:, 0], market.ask_px[:, 0]
        qb1, qa1 = market.bid_sz[:, 0], market.ask_sz[:, 0]
        row_mid = _ffill(0.5 * (bid1 + ask1))
        mid = row_mid[j]

        # per snapshot row: squared log returns and level-1 order-flow imbalance, as prefix sums
        lr = np.diff(np.log(row_mid), prepend=np.log(row_mid[0]))
        cum_r2 = np.cumsum(np.nan_to_num(lr) ** 2)
        ofi_row = np.zeros_like(row_mid)
        b_prev, a_prev = bid1[:-1], ask1[:-1]
        ofi_row[1:] = (
            np.where(bid1[1:] >= b_prev, qb1[1:], 0.0)
            - np.where(bid1[1:] <= b_prev, qb1[:-1], 0.0)
            - np.where(ask1[1:] <= a_prev, qa1[1:], 0.0)
            + np.where(ask1[1:] >= a_prev, qa1[:-1], 0.0)
        )
        cum_ofi = np.cumsum(np.nan_to_num(ofi_row))

        # trades seen in (t_{k-1}, t_k]
        ti = np.searchsorted(trade_seen, t, side="right")
        notional = market.trade_px * market.trade_qty
        buy = np.concatenate([[0.0], np.cumsum(np.where(market.trade_side > 0, notional, 0.0))])
        sell = np.concatenate([[0.0], np.cumsum(np.where(market.trade_side < 0, notional, 0.0))])
        buy_k, sell_k = _step_diff(buy[ti]), _step_diff(sell[ti])
        count_k = _step_diff(ti.astype(np.float64))

        ret = np.zeros(n)
        ret[1:] = np.log(mid[1:] / mid[:-1])
        depth1 = (qb1 + qa1)[j]
        qb5 = market.bid_sz[:, :5].sum(axis=1)[j]
        qa5 = market.ask_sz[:, :5].sum(axis=1)[j]
        microprice = (ask1[j] * qb1[j] + bid1[j] * qa1[j]) / np.where(depth1 > 0, depth1, np.nan)
        scale = cfg.notional_scale
        micro = np.column_stack(
            [
                ret * 1e4,
                (ask1 - bid1)[j] / market.tick_size,
                _ratio(qb1[j] - qa1[j], depth1),
                _ratio(qb5 - qa5, qb5 + qa5),
                (microprice - mid) / market.tick_size,
                np.log1p(buy_k / scale),
                np.log1p(sell_k / scale),
                np.log1p(count_k),
                np.clip(_ratio(_step_diff(cum_ofi[j]), 0.5 * depth1), -20.0, 20.0),
                np.sqrt(np.maximum(_step_diff(cum_r2[j]), 0.0)) * 1e4,
            ]
        )

        # trailing aggregates from prefix sums over the step grid
        cum_ret = np.cumsum(ret)
        cum_ret2 = np.cumsum(ret**2)
        cum_buy, cum_sell = buy[ti], sell[ti]
        regime_w = cfg.steps(cfg.regime_window_s)
        z = _trailing(cum_ret, regime_w) / np.sqrt(np.maximum(_trailing(cum_ret2, regime_w), 1e-300))
        enough = np.arange(n) >= max(1, regime_w // 4)
        regime = np.full(n, RANGE, dtype=np.int8)
        regime[enough & (z > cfg.regime_threshold)] = BULL
        regime[enough & (z < -cfg.regime_threshold)] = BEAR
        seen_book_ts = market.book_ts[j]
        if regime_labels is not None:
            regime = _asof(regime_labels[0], np.asarray(regime_labels[1], dtype=np.int8), seen_book_ts, RANGE)

        macro_cols = []
        for h_s in cfg.macro_horizons_s:
            h = cfg.steps(h_s)
            avail = np.minimum(np.arange(n), h).astype(np.float64)
            per = np.maximum(avail, 1.0)
            b, s = _trailing(cum_buy, h), _trailing(cum_sell, h)
            macro_cols += [
                _trailing(cum_ret, h) * 1e4,
                np.sqrt(_trailing(cum_ret2, h) / per) * 1e4,
                np.log1p((b + s) / per / scale),
                _ratio(b - s, b + s),
            ]
        onehot = np.eye(3)[regime]
        tod = 2 * math.pi * (t % DAY_US) / DAY_US
        macro = np.column_stack([*macro_cols, onehot, np.sin(tod), np.cos(tod)])

        vol_w = cfg.steps(cfg.vol_window_s)
        vol_avail = np.minimum(np.arange(n), vol_w)
        sigma = np.where(
            vol_avail >= 10, np.sqrt(_trailing(cum_ret2, vol_w) / np.maximum(vol_avail, 1)), np.nan
        )

        micro_names = MICRO_FEATURES
        if features is not None:
            micro = np.column_stack([micro, _asof(features.ts_us, features.values, seen_book_ts, 0.0)])
            micro_names = (*MICRO_FEATURES, *features.names)
        funding = _funding_features(market, t, mid, cfg)
        onchain_arr = _onchain_features(onchain, market.symbol, t, cfg.onchain_metrics)
        return cls(
            config=cfg,
            market=market,
            t=t,
            book_index=j.astype(np.int64),
            mid=mid,
            micro=_f32(micro),
            macro=_f32(macro),
            funding=_f32(funding),
            onchain=_f32(onchain_arr),
            sigma=sigma,
            regime=regime,
            micro_names=tuple(micro_names),
        )

    # -- per-step access --------------------------------------------------------------------------------------
    def micro_window(self, k: int) -> np.ndarray:
        """The last micro_window rows up to step k, zero-padded before the first step."""
        w = self.config.micro_window
        lo = k + 1 - w
        if lo >= 0:
            return self.micro[lo : k + 1].copy()
        out = np.zeros((w, self.micro.shape[1]), dtype=np.float32)
        out[-lo:] = self.micro[: k + 1]
        return out

    def episode_market(self, k0: int, k1: int) -> MarketData:
        """The engine's input for an episode over steps k0..k1: market rows from just before t_k0 to t_k1 plus a
        second, so the engine starts with the book in force at t_k0 and never runs dry inside the episode."""
        m = self.market
        lo_t = int(m.book_ts[self.book_index[k0]])
        hi_t = int(self.t[min(k1, self.n_steps - 1)]) + SEC_US

        def rows(ts: np.ndarray) -> slice:
            return slice(int(np.searchsorted(ts, lo_t, "left")), int(np.searchsorted(ts, hi_t, "right")))

        b, tr, f, mk = rows(m.book_ts), rows(m.trade_ts), rows(m.funding_ts), rows(m.mark_ts)
        return dataclasses.replace(
            m,
            book_ts=m.book_ts[b],
            book_recv_ts=m.book_recv_ts[b],
            bid_px=m.bid_px[b],
            bid_sz=m.bid_sz[b],
            ask_px=m.ask_px[b],
            ask_sz=m.ask_sz[b],
            trade_ts=m.trade_ts[tr],
            trade_recv_ts=m.trade_recv_ts[tr],
            trade_px=m.trade_px[tr],
            trade_qty=m.trade_qty[tr],
            trade_side=m.trade_side[tr],
            funding_ts=m.funding_ts[f],
            funding_rate=m.funding_rate[f],
            funding_mark=m.funding_mark[f],
            mark_ts=m.mark_ts[mk],
            mark_px=m.mark_px[mk],
        )


def _asof(ts: np.ndarray, values: np.ndarray, at: np.ndarray, missing):
    """values[last row with ts <= at], `missing` before the first row."""
    i = np.searchsorted(ts, at, side="right") - 1
    if ts.shape[0] == 0:
        return np.full((at.shape[0], *values.shape[1:]), missing, dtype=values.dtype)
    out = values[np.maximum(i, 0)].copy()
    out[i < 0] = missing
    return out


def _f32(a: np.ndarray) -> np.ndarray:
    clean = np.clip(np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0), -FEATURE_BOUND, FEATURE_BOUND)
    return np.ascontiguousarray(clean, dtype=np.float32)


def _ffill(x: np.ndarray) -> np.ndarray:
    """Forward-fill NaN (a one-sided book has no mid); leading NaN take the first finite value."""
    ok = np.isfinite(x)
    if not ok.any():
        raise ValueError("the book never has both a bid and an ask; cannot compute a mid price")
    idx = np.where(ok, np.arange(x.shape[0]), 0)
    np.maximum.accumulate(idx, out=idx)
    out = x[idx]
    out[: np.argmax(ok)] = x[np.argmax(ok)]
    return out


def _step_diff(cum: np.ndarray) -> np.ndarray:
    out = np.zeros_like(cum, dtype=np.float64)
    out[1:] = cum[1:] - cum[:-1]
    return out


def _trailing(cum: np.ndarray, h: int) -> np.ndarray:
    """Sum over the last h steps from a prefix sum over steps (expanding at the start)."""
    cum = cum.astype(np.float64)
    out = cum - cum[0]  # steps 1..k while fewer than h exist: step 0 carries no change of its own
    out[h:] = cum[h:] - cum[:-h]
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _funding_features(market: MarketData, t: np.ndarray, mid: np.ndarray, cfg: ViewConfig) -> np.ndarray:
    if market.funding_ts.shape[0]:
        fi = np.searchsorted(market.funding_ts, t, side="right") - 1
        last_rate = np.where(fi >= 0, market.funding_rate[np.maximum(fi, 0)], 0.0)
    else:
        last_rate = np.zeros(t.shape[0])
    interval_us = int(cfg.funding_interval_h * 3600 * SEC_US)
    # Binance settles on a fixed UTC grid (00/08/16 h for 8 h intervals)
    to_next = (interval_us - (t % interval_us)) / interval_us
    if market.mark_ts.shape[0]:
        mi = np.searchsorted(market.mark_ts, t, side="right") - 1
        mark = np.where(mi >= 0, market.mark_px[np.maximum(mi, 0)], np.nan)
        premium = (mark - mid) / mid * 1e4
    else:
        premium = np.zeros_like(mid)
    return np.column_stack([last_rate * 1e4, to_next, premium])


def _slog(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def _onchain_features(
    table: pa.Table | None, symbol: str, t: np.ndarray, metrics: tuple[str, ...]
) -> np.ndarray:
    """Per metric: change of slog(value) between the two latest values available by t_k, and a known flag."""
    out = np.zeros((t.shape[0], 2 * len(metrics)))
    if table is None or table.num_rows == 0 or not metrics:
        return out
    if "symbol" in table.column_names:
        table = table.filter(pc.equal(table.column("symbol"), symbol))
    for i, name in enumerate(metrics):
        rows = table.filter(pc.equal(table.column("metric"), name))
        if rows.num_rows == 0:
            continue
        rows = rows.sort_by([("available_at", "ascending"), ("ts", "ascending")])
        avail = rows.column("available_at").combine_chunks().cast(pa.int64()).to_numpy()
        val = _slog(rows.column("value").to_numpy())
        idx = np.searchsorted(avail, t, side="right") - 1
        known = idx >= 0
        prev = np.maximum(idx - 1, 0)
        cur = np.maximum(idx, 0)
        out[:, 2 * i] = np.where(idx >= 1, val[cur] - val[prev], 0.0)
        out[:, 2 * i + 1] = known.astype(np.float64)
    return out
