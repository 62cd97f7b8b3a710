"""Independent numpy reference implementation of the dbt feature store (dbt/models), for tests and the bench.

It recomputes, from raw records of one symbol, every published feature, label and train-fit statistic with
plain numpy (searchsorted windows, explicit central moments, np.linalg.eigh, np.quantile), following
/work/shared/reference/lob_features.md and the definitions in the dbt model yml.  It shares no code with the
SQL; agreement between the two is the evidence that each implements the definitions.

Conventions (the same in SQL): times are epoch microseconds; a window of W seconds at t covers (t - W, t];
the first row of a symbol has no previous book (OFI event 0, no return); sums over no trades are 0; the
imbalance ratio I = qb1 / (qb1 + qa1).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

OFI_LEVELS = 5
FLOW_WINDOW = 10
RVOL_WINDOWS = (10, 60, 300)
MOMENT_WINDOWS = (60, 300)
TFI_WINDOWS = (1, 10, 60)
OFI_L1_WINDOWS = (1, 10)
MARKOUT_HORIZONS = (1, 5, 30, 60)
STAGED_LEVELS = 10
US = 1_000_000


@dataclass(frozen=True)
class RefParams:
    """The dbt vars that change results (defaults as in dbt_project.yml)."""

    warmup_s: int = 3600
    regime_window_s: int = 3600
    regime_trend_quantile: float = 0.6667
    clip_lower_q: float = 0.001
    clip_upper_q: float = 0.999
    microprice_imbalance_buckets: int = 10
    microprice_spread_buckets: int = 3
    onchain_metrics: tuple[str, ...] = ("active_addresses", "tx_count")


def clipped_features() -> list[str]:
    cols = ["spread_bps", "spread_ticks", "queue_bid_l1", "queue_ask_l1"]
    cols += [f"ofi_l1_{s}s" for s in OFI_L1_WINDOWS]
    cols += [f"ofi_l{m}_{FLOW_WINDOW}s_norm" for m in range(1, OFI_LEVELS + 1)]
    cols += [
        c % FLOW_WINDOW
        for c in (
            "trade_qty_%ds",
            "depletion_ask_%ds",
            "depletion_bid_%ds",
            "cancels_bid_%ds",
            "cancels_ask_%ds",
        )
    ]
    cols += ["ttd_ask_s", "ttd_bid_s"]
    cols += [f"rvol_{s}s" for s in RVOL_WINDOWS]
    for s in MOMENT_WINDOWS:
        cols += [f"skew_{s}s", f"kurt_{s}s"]
    return cols


# -- inputs ------------------------------------------------------------------------------------------------
@dataclass
class Book:
    ts_us: np.ndarray
    bid_px: np.ndarray  # (n, 10), NaN where the level is absent
    bid_sz: np.ndarray  # (n, 10), 0 where absent
    ask_px: np.ndarray
    ask_sz: np.ndarray
    tick: float


def _levels(table: pa.Table, name: str) -> np.ndarray:
    col = table[name].combine_chunks()
    width = len(col[0]) if len(col) else 20
    return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), width).astype(float)


def book_from_records(table: pa.Table, tick: float) -> Book:
    """Staging rules: absent levels (non-finite price or size <= 0) get price NaN and size 0; books without a
    best bid or ask are dropped; one row per ts (the last received)."""
    ts = table["ts"].cast(pa.int64()).to_numpy()
    recv = table["recv_ts"].cast(pa.int64()).to_numpy()
    order = np.lexsort((recv, ts))
    keep = order[np.r_[ts[order][1:] != ts[order][:-1], True]]  # last received per ts
    arrays = {}
    for name in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
        arrays[name] = _levels(table, name)[keep, :STAGED_LEVELS]
    for side in ("bid", "ask"):
        px, sz = arrays[f"{side}_px"], arrays[f"{side}_sz"]
        present = (sz > 0) & np.isfinite(px)
        arrays[f"{side}_px"] = np.where(present, px, np.nan)
        arrays[f"{side}_sz"] = np.where(present, sz, 0.0)
    ok = np.isfinite(arrays["bid_px"][:, 0]) & np.isfinite(arrays["ask_px"][:, 0])
    return Book(ts_us=ts[keep][ok], tick=tick, **{k: v[ok] for k, v in arrays.items()})


# -- window helpers ----------------------------------------------------------------------------------------
def window_start(ts: np.ndarray, seconds: float) -> np.ndarray:
    """Index of the first row inside (t - W, t] for every row."""
    return np.searchsorted(ts, ts - int(seconds * US), side="right")


def trailing_sum(ts: np.ndarray, x: np.ndarray, seconds: float) -> np.ndarray:
    """Sum of x over (t - W, t]; NaN entries count as absent.  Extended-precision prefix sums."""
    values = np.where(np.isnan(x), 0.0, x).astype(np.longdouble)
    prefix = np.concatenate([[0.0], np.cumsum(values)])
    lo = window_start(ts, seconds)
    return np.asarray(prefix[np.arange(1, len(ts) + 1)] - prefix[lo], dtype=float)


def trailing_count(ts: np.ndarray, valid: np.ndarray, seconds: float) -> np.ndarray:
    prefix = np.concatenate([[0], np.cumsum(valid.astype(np.int64))])
    return prefix[np.arange(1, len(ts) + 1)] - prefix[window_start(ts, seconds)]


def trailing_moments_fast(ts: np.ndarray, r: np.ndarray, seconds: float):
    """The same skewness / excess kurtosis from extended-precision prefix power sums: the vectorized numpy way,
    used as the bench baseline (the two-pass version below is the test reference)."""
    valid = np.isfinite(r)
    n = trailing_count(ts, valid, seconds).astype(float)
    s1, s2, s3, s4 = (trailing_sum(ts, np.where(valid, r**k, np.nan), seconds) for k in (1, 2, 3, 4))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        m2 = s2 / n - mean**2
        m3 = s3 / n - 3 * mean * s2 / n + 2 * mean**3
        m4 = s4 / n - 4 * mean * s3 / n + 6 * mean**2 * s2 / n - 3 * mean**4
        ok = (n >= 3) & (m2 > 1e-9 * s2 / n)
        return np.where(ok, m3 / m2**1.5, 0.0), np.where(ok, m4 / m2**2 - 3.0, 0.0)


def trailing_moments(ts: np.ndarray, r: np.ndarray, seconds: float, chunk: int = 4096):
    """Skewness m3/m2^1.5 and excess kurtosis m4/m2^2 - 3 of the returns in (t - W, t], computed from the
    window's values directly (two-pass central moments); 0 with < 3 returns or m2 <= 1e-9 * mean(r^2)."""
    n = len(ts)
    lo = window_start(ts, seconds)
    width = int((np.arange(n) - lo + 1).max()) if n else 0
    skew, kurt = np.zeros(n), np.zeros(n)
    for a in range(0, n, chunk):
        rows = np.arange(a, min(a + chunk, n))
        idx = rows[:, None] - np.arange(width)[None, :]
        inside = idx >= lo[rows, None]
        vals = np.where(inside, r[np.clip(idx, 0, None)], np.nan)
        vals[~np.isfinite(vals)] = np.nan
        cnt = np.sum(~np.isnan(vals), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # windows without returns: handled by `ok`
            mean = np.nanmean(vals, axis=1)
            dev = vals - mean[:, None]
            m2 = np.nanmean(dev**2, axis=1)
            m3 = np.nanmean(dev**3, axis=1)
            m4 = np.nanmean(dev**4, axis=1)
            raw2 = np.nanmean(vals**2, axis=1)
            ok = (cnt >= 3) & (m2 > 1e-9 * raw2)
            skew[rows] = np.where(ok, m3 / m2**1.5, 0.0)
            kurt[rows] = np.where(ok, m4 / m2**2 - 3.0, 0.0)
    return skew, kurt


def _prev(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x, dtype=float)
    out[0] = np.nan
    out[1:] = x[:-1]
    return out


def _ge(a, b):  # NaN-safe comparisons: false when either side is absent
    with np.errstate(invalid="ignore"):
        return np.greater_equal(a, b) & np.isfinite(a) & np.isfinite(b)


def _le(a, b):
    with np.errstate(invalid="ignore"):
        return np.less_equal(a, b) & np.isfinite(a) & np.isfinite(b)


# -- trades on the grid --------------------------------------------------------------------------------------
def trade_flow(book: Book, trades: pa.Table) -> dict[str, np.ndarray]:
    """Per book row: taker buy / sell quantity of the trades in (t_prev, t] and the part executed exactly at the
    best price of the book the trade hit (the last book strictly before it)."""
    n = len(book.ts_us)
    out = {k: np.zeros(n) for k in ("buy_qty", "sell_qty", "buy_qty_at_ask", "sell_qty_at_bid")}
    if trades.num_rows == 0:
        return out
    t_ts = trades["ts"].cast(pa.int64()).to_numpy()
    price = trades["price"].to_numpy()
    qty = trades["qty"].to_numpy()
    side = trades["side"].to_numpy().astype(int)
    hit = np.searchsorted(book.ts_us, t_ts, side="left") - 1
    ok = (hit >= 0) & (hit + 1 < n)
    hit, price, qty, side = hit[ok], price[ok], qty[ok], side[ok]
    bucket = hit + 1
    buy, sell = side == 1, side == -1
    np.add.at(out["buy_qty"], bucket[buy], qty[buy])
    np.add.at(out["sell_qty"], bucket[sell], qty[sell])
    at_ask = buy & (price == book.ask_px[hit, 0])
    at_bid = sell & (price == book.bid_px[hit, 0])
    np.add.at(out["buy_qty_at_ask"], bucket[at_ask], qty[at_ask])
    np.add.at(out["sell_qty_at_bid"], bucket[at_bid], qty[at_bid])
    return out


# -- book features -----------------------------------------------------------------------------------------
def book_features(
    book: Book, trades: pa.Table, params: RefParams = RefParams(), fast_moments: bool = False
) -> dict[str, np.ndarray]:
    """int_book_features for one symbol over all its rows (no train-fit step).  fast_moments: skew/kurtosis from
    prefix power sums (bench baseline) instead of the two-pass window computation (test reference)."""
    ts = book.ts_us
    bp, bs, ap, as_ = book.bid_px, book.bid_sz, book.ask_px, book.ask_sz
    out: dict[str, np.ndarray] = {"ts_us": ts}
    mid = (ap[:, 0] + bp[:, 0]) / 2
    spread = ap[:, 0] - bp[:, 0]
    out["is_warmup"] = ts < ts[0] + params.warmup_s * US
    out["mid"] = mid
    out["spread_bps"] = spread / mid * 1e4
    out["spread_ticks"] = spread / book.tick
    for k in (1, 3, 5, 10):
        b, a = bs[:, :k].sum(axis=1), as_[:, :k].sum(axis=1)
        out[f"imbalance_l{k}"] = (b - a) / (b + a)
    out["weighted_mid"] = (ap[:, 0] * bs[:, 0] + bp[:, 0] * as_[:, 0]) / (bs[:, 0] + as_[:, 0])
    out["queue_bid_l1"] = bs[:, 0].copy()
    out["queue_ask_l1"] = as_[:, 0].copy()
    out["imbalance_ratio"] = bs[:, 0] / (bs[:, 0] + as_[:, 0])

    events = []
    for m in range(OFI_LEVELS):
        pb, qb_prev, pa_, qa_prev = _prev(bp[:, m]), _prev(bs[:, m]), _prev(ap[:, m]), _prev(as_[:, m])
        e = (
            np.where(_ge(bp[:, m], pb), bs[:, m], 0.0)
            - np.where(_le(bp[:, m], pb), qb_prev, 0.0)
            - np.where(_le(ap[:, m], pa_), as_[:, m], 0.0)
            + np.where(_ge(ap[:, m], pa_), qa_prev, 0.0)
        )
        events.append(e)
    for s in OFI_L1_WINDOWS:
        out[f"ofi_l1_{s}s"] = trailing_sum(ts, events[0], s)
    depth = (bs[:, :OFI_LEVELS].sum(axis=1) + as_[:, :OFI_LEVELS].sum(axis=1)) / (2 * OFI_LEVELS)
    lo = window_start(ts, FLOW_WINDOW)
    avg_depth = trailing_sum(ts, depth, FLOW_WINDOW) / (np.arange(1, len(ts) + 1) - lo)
    for m in range(OFI_LEVELS):
        out[f"ofi_l{m + 1}_{FLOW_WINDOW}s_norm"] = trailing_sum(ts, events[m], FLOW_WINDOW) / avg_depth

    flow = trade_flow(book, trades)
    for s in TFI_WINDOWS:
        buy, sell = trailing_sum(ts, flow["buy_qty"], s), trailing_sum(ts, flow["sell_qty"], s)
        total = buy + sell
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"tfi_{s}s"] = np.where(total != 0, (buy - sell) / total, 0.0)
    fw = FLOW_WINDOW
    buy_w, sell_w = trailing_sum(ts, flow["buy_qty"], fw), trailing_sum(ts, flow["sell_qty"], fw)
    out[f"trade_qty_{fw}s"] = buy_w + sell_w
    out[f"depletion_ask_{fw}s"] = trailing_sum(ts, flow["buy_qty_at_ask"], fw) / as_[lo, 0]
    out[f"depletion_bid_{fw}s"] = trailing_sum(ts, flow["sell_qty_at_bid"], fw) / bs[lo, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        # 1 day when nothing traded in the window
        out["ttd_ask_s"] = np.where(buy_w != 0, np.minimum(as_[:, 0] * fw / buy_w, 86400.0), 86400.0)
        out["ttd_bid_s"] = np.where(sell_w != 0, np.minimum(bs[:, 0] * fw / sell_w, 86400.0), 86400.0)
    same_bid = _ge(bp[:, 0], _prev(bp[:, 0])) & _le(bp[:, 0], _prev(bp[:, 0]))
    same_ask = _ge(ap[:, 0], _prev(ap[:, 0])) & _le(ap[:, 0], _prev(ap[:, 0]))
    cancel_bid = np.where(same_bid, _prev(bs[:, 0]) - bs[:, 0] - flow["sell_qty_at_bid"], 0.0)
    cancel_ask = np.where(same_ask, _prev(as_[:, 0]) - as_[:, 0] - flow["buy_qty_at_ask"], 0.0)
    out[f"cancels_bid_{fw}s"] = trailing_sum(ts, cancel_bid, fw)
    out[f"cancels_ask_{fw}s"] = trailing_sum(ts, cancel_ask, fw)

    r = np.log(mid / _prev(mid))
    out["log_ret"] = r
    for s in RVOL_WINDOWS:
        out[f"rvol_{s}s"] = np.sqrt(np.maximum(trailing_sum(ts, r * r, s), 0.0))
    for s in MOMENT_WINDOWS:
        moments = trailing_moments_fast if fast_moments else trailing_moments
        out[f"skew_{s}s"], out[f"kurt_{s}s"] = moments(ts, r, s)
    W = params.regime_window_s
    out["regime_rvol"] = np.sqrt(np.maximum(trailing_sum(ts, r * r, W), 0.0))
    out["regime_trend"] = np.log(mid / mid[window_start(ts, W)])
    out["net_taker_qty"] = flow["buy_qty"] - flow["sell_qty"]
    return out


# -- train-fit statistics ------------------------------------------------------------------------------------
@dataclass
class TrainFit:
    clip_bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    g_ticks: np.ndarray | None = None  # (imbalance buckets, spread buckets)
    ofi_weights: np.ndarray | None = None
    trend_threshold: float = 0.0
    vol_threshold: float = 0.0


def _buckets(f: dict[str, np.ndarray], params: RefParams) -> tuple[np.ndarray, np.ndarray]:
    ni, ns = params.microprice_imbalance_buckets, params.microprice_spread_buckets
    imb = np.minimum(np.floor(f["imbalance_ratio"] * ni), ni - 1).astype(int)
    spr = np.minimum(np.maximum(np.round(f["spread_ticks"]), 1), ns).astype(int) - 1
    return imb, spr


def fit_train(
    f: dict[str, np.ndarray], train: np.ndarray, tick: float, params: RefParams = RefParams()
) -> TrainFit:
    """Train-fit statistics from the rows selected by the boolean mask `train` (warm-up rows excluded)."""
    sel = train & ~f["is_warmup"]
    fit = TrainFit()
    for c in clipped_features():
        x = f[c][sel]
        x = x[np.isfinite(x)]
        fit.clip_bounds[c] = (
            float(np.quantile(x, params.clip_lower_q)),
            float(np.quantile(x, params.clip_upper_q)),
        )
    # micro-price g1 table: mid change at the next mid move inside the train rows, in ticks, symmetrized
    mid = f["mid"][sel]
    imb, spr = (b[sel] for b in _buckets(f, params))
    changed = np.r_[False, mid[1:] != mid[:-1]]
    change_idx = np.flatnonzero(changed)
    nxt = np.searchsorted(change_idx, np.arange(len(mid)), side="right")
    has = nxt < len(change_idx)
    dm = np.full(len(mid), np.nan)
    dm[has] = (mid[change_idx[nxt[has]]] - mid[has]) / tick
    ni, ns = params.microprice_imbalance_buckets, params.microprice_spread_buckets
    total, count = np.zeros((ni, ns)), np.zeros((ni, ns))
    np.add.at(total, (imb[has], spr[has]), dm[has])
    np.add.at(count, (imb[has], spr[has]), 1)
    np.add.at(total, (ni - 1 - imb[has], spr[has]), -dm[has])
    np.add.at(count, (ni - 1 - imb[has], spr[has]), 1)
    with np.errstate(invalid="ignore"):
        fit.g_ticks = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    # integrated-OFI weights: leading eigenvector of the covariance, unit L1 norm, positive sum
    X = np.column_stack([f[f"ofi_l{m}_{FLOW_WINDOW}s_norm"][sel] for m in range(1, OFI_LEVELS + 1)])
    C = np.cov(X, rowvar=False, bias=True)
    vals, vecs = np.linalg.eigh(C)
    v = vecs[:, -1]
    if np.abs(v).sum() == 0 or vals[-1] <= 0:
        fit.ofi_weights = np.full(OFI_LEVELS, 1.0 / OFI_LEVELS)
    else:
        fit.ofi_weights = v / np.abs(v).sum() * (1 if v.sum() >= 0 else -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(f["regime_rvol"][sel] != 0, f["regime_trend"][sel] / f["regime_rvol"][sel], 0.0)
    fit.trend_threshold = float(np.quantile(np.abs(score), params.regime_trend_quantile))
    fit.vol_threshold = float(np.quantile(f["regime_rvol"][sel], 0.5))
    return fit


def published_features(f: dict[str, np.ndarray], fit: TrainFit, tick: float, params: RefParams = RefParams()):
    """fct_features columns derived with the train fit: clipped features, micro-price, integrated OFI, regime."""
    out = dict(f)
    for c, (lo, hi) in fit.clip_bounds.items():
        x = f[c]
        out[c] = np.where(np.isnan(x), np.nan, np.minimum(np.maximum(x, lo), hi))
    imb, spr = _buckets(f, params)
    g = fit.g_ticks[imb, spr]
    out["micro_price"] = f["mid"] + g * tick
    out["microprice_offset_bps"] = g * tick / f["mid"] * 1e4
    out["weighted_mid_offset_bps"] = (f["weighted_mid"] - f["mid"]) / f["mid"] * 1e4
    X = np.column_stack([out[f"ofi_l{m}_{FLOW_WINDOW}s_norm"] for m in range(1, OFI_LEVELS + 1)])
    out[f"ofi_integrated_{FLOW_WINDOW}s"] = X @ fit.ofi_weights
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(f["regime_rvol"] != 0, f["regime_trend"] / f["regime_rvol"], 0.0)
    out["regime_score"] = score
    out["regime"] = np.where(
        score > fit.trend_threshold, "bull", np.where(score < -fit.trend_threshold, "bear", "range")
    )
    out["vol_regime"] = np.where(f["regime_rvol"] > fit.vol_threshold, "high", "low")
    return out


# -- labels ------------------------------------------------------------------------------------------------
def mid_markouts(ts: np.ndarray, mid: np.ndarray) -> dict[str, np.ndarray]:
    """(m(t+h) - m(t)) / m(t) * 1e4 with m(t+h) the mid of the last book at or before t+h; NaN past the data."""
    out = {}
    for h in MARKOUT_HORIZONS:
        j = np.searchsorted(ts, ts + h * US, side="right") - 1
        val = (mid[j] - mid) / mid * 1e4
        out[f"markout_mid_{h}s_bps"] = np.where(ts[-1] >= ts + h * US, val, np.nan)
    return out


def trade_markouts(book_ts: np.ndarray, mid: np.ndarray, trades: pa.Table) -> dict[str, np.ndarray]:
    t_ts = trades["ts"].cast(pa.int64()).to_numpy()
    price = trades["price"].to_numpy()
    side = trades["side"].to_numpy().astype(float)
    out = {"ts_us": t_ts, "trade_id": trades["trade_id"].to_numpy()}
    for h in MARKOUT_HORIZONS:
        j = np.searchsorted(book_ts, t_ts + h * US, side="right") - 1
        val = side * (mid[np.clip(j, 0, None)] - price) / price * 1e4
        out[f"markout_{h}s_bps"] = np.where((j >= 0) & (book_ts[-1] >= t_ts + h * US), val, np.nan)
    return out


def asof(values_ts: np.ndarray, values: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """values of the last row with values_ts <= ts (NaN before the first)."""
    order = np.argsort(values_ts, kind="stable")
    vts, vals = values_ts[order], np.asarray(values, dtype=float)[order]
    j = np.searchsorted(vts, ts, side="right") - 1
    return np.where(j >= 0, vals[np.clip(j, 0, None)], np.nan)
