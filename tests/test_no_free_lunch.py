"""No free lunch: the env neither invents an edge nor hides a real one.

On the synthetic market with signal 0 (the mid is a martingale given everything the book shows), random and naive
quoting policies lose fees and then some (spread, adverse selection): mean PnL < 0 with its whole bootstrap 95 %
interval, and their PnL before fees shows no significant profit either. With the planted order-flow signal
(strength 1), a heuristic that uses it (ImbalanceTaker) makes money; the same heuristic on the signal-0 market does
not. The heuristic runs without fees: the planted edge is a few ticks per second (about 0.1 bp of price), far
below Binance's 2 / 5 bp maker / taker fees, so no policy can show it after realistic fees.

Data: two independent synthetic seeds x 40 minutes per signal level; episodes are the non-overlapping 5-minute
windows of each (env.tiled_starts), 14 per policy. Figures print with `pytest -s`.
"""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_views import synthetic_view

from agent.baselines import (
    AvellanedaStoikov,
    ImbalanceTaker,
    RandomPolicy,
    SymmetricMarketMaker,
    bootstrap_ci,
    run_policy,
)
from agent.env import EnvConfig, ScalperEnv
from agent.sim.engine import SimConfig
from agent.sim.fees import FeeConfig

SEEDS = (1, 2)
MINUTES = 40
WITH_FEES = EnvConfig(episode_s=300)
NO_FEES = EnvConfig(episode_s=300, sim=SimConfig(fees=FeeConfig(maker=0.0, taker=0.0)))


def pooled(signal: float, config: EnvConfig, make_policy) -> dict:
    pnl, fees = [], []
    for seed in SEEDS:
        env = ScalperEnv(synthetic_view(signal, seed=seed, minutes=MINUTES), config)
        starts = env.tiled_starts()
        stats = run_policy(env, make_policy(env), len(starts), seed=seed, starts=starts)
        pnl.append(stats.pnl)
        fees.append(stats.fees)
    pnl, fees = np.concatenate(pnl), np.concatenate(fees)
    gross = pnl + fees
    out = {
        "n": pnl.shape[0],
        "mean": float(pnl.mean()),
        "ci": bootstrap_ci(pnl),
        "fees": float(fees.mean()),
        "gross_mean": float(gross.mean()),
        "gross_ci": bootstrap_ci(gross, seed=1),
    }
    print(
        f"signal {signal} {'fees' if config is WITH_FEES else 'no fees'} {make_policy.__name__}: "
        f"mean PnL {out['mean']:.1f} CI95 ({out['ci'][0]:.1f}, {out['ci'][1]:.1f}) over {out['n']} episodes; "
        f"fees {out['fees']:.1f}; before fees {out['gross_mean']:.1f} "
        f"CI95 ({out['gross_ci'][0]:.1f}, {out['gross_ci'][1]:.1f})"
    )
    return out


@pytest.mark.parametrize("policy", [RandomPolicy, SymmetricMarketMaker, AvellanedaStoikov])
def test_random_and_naive_quoting_lose_fees_and_spread_without_a_signal(policy):
    r = pooled(0.0, WITH_FEES, policy)
    assert r["n"] >= 12
    assert r["ci"][1] < 0, "loses money with its whole confidence interval"
    assert r["gross_ci"][0] < 0, "no significant profit even before fees"


def test_without_a_signal_neither_random_trading_nor_the_signal_heuristic_profits():
    for policy in (RandomPolicy, ImbalanceTaker):
        r = pooled(0.0, NO_FEES, policy)
        assert r["ci"][0] < 0, f"{policy.__name__} shows a significant profit on a martingale market"


def test_the_signal_heuristic_makes_money_when_the_signal_is_planted():
    r = pooled(1.0, NO_FEES, ImbalanceTaker)
    assert r["ci"][0] > 0, "the planted edge must be expressible through the env's actions"
