"""Env throughput: ScalperEnv decision steps per second, against baselines run in the same process.

Measured on one hour of the synthetic BTCUSDT market (1 s decisions, 10-minute episodes), median of 3 runs each:
  env + touch market maker     the full step: orders from the action, replay, risk, reward, observation
  env + random policy          more order traffic (crosses, cancels, re-quotes)
  SyncVectorEnv x 4 (MM)       steps of all sub-envs per second
  bare engine, touch quoter    the same simulated time with a fixed touch quote re-placed each second through the
                               Simulator API directly: what the env adds on top of the replay
  gymnasium CartPole-v1        a trivial env, for scale
Also printed: the market view build time (per hour of data) and the simulated-time speed-up (x real time).
Usage: python benchmarks/bench_env.py [episodes_per_run]
"""

from __future__ import annotations

import statistics
import sys
import time

import gymnasium as gym
import numpy as np

from agent.baselines import RandomPolicy, SymmetricMarketMaker
from agent.env import P_TOUCH, EnvConfig, ScalperEnv, env_fns
from agent.market_view import MarketView
from agent.sim.engine import Simulator
from agent.sim.orders import BUY, SELL
from feature_store.sources.synthetic import SyntheticConfig, initial_state, simulate_day


def timed(fn, repeats: int = 3) -> tuple[float, float]:
    """(median steps/s, median seconds) of `fn() -> steps`."""
    rates, secs = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        dt = time.perf_counter() - t0
        rates.append(n / dt)
        secs.append(dt)
    return statistics.median(rates), statistics.median(secs)


def env_run(env: ScalperEnv, make_policy, episodes: int):
    def run() -> int:
        steps = 0
        for e in range(episodes):
            obs, _ = env.reset(seed=e)
            policy = make_policy(env)
            policy.reset()
            while True:
                obs, _, term, trunc, _ = env.step(policy.act(obs))
                steps += 1
                if term or trunc:
                    break
        return steps

    return run


def vector_run(view: MarketView, config: EnvConfig, n_envs: int, steps: int):
    def run() -> int:
        envs = gym.vector.SyncVectorEnv(env_fns(view, config, n_envs))
        envs.reset(seed=0)
        action = np.tile([P_TOUCH, config.size_buckets_per_side], (n_envs, 1))
        for _ in range(steps):
            envs.step(action)
        envs.close()
        return steps * n_envs

    return run


def bare_engine_run(view: MarketView, config: EnvConfig, episodes: int, episode_steps: int):
    """The touch quote of the env's market maker, driven straight through the Simulator (no risk, obs, reward)."""
    qty = 0.1

    def run() -> int:
        sim = Simulator()
        steps = 0
        for e in range(episodes):
            k0 = 60 + e * episode_steps
            sim.reset(view.episode_market(k0, k0 + episode_steps), config.sim, seed=e)
            sim.advance_to(int(view.t[k0]))
            bid = ask = -1
            for k in range(k0, k0 + episode_steps):
                book = sim.observed_book()
                for oid in (bid, ask):
                    if oid >= 0:
                        sim.cancel(oid)
                bid = sim.submit(BUY, qty, float(book[0][0]), post_only=True)
                ask = sim.submit(SELL, qty, float(book[2][0]), post_only=True)
                sim.advance_to(int(view.t[k + 1]))
                steps += 1
        return steps

    return run


def cartpole_run(steps: int):
    def run() -> int:
        env = gym.make("CartPole-v1")
        env.reset(seed=0)
        for _ in range(steps):
            _, _, term, trunc, _ = env.step(0)
            if term or trunc:
                env.reset()
        env.close()
        return steps

    return run


def main(episodes: int = 3) -> None:
    cfg_syn = SyntheticConfig(seed=1)
    tables = simulate_day(
        cfg_syn, "BTCUSDT", cfg_syn.first_day, initial_state(cfg_syn, "BTCUSDT"), n_steps=36_000
    ).tables
    MarketView.from_tables(tables)  # warm the numba caches before timing
    t0 = time.perf_counter()
    view = MarketView.from_tables(tables)
    build_s = time.perf_counter() - t0
    config = EnvConfig(episode_s=600)
    env = ScalperEnv(view, config)
    env_run(env, SymmetricMarketMaker, 1)()  # warm-up

    mm, _ = timed(env_run(env, SymmetricMarketMaker, episodes))
    rnd, _ = timed(env_run(env, lambda e: RandomPolicy(e, seed=0), episodes))
    vec, _ = timed(vector_run(view, config, 4, 600))
    bare, _ = timed(bare_engine_run(view, config, episodes, env.episode_steps))
    cart, _ = timed(cartpole_run(20_000))

    print(f"market view build: {build_s:.3f} s per hour of data ({view.n_steps} decision steps)")
    print(f"env + touch market maker : {mm:10,.0f} steps/s  ({mm * view.config.step_s:,.0f}x real time)")
    print(f"env + random policy      : {rnd:10,.0f} steps/s")
    print(f"SyncVectorEnv x 4 (MM)   : {vec:10,.0f} sub-env steps/s")
    print(f"bare engine touch quoter : {bare:10,.0f} steps/s")
    print(f"gymnasium CartPole-v1    : {cart:10,.0f} steps/s")
    print(f"ratio env(MM) / bare engine: {mm / bare:.2f}; env(MM) / CartPole: {mm / cart:.4f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
