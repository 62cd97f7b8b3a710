"""Baseline policies on the env: valid actions, the behaviour each one promises, and run_policy's statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from synthetic_views import synthetic_view

from agent.baselines import (
    IMB1,
    SPREAD,
    TWAP,
    ASParams,
    AvellanedaStoikov,
    BuyAndHold,
    ImbalanceMaker,
    ImbalanceTaker,
    RandomPolicy,
    SymmetricMarketMaker,
    bootstrap_ci,
    run_policy,
)
from agent.env import P_NONE, P_TOUCH, EnvConfig, ScalperEnv

CROSS = 5


@pytest.fixture(scope="module")
def env() -> ScalperEnv:
    return ScalperEnv(synthetic_view(0.0, seed=1, minutes=20), EnvConfig(episode_s=120))


class Recorder:
    """Wraps a policy and keeps every action and the position seen before it."""

    def __init__(self, policy, env):
        self.policy, self.env, self.actions, self.positions = policy, env, [], []

    def reset(self):
        self.policy.reset()

    def act(self, obs):
        a = self.policy.act(obs)
        self.actions.append(tuple(int(x) for x in a))
        self.positions.append(self.env.sim.account().position)
        return a


@pytest.mark.parametrize(
    "make",
    [BuyAndHold, TWAP, SymmetricMarketMaker, AvellanedaStoikov, RandomPolicy, ImbalanceTaker, ImbalanceMaker],
)
def test_every_baseline_plays_a_full_episode_with_valid_actions(env, make):
    rec = Recorder(make(env), env)
    stats = run_policy(env, rec, episodes=2, seed=3)
    assert stats.pnl.shape == (2,) and np.isfinite(stats.pnl).all()
    assert all(env.action_space.contains(np.array(a)) for a in rec.actions)
    # an episode runs to its end unless a kill switch or a liquidation ends it first
    assert len(rec.actions) == sum(e["steps"] for e in stats.episodes)
    for e in stats.episodes:
        assert e["steps"] == env.episode_steps or e["kill_switch_trips"] or e["liquidations"]
    assert stats.summary()["episodes"] == 2


def test_buy_and_hold_buys_the_cap_once_and_its_pnl_is_the_price_move_less_fees(env):
    rec = Recorder(BuyAndHold(env), env)
    stats = run_policy(env, rec, episodes=1, seed=4)
    assert rec.actions[0] == (CROSS, 4) and set(rec.actions[1:]) == {(P_NONE, 2)}
    acct = env.sim.account()
    assert acct.position > 0 and stats.fills[0] >= 1
    expected = (acct.mark - acct.entry_price) * acct.position - acct.fees_paid - acct.funding_paid
    assert stats.pnl[0] == pytest.approx(expected, abs=1e-6)


def test_twap_buys_in_k_equal_time_slices(env):
    rec = Recorder(TWAP(env), env)
    run_policy(env, rec, episodes=1, seed=5)
    crosses = [i for i, a in enumerate(rec.actions) if a[0] == CROSS]
    k = env.config.size_buckets_per_side
    n = env.episode_steps
    assert crosses == [math.ceil(n * s / k) - 1 for s in range(1, k + 1)]
    assert [rec.actions[i][1] for i in crosses] == [k + s for s in range(1, k + 1)]
    assert env.sim.account().position > 0
    sell = Recorder(TWAP(env, side=-1), env)
    run_policy(env, sell, episodes=1, seed=5)
    assert env.sim.account().position < 0
    with pytest.raises(ValueError, match="side"):
        TWAP(env, side=2)


def test_symmetric_market_maker_always_quotes_flat_at_its_offset(env):
    rec = Recorder(SymmetricMarketMaker(env), env)
    stats = run_policy(env, rec, episodes=1, seed=6)
    assert set(rec.actions) == {(P_TOUCH, 2)}
    assert stats.fills[0] > 0
    with pytest.raises(ValueError, match="passive"):
        SymmetricMarketMaker(env, price_action=CROSS)


def _obs(env, policy, vol_bp=0.5, inventory=0.0, time_left=1.0, spread_ticks=1.0, imbalance=0.0):
    space = env.observation_space
    obs = {k: np.zeros(v.shape, dtype=np.float32) for k, v in space.spaces.items()}
    obs["macro"][policy.macro_names.index("vol_bp_300s")] = vol_bp
    obs["state"][policy.i_inventory] = inventory
    obs["state"][policy.i_time_left] = time_left
    obs["micro"][-1, SPREAD] = spread_ticks
    obs["micro"][-1, IMB1] = imbalance
    return obs


def test_avellaneda_stoikov_quotes_follow_the_closed_form(env):
    p = ASParams(gamma=0.01, kappa=0.5, max_tau=30)
    pol = AvellanedaStoikov(env, p)
    k = env.config.size_buckets_per_side
    obs = _obs(env, pol, vol_bp=0.4, inventory=0.5, time_left=0.1)
    bid, ask, q = pol.quotes(obs)
    sigma = 0.4 / pol.tick_bp
    tau = min(30, 0.1 * env.episode_steps)
    r = -(0.5 * k) * 0.01 * sigma**2 * tau  # reservation price, ticks from mid
    delta = 0.01 * sigma**2 * tau / 2 + math.log(1 + 0.01 / 0.5) / 0.01
    assert q == pytest.approx(0.5 * k)
    assert bid == pytest.approx(delta - r, rel=1e-5) and ask == pytest.approx(r + delta, rel=1e-5)
    assert ask < bid  # long inventory: the ask comes closer to sell it
    # flat and calm: a quote a couple of ticks out maps to a passive offset near it
    calm = _obs(env, pol, vol_bp=0.0, inventory=0.0)
    price, bucket = pol.act(calm)
    assert bucket == k and price in (P_TOUCH, 3)
    # heavily long in a volatile market: the reservation price falls through the bid, so it sells at market
    urgent = _obs(env, pol, vol_bp=3.0, inventory=1.0, time_left=1.0)
    assert tuple(pol.act(urgent)) == (CROSS, k)


def test_imbalance_taker_follows_the_queue_imbalance(env):
    pol = ImbalanceTaker(env, threshold=0.5, exit_threshold=0.1)
    k = env.config.size_buckets_per_side
    assert tuple(pol.act(_obs(env, pol, imbalance=0.8))) == (CROSS, k + 1)
    assert tuple(pol.act(_obs(env, pol, imbalance=-0.8))) == (CROSS, k - 1)
    assert tuple(pol.act(_obs(env, pol, imbalance=0.05, inventory=0.5))) == (CROSS, k)
    assert tuple(pol.act(_obs(env, pol, imbalance=0.3, inventory=0.5))) == (P_NONE, k)
    with pytest.raises(ValueError, match="buckets"):
        ImbalanceTaker(env, buckets=k + 1)


def test_imbalance_maker_leans_with_the_queue_imbalance_through_passive_quotes(env):
    pol = ImbalanceMaker(env, threshold=0.3)
    k = env.config.size_buckets_per_side
    assert tuple(pol.act(_obs(env, pol, imbalance=0.8))) == (P_TOUCH, k + 1)
    assert tuple(pol.act(_obs(env, pol, imbalance=-0.8))) == (P_TOUCH, k - 1)
    assert tuple(pol.act(_obs(env, pol, imbalance=0.1, inventory=0.5))) == (P_TOUCH, k)
    with pytest.raises(ValueError, match="passive"):
        ImbalanceMaker(env, price_action=CROSS)


def test_random_policy_is_reproducible_by_seed(env):
    a = [tuple(RandomPolicy(env, seed=9).act({})) for _ in range(1)]
    p, q = RandomPolicy(env, seed=9), RandomPolicy(env, seed=9)
    assert [tuple(p.act({})) for _ in range(20)] == [tuple(q.act({})) for _ in range(20)]
    assert a[0] == tuple(RandomPolicy(env, seed=9).act({}))


def test_run_policy_pins_start_steps_and_checks_them(env):
    starts = env.tiled_starts()[:2]
    rec = Recorder(SymmetricMarketMaker(env), env)
    a = run_policy(env, rec, episodes=2, seed=0, starts=starts)
    b = run_policy(env, Recorder(SymmetricMarketMaker(env), env), episodes=2, seed=0, starts=starts)
    np.testing.assert_array_equal(a.pnl, b.pnl)
    with pytest.raises(ValueError, match="one per episode"):
        run_policy(env, rec, episodes=3, starts=starts)


def test_bootstrap_interval_covers_the_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = 0
    trials = 300
    for i in range(trials):
        x = rng.normal(2.0, 3.0, 40)
        lo, hi = bootstrap_ci(x, seed=i, n_boot=1000)
        covered += lo <= 2.0 <= hi
    assert 0.89 <= covered / trials <= 0.98
    assert bootstrap_ci(np.full(10, 4.0)) == (4.0, 4.0)
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([1.0])))


def test_baseline_report_scores_every_baseline_on_the_same_episodes(env):
    from agent.baselines import BASELINES, baseline_report

    starts = env.tiled_starts()[:2]
    report = baseline_report(env, episodes=2, seed=0, starts=starts)
    assert set(report) == set(BASELINES)
    for summary in report.values():
        assert summary["episodes"] == 2 and np.isfinite(summary["mean_pnl"])
    # buy-and-hold and TWAP end the same windows long: same sign of exposure, both pay taker fees
    assert report["buy_and_hold"]["mean_fees"] > 0 and report["twap"]["mean_fees"] > 0
