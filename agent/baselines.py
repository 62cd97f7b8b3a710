"""Baseline policies on the scalper env's own action space, and `run_policy` to score any policy per episode.

Each policy is a small class with `reset()` (called at every episode start) and `act(obs) -> action`, reading
only the observation (plus constants of the env it was built for: action layout, tick size). Actions are
[price action, size bucket] of agent/env.py: the size bucket is a signed target inventory in units of the risk cap.

  BuyAndHold            cross to the full long target on the first step, then hold.
  TWAP                  reach the full long (or short) target in K equal slices (K = size buckets per side) at
                        equal time intervals over `horizon_steps`, by market order at each slice time.
  SymmetricMarketMaker  always target flat at a fixed offset (default at the touch): two-sided quotes when flat,
                        one-sided work back to flat when holding inventory.
  AvellanedaStoikov     Avellaneda & Stoikov (2008) quotes r -/+ delta around the reservation price
                        r = mid - q gamma sigma^2 tau, delta = gamma sigma^2 tau / 2 + ln(1 + gamma / kappa) / gamma
                        (prices in ticks, sigma per step in ticks, tau = remaining steps capped at `max_tau`, q the
                        inventory in quote units), projected on the env's actions: target flat, and the price action
                        whose price is nearest the AS quote of the side the env will quote (both sides when flat).
  RandomPolicy          uniform over the action space (own seeded generator).
  StandAside            no orders at all: the null strategy that a trained network must beat on the validation
                        windows before training delivers it (agent/train.py, `val_stand_aside`).
  ImbalanceTaker        a heuristic that uses the order-flow signal: cross to `buckets` long when the level-1 queue
                        imbalance > threshold, as much short when < -threshold, flat when |imbalance| < exit.
                        One bucket by default: a full-cap market order walks several levels of the thin side of
                        an imbalanced book, and that slippage eats the edge.
  ImbalanceMaker        the same signal expressed passively: target `buckets` long (short) when the imbalance is
                        above `threshold` (below -threshold), else flat, always through post-only quotes at
                        `price_action` (the touch by default): it pays maker fees (or earns rebates) instead of
                        taker fees, and meets adverse selection instead of the spread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from agent.env import P_INSIDE, P_NONE, P_TOUCH, ScalperEnv
from agent.market_view import MICRO_FEATURES, macro_feature_names
from agent.obs import state_feature_names

IMB1 = MICRO_FEATURES.index("imbalance_l1")
SPREAD = MICRO_FEATURES.index("spread_ticks")


class Policy:
    """Base: remembers the env's action layout and where the account features sit in `state`."""

    def __init__(self, env: ScalperEnv) -> None:
        base = env.unwrapped
        cfg = base.config
        self.k = cfg.size_buckets_per_side
        self.n_price = len(cfg.price_actions)
        self.cross = self.n_price - 1
        self.passive_ticks = cfg.passive_ticks
        self.episode_steps = base.episode_steps
        names = state_feature_names(base.view.config)
        self.i_inventory = names.index("inventory")
        self.i_time_left = names.index("time_left")
        self.macro_names = macro_feature_names(base.view.config.macro_horizons_s)
        self.tick_bp = base.tick / float(np.median(base.view.mid)) * 1e4

    def reset(self) -> None:
        pass

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def action(self, price: int, bucket: int) -> np.ndarray:
        return np.array([price, bucket], dtype=np.int64)

    @property
    def flat(self) -> int:
        return self.k


class BuyAndHold(Policy):
    def reset(self) -> None:
        self.bought = False

    def act(self, obs):
        if not self.bought:
            self.bought = True
            return self.action(self.cross, 2 * self.k)
        return self.action(P_NONE, self.flat)


class TWAP(Policy):
    def __init__(self, env: ScalperEnv, side: int = 1, horizon_steps: int | None = None) -> None:
        super().__init__(env)
        if side not in (1, -1):
            raise ValueError(f"side must be +1 (buy) or -1 (sell), got {side}")
        self.side = side
        self.horizon = horizon_steps or self.episode_steps

    def reset(self) -> None:
        self.step = 0
        self.done_slices = 0

    def act(self, obs):
        self.step += 1
        due = min(self.k, math.floor(self.k * self.step / self.horizon + 1e-9))
        if due > self.done_slices:
            self.done_slices = due
            return self.action(self.cross, self.k + self.side * due)
        return self.action(P_NONE, self.flat)


class SymmetricMarketMaker(Policy):
    def __init__(self, env: ScalperEnv, price_action: int = P_TOUCH) -> None:
        super().__init__(env)
        if not P_INSIDE <= price_action < self.cross:
            raise ValueError(
                f"price_action={price_action} must be a passive quoting action (1..{self.cross - 1})"
            )
        self.price_action = price_action

    def act(self, obs):
        return self.action(self.price_action, self.flat)


@dataclass
class ASParams:
    gamma: float = 0.001  # risk aversion, 1 / tick
    kappa: float = 0.5  # order-arrival decay of distance, 1 / tick
    max_tau: int = 30  # steps of horizon considered
    vol_feature: str = "vol_bp_300s"


class AvellanedaStoikov(Policy):
    def __init__(self, env: ScalperEnv, params: ASParams | None = None) -> None:
        super().__init__(env)
        self.p = params or ASParams()
        if self.p.vol_feature not in self.macro_names:
            raise ValueError(
                f"vol_feature {self.p.vol_feature!r} is not a macro feature; have {self.macro_names}"
            )
        self.i_vol = self.macro_names.index(self.p.vol_feature)

    def quotes(self, obs) -> tuple[float, float, float]:
        """(bid distance below mid, ask distance above mid, inventory q), distances in ticks."""
        p = self.p
        sigma = float(obs["macro"][self.i_vol]) / self.tick_bp  # per-step sigma in ticks
        tau = min(p.max_tau, max(1.0, float(obs["state"][self.i_time_left]) * self.episode_steps))
        q = float(obs["state"][self.i_inventory]) * self.k  # in quote units (one bucket)
        risk = p.gamma * sigma**2 * tau
        r = -q * risk
        delta = risk / 2 + math.log1p(p.gamma / p.kappa) / p.gamma
        return delta - r, r + delta, q

    def act(self, obs):
        bid_dist, ask_dist, q = self.quotes(obs)
        half_spread = float(obs["micro"][-1, SPREAD]) / 2
        # flat: both sides quote at one shared offset; else the env quotes only the side that reduces inventory
        reducing = ask_dist if q > 0 else bid_dist
        dist = 0.5 * (bid_dist + ask_dist) if abs(q) < 0.5 else reducing
        behind = dist - half_spread  # ticks behind the touch (negative: inside, or crossing)
        if behind < -half_spread - 0.5:
            return self.action(self.cross, self.flat)
        options = {P_INSIDE: -1.0, P_TOUCH: 0.0}
        options.update({3 + i: float(t) for i, t in enumerate(self.passive_ticks)})
        price = min(options, key=lambda a: abs(options[a] - behind))
        return self.action(price, self.flat)


class RandomPolicy(Policy):
    def __init__(self, env: ScalperEnv, seed: int = 0) -> None:
        super().__init__(env)
        self.nvec = env.action_space.nvec
        self.rng = np.random.default_rng(seed)

    def act(self, obs):
        return self.rng.integers(0, self.nvec).astype(np.int64)


class StandAside(Policy):
    def act(self, obs):
        return self.action(P_NONE, self.flat)


class ImbalanceTaker(Policy):
    def __init__(
        self, env: ScalperEnv, threshold: float = 0.5, exit_threshold: float = 0.1, buckets: int = 1
    ) -> None:
        super().__init__(env)
        self.threshold = threshold
        self.exit_threshold = exit_threshold
        self.buckets = buckets
        if not 1 <= self.buckets <= self.k:
            raise ValueError(f"buckets={buckets} must lie in 1..{self.k} (size buckets per side)")

    def act(self, obs):
        imb = float(obs["micro"][-1, IMB1])
        inventory = float(obs["state"][self.i_inventory])
        if imb > self.threshold:
            return self.action(self.cross, self.k + self.buckets)
        if imb < -self.threshold:
            return self.action(self.cross, self.k - self.buckets)
        if abs(imb) < self.exit_threshold and abs(inventory) > 0:
            return self.action(self.cross, self.flat)
        return self.action(P_NONE, self.flat)


class ImbalanceMaker(Policy):
    def __init__(
        self, env: ScalperEnv, threshold: float = 0.3, price_action: int = P_TOUCH, buckets: int = 1
    ) -> None:
        super().__init__(env)
        if not P_INSIDE <= price_action < self.cross:
            raise ValueError(
                f"price_action={price_action} must be a passive quoting action (1..{self.cross - 1})"
            )
        if not 1 <= buckets <= self.k:
            raise ValueError(f"buckets={buckets} must lie in 1..{self.k} (size buckets per side)")
        self.threshold = threshold
        self.price_action = price_action
        self.buckets = buckets

    def act(self, obs):
        imb = float(obs["micro"][-1, IMB1])
        if imb > self.threshold:
            return self.action(self.price_action, self.k + self.buckets)
        if imb < -self.threshold:
            return self.action(self.price_action, self.k - self.buckets)
        return self.action(self.price_action, self.flat)


@dataclass
class PolicyStats:
    """Per-episode PnL (quote currency) of one policy and a bootstrap 95 % confidence interval of its mean."""

    pnl: np.ndarray
    fees: np.ndarray
    fills: np.ndarray
    mean: float = 0.0
    std: float = 0.0
    ci_low: float = 0.0
    ci_high: float = 0.0
    episodes: list[dict] = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        return {
            "episodes": int(self.pnl.shape[0]),
            "mean_pnl": self.mean,
            "ci95": (self.ci_low, self.ci_high),
            "std_pnl": self.std,
            "mean_fees": float(self.fees.mean()),
            "mean_fills": float(self.fills.mean()),
        }


def bootstrap_ci(
    x: np.ndarray, seed: int = 0, n_boot: int = 4000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.shape[0], (n_boot, x.shape[0]))].mean(axis=1)
    a = (1.0 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def run_policy(
    env: ScalperEnv,
    policy: Policy,
    episodes: int,
    seed: int = 0,
    *,
    starts: Sequence[int] | None = None,
    progress: bool = False,
) -> PolicyStats:
    """Run `episodes` episodes (reset seeds seed, seed+1, ...) and collect each one's final statistics.

    starts: pin the episodes' start steps (e.g. env.tiled_starts() for non-overlapping, independent windows);
    otherwise the env samples them by regime."""
    if episodes < 1:
        raise ValueError(f"episodes={episodes} must be >= 1")
    if starts is not None and len(starts) != episodes:
        raise ValueError(f"{len(starts)} start steps given for {episodes} episodes; give one per episode")
    rows = []
    for e in tqdm(range(episodes), disable=not progress, desc=type(policy).__name__):
        options = None if starts is None else {"start_step": int(starts[e])}
        obs, _ = env.reset(seed=seed + e, options=options)
        policy.reset()
        while True:
            obs, _, terminated, truncated, info = env.step(policy.act(obs))
            if terminated or truncated:
                rows.append(info["episode_stats"])
                break
    pnl = np.array([r["pnl"] for r in rows])
    lo, hi = bootstrap_ci(pnl, seed=seed)
    return PolicyStats(
        pnl=pnl,
        fees=np.array([r["fees"] for r in rows]),
        fills=np.array([r["fills"] for r in rows]),
        mean=float(pnl.mean()),
        std=float(pnl.std(ddof=1)) if pnl.shape[0] > 1 else 0.0,
        ci_low=lo,
        ci_high=hi,
        episodes=rows,
    )


BASELINES = {
    "buy_and_hold": BuyAndHold,
    "twap": TWAP,
    "symmetric_mm": SymmetricMarketMaker,
    "avellaneda_stoikov": AvellanedaStoikov,
    "random": RandomPolicy,
}


def baseline_report(
    env: ScalperEnv, episodes: int, seed: int = 0, starts: Sequence[int] | None = None
) -> dict[str, dict]:
    """Every baseline on the same episodes of one env: {name: PolicyStats.summary()} (for evaluation reports)."""
    return {
        name: run_policy(env, make(env), episodes, seed, starts=starts).summary()
        for name, make in BASELINES.items()
    }


__all__ = [
    "BASELINES",
    "baseline_report",
    "ASParams",
    "AvellanedaStoikov",
    "BuyAndHold",
    "ImbalanceMaker",
    "ImbalanceTaker",
    "Policy",
    "PolicyStats",
    "RandomPolicy",
    "SymmetricMarketMaker",
    "TWAP",
    "bootstrap_ci",
    "run_policy",
]
