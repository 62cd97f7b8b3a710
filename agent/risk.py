"""Risk controls of the scalper: leverage cap, position limits with breach penalties, kill switches.

Everything here is plain Python on numbers the env hands in each decision step (equity, position, mark, time), so
the rules can be read and tested without the replay engine. The env enforces them: orders are clipped to the
position cap, and a tripped kill switch makes the env cancel, flatten and refuse orders (agent/env.py).

Leverage cap (volatility targeting). sigma is the per-decision-step return volatility, the larger of the risk
head's prediction sqrt(predicted_variance) and the trailing realized volatility (never below `sigma_floor`):
    leverage_cap = clip(target_risk / (sigma * sqrt(risk_horizon_s / step_s)), 0, max_leverage)
i.e. a one-sigma move over the risk horizon costs at most `target_risk` of equity.
Position cap: cap_notional = min(max_notional, leverage_cap * equity). Orders that could take |position| past it
are clipped (hard). A step counts as a breach when the position is more than `breach_tolerance` above the cap (the
cap shrank, or the price moved: a full-size position sits exactly at the cap, and without the band every uptick of
a long would count) or an order had to be clipped; the soft penalty is `breach_penalty * breach_streak`, where the streak
grows by one per breaching step and shrinks by one per clean step, so repeated breaches cost more and more.

Kill switches (each trips once and halts trading until its release time):
  daily loss cap   equity <= (1 - daily_loss_cap) * equity at the start of the UTC day -> halt until next UTC day;
  drawdown guard   equity <= (1 - max_drawdown) * peak equity since reset -> halt until reset;
  loss streak      `loss_streak` consecutive losing round trips (flat -> position -> flat, result measured on
                   equity, so fees and funding count) -> halt for `loss_streak_cooldown_s`. Round trips are
                   seen on the decision grid: one that opens and closes within a single step is not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DAY_US = 86_400_000_000
NEVER = 2**62  # "halted until reset"

KILL_DAILY_LOSS = "daily_loss_cap"
KILL_DRAWDOWN = "drawdown_guard"
KILL_LOSS_STREAK = "loss_streak_halt"


@dataclass(frozen=True)
class RiskConfig:
    """Fractions are of equity (quote currency); volatilities are per decision step, as fractions of price.

    max_leverage: ceiling of the leverage cap (notional / equity), also when volatility is tiny. Keep it well below
        the account's margin leverage (10x by default): flipping a full position and quoting both sides need
        initial margin for the opening parts, and orders beyond the margin are rejected by the exchange.
    max_notional: hard cap on |position| * mark, quote currency.
    target_risk: equity fraction a one-sigma move over `risk_horizon_s` may cost.
    sigma_floor: the volatility used when neither a prediction nor enough history exists, and its minimum.
    breach_penalty: reward units (see EnvConfig.reward_scale) per unit of breach streak.
    breach_tolerance: fraction above the cap a held position may drift before the step counts as a breach.
    daily_loss_cap, max_drawdown: fractions; 0 disables that switch. loss_streak: 0 disables it.
    """

    max_leverage: float = 5.0
    max_notional: float = 100_000.0
    target_risk: float = 0.01
    risk_horizon_s: float = 60.0
    sigma_floor: float = 2e-5
    breach_penalty: float = 0.5
    breach_tolerance: float = 0.05
    daily_loss_cap: float = 0.03
    max_drawdown: float = 0.05
    loss_streak: int = 8
    loss_streak_cooldown_s: float = 600.0

    def __post_init__(self) -> None:
        positive = ("max_leverage", "max_notional", "target_risk", "risk_horizon_s", "sigma_floor")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"RiskConfig.{name}={getattr(self, name)} must be > 0")
        for name in ("daily_loss_cap", "max_drawdown"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"RiskConfig.{name}={getattr(self, name)} must lie in [0, 1); 0 disables it")
        if min(self.breach_penalty, self.breach_tolerance, self.loss_streak, self.loss_streak_cooldown_s) < 0:
            raise ValueError(
                "RiskConfig.breach_penalty, breach_tolerance, loss_streak and loss_streak_cooldown_s must be >= 0"
            )


def step_sigma(config: RiskConfig, realized_sigma: float | None, predicted_variance: float | None) -> float:
    """The per-step volatility the caps use: the larger of prediction and realized, at least sigma_floor.
    Missing or non-finite estimates are ignored (the cautious side of each is kept)."""
    sigma = config.sigma_floor
    if realized_sigma is not None and math.isfinite(realized_sigma):
        sigma = max(sigma, realized_sigma)
    if predicted_variance is not None and math.isfinite(predicted_variance) and predicted_variance > 0:
        sigma = max(sigma, math.sqrt(predicted_variance))
    return sigma


def leverage_cap(
    config: RiskConfig, step_s: float, realized_sigma: float | None, predicted_variance: float | None = None
) -> float:
    """Leverage allowed for the current per-step volatility estimates (formula in the module docstring)."""
    sigma = step_sigma(config, realized_sigma, predicted_variance)
    horizon_sigma = sigma * math.sqrt(config.risk_horizon_s / step_s)
    return min(config.max_leverage, config.target_risk / horizon_sigma)


def cap_notional(config: RiskConfig, lev_cap: float, equity: float) -> float:
    """Largest |position| * mark allowed: the hard notional cap or leverage cap * equity, whichever is lower."""
    return max(0.0, min(config.max_notional, lev_cap * max(equity, 0.0)))


def clip_order_qty(side: int, qty: float, position: float, cap_qty: float) -> float:
    """The part of an order of `qty` on `side` (+1 buy, -1 sell) that keeps |position| <= cap_qty if it all
    fills. Reducing trades are always allowed, down to flat and then up to the cap on the other side."""
    if qty <= 0:
        return 0.0
    room = cap_qty - side * position  # how far the position may still move on this side
    return max(0.0, min(qty, room))


@dataclass
class RiskStatus:
    """What the risk manager decided for one step; the env copies it into `info["risk"]`."""

    leverage_cap: float
    cap_notional: float
    sigma: float
    breach: bool
    breach_streak: int
    penalty: float
    halted: bool
    kill_switch: str  # "" when trading is allowed, else the switch holding the halt
    tripped_now: str  # the switch that tripped at this step, "" if none
    halt_until_us: int
    losing_round_trips: int

    def as_info(self) -> dict:
        return dict(self.__dict__)


class RiskManager:
    """Stateful per-episode risk book-keeping. Call `reset` at episode start and `update` once per step."""

    def __init__(self, config: RiskConfig, step_s: float) -> None:
        if step_s <= 0:
            raise ValueError(f"step_s={step_s} must be > 0 seconds")
        self.config = config
        self.step_s = step_s
        self.reset(0, 1.0)

    def reset(self, now_us: int, equity: float) -> None:
        self.peak_equity = equity
        self.day = now_us // DAY_US
        self.day_start_equity = equity
        self.breach_streak = 0
        self.losing_streak = 0
        self.trip_start_equity: float | None = None
        self.halt_until_us = 0
        self.kill_switch = ""
        self.trips: list[tuple[int, str]] = []
        self._last_sign = 0

    def caps(
        self, equity: float, realized_sigma: float, predicted_variance: float | None
    ) -> tuple[float, float, float]:
        """(leverage cap, notional cap, sigma used) for the current equity and volatility estimates."""
        lev = leverage_cap(self.config, self.step_s, realized_sigma, predicted_variance)
        sigma = step_sigma(self.config, realized_sigma, predicted_variance)
        return lev, cap_notional(self.config, lev, equity), sigma

    def halted(self, now_us: int) -> bool:
        return now_us < self.halt_until_us

    def update(
        self,
        now_us: int,
        equity: float,
        position: float,
        mark: float,
        realized_sigma: float,
        predicted_variance: float | None = None,
        clipped: bool = False,
    ) -> RiskStatus:
        """Book one step: day roll, peak, round trips, caps, breaches and kill switches, in that order."""
        cfg = self.config
        day = now_us // DAY_US
        if day != self.day:
            self.day = day
            self.day_start_equity = equity
        self.peak_equity = max(self.peak_equity, equity)

        # Round trips: from leaving flat to being flat again (a flip through zero closes one and opens the next).
        if self.trip_start_equity is not None and (position == 0.0 or self._flipped(position)):
            if equity < self.trip_start_equity:
                self.losing_streak += 1
            else:
                self.losing_streak = 0
            self.trip_start_equity = None
        if position != 0.0 and self.trip_start_equity is None:
            self.trip_start_equity = equity
        self._last_sign = 0 if position == 0.0 else (1 if position > 0 else -1)

        lev, cap, sigma = self.caps(equity, realized_sigma, predicted_variance)
        breach = clipped or abs(position) * mark > cap * (1.0 + cfg.breach_tolerance + 1e-9)
        self.breach_streak = self.breach_streak + 1 if breach else max(0, self.breach_streak - 1)
        penalty = cfg.breach_penalty * self.breach_streak if breach else 0.0

        tripped = ""
        if not self.halted(now_us):
            self.kill_switch = ""
            if cfg.daily_loss_cap > 0 and equity <= (1.0 - cfg.daily_loss_cap) * self.day_start_equity:
                tripped, until = KILL_DAILY_LOSS, (day + 1) * DAY_US
            elif cfg.max_drawdown > 0 and equity <= (1.0 - cfg.max_drawdown) * self.peak_equity:
                tripped, until = KILL_DRAWDOWN, NEVER
            elif cfg.loss_streak > 0 and self.losing_streak >= cfg.loss_streak:
                tripped, until = KILL_LOSS_STREAK, now_us + int(cfg.loss_streak_cooldown_s * 1e6)
                self.losing_streak = 0
            if tripped:
                self.kill_switch = tripped
                self.halt_until_us = until
                self.trips.append((now_us, tripped))
        return RiskStatus(
            leverage_cap=lev,
            cap_notional=cap,
            sigma=sigma,
            breach=breach,
            breach_streak=self.breach_streak,
            penalty=penalty,
            halted=self.halted(now_us),
            kill_switch=self.kill_switch if self.halted(now_us) else "",
            tripped_now=tripped,
            halt_until_us=self.halt_until_us,
            losing_round_trips=self.losing_streak,
        )

    def _flipped(self, position: float) -> bool:
        sign = 1 if position > 0 else -1
        return self._last_sign not in (0, sign)
