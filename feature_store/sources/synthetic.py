"""The embedded default market: a synthetic Binance-like perpetual, deterministic by seed, with a known planted edge.

It produces, per (symbol, day), the raw tables of feature_store.records: 100 ms top-20 `book_snapshots`, `trades`,
1 s `mark_prices`, 8-hourly `funding_rates` and daily `onchain_metrics`.

Model (all in integer ticks and lots; one step = one grid interval, 100 ms by default)
- Volatility: sigma(t) = base x regime factor x exp(slow + fast log-vol AR(1) components) x intraday seasonality,
  updated every second. This gives volatility clustering and, mixed over time, heavy-tailed returns.
- Price events: in each step a price event happens with a probability that grows with sigma; its size k (ticks)
  is |Student-t| scaled so that the per-step variance matches sigma. An up event sweeps the ask side: trades
  consume the whole best ask queue (the queue depletes before the price moves), possibly the next levels, and the
  remaining quotes up to the new ask are pulled; the bid side re-quotes so the new spread is s_new (mostly one
  tick, wider with probability rising with sigma). Down events mirror this. Spreads above one tick close through
  symmetric "improve bid / improve ask" events. Deeper levels have random gaps and sizes whose mean grows away
  from the touch; they fluctuate by random updates.
- Trades between price events are Hawkes-like (self- and cross-exciting buy/sell intensities, so arrivals cluster)
  with lognormal sizes; they hit the touch of the book in force and never empty it (an emptied touch is a price
  event, decided above), while limit adds and cancels replenish the touch queue.
- Martingale at signal_strength = 0. Every mid change is a price or spread-narrowing event whose magnitude
  (k, s_new, improvement) is drawn before, and independently of, its direction; the direction is a fair coin
  given everything the book shows. So E[mid(t+h) - mid(t) | book, trades, regime, anything before t] = 0 exactly.
- Regimes (Markov: range / bull / bear, mean spells of hours) change volatility, trade activity, the aggressor
  mix, the premium (hence funding) and add a *compensated* trend: in a bull spell a price event goes up with
  probability 1/2 + delta (a steady climb of about `trend_bps_per_hour`), and with a small probability pi it is
  instead a crash of `reversal_bps`. pi is computed from the event's own size so that the expected change stays
  exactly zero ("up the stairs, down the elevator", as crypto bull markets go); bear spells mirror it with short
  squeezes. Knowing the regime is worth nothing in expectation. Why not a plain drift: the aggressor mix and the
  premium reveal the regime within minutes, so a drift would be a real, tradable edge at signal 0. The price of
  exactness: a trend only shows in the typical path (more up-moves than down-moves, a positive median), and the
  more visible it is made (trend_bps_per_hour up) the more of the variance comes from reversals. The defaults keep
  reversals moderate (1 s excess kurtosis about 100-150 over days; bull spells end up in about two of three); set trend_bps_per_hour=0 for symmetric regimes.
- Planted edge: the direction coin is biased to p_up = 1/2 (1 + signal_strength x DI1), clipped to [0.02, 0.98],
  where DI1 = (qb1 - qa1) / (qb1 + qa1) is the level-1 queue (order-flow) imbalance of the book in force, i.e. of
  the snapshot at the start of the step. Hence E[next step's mid change | book] = signal_strength x DI1 x E|event|
  x P(event): predictable exactly in proportion to signal_strength, and not at all at 0. The imbalance persists
  over seconds, so the relation carries into the next seconds' mid return.
- Funding: a premium (perp over index) follows a mean-reverting process whose level depends on the regime;
  index = mid / (1 + premium), mark = index x (1 + 60 s average premium), funding at 00/08/16 UTC is Binance's
  formula on the period's average premium: avg + clamp(interest - avg, +-0.05 %) (mostly 0.01 %, positive).
- On-chain: daily active addresses, transaction count and exchange netflow from AR(1) processes nudged by the
  day's regimes (inflows to exchanges in bear spells), available the next day at 00:00 UTC plus a provider lag.

Continuity across days: a day is simulated from the state at its 00:00 (book ladders, volatility, regime, Hawkes
excitation, premium and funding accumulators, trade id counter, on-chain states), and its random stream is seeded by
(seed, symbol, day), so day D is a pure function of the config and the epoch. The state at D's 00:00 is obtained by
simulating every day from `epoch` (the first day of the dataset) without writing tables; each day's start state is
cached as a small JSON file under `state_dir`, so landing a range in order costs one simulation per day and
generating a day alone or in sequence gives identical data. Prices continue across midnight with no bridge.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from numba import njit
from tqdm import tqdm

from feature_store import records
from feature_store.instruments import Instrument, UnknownSymbolError, instrument

# Bump when the model changes: cached end-of-day states of an older model are then ignored.
MODEL_VERSION = 1
LEVELS = records.BOOK_LEVELS
SECONDS_PER_DAY = 86_400
FUNDING_PERIOD_S = 8 * 3600
DEFAULT_EPOCH = dt.date(2024, 1, 1)
REGIMES = ("range", "bull", "bear")
TABLES = ("book_snapshots", "trades", "mark_prices", "funding_rates", "onchain_metrics")
ONCHAIN_METRICS = ("active_addresses", "tx_count", "exchange_netflow")
_US_PER_DAY = SECONDS_PER_DAY * 1_000_000
_MAX_REGULAR_TRADES_PER_STEP = 200
# Stationary standard deviations of the slow (~40 min) and fast (~1 min) log-volatility components.
LOGVOL_SD_SLOW = 0.45
LOGVOL_SD_FAST = 0.3
_MAX_TRADES_PER_STEP = _MAX_REGULAR_TRADES_PER_STEP + 3 * LEVELS + 8


@dataclass
class SyntheticConfig:
    """Knobs of the synthetic market; the defaults give a BTCUSDT-perp-like day (about 45 % annual volatility)."""

    symbol: str = "BTCUSDT"  # the default symbol; load_day(symbol, day) may ask for any known perpetual
    seed: int = 0
    # 0: the mid is a martingale (no edge); 1: the direction of every price event follows the queue imbalance
    # as strongly as the clip allows.
    signal_strength: float = 0.0
    grid_ms: int = 100
    # First day of the dataset; every later day's state is chained from it. None means DEFAULT_EPOCH.
    epoch: dt.date | None = None
    start_price: float = 60_000.0
    annual_vol: float = 0.45
    trades_per_second: float = 25.0
    # Median and lognormal sigma of a non-sweep trade's notional (quote currency).
    trade_notional_median: float = 600.0
    trade_notional_sigma: float = 1.7
    # Hawkes-like clustering: share of trades triggered by earlier trades and the memory of that excitation.
    trade_branching: float = 0.7
    trade_excitation_decay_s: float = 0.5
    # Price events per step at base volatility (scales with volatility).
    event_prob: float = 0.1
    event_tail_df: float = 6.0
    # Probability that a price event leaves a spread wider than one tick, at base volatility (scales with it).
    wide_spread_prob: float = 0.03
    narrow_prob_per_step: float = 0.5
    # Probability that a sweep trades through the next level too (else the rest of the quotes are pulled).
    sweep_continue_prob: float = 0.35
    # Mean resting notional at level 1; level j's mean is depth_notional * (1 + depth_growth * (j - 1)).
    depth_notional: float = 90_000.0
    depth_growth: float = 0.15
    # Mean gap between levels (ticks) near the touch and its growth per level.
    level_gap_ticks: float = 1.5
    level_gap_growth: float = 0.1
    queue_cancel_per_s: float = 0.1
    regime_hours: tuple[float, float, float] = (6.0, 4.0, 3.0)  # mean spell length: range, bull, bear
    regime_vol: tuple[float, float, float] = (0.75, 1.1, 1.3)
    regime_activity: tuple[float, float, float] = (0.8, 1.1, 1.3)
    regime_buy_share: tuple[float, float, float] = (0.5, 0.52, 0.48)
    regime_premium: tuple[float, float, float] = (0.0001, 0.0009, -0.0006)
    trend_bps_per_hour: float = 25.0
    # Size of the rare reversal (crash in a bull spell, squeeze in a bear spell) that compensates the trend.
    reversal_bps: float = 30.0
    premium_sd: float = 0.0004
    premium_half_life_s: float = 3600.0
    funding_interest: float = 0.0001
    funding_clamp: float = 0.0005
    funding_cap: float = 0.0075
    latency_ms: float = 4.0
    latency_jitter: float = 0.7
    onchain_lag_hours: float = 2.0

    def __post_init__(self) -> None:
        if self.grid_ms <= 0 or 1000 % self.grid_ms:
            raise ValueError(f"grid_ms={self.grid_ms} must divide 1000 (e.g. 100, 250, 1000)")
        if not 0.0 <= self.signal_strength <= 1.0:
            raise ValueError(f"signal_strength={self.signal_strength} must lie in [0, 1]")
        if self.start_price <= 0:
            raise ValueError(f"start_price={self.start_price} must be positive")
        if not 0.0 <= self.trade_branching < 1.0:
            raise ValueError(f"trade_branching={self.trade_branching} must lie in [0, 1)")
        if self.trend_bps_per_hour < 0 or self.reversal_bps <= 0:
            raise ValueError(
                f"trend_bps_per_hour={self.trend_bps_per_hour} must be >= 0 and reversal_bps={self.reversal_bps} > 0"
            )
        if isinstance(self.epoch, str):
            self.epoch = dt.date.fromisoformat(self.epoch)

    @property
    def first_day(self) -> dt.date:
        return self.epoch or DEFAULT_EPOCH

    def fingerprint(self, symbol: str) -> str:
        """Identifies the chained path: any knob change (or a model change) starts a different chain."""
        d = asdict(self)
        d["epoch"] = self.first_day.isoformat()
        d["symbol"] = symbol
        d["model_version"] = MODEL_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------------
# Parameter vector of the compiled kernel (indices are compile-time constants).
(
    P_SPS,  # steps per second
    P_DT_US,
    P_TPU,  # ticks per price unit (1 / tick)
    P_LPU,  # lots per size unit (1 / lot)
    P_BASE_VOL_BPS,  # 1 s volatility in bps at base
    P_PHI_SLOW,
    P_SD_SLOW,
    P_PHI_FAST,
    P_SD_FAST,
    P_EVENT_PROB,
    P_TAIL_DF,
    P_WIDE_PROB,
    P_NARROW_PROB,
    P_SWEEP_CONT,
    P_MU_TRADES,  # baseline (immigrant) trade intensity per second at base volatility
    P_EXC_JUMP_SELF,
    P_EXC_JUMP_CROSS,
    P_EXC_DECAY,  # per-step multiplicative decay
    P_EXC_STEP_MEAN,  # mean over the next step of a decaying excitation, relative to its value now
    P_TRADE_LOG_MED_LOTS,
    P_TRADE_SIGMA,
    P_ADD_RATE,  # touch limit adds per step
    P_ADD_LOG_MED_LOTS,
    P_CANCEL_FRAC,  # per step
    P_DEPTH_LOTS,
    P_DEPTH_GROWTH,
    P_GAP,
    P_GAP_GROWTH,
    P_SIGNAL,
    P_TREND_TICKS_PER_S,  # at the start price; scaled by mid / start
    P_REVERSAL,
    P_START_TICKS,
    P_PREM_THETA,
    P_PREM_SD_STEP,
    P_INTEREST,
    P_FCLAMP,
    P_FCAP,
    P_DEEP_UPDATES,
    P_REG_EXIT0,
    P_REG_EXIT1,
    P_REG_EXIT2,
    P_REG_VOL0,
    P_REG_VOL1,
    P_REG_VOL2,
    P_REG_ACT0,
    P_REG_ACT1,
    P_REG_ACT2,
    P_REG_BUY0,
    P_REG_BUY1,
    P_REG_BUY2,
    P_REG_PREM0,
    P_REG_PREM1,
    P_REG_PREM2,
    N_PARAMS,
) = range(54)

# Float state carried across days.
(F_H_SLOW, F_H_FAST, F_EXC_BUY, F_EXC_SELL, F_PREM, F_PREM_AVG60, F_PREM_SUM, F_PREM_N) = range(8)
(F_OC_ADDR, F_OC_TX, F_OC_FLOW) = range(8, 11)
N_FSTATE = 11
# Integer state carried across days.
(I_REGIME, I_NEXT_TRADE_ID) = range(2)
N_ISTATE = 2
# Book rows: bid ticks, bid lots, ask ticks, ask lots (level 1 first).
B_BID_T, B_BID_Q, B_ASK_T, B_ASK_Q = range(4)


def _params(cfg: SyntheticConfig, inst: Instrument) -> np.ndarray:
    p = np.zeros(N_PARAMS)
    sps = 1000 // cfg.grid_ms
    dt_s = cfg.grid_ms / 1000.0
    tpu = round(1.0 / inst.tick_size)
    lpu = round(1.0 / inst.lot_size)
    # Quote notional of one lot at the start price (coin-M lots are contracts worth contract_size USD).
    lot_notional = inst.contract_size if inst.inverse else cfg.start_price * inst.lot_size
    p[P_SPS] = sps
    p[P_DT_US] = cfg.grid_ms * 1000
    p[P_TPU] = tpu
    p[P_LPU] = lpu
    p[P_BASE_VOL_BPS] = cfg.annual_vol / math.sqrt(365.0 * SECONDS_PER_DAY) * 1e4
    # Two log-volatility components: one of about 40 minutes' memory, one of about a minute.
    p[P_PHI_SLOW] = math.exp(-1.0 / 2400.0)
    p[P_SD_SLOW] = LOGVOL_SD_SLOW * math.sqrt(1.0 - p[P_PHI_SLOW] ** 2)
    p[P_PHI_FAST] = math.exp(-1.0 / 60.0)
    p[P_SD_FAST] = LOGVOL_SD_FAST * math.sqrt(1.0 - p[P_PHI_FAST] ** 2)
    p[P_EVENT_PROB] = cfg.event_prob
    p[P_TAIL_DF] = cfg.event_tail_df
    p[P_WIDE_PROB] = cfg.wide_spread_prob
    p[P_NARROW_PROB] = cfg.narrow_prob_per_step
    p[P_SWEEP_CONT] = cfg.sweep_continue_prob
    p[P_MU_TRADES] = cfg.trades_per_second * (1.0 - cfg.trade_branching)
    beta = 1.0 / cfg.trade_excitation_decay_s
    p[P_EXC_JUMP_SELF] = 0.75 * cfg.trade_branching * beta
    p[P_EXC_JUMP_CROSS] = 0.25 * cfg.trade_branching * beta
    p[P_EXC_DECAY] = math.exp(-beta * dt_s)
    # integrating the decay over the step keeps the branching ratio exact on any grid (explosive otherwise at 1 s)
    p[P_EXC_STEP_MEAN] = (1.0 - p[P_EXC_DECAY]) / (beta * dt_s)
    p[P_TRADE_LOG_MED_LOTS] = math.log(cfg.trade_notional_median / lot_notional)
    p[P_TRADE_SIGMA] = cfg.trade_notional_sigma
    depth_lots = cfg.depth_notional / lot_notional
    mean_trade_lots = math.exp(p[P_TRADE_LOG_MED_LOTS] + 0.5 * cfg.trade_notional_sigma**2)
    cancel_frac = 1.0 - math.exp(-cfg.queue_cancel_per_s * dt_s)
    add_median_lots = max(1.0, 0.05 * depth_lots)
    # Adds balance the touch's expected trading plus cancels at its mean size.
    add_volume = 0.5 * cfg.trades_per_second * dt_s * mean_trade_lots + cancel_frac * depth_lots
    p[P_ADD_LOG_MED_LOTS] = math.log(add_median_lots)
    p[P_ADD_RATE] = add_volume / (add_median_lots * math.exp(0.5))
    p[P_CANCEL_FRAC] = cancel_frac
    p[P_DEPTH_LOTS] = depth_lots
    p[P_DEPTH_GROWTH] = cfg.depth_growth
    p[P_GAP] = cfg.level_gap_ticks
    p[P_GAP_GROWTH] = cfg.level_gap_growth
    p[P_SIGNAL] = cfg.signal_strength
    start_ticks = round(cfg.start_price * tpu)
    p[P_TREND_TICKS_PER_S] = cfg.trend_bps_per_hour * 1e-4 * start_ticks / 3600.0
    p[P_REVERSAL] = cfg.reversal_bps
    p[P_START_TICKS] = start_ticks
    p[P_PREM_THETA] = 1.0 - 0.5 ** (1.0 / cfg.premium_half_life_s)
    p[P_PREM_SD_STEP] = cfg.premium_sd * math.sqrt(1.0 - (1.0 - p[P_PREM_THETA]) ** 2)
    p[P_INTEREST] = cfg.funding_interest
    p[P_FCLAMP] = cfg.funding_clamp
    p[P_FCAP] = cfg.funding_cap
    p[P_DEEP_UPDATES] = 1.0
    for r in range(3):
        p[P_REG_EXIT0 + r] = 1.0 / (cfg.regime_hours[r] * 3600.0)
        p[P_REG_VOL0 + r] = cfg.regime_vol[r]
        p[P_REG_ACT0 + r] = cfg.regime_activity[r]
        p[P_REG_BUY0 + r] = cfg.regime_buy_share[r]
        p[P_REG_PREM0 + r] = cfg.regime_premium[r]
    return p


# ---------------------------------------------------------------------------------------------------------------
# Compiled kernel.


@njit(cache=True)
def _funding_rate(avg_premium, interest, clamp, cap):
    rate = avg_premium + min(max(interest - avg_premium, -clamp), clamp)
    return min(max(rate, -cap), cap)


@njit(cache=True)
def _level_lots(par, j):
    """A fresh resting size at depth index j (0 = touch): mean grows away from the touch, lognormal noise."""
    mean = par[P_DEPTH_LOTS] * (1.0 + par[P_DEPTH_GROWTH] * j)
    lots = int(mean * math.exp(0.6 * np.random.normal() - 0.18) + 0.5)
    return max(lots, 1)


@njit(cache=True)
def _gap(par, j):
    """Ticks between level j and j+1: 1 + geometric, wider deeper in the book."""
    mean_extra = par[P_GAP] - 1.0 + par[P_GAP_GROWTH] * j
    if mean_extra <= 0.0:
        return 1
    q = mean_extra / (1.0 + mean_extra)
    return 1 + int(math.log(1.0 - np.random.random()) / math.log(q))


@njit(cache=True)
def _requote(book, trow, qrow, sgn, new_touch, fresh_touch_lots, par, tmp_t, tmp_q):
    """Rebuild one side so that its best price is new_touch.

    sgn = +1 for asks (deeper = higher), -1 for bids. Old levels strictly shallower than new_touch are gone (traded
    or pulled); old levels at or beyond it are kept with their sizes; new levels are quoted from new_touch until the
    first kept level, and the ladder is filled to LEVELS deep.
    """
    first_kept = -1
    for j in range(LEVELS):
        if sgn * (book[trow, j] - new_touch) >= 0:
            first_kept = j
            break
    n = 0
    price = new_touch
    # quote new levels from the new touch until the kept book is reached
    while n < LEVELS:
        if first_kept >= 0 and sgn * (price - book[trow, first_kept]) >= 0:
            break
        tmp_t[n] = price
        tmp_q[n] = fresh_touch_lots if n == 0 else _level_lots(par, n)
        price += sgn * _gap(par, n)
        n += 1
    if first_kept >= 0:
        for j in range(first_kept, LEVELS):
            if n >= LEVELS:
                break
            tmp_t[n] = book[trow, j]
            tmp_q[n] = book[qrow, j]
            n += 1
    while n < LEVELS:
        tmp_t[n] = tmp_t[n - 1] + sgn * _gap(par, n - 1)
        tmp_q[n] = _level_lots(par, n)
        n += 1
    for j in range(LEVELS):
        book[trow, j] = tmp_t[j]
        book[qrow, j] = tmp_q[j]


@njit(cache=True)
def _emit(write, tr_ts, tr_px, tr_qty, tr_side, tr_id, n, ts, ticks, lots, side, trade_id, tpu, lpu):
    if write:
        tr_ts[n] = ts
        tr_px[n] = ticks / tpu
        tr_qty[n] = lots / lpu
        tr_side[n] = side
        tr_id[n] = trade_id
    return n + 1


@njit(cache=True)
def _simulate(
    par,
    book,
    fst,
    ist,
    reseed,
    seed,
    step_from,
    n_steps,
    day_start_us,
    write_book,
    snap_bpx,
    snap_bsz,
    snap_apx,
    snap_asz,
    write_trades,
    tr_ts,
    tr_px,
    tr_qty,
    tr_side,
    tr_id,
    tr_n,
    sec_mid,
    sec_prem,
    sec_prem_avg,
    sec_est_funding,
    sec_regime,
    sec_sigma_bps,
    fund_sec,
    fund_rate,
    fund_n,
    tmp_t,
    tmp_q,
    tmp_u,
):
    """Advance the market over steps [step_from, n_steps) of one day, mutating book/fst/ist in place.

    Returns (next step, trades written, fundings written). It stops early, before drawing anything for a step,
    when the trade buffers could overflow; the caller grows them and calls again without reseeding.
    """
    if reseed:
        np.random.seed(seed)
    sps = int(par[P_SPS])
    dt_us = int(par[P_DT_US])
    tpu = par[P_TPU]
    lpu = par[P_LPU]
    cap = tr_ts.shape[0]
    two_pi = 2.0 * math.pi
    # per-second quantities, recomputed at each second boundary (a day always starts on one)
    p_event = 0.0
    k_scale = 1.0
    wide_prob = 0.0
    mu_trades = 0.0
    buy_share = 0.5
    trend_dir = 0
    delta = 0.0
    for i in range(step_from, n_steps):
        # stop only on a second boundary, so that a resumed call recomputes nothing
        if write_trades and i % sps == 0 and tr_n + sps * _MAX_TRADES_PER_STEP > cap:
            return i, tr_n, fund_n
        t0 = day_start_us + i * dt_us
        bb = book[B_BID_T, 0]
        ba = book[B_ASK_T, 0]
        mid_ticks = 0.5 * (bb + ba)
        sec = i // sps
        if i % sps == 0:
            # ---- once a second: funding settlement, regime, volatility, premium
            if sec % FUNDING_PERIOD_S == 0:
                avg = fst[F_PREM_SUM] / max(fst[F_PREM_N], 1.0)
                fund_sec[fund_n] = sec
                fund_rate[fund_n] = _funding_rate(avg, par[P_INTEREST], par[P_FCLAMP], par[P_FCAP])
                fund_n += 1
                fst[F_PREM_SUM] = 0.0
                fst[F_PREM_N] = 0.0
            reg = ist[I_REGIME]
            if np.random.random() < par[P_REG_EXIT0 + reg]:
                reg = (reg + 1 + int(np.random.random() * 2.0)) % 3
                ist[I_REGIME] = reg
            fst[F_H_SLOW] = par[P_PHI_SLOW] * fst[F_H_SLOW] + par[P_SD_SLOW] * np.random.normal()
            fst[F_H_FAST] = par[P_PHI_FAST] * fst[F_H_FAST] + par[P_SD_FAST] * np.random.normal()
            prem = fst[F_PREM]
            prem += (
                par[P_PREM_THETA] * (par[P_REG_PREM0 + reg] - prem) + par[P_PREM_SD_STEP] * np.random.normal()
            )
            fst[F_PREM] = prem
            fst[F_PREM_AVG60] += (prem - fst[F_PREM_AVG60]) / 60.0
            fst[F_PREM_SUM] += prem
            fst[F_PREM_N] += 1.0
            sod = (sec % SECONDS_PER_DAY) / SECONDS_PER_DAY
            season = 1.0 + 0.25 * math.cos(two_pi * (sod - 14.5 / 24.0))
            # minus half the variance: the mean of exp(lv) is 1, so sigma averages the base level
            lv = fst[F_H_SLOW] + fst[F_H_FAST] - 0.5 * (LOGVOL_SD_SLOW**2 + LOGVOL_SD_FAST**2)
            sigma_bps = par[P_BASE_VOL_BPS] * par[P_REG_VOL0 + reg] * math.exp(lv) * season
            rel = sigma_bps / par[P_BASE_VOL_BPS]
            p_event = min(0.5, par[P_EVENT_PROB] * rel)
            sigma_step_ticks = sigma_bps * 1e-4 * mid_ticks / math.sqrt(sps)
            df = par[P_TAIL_DF]
            k_scale = math.sqrt(sigma_step_ticks**2 / p_event * (df - 2.0) / df)
            wide_prob = min(0.6, par[P_WIDE_PROB] * rel)
            mu_trades = par[P_MU_TRADES] * par[P_REG_ACT0 + reg] * rel**0.5 * season
            buy_share = par[P_REG_BUY0 + reg]
            trend_dir = 1 if reg == 1 else (-1 if reg == 2 else 0)
            if trend_dir != 0 and par[P_TREND_TICKS_PER_S] > 0.0:
                # drift per second = 2 delta x events per second x E[event size]; E|t_df| ~ 0.8
                drift = par[P_TREND_TICKS_PER_S] * mid_ticks / par[P_START_TICKS]
                delta = min(0.2, drift / (2.0 * p_event * sps * (1.0 + 0.8 * k_scale)))
            else:
                delta = 0.0
            sec_mid[sec] = mid_ticks / tpu
            sec_prem[sec] = fst[F_PREM]
            sec_prem_avg[sec] = fst[F_PREM_AVG60]
            sec_est_funding[sec] = _funding_rate(
                fst[F_PREM_SUM] / max(fst[F_PREM_N], 1.0), par[P_INTEREST], par[P_FCLAMP], par[P_FCAP]
            )
            sec_regime[sec] = reg
            sec_sigma_bps[sec] = sigma_bps
        # ---- the snapshot at t0 is the book in force for everything in [t0, t0 + dt)
        if write_book:
            for j in range(LEVELS):
                snap_bpx[i, j] = book[B_BID_T, j] / tpu
                snap_bsz[i, j] = book[B_BID_Q, j] / lpu
                snap_apx[i, j] = book[B_ASK_T, j] / tpu
                snap_asz[i, j] = book[B_ASK_Q, j] / lpu
        qb = book[B_BID_Q, 0]
        qa = book[B_ASK_Q, 0]
        spread = ba - bb
        imbalance = (qb - qa) / (qb + qa)
        p_up = min(0.98, max(0.02, 0.5 * (1.0 + par[P_SIGNAL] * imbalance)))
        # ---- price event: magnitude first, then direction
        event_dir = 0
        event_k = 0
        s_new = 1
        if np.random.random() < p_event:
            df = par[P_TAIL_DF]
            t = np.random.normal() / math.sqrt(np.random.chisquare(df) / df)
            k = max(1, int(k_scale * abs(t) + 0.5))
            s_draw = 1
            while s_draw < 8 and np.random.random() < wide_prob:
                s_draw += 1
            s_new = min(s_draw, spread + k)
            half = 0.5 * (spread - s_new)
            if trend_dir == 0:
                p_with = p_up
                dir_with = 1
            else:
                dir_with = trend_dir
                p_with = p_up if trend_dir > 0 else 1.0 - p_up
            # the trend tilt delta and its reversal (probability pi, size jump ticks) cancel in expectation:
            # 2 delta (k + half) + pi (k + half) - pi (jump + half) = 0
            jump = int(par[P_REVERSAL] * 1e-4 * mid_ticks)
            tilt = 0.0
            pi = 0.0
            if delta > 0.0 and jump > k:
                ratio = 2.0 * (k + half) / (jump - k)
                # the three branch probabilities must stay within [0, 1]
                tilt = min(delta, (1.0 - p_with) / (1.0 + ratio))
                pi = tilt * ratio
            u = np.random.random()
            if u < p_with + tilt:
                event_dir = dir_with
                event_k = k
            elif u < p_with + tilt + pi:
                event_dir = -dir_with
                event_k = jump
            else:
                event_dir = -dir_with
                event_k = k
            # a price never reaches zero
            if event_dir < 0:
                event_k = min(event_k, bb // 2)
        # ---- regular trades at the touch (Hawkes-like intensities), never emptying it
        lam_buy = mu_trades * buy_share + fst[F_EXC_BUY] * par[P_EXC_STEP_MEAN]
        lam_sell = mu_trades * (1.0 - buy_share) + fst[F_EXC_SELL] * par[P_EXC_STEP_MEAN]
        n_reg = min(np.random.poisson((lam_buy + lam_sell) * dt_us * 1e-6), _MAX_REGULAR_TRADES_PER_STEP)
        p_buy = lam_buy / (lam_buy + lam_sell)
        # sorted arrival offsets in [0, 0.9 dt): normalized cumulative exponential spacings
        total = 0.0
        for j in range(n_reg + 1):
            total += np.random.exponential()
            tmp_u[j] = total
        n_buy = 0
        n_sell = 0
        for j in range(n_reg):
            ts = t0 + int(tmp_u[j] / total * 0.9 * dt_us)
            side = 1 if np.random.random() < p_buy else -1
            lots = max(
                1, int(math.exp(par[P_TRADE_LOG_MED_LOTS] + par[P_TRADE_SIGMA] * np.random.normal()) + 0.5)
            )
            qrow = B_ASK_Q if side > 0 else B_BID_Q
            trow = B_ASK_T if side > 0 else B_BID_T
            q = book[qrow, 0]
            if q <= 1:
                continue
            lots = min(lots, q - 1)
            book[qrow, 0] = q - lots
            tr_n = _emit(
                write_trades,
                tr_ts,
                tr_px,
                tr_qty,
                tr_side,
                tr_id,
                tr_n,
                ts,
                book[trow, 0],
                lots,
                side,
                ist[I_NEXT_TRADE_ID],
                tpu,
                lpu,
            )
            ist[I_NEXT_TRADE_ID] += 1
            if side > 0:
                n_buy += 1
            else:
                n_sell += 1
        # ---- limit adds and cancels at the touch; not on a touch about to be swept (it trades out as it stands)
        for side_row in (B_BID_Q, B_ASK_Q):
            swept = (event_dir > 0 and side_row == B_ASK_Q) or (event_dir < 0 and side_row == B_BID_Q)
            n_add = np.random.poisson(par[P_ADD_RATE])
            added = 0
            for _ in range(n_add):
                added += max(1, int(math.exp(par[P_ADD_LOG_MED_LOTS] + np.random.normal()) + 0.5))
            cancel = int(book[side_row, 0] * par[P_CANCEL_FRAC] * np.random.exponential())
            if not swept:
                q = book[side_row, 0] + added
                book[side_row, 0] = max(1, q - min(cancel, q - 1))
        # ---- apply the price event
        if event_dir != 0:
            if event_dir > 0:
                trow, qrow, otrow, oqrow, sgn = B_ASK_T, B_ASK_Q, B_BID_T, B_BID_Q, 1
                touch = ba
            else:
                trow, qrow, otrow, oqrow, sgn = B_BID_T, B_BID_Q, B_ASK_T, B_ASK_Q, -1
                touch = bb
            new_touch = touch + sgn * event_k
            # the sweep: a burst at the end of the step that trades out the touch queue, maybe more levels
            ts = t0 + int(0.9 * dt_us)
            trading = True
            for j in range(LEVELS):
                if sgn * (book[trow, j] - new_touch) >= 0:
                    break
                if j > 0 and (not trading or np.random.random() >= par[P_SWEEP_CONT]):
                    trading = False
                    continue
                remaining = book[qrow, j]
                chunks = 1 + min(2, np.random.poisson(0.7))
                for c in range(chunks):
                    lots = remaining if c == chunks - 1 else int(remaining * np.random.random() * 0.6)
                    if lots <= 0:
                        continue
                    tr_n = _emit(
                        write_trades,
                        tr_ts,
                        tr_px,
                        tr_qty,
                        tr_side,
                        tr_id,
                        tr_n,
                        ts,
                        book[trow, j],
                        lots,
                        event_dir,
                        ist[I_NEXT_TRADE_ID],
                        tpu,
                        lpu,
                    )
                    ist[I_NEXT_TRADE_ID] += 1
                    ts += 1
                    remaining -= lots
            if event_dir > 0:
                n_buy += 1
            else:
                n_sell += 1
            fresh = max(1, int(0.5 * _level_lots(par, 0)))
            _requote(book, trow, qrow, sgn, new_touch, fresh, par, tmp_t, tmp_q)
            # the other side re-quotes so that the spread becomes s_new (it never retreats)
            other_touch = new_touch - sgn * s_new
            if sgn * (other_touch - book[otrow, 0]) > 0:
                fresh = max(1, int(0.5 * _level_lots(par, 0)))
                _requote(book, otrow, oqrow, -sgn, other_touch, fresh, par, tmp_t, tmp_q)
        elif spread >= 2 and np.random.random() < par[P_NARROW_PROB]:
            # ---- a quote inside the spread, on either side alike (biased only by the planted signal)
            improve = 1 + int(np.random.random() * (spread - 1))
            fresh = max(1, int(0.3 * _level_lots(par, 0)))
            if np.random.random() < p_up:
                _requote(book, B_BID_T, B_BID_Q, -1, bb + improve, fresh, par, tmp_t, tmp_q)
            else:
                _requote(book, B_ASK_T, B_ASK_Q, 1, ba - improve, fresh, par, tmp_t, tmp_q)
        # ---- deeper levels: random resizes toward the depth profile
        for qrow in (B_BID_Q, B_ASK_Q):
            for _ in range(np.random.poisson(par[P_DEEP_UPDATES])):
                j = 1 + int(np.random.random() * (LEVELS - 1))
                target = par[P_DEPTH_LOTS] * (1.0 + par[P_DEPTH_GROWTH] * j)
                q = book[qrow, j]
                book[qrow, j] = max(
                    1, int(q**0.85 * target**0.15 * math.exp(0.3 * np.random.normal() - 0.045) + 0.5)
                )
        # ---- Hawkes excitation: decays, and jumps with each trade event of the step
        d = par[P_EXC_DECAY]
        js = par[P_EXC_JUMP_SELF]
        jc = par[P_EXC_JUMP_CROSS]
        fst[F_EXC_BUY] = fst[F_EXC_BUY] * d + js * n_buy + jc * n_sell
        fst[F_EXC_SELL] = fst[F_EXC_SELL] * d + js * n_sell + jc * n_buy
    return n_steps, tr_n, fund_n


# ---------------------------------------------------------------------------------------------------------------
# State carried across days.


@dataclass
class MarketState:
    """Everything the market remembers at a day boundary (00:00 UTC)."""

    book: np.ndarray  # (4, LEVELS) int64: bid ticks, bid lots, ask ticks, ask lots
    fstate: np.ndarray  # (N_FSTATE,) float64
    istate: np.ndarray  # (N_ISTATE,) int64

    def copy(self) -> MarketState:
        return MarketState(self.book.copy(), self.fstate.copy(), self.istate.copy())

    def to_json(self) -> str:
        return json.dumps(
            {"book": self.book.tolist(), "fstate": self.fstate.tolist(), "istate": self.istate.tolist()}
        )

    @classmethod
    def from_json(cls, text: str) -> MarketState:
        d = json.loads(text)
        return cls(
            np.asarray(d["book"], dtype=np.int64),
            np.asarray(d["fstate"], dtype=np.float64),
            np.asarray(d["istate"], dtype=np.int64),
        )

    @property
    def mid(self) -> float:
        return 0.5 * (self.book[B_BID_T, 0] + self.book[B_ASK_T, 0])

    @property
    def regime(self) -> str:
        return REGIMES[int(self.istate[I_REGIME])]


def initial_state(cfg: SyntheticConfig, symbol: str) -> MarketState:
    """The market at the epoch's 00:00: a one-tick book around start_price in the range regime, long-run means."""
    inst = _perpetual(symbol)
    par = _params(cfg, inst)
    rng = np.random.default_rng(_seed_words(cfg.seed, symbol, cfg.first_day, "initial"))
    tpu = par[P_TPU]
    bid = int(math.floor(cfg.start_price * tpu))
    book = np.zeros((4, LEVELS), dtype=np.int64)
    for trow, qrow, sgn, touch in ((B_BID_T, B_BID_Q, -1, bid), (B_ASK_T, B_ASK_Q, 1, bid + 1)):
        price = touch
        for j in range(LEVELS):
            book[trow, j] = price
            mean = par[P_DEPTH_LOTS] * (1.0 + par[P_DEPTH_GROWTH] * j)
            book[qrow, j] = max(1, int(mean * math.exp(0.6 * rng.normal() - 0.18) + 0.5))
            price += sgn * (1 + int(rng.geometric(1.0 / (par[P_GAP] + par[P_GAP_GROWTH] * j)) - 1))
    fstate = np.zeros(N_FSTATE)
    fstate[F_PREM] = cfg.regime_premium[0]
    fstate[F_PREM_AVG60] = cfg.regime_premium[0]
    # an 8 h funding period already under way at the long-run premium
    fstate[F_PREM_SUM] = cfg.regime_premium[0] * FUNDING_PERIOD_S
    fstate[F_PREM_N] = FUNDING_PERIOD_S
    istate = np.zeros(N_ISTATE, dtype=np.int64)
    istate[I_NEXT_TRADE_ID] = 1
    return MarketState(book, fstate, istate)


def _seed_words(seed: int, symbol: str, day: dt.date, purpose: str) -> list[int]:
    return [
        int(seed) & 0xFFFFFFFF,
        zlib.crc32(symbol.encode()),
        day.toordinal(),
        zlib.crc32(purpose.encode()),
    ]


def _kernel_seed(seed: int, symbol: str, day: dt.date) -> int:
    return int(np.random.SeedSequence(_seed_words(seed, symbol, day, "kernel")).generate_state(1)[0])


# ---------------------------------------------------------------------------------------------------------------
# One day.


@dataclass
class SyntheticDay:
    """A simulated (symbol, day): its tables (empty dict when only chaining), latent paths and end state."""

    symbol: str
    day: dt.date
    tables: dict[str, pa.Table]
    end_state: MarketState
    # per second: regime index (0 range, 1 bull, 2 bear), 1 s volatility in bps, mid price
    regime: np.ndarray = field(repr=False)
    sigma_bps: np.ndarray = field(repr=False)
    mid: np.ndarray = field(repr=False)


def simulate_day(
    cfg: SyntheticConfig,
    symbol: str,
    day: dt.date,
    state: MarketState,
    *,
    n_steps: int | None = None,
    with_tables: bool = True,
    trade_capacity: int | None = None,
) -> SyntheticDay:
    """Simulate `day` from `state` (the market at its 00:00). `n_steps` < a full day simulates only its start
    (for tests); `with_tables=False` only advances the state (chaining), drawing exactly the same randomness;
    `trade_capacity` sets the first size of the trade buffers (they grow as needed; the output is the same)."""
    inst = _perpetual(symbol)
    par = _params(cfg, inst)
    sps = int(par[P_SPS])
    full = SECONDS_PER_DAY * sps
    n_steps = full if n_steps is None else int(n_steps)
    if not 0 < n_steps <= full:
        raise ValueError(f"n_steps={n_steps} must lie in 1..{full} (one day at grid_ms={cfg.grid_ms})")
    n_steps = max(sps, n_steps - n_steps % sps)  # whole seconds
    n_sec = n_steps // sps
    st = state.copy()
    day_start_us = _day_start_us(day)
    book_shape = (n_steps, LEVELS) if with_tables else (1, LEVELS)
    bpx, bsz, apx, asz = (np.empty(book_shape) for _ in range(4))
    cap = (trade_capacity or int(n_steps * 4 + 10_000)) if with_tables else 1
    cap = max(cap, sps * _MAX_TRADES_PER_STEP + 1) if with_tables else 1
    tr_ts = np.empty(cap, np.int64)
    tr_px = np.empty(cap)
    tr_qty = np.empty(cap)
    tr_side = np.empty(cap, np.int8)
    tr_id = np.empty(cap, np.int64)
    sec_mid, sec_prem, sec_prem_avg, sec_est = (np.empty(SECONDS_PER_DAY) for _ in range(4))
    sec_regime = np.empty(SECONDS_PER_DAY, np.int64)
    sec_sigma = np.empty(SECONDS_PER_DAY)
    fund_sec = np.empty(4, np.int64)
    fund_rate = np.empty(4)
    tmp_t = np.empty(LEVELS, np.int64)
    tmp_q = np.empty(LEVELS, np.int64)
    tmp_u = np.empty(_MAX_REGULAR_TRADES_PER_STEP + 1)
    step, tr_n, fund_n = 0, 0, 0
    reseed = True
    while True:
        step, tr_n, fund_n = _simulate(
            par, st.book, st.fstate, st.istate, reseed, _kernel_seed(cfg.seed, symbol, day), step, n_steps,
            day_start_us, with_tables, bpx, bsz, apx, asz, with_tables, tr_ts, tr_px, tr_qty, tr_side, tr_id,
            tr_n, sec_mid, sec_prem, sec_prem_avg, sec_est, sec_regime, sec_sigma, fund_sec, fund_rate, fund_n,
            tmp_t, tmp_q, tmp_u,
        )  # fmt: skip
        reseed = False
        if step >= n_steps:
            break
        # grow the trade buffers and carry on where the kernel stopped (same random stream)
        cap *= 2
        tr_ts, tr_px, tr_qty, tr_side, tr_id = (
            np.resize(a, cap) for a in (tr_ts, tr_px, tr_qty, tr_side, tr_id)
        )
    if n_steps == full:
        # the day's on-chain values, published after it ends
        st.fstate[F_OC_ADDR : F_OC_FLOW + 1] = _advance_onchain(cfg, symbol, day, st.fstate, sec_regime)
    tables: dict[str, pa.Table] = {}
    if with_tables:
        tables = _tables(
            cfg, inst, symbol, day, n_steps, sps, bpx, bsz, apx, asz, tr_n, tr_ts, tr_px, tr_qty, tr_side, tr_id,
            n_sec, sec_mid, sec_prem, sec_prem_avg, sec_est, fund_n, fund_sec, fund_rate, st.fstate,
        )  # fmt: skip
    return SyntheticDay(
        symbol, day, tables, st, sec_regime[:n_sec].copy(), sec_sigma[:n_sec].copy(), sec_mid[:n_sec].copy()
    )


def _day_start_us(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * _US_PER_DAY


def _advance_onchain(cfg: SyntheticConfig, symbol: str, day: dt.date, fstate: np.ndarray, regime: np.ndarray):
    """Next day's on-chain AR(1) states: log deviations of addresses / tx count, netflow in base units."""
    rng = np.random.default_rng(_seed_words(cfg.seed, symbol, day, "onchain"))
    bull_share = float(np.mean(regime == 1))
    bear_share = float(np.mean(regime == 2))
    addr = 0.8 * fstate[F_OC_ADDR] + 0.05 * rng.normal() + 0.03 * (bull_share - bear_share)
    tx = 0.7 * fstate[F_OC_TX] + 0.15 * addr + 0.04 * rng.normal()
    # coins move to exchanges in selloffs and away in rallies
    flow = 0.3 * fstate[F_OC_FLOW] + 2500.0 * (bear_share - bull_share) + 2000.0 * rng.normal()
    return np.array([addr, tx, flow])


def _latency_us(cfg: SyntheticConfig, symbol: str, day: dt.date, purpose: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(_seed_words(cfg.seed, symbol, day, "latency-" + purpose))
    base = cfg.latency_ms * 1000.0
    jitter = rng.lognormal(mean=math.log(base), sigma=cfg.latency_jitter, size=n)
    return np.maximum(1, (0.5 * base + jitter).astype(np.int64))


def _common(inst: Instrument, symbol: str, day: dt.date, n: int) -> dict[str, pa.Array]:
    return {
        "exchange": pa.repeat(pa.scalar("synthetic"), n),
        "market": pa.repeat(pa.scalar(inst.market), n),
        "symbol": pa.repeat(pa.scalar(symbol), n),
        "date": pa.repeat(pa.scalar(day.isoformat()), n),
    }


def _tables(
    cfg, inst, symbol, day, n_steps, sps, bpx, bsz, apx, asz, tr_n, tr_ts, tr_px, tr_qty, tr_side, tr_id,
    n_sec, sec_mid, sec_prem, sec_prem_avg, sec_est, fund_n, fund_sec, fund_rate, fstate,
) -> dict[str, pa.Table]:  # fmt: skip
    day_start_us = _day_start_us(day)
    grid_us = cfg.grid_ms * 1000
    out: dict[str, pa.Table] = {}

    ts = day_start_us + np.arange(n_steps, dtype=np.int64) * grid_us
    out["book_snapshots"] = records.table_from_columns(
        records.BookSnapshot,
        {
            **_common(inst, symbol, day, n_steps),
            "ts": ts,
            "recv_ts": ts + _latency_us(cfg, symbol, day, "book", n_steps),
            "update_id": pa.repeat(pa.scalar(0, pa.int64()), n_steps),
            "bid_px": bpx,
            "bid_sz": bsz,
            "ask_px": apx,
            "ask_sz": asz,
        },
    )

    tts = tr_ts[:tr_n]
    out["trades"] = records.table_from_columns(
        records.TradeTick,
        {
            **_common(inst, symbol, day, tr_n),
            "ts": tts,
            "recv_ts": tts + _latency_us(cfg, symbol, day, "trades", tr_n),
            "trade_id": tr_id[:tr_n],
            "price": tr_px[:tr_n],
            "qty": tr_qty[:tr_n],
            "side": tr_side[:tr_n],
        },
    )

    secs = np.arange(n_sec, dtype=np.int64)
    mts = day_start_us + secs * 1_000_000
    mid = sec_mid[:n_sec]
    index = mid / (1.0 + sec_prem[:n_sec])
    mark = index * (1.0 + sec_prem_avg[:n_sec])
    next_funding = day_start_us + ((secs // FUNDING_PERIOD_S) + 1) * FUNDING_PERIOD_S * 1_000_000
    out["mark_prices"] = records.table_from_columns(
        records.MarkPrice,
        {
            **_common(inst, symbol, day, n_sec),
            "ts": mts,
            "recv_ts": mts + _latency_us(cfg, symbol, day, "mark", n_sec),
            "mark_price": np.round(mark, 2),
            "index_price": np.round(index, 2),
            "est_funding_rate": np.round(sec_est[:n_sec], 8),
            "next_funding_ts": next_funding,
        },
    )

    fts = day_start_us + fund_sec[:fund_n] * 1_000_000
    out["funding_rates"] = records.table_from_columns(
        records.FundingRate,
        {
            **_common(inst, symbol, day, fund_n),
            "ts": fts,
            "recv_ts": fts + _latency_us(cfg, symbol, day, "funding", fund_n),
            "rate": np.round(fund_rate[:fund_n], 8),
            "mark_price": np.round(mark[fund_sec[:fund_n]], 2),
            "interval_hours": np.full(fund_n, FUNDING_PERIOD_S / 3600.0),
        },
    )

    if n_steps == SECONDS_PER_DAY * sps:
        out["onchain_metrics"] = _onchain_table(cfg, inst, symbol, day, fstate)
    else:
        # a partial day has not ended: its on-chain values do not exist yet
        out["onchain_metrics"] = records.OnChainMetric.schema.empty_table()
    return out


def _onchain_table(cfg, inst, symbol, day, fstate) -> pa.Table:
    base = {"BTC": (900_000.0, 550_000.0), "ETH": (450_000.0, 1_100_000.0)}.get(
        inst.base, (100_000.0, 100_000.0)
    )
    values = np.array(
        [
            round(base[0] * math.exp(fstate[F_OC_ADDR])),
            round(base[1] * math.exp(fstate[F_OC_TX])),
            round(float(fstate[F_OC_FLOW]), 3),
        ]
    )
    ts = np.full(3, _day_start_us(day), dtype=np.int64)
    available = ts + _US_PER_DAY + int(cfg.onchain_lag_hours * 3600 * 1_000_000)
    # the fetch happens a little after publication
    recv = available + _latency_us(cfg, symbol, day, "onchain", 3) * 1000
    return records.table_from_columns(
        records.OnChainMetric,
        {
            **_common(inst, symbol, day, 3),
            "ts": ts,
            "recv_ts": recv,
            "asset": pa.repeat(pa.scalar(inst.base), 3),
            "metric": list(ONCHAIN_METRICS),
            "value": values,
            "available_at": available,
        },
    )


# ---------------------------------------------------------------------------------------------------------------
# The source.


class SyntheticSource:
    """Deterministic synthetic perpetual-futures market, one (symbol, day) at a time.

    `state_dir` (optional) caches each day's 00:00 state as JSON so that days after the epoch are reached by
    chaining from the nearest cached day; without it the cache lives in memory for this instance only.
    `day_seconds` (optional) lands only the first seconds of each day, for quick tests and demos; the chained
    state of later days is unaffected (it always comes from whole simulated days).
    """

    name = "synthetic"

    def __init__(
        self,
        config: SyntheticConfig | None = None,
        state_dir: str | Path | None = None,
        day_seconds: int | None = None,
    ):
        self.config = config or SyntheticConfig()
        self.state_dir = Path(state_dir) if state_dir is not None else None
        if day_seconds is not None and not 0 < day_seconds <= SECONDS_PER_DAY:
            raise ValueError(f"day_seconds={day_seconds} must lie in 1..{SECONDS_PER_DAY}")
        self.day_seconds = day_seconds
        self._memory: dict[tuple[str, dt.date], str] = {}

    def tables(self) -> tuple[str, ...]:
        return TABLES

    def load_day(self, symbol: str, day: dt.date) -> dict[str, pa.Table]:
        symbol = _perpetual(symbol).symbol  # UnknownSymbolError for an unknown symbol
        day = _as_date(day)
        state = self.state_at(symbol, day)
        if self.day_seconds is not None and self.day_seconds < SECONDS_PER_DAY:
            n_steps = self.day_seconds * (1000 // self.config.grid_ms)
            return simulate_day(self.config, symbol, day, state, n_steps=n_steps).tables
        result = simulate_day(self.config, symbol, day, state)
        self._remember(symbol, day + dt.timedelta(days=1), result.end_state)
        return result.tables

    def state_at(self, symbol: str, day: dt.date) -> MarketState:
        """The market at `day` 00:00 UTC, chained from the epoch through every day between."""
        day = _as_date(day)
        symbol = _perpetual(symbol).symbol
        epoch = self.config.first_day
        if day < epoch:
            raise ValueError(
                f"day {day} is before the synthetic market's epoch {epoch}; "
                "set SyntheticConfig(epoch=...) to the first day of the dataset"
            )
        cursor, state = epoch, None
        probe = day
        while probe >= epoch:
            text = self._recall(symbol, probe)
            if text is not None:
                cursor, state = probe, MarketState.from_json(text)
                break
            probe -= dt.timedelta(days=1)
        if state is None:
            state = initial_state(self.config, symbol)
            self._remember(symbol, epoch, state)
        # about a second per day on one core: the first request far from the epoch shows progress
        with tqdm(total=(day - cursor).days, desc=f"synthetic {symbol}: chaining from {cursor}", unit="day",
                  disable=(day - cursor).days < 5, leave=False) as progress:  # fmt: skip
            while cursor < day:
                state = simulate_day(self.config, symbol, cursor, state, with_tables=False).end_state
                cursor += dt.timedelta(days=1)
                self._remember(symbol, cursor, state)
                progress.update(1)
        return state

    def _cache_path(self, symbol: str, day: dt.date) -> Path | None:
        if self.state_dir is None:
            return None
        return (
            self.state_dir
            / f"synthetic-{symbol}-{self.config.fingerprint(symbol)}"
            / f"{day.isoformat()}.json"
        )

    def _recall(self, symbol: str, day: dt.date) -> str | None:
        text = self._memory.get((symbol, day))
        if text is None:
            path = self._cache_path(symbol, day)
            if path is not None and path.exists():
                text = path.read_text()
                self._memory[(symbol, day)] = text
        return text

    def _remember(self, symbol: str, day: dt.date, state: MarketState) -> None:
        text = state.to_json()
        self._memory[(symbol, day)] = text
        path = self._cache_path(symbol, day)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")  # concurrent writers never share a temp file
            tmp.write_text(text)
            tmp.replace(path)


def _as_date(day: dt.date | dt.datetime | str) -> dt.date:
    if isinstance(day, dt.datetime):
        return day.date()
    if isinstance(day, str):
        try:
            return dt.date.fromisoformat(day)
        except ValueError:
            raise ValueError(f"day {day!r} is not a date; use YYYY-MM-DD") from None
    return day


def _perpetual(symbol: str) -> Instrument:
    """The perpetual named `symbol`, USD-M or coin-M; UnknownSymbolError (naming the fix) otherwise."""
    try:
        return instrument(symbol, "usdm")
    except UnknownSymbolError as usdm_error:
        try:
            return instrument(symbol, "coinm")
        except UnknownSymbolError:
            raise usdm_error from None
