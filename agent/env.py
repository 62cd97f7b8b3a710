"""The gymnasium environment of the scalper: actions to orders, replay steps, risk enforcement and the reward.

One decision every `step_s` (ViewConfig, default 1 s). Each step the env turns the action into orders on the replay
engine (agent/sim/engine.Simulator) at t_k, advances the replay to t_{k+1}, books fills, fees and funding, applies
the risk rules (agent/risk.py) and returns the observation at t_{k+1} (agent/obs.py).

Action: MultiDiscrete([n_price, n_size]).
  size branch s = 0..2K: a signed target inventory, (s - K) / K of the risk-scaled position cap
      cap_qty = min(max_notional, leverage_cap * equity) / mid, in lots (leverage_cap from agent/risk.py).
  price branch (PRICE_ACTIONS, default ["none", "inside", "touch", "passive_2", "passive_5", "cross"]):
      none      cancel every resting order, send nothing (the position is held);
      inside    post-only one tick inside the touch (at the touch when the spread is one tick);
      touch     post-only at the best bid / best ask;
      passive_k post-only k ticks behind the touch;
      cross     cancel resting orders and send a market order for target - position.
  Passive orders work the difference to the target on one side (bid when below it, ask when above it). At the
  target the env makes a two-sided market of `quote_fraction` of the cap a side (default one size bucket). An order
  already resting at the wanted price keeps its queue place while its size is within `requote_tolerance` of the
  wanted size; otherwise the env's one order per side is amended in place (a smaller size keeps priority, a new
  price or a larger size goes to the back; an amend that would cross is refused and retried next step).
  Orders are clipped so that |position| stays within the cap if they all fill (agent/risk.clip_order_qty),
  counting orders whose cancel is still in flight.

Reward per step, in units of `reward.scale` x (fraction of the starting equity E0), default 1 bp of E0:
  r = scale * dEquity / E0                                    mark-to-market, after fees and funding
      - scale * trade_penalty_bps * 1e-4 * traded notional / E0
      - liquidity_penalty * (|position| / visible top-5 depth on the closing side)^2
      - risk breach penalty (agent/risk.py)
  and at the end of the episode, a bonus from the per-step equity returns r_t:
      + sharpe_weight * clip(mean / std * sqrt(n)) + sortino_weight * clip(mean / downside std * sqrt(n))
      - drawdown_weight * scale * max drawdown (fraction of peak equity)
Kill switches (agent/risk.py) are enforced here: on a trip the env cancels everything and flattens with a market
order; while halted the action is refused (`info["refused"]`); a halt that outlasts the episode (drawdown guard,
daily loss cap) terminates it once flat. A liquidation terminates the episode.

Episodes: `episode_s` long, starting at a decision step whose (causal) regime label is drawn with
`regime_weights` (agent/market_view.py); `reset(options={"start_step": k})` or `{"regime": "bull"}` pins them.
The risk head's predicted variance (per step, of the step's log return) enters through `env.predicted_variance`
(also `envs.set_attr("predicted_variance", [v0, v1, ...])` on vector envs) and tightens the leverage cap; the
realized target it should predict is `info["mid_return"]`.

info per step: pnl (equity - E0), equity, position, mid, mid_return, regime, fills, traded_notional, refused,
kill_switch, liquidated, risk (agent/risk.RiskStatus as a dict), reward_parts; at the episode's end also
episode_stats (pnl, return, sharpe, sortino, max_drawdown, fees, funding, fills, maker_fills, rejections, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import pyarrow as pa
from gymnasium import spaces

from agent.market_view import REGIMES, MarketView, ViewConfig
from agent.obs import ACCOUNT_FEATURES, assemble, observation_space
from agent.risk import RiskConfig, RiskManager, RiskStatus, clip_order_qty
from agent.sim.engine import SimConfig, Simulator
from agent.sim.market import MarketData
from agent.sim.orders import BUY, REJECTED, SELL

P_NONE, P_INSIDE, P_TOUCH = 0, 1, 2
ENV_ID = "Scalper-v0"


@dataclass(frozen=True)
class RewardConfig:
    """Reward shaping; see the module docstring for the formula."""

    scale: float = 1e4
    trade_penalty_bps: float = 0.2
    liquidity_penalty: float = 0.05
    sharpe_weight: float = 0.5
    sortino_weight: float = 0.5
    drawdown_weight: float = 0.5
    bonus_clip: float = 5.0


@dataclass(frozen=True)
class EnvConfig:
    """Episode, action and reward settings; `sim` and `risk` configure the engine and the risk rules."""

    sim: SimConfig = field(default_factory=SimConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    episode_s: float = 600.0
    passive_ticks: tuple[int, ...] = (2, 5)
    size_buckets_per_side: int = 2
    quote_fraction: float | None = None  # two-sided size at target, fraction of the cap; None = 1 / K
    # a resting order at the wanted price is kept while its size is within this fraction of the wanted size
    # (re-sizing up would cost its queue place, and the cap moves a little with equity every step)
    requote_tolerance: float = 0.1
    regime_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # range, bull, bear

    def __post_init__(self) -> None:
        if self.size_buckets_per_side < 1:
            raise ValueError(f"size_buckets_per_side={self.size_buckets_per_side} must be >= 1")
        if any(k < 1 for k in self.passive_ticks):
            raise ValueError(f"passive_ticks={self.passive_ticks}: each must be >= 1 tick")
        if len(self.regime_weights) != 3 or min(self.regime_weights) < 0 or sum(self.regime_weights) <= 0:
            raise ValueError(f"regime_weights={self.regime_weights}: three non-negative weights, not all 0")
        if self.quote_fraction is not None and not 0 < self.quote_fraction <= 1:
            raise ValueError(f"quote_fraction={self.quote_fraction} must lie in (0, 1] of the position cap")
        if self.risk.max_leverage > self.sim.margin.leverage:
            raise ValueError(
                f"RiskConfig.max_leverage={self.risk.max_leverage} exceeds the account leverage "
                f"MarginConfig.leverage={self.sim.margin.leverage}: orders would be rejected for margin; "
                "lower the risk cap or raise the margin leverage"
            )

    @property
    def price_actions(self) -> tuple[str, ...]:
        return ("none", "inside", "touch", *(f"passive_{k}" for k in self.passive_ticks), "cross")

    @property
    def n_size(self) -> int:
        return 2 * self.size_buckets_per_side + 1


class ScalperEnv(gym.Env):
    """Replay env over one MarketView. Construct with `ScalperEnv(view, config)` or `make_env(...)`."""

    metadata = {"render_modes": []}

    def __init__(self, view: MarketView, config: EnvConfig | None = None) -> None:
        super().__init__()
        self.view = view
        self.config = config or EnvConfig()
        vc = view.config
        self.step_s = vc.step_s
        self.episode_steps = vc.steps(self.config.episode_s)
        self.first_start = vc.micro_window
        self.last_start = view.n_steps - 1 - self.episode_steps
        if self.last_start < self.first_start:
            need = (vc.micro_window + self.episode_steps + 1) * vc.step_s
            raise ValueError(
                f"{view.market.symbol}: {view.n_steps} decision steps of data, but an episode needs "
                f"{self.episode_steps} steps plus a {vc.micro_window}-step history ({need:.0f} s); give more "
                "data or shorten EnvConfig.episode_s / ViewConfig.micro_window"
            )
        if vc.feed != self.config.sim.latency.feed:
            raise ValueError(
                f"the view's feed latency {vc.feed} differs from the engine's {self.config.sim.latency.feed}: the "
                "observation would show a different book than the orders meet; build the view with "
                "ViewConfig(feed=config.sim.latency.feed)"
            )
        self.observation_space = observation_space(view)
        self.action_space = spaces.MultiDiscrete([len(self.config.price_actions), self.config.n_size])
        self.risk = RiskManager(self.config.risk, self.step_s)
        self.sim = Simulator()
        self.tick = view.market.tick_size
        self.lot = view.market.lot_size
        self._predicted_variance: float | None = None
        self._starts_by_regime = [
            np.flatnonzero(view.regime[self.first_start : self.last_start + 1] == r) + self.first_start
            for r in range(len(REGIMES))
        ]
        self._k = -1

    # -- the risk head's input ------------------------------------------------------------------------------------
    @property
    def predicted_variance(self) -> float | None:
        return self._predicted_variance

    @predicted_variance.setter
    def predicted_variance(self, value: float | None) -> None:
        if value is not None:
            value = float(value)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"predicted_variance={value} must be a finite variance >= 0 (or None)")
        self._predicted_variance = value

    def set_predicted_variance(self, value: float | None) -> None:
        self.predicted_variance = value

    # -- gymnasium API --------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        k0 = self._pick_start(options)
        self._k0 = k0
        self._k = k0
        self._k_end = k0 + self.episode_steps
        self._predicted_variance = None
        sim_seed = int(self.np_random.integers(0, 2**31 - 1))
        self.sim.reset(self.view.episode_market(k0, self._k_end), self.config.sim, seed=sim_seed)
        res = self.sim.advance_to(int(self.view.t[k0]))
        acct = res.account
        self._equity0 = acct.equity
        self._equity = acct.equity
        self._peak = acct.equity
        self._returns: list[float] = []
        self._bid_id = self._ask_id = -1
        self._flatten_tries = 0
        self._stats = dict(fills=0, maker_fills=0, traded_notional=0.0, rejections=0, refused_steps=0)
        self.risk.reset(int(self.view.t[k0]), acct.equity)
        self._status = self.risk.update(
            int(self.view.t[k0]), acct.equity, acct.position, acct.mark, self._sigma(k0), None
        )
        self._acct = acct
        info = {
            "start_step": k0,
            "start_us": int(self.view.t[k0]),
            "regime": REGIMES[self.view.regime[k0]],
            "equity": acct.equity,
            "risk": self._status.as_info(),
        }
        return self._observation(), info

    def step(self, action):
        if self._k < 0:
            raise RuntimeError("call reset() before step()")
        if self._k >= self._k_end:
            raise RuntimeError("the episode is over; call reset()")
        price_a, size_a = int(action[0]), int(action[1])
        if not (0 <= price_a < self.action_space.nvec[0] and 0 <= size_a < self.action_space.nvec[1]):
            raise ValueError(f"action {action!r} is outside MultiDiscrete({self.action_space.nvec.tolist()})")
        k = self._k
        refused = self._status.halted
        clipped = False
        if refused:
            self._stats["refused_steps"] += 1
            self._enforce_halt()
        else:
            clipped = self._act(price_a, size_a, k)

        res = self.sim.advance_to(int(self.view.t[k + 1]))
        self._k = k = k + 1
        acct = res.account
        traded = 0.0
        for f in res.fills:
            if not f["liquidation"]:
                traded += f["px"] * f["qty"]
                self._stats["fills"] += 1
                self._stats["maker_fills"] += int(f["maker"])
        self._stats["traded_notional"] += traded
        self._stats["rejections"] += int(np.count_nonzero(res.updates["status"] == REJECTED))
        status = self.risk.update(
            int(self.view.t[k]),
            acct.equity,
            acct.position,
            acct.mark,
            self._sigma(k),
            self._predicted_variance,
            clipped=clipped,
        )
        if status.tripped_now:
            self._flatten_tries = 0
            self._enforce_halt()

        rc = self.config.reward
        e0 = self._equity0
        d_equity = acct.equity - self._equity
        parts = {
            "pnl": rc.scale * d_equity / e0,
            "trade_penalty": rc.scale * rc.trade_penalty_bps * 1e-4 * traded / e0,
            "liquidity_penalty": rc.liquidity_penalty * self._exit_pressure(acct.position) ** 2,
            "breach_penalty": status.penalty,
            "episode_bonus": 0.0,
        }
        self._returns.append(d_equity / self._equity if self._equity > 0 else 0.0)
        self._equity = acct.equity
        self._peak = max(self._peak, acct.equity)
        self._acct = acct
        self._status = status

        liquidated = acct.liquidations > 0
        halted_for_good = status.halted and status.halt_until_us >= int(self.view.t[self._k_end])
        terminated = bool(
            liquidated
            or acct.equity <= 0
            or (halted_for_good and (acct.position == 0.0 or self._flatten_tries > 3))
        )
        truncated = bool(not terminated and (k >= self._k_end or res.done))
        info = {
            "pnl": acct.equity - e0,
            "equity": acct.equity,
            "position": acct.position,
            "mid": float(self.view.mid[k]),
            # the step's mid log return: the target of the risk head's variance prediction
            "mid_return": float(np.log(self.view.mid[k] / self.view.mid[k - 1])),
            "regime": REGIMES[self.view.regime[k]],
            "fills": len(res.fills),
            "traded_notional": traded,
            "refused": refused,
            "kill_switch": status.kill_switch,
            "liquidated": liquidated,
            "risk": status.as_info(),
        }
        if terminated or truncated:
            parts["episode_bonus"] = self._episode_bonus()
            info["episode_stats"] = self.episode_stats()
        reward = (
            parts["pnl"]
            - parts["trade_penalty"]
            - parts["liquidity_penalty"]
            - parts["breach_penalty"]
            + parts["episode_bonus"]
        )
        info["reward_parts"] = parts
        return self._observation(), float(reward), terminated, truncated, info

    # -- actions -> orders ----------------------------------------------------------------------------------------
    def _act(self, price_a: int, size_a: int, k: int) -> bool:
        """Send the orders of one action; returns whether risk clipped the directional part."""
        cfg = self.config
        pos = self._acct.position
        if price_a == P_NONE:
            self._cancel_side(BUY)
            self._cancel_side(SELL)
            return False
        mid = float(self.view.mid[k])
        cap_qty = self._lots(self._status.cap_notional / mid)
        kb = cfg.size_buckets_per_side
        target = self._lots_signed((size_a - kb) / kb * cap_qty)
        delta = target - pos
        clipped = False
        if price_a == len(cfg.price_actions) - 1:  # cross
            self._cancel_side(BUY)
            self._cancel_side(SELL)
            side = BUY if delta > 0 else SELL
            # orders whose cancel is still travelling may fill too: count them against the cap
            pending = sum(o["leaves"] for o in self.sim.open_orders() if o["side"] == side)
            qty = self._lots(clip_order_qty(side, abs(delta), pos + side * pending, cap_qty))
            clipped = qty < self._lots(abs(delta))
            if qty > 0:
                self.sim.submit(side, qty)
            return clipped
        book = self.sim.observed_book()
        if book is None:
            return False
        best_bid, best_ask = book[0][0], book[2][0]
        if not (math.isfinite(best_bid) and math.isfinite(best_ask)):
            return False
        bb, ba = int(round(best_bid / self.tick)), int(round(best_ask / self.tick))
        if price_a == P_INSIDE:
            bid_t, ask_t = (bb + 1, ba - 1) if ba - bb >= 2 else (bb, ba)
        elif price_a == P_TOUCH:
            bid_t, ask_t = bb, ba
        else:
            behind = cfg.passive_ticks[price_a - 3]
            bid_t, ask_t = bb - behind, ba + behind
        if abs(delta) < 0.5 * self.lot:
            frac = cfg.quote_fraction if cfg.quote_fraction is not None else 1.0 / kb
            quote = self._lots(frac * cap_qty)
            bid_q = self._lots(clip_order_qty(BUY, quote, pos, cap_qty))
            ask_q = self._lots(clip_order_qty(SELL, quote, pos, cap_qty))
        else:
            side = BUY if delta > 0 else SELL
            qty = self._lots(clip_order_qty(side, abs(delta), pos, cap_qty))
            clipped = qty < self._lots(abs(delta))
            bid_q, ask_q = (qty, 0.0) if side == BUY else (0.0, qty)
        self._quote(BUY, bid_t, bid_q)
        self._quote(SELL, ask_t, ask_q)
        return clipped

    def _quote(self, side: int, px_tick: int, qty: float) -> None:
        """Make our resting order on `side` be qty at px_tick, keeping its queue place when the price is unchanged."""
        oid = self._bid_id if side == BUY else self._ask_id
        o = self._working(oid)
        if qty < self.lot * 0.5:
            if o is not None:
                self.sim.cancel(oid)
            return
        if o is not None:
            same_price = int(round(o["price"] / self.tick)) == px_tick
            if same_price and abs(o["leaves"] - qty) <= max(
                0.5 * self.lot, self.config.requote_tolerance * qty
            ):
                return
            # one order per side, modified in place: a cancel-and-replace could fill twice while the cancel travels
            executed = o["qty"] - o["leaves"]
            if self.sim.amend(oid, price=px_tick * self.tick, qty=executed + qty):
                return
            self.sim.cancel(oid)
        new_id = self.sim.submit(side, qty, px_tick * self.tick, post_only=True)
        if side == BUY:
            self._bid_id = new_id
        else:
            self._ask_id = new_id

    def quote_orders(self) -> dict[str, dict | None]:
        """The env's latest bid and ask order as the engine reports them (None before the first)."""
        out: dict[str, dict | None] = {}
        for name, oid in (("bid", self._bid_id), ("ask", self._ask_id)):
            try:
                out[name] = self.sim.order(oid) if oid >= 0 else None
            except KeyError:
                out[name] = None
        return out

    def _working(self, oid: int) -> dict | None:
        """The order if the agent knows it pending or live with no cancel travelling, else None."""
        if oid < 0:
            return None
        try:
            o = self.sim.order(oid)
        except KeyError:
            return None
        return o if o["status"] in ("pending", "live") and not o["cancel_in_flight"] else None

    def _cancel_side(self, side: int) -> None:
        oid = self._bid_id if side == BUY else self._ask_id
        if self._working(oid) is not None:
            self.sim.cancel(oid)

    def _enforce_halt(self) -> None:
        """A kill switch holds: cancel every order and close the position at market."""
        for o in self.sim.open_orders():
            if not o["cancel_in_flight"]:
                self.sim.cancel(o["id"])
        pos = self.sim.account().position
        if abs(pos) >= 0.5 * self.lot and not self._flatten_in_flight():
            self._flatten_tries += 1
            self.sim.submit(SELL if pos > 0 else BUY, self._lots(abs(pos)))

    def _flatten_in_flight(self) -> bool:
        return any(o["status"] == "pending" and o["price"] == 0.0 for o in self.sim.open_orders())

    # -- helpers --------------------------------------------------------------------------------------------------
    def _lots(self, qty: float) -> float:
        return max(0.0, math.floor(qty / self.lot + 1e-9) * self.lot)

    def _lots_signed(self, qty: float) -> float:
        return math.copysign(self._lots(abs(qty)), qty) if qty else 0.0

    def _sigma(self, k: int) -> float:
        return float(self.view.sigma[k])

    def _exit_pressure(self, position: float) -> float:
        """|position| over the visible top-5 depth on the side that would absorb closing it."""
        if position == 0.0:
            return 0.0
        m = self.view.market
        j = int(self.view.book_index[self._k])
        depth = float((m.bid_sz if position > 0 else m.ask_sz)[j, :5].sum())  # padded levels have size 0
        return abs(position) / depth if depth > 0 else 10.0

    def _episode_bonus(self) -> float:
        rc = self.config.reward
        r = np.asarray(self._returns)
        if r.shape[0] < 2:
            return 0.0
        n = math.sqrt(r.shape[0])
        sd = r.std()
        down = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
        sharpe = float(np.clip(r.mean() / sd * n, -rc.bonus_clip, rc.bonus_clip)) if sd > 0 else 0.0
        sortino = float(np.clip(r.mean() / down * n, -rc.bonus_clip, rc.bonus_clip)) if down > 0 else 0.0
        return (
            rc.sharpe_weight * sharpe
            + rc.sortino_weight * sortino
            - rc.drawdown_weight * rc.scale * (self._max_drawdown())
        )

    def _max_drawdown(self) -> float:
        eq = self._equity0 * np.cumprod(1.0 + np.asarray(self._returns))
        path = np.concatenate([[self._equity0], eq])
        peak = np.maximum.accumulate(path)
        return float(np.max((peak - path) / peak))

    def episode_stats(self) -> dict:
        """PnL, risk-adjusted ratios and trading statistics of the episode so far."""
        r = np.asarray(self._returns)
        a = self._acct
        sd = r.std() if r.shape[0] > 1 else 0.0
        down = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)) if r.shape[0] else 0.0
        return {
            "pnl": a.equity - self._equity0,
            "return": a.equity / self._equity0 - 1.0,
            "steps": int(r.shape[0]),
            "sharpe": float(r.mean() / sd * math.sqrt(r.shape[0])) if sd > 0 else 0.0,
            "sortino": float(r.mean() / down * math.sqrt(r.shape[0])) if down > 0 else 0.0,
            "max_drawdown": self._max_drawdown() if r.shape[0] else 0.0,
            "fees": a.fees_paid,
            "funding": a.funding_paid,
            "liquidations": a.liquidations,
            "final_position": a.position,
            "kill_switch_trips": [name for _, name in self.risk.trips],
            **self._stats,
        }

    def _pick_start(self, options: dict) -> int:
        if "start_step" in options:
            k0 = int(options["start_step"])
            if not self.first_start <= k0 <= self.last_start:
                raise ValueError(
                    f"start_step={k0} must lie in {self.first_start}..{self.last_start} (history before, a whole "
                    "episode after)"
                )
            return k0
        if "regime" in options:
            name = options["regime"]
            if name not in REGIMES:
                raise ValueError(f"regime={name!r}; choose one of {REGIMES}")
            r = REGIMES.index(name)
            if self._starts_by_regime[r].shape[0] == 0:
                raise ValueError(
                    f"no episode start in regime {name!r} in this data; counts: {self.regime_counts()}"
                )
        else:
            w = np.array(
                [
                    wt if s.shape[0] else 0.0
                    for wt, s in zip(self.config.regime_weights, self._starts_by_regime, strict=True)
                ]
            )
            if w.sum() <= 0:
                raise ValueError(
                    f"no episode start in a regime with positive weight; counts: {self.regime_counts()}"
                )
            r = int(self.np_random.choice(len(REGIMES), p=w / w.sum()))
        starts = self._starts_by_regime[r]
        return int(starts[self.np_random.integers(starts.shape[0])])

    def tiled_starts(self) -> list[int]:
        """Start steps of back-to-back, non-overlapping episodes covering the data (independent windows)."""
        return list(range(self.first_start, self.last_start + 1, self.episode_steps))

    def regime_counts(self) -> dict[str, int]:
        """Possible episode starts per regime label."""
        return {name: int(s.shape[0]) for name, s in zip(REGIMES, self._starts_by_regime, strict=True)}

    def _observation(self) -> dict[str, np.ndarray]:
        return assemble(self.view, self._k, self._account_features())

    def _account_features(self) -> np.ndarray:
        a = self._acct
        st: RiskStatus = self._status
        k = self._k
        mid = float(self.view.mid[k])
        cap_qty = max(st.cap_notional / mid, self.lot)
        eq = a.equity if a.equity > 0 else 1e-9
        out = np.zeros(len(ACCOUNT_FEATURES))
        out[0] = np.clip(a.position / cap_qty, -5, 5)
        out[1] = a.position * mid / eq
        out[2] = a.unrealized_pnl / eq * 1e4
        out[3] = (a.equity / self._equity0 - 1.0) * 1e4
        out[4] = (1.0 - a.equity / self._peak) * 1e4 if self._peak > 0 else 0.0
        margin_balance = a.position_margin + a.unrealized_pnl
        out[5] = min(a.maintenance_margin / margin_balance, 2.0) if a.position and margin_balance > 0 else 0.0
        out[6] = st.leverage_cap / self.config.risk.max_leverage
        out[7] = (mid - a.entry_price) * math.copysign(1.0, a.position) / mid * 1e4 if a.position else 0.0
        book = self.sim.observed_book()
        for base, oid, best in ((8, self._bid_id, 0), (11, self._ask_id, 2)):
            if oid >= 0 and book is not None:
                try:
                    o = self.sim.order(oid)
                except KeyError:
                    continue
                if o["status"] in ("pending", "live"):
                    out[base] = 1.0
                    ref = book[best][0]
                    if math.isfinite(ref):
                        out[base + 1] = (ref - o["price"]) / self.tick * (1 if base == 8 else -1)
                    out[base + 2] = o["leaves"] / cap_qty
        out[14] = float(st.halted)
        out[15] = st.breach_streak / 10.0
        out[16] = (self._k_end - k) / self.episode_steps
        return out


if ENV_ID not in gym.registry:
    # gymnasium.make(ENV_ID, view=..., config=...) gives the env a spec (check_env, wrappers, vector helpers)
    gym.register(id=ENV_ID, entry_point="agent.env:ScalperEnv", disable_env_checker=True)


def make_env(
    source: MarketView | MarketData | dict[str, pa.Table],
    config: EnvConfig | None = None,
    view_config: ViewConfig | None = None,
) -> ScalperEnv:
    """An env over a MarketView, the engine's MarketData, or raw-schema tables (the latter two built into a view
    with `view_config`). For the lake: make_env(MarketView.from_lake(root, symbol, start, end, view_config));
    for a feature snapshot: make_env(MarketView.from_snapshot(root, snapshot_id, split, symbol, view_config))."""
    if isinstance(source, MarketView):
        if view_config is not None and view_config != source.config:
            raise ValueError("view_config differs from the MarketView's own config; build the view with it")
        return ScalperEnv(source, config)
    if isinstance(source, MarketData):
        return ScalperEnv(MarketView.build(source, None, view_config), config)
    if isinstance(source, dict):
        return ScalperEnv(MarketView.from_tables(source, view_config), config)
    raise TypeError(
        f"make_env: source must be a MarketView, MarketData or a dict of raw tables, got {type(source).__name__}"
    )


def env_fns(view: MarketView, config: EnvConfig | None = None, n: int = 1) -> list[Callable[[], ScalperEnv]]:
    """Constructors for gymnasium.vector.SyncVectorEnv / AsyncVectorEnv, all over the same view."""
    return [lambda: ScalperEnv(view, config) for _ in range(n)]
