"""Where is the planted edge exploitable at all? Causal signal-following rules per fee tier, out of sample.

On the synthetic market's held-out windows (the experiment's data: the last 20 % of `minutes`, split like
agent/train.py, back-to-back `episode_s` windows), run rules that read only the current level-1 queue imbalance
(the feature the planted edge lives in) through the env's own actions, under each fee tier of agent/sim/fees.py:
  taker_<th>   ImbalanceTaker: market order to one bucket long / short when |imbalance| > th, flat below 0.1
  maker_<th>   ImbalanceMaker: the same lean through post-only quotes at the touch
  symmetric_mm the symmetric market maker (no signal), for reference
and print per rule: mean net PnL per window with its bootstrap 95 % interval, PnL before fees, fees, fills,
gross PnL per traded notional (bp: what the signal earns per unit traded, to set against the fee rate) and the
windows in which a kill switch tripped. Nothing is fit: every rule is causal with fixed thresholds.

Usage: python scripts/edge_by_fee_tier.py [--signal 1.0] [--minutes 600] [--seed 11] [--tiers vip0,mm,none]
"""

from __future__ import annotations

import argparse

import numpy as np

from agent.baselines import ImbalanceMaker, ImbalanceTaker, SymmetricMarketMaker, bootstrap_ci, run_policy
from agent.env import EnvConfig, ScalperEnv
from agent.market_view import ViewConfig
from agent.sim.engine import SimConfig
from agent.sim.fees import FEE_TIERS, fee_tier
from agent.train import DataConfig, market_view

RULES = {
    "taker_0.5": lambda env: ImbalanceTaker(env, threshold=0.5, exit_threshold=0.1),
    "taker_0.3": lambda env: ImbalanceTaker(env, threshold=0.3, exit_threshold=0.1),
    "maker_0.3": lambda env: ImbalanceMaker(env, threshold=0.3),
    "maker_0.6": lambda env: ImbalanceMaker(env, threshold=0.6),
    "symmetric_mm": SymmetricMarketMaker,
}


def edge_table(
    signal: float, minutes: int, seed: int, tiers: tuple[str, ...], episode_s: float = 120.0
) -> list[dict]:
    view = market_view(
        DataConfig(synthetic_seed=seed, signal_strength=signal, minutes=minutes),
        "test",
        ViewConfig(micro_window=10, macro_horizons_s=(60.0, 300.0)),
    )
    rows = []
    for tier in tiers:
        env = ScalperEnv(view, EnvConfig(episode_s=episode_s, sim=SimConfig(fees=fee_tier(tier))))
        starts = env.tiled_starts()
        for name, make in RULES.items():
            stats = run_policy(env, make(env), len(starts), seed=0, starts=starts)
            gross = stats.pnl + stats.fees
            notional = float(np.mean([e["traded_notional"] for e in stats.episodes]))
            rows.append(
                {
                    "signal": signal,
                    "tier": tier,
                    "rule": name,
                    "windows": len(starts),
                    "mean_pnl": stats.mean,
                    "ci95": (stats.ci_low, stats.ci_high),
                    "gross_pnl": float(gross.mean()),
                    "gross_ci95": bootstrap_ci(gross, seed=1),
                    "fees": float(stats.fees.mean()),
                    "fills": float(stats.fills.mean()),
                    "gross_bp_of_notional": float(gross.mean()) / notional * 1e4 if notional else 0.0,
                    "kill_switch_windows": sum(bool(e["kill_switch_trips"]) for e in stats.episodes),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signal", type=float, default=1.0)
    parser.add_argument("--minutes", type=int, default=600)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--tiers", default="vip0,mm,none")
    args = parser.parse_args(argv)
    tiers = tuple(args.tiers.split(","))
    for tier in tiers:
        fee_tier(tier)  # unknown names fail before any simulation
    rows = edge_table(args.signal, args.minutes, args.seed, tiers)
    print(f"signal {args.signal:g}, {rows[0]['windows']} held-out windows; tiers: {sorted(FEE_TIERS)}")
    print(
        f"{'tier':<6}{'rule':<14}{'net PnL':>9}{'95% CI':>20}{'gross':>9}{'fees':>9}{'fills':>7}"
        f"{'gross bp':>10}{'halted':>8}"
    )
    for r in rows:
        ci = f"({r['ci95'][0]:.1f}, {r['ci95'][1]:.1f})"
        print(
            f"{r['tier']:<6}{r['rule']:<14}{r['mean_pnl']:>9.2f}{ci:>20}{r['gross_pnl']:>9.2f}{r['fees']:>9.2f}"
            f"{r['fills']:>7.1f}{r['gross_bp_of_notional']:>10.3f}{r['kill_switch_windows']:>8}"
        )
    return rows


if __name__ == "__main__":
    main()
