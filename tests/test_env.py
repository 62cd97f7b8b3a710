"""The scalper env on synthetic market data: gymnasium conformance, reproducibility, action semantics, reward
accounting, risk enforcement, vector envs, and the causality of the market view."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pyarrow.compute as pc
import pytest
from gymnasium.utils.env_checker import check_env
from synthetic_views import synthetic_tables, synthetic_view

from agent.env import ENV_ID, P_INSIDE, P_NONE, P_TOUCH, EnvConfig, ScalperEnv, env_fns, make_env
from agent.market_view import MICRO_FEATURES, REGIMES, MarketView, macro_feature_names
from agent.obs import BOOK_COLUMNS, encoder_inputs, state_feature_names
from agent.risk import KILL_DAILY_LOSS, KILL_LOSS_STREAK, RiskConfig
from agent.sim.engine import SimConfig
from agent.sim.margin import MarginConfig

CROSS = 5  # default price actions: none, inside, touch, passive_2, passive_5, cross
FULL_LONG, FLAT, FULL_SHORT = 4, 2, 0


@pytest.fixture(scope="module")
def view() -> MarketView:
    return synthetic_view(0.0, seed=1, minutes=20)


def test_check_env_passes_without_warnings(view):
    env = gym.make(ENV_ID, view=view, config=EnvConfig(episode_s=30)).unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    assert [str(w.message) for w in caught] == []


def test_spaces_and_observation_layout(view):
    env = ScalperEnv(view, EnvConfig(episode_s=60))
    assert env.action_space == gym.spaces.MultiDiscrete([6, 5])
    assert env.config.price_actions == ("none", "inside", "touch", "passive_2", "passive_5", "cross")
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert obs["micro"].shape == (60, len(MICRO_FEATURES))
    assert obs["macro"].shape == (len(macro_feature_names(view.config.macro_horizons_s)),)
    assert obs["book"].shape == (20, len(BOOK_COLUMNS))
    assert obs["state"].shape == (len(state_feature_names(view.config)),)
    # the book block is relative to mid: bids below, asks above, sizes positive
    assert (obs["book"][:, 0] < 0).all() and (obs["book"][:, 2] > 0).all()
    assert (obs["book"][:, [1, 3]] > 0).all()
    # the micro window's last row is the market view's row at the start step
    np.testing.assert_array_equal(obs["micro"][-1], view.micro[info["start_step"]])
    micro, macro, state = encoder_inputs(obs)
    assert state.shape == (20 * 4 + obs["state"].shape[0],)


def _rollout(env: ScalperEnv, seed: int, actions: np.ndarray):
    obs, info = env.reset(seed=seed)
    trace = [(info["start_step"], obs["state"].copy())]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        trace.append((r, info["pnl"], info["position"], obs["state"].copy(), obs["micro"].copy()))
        if term or trunc:
            break
    return trace


def _same(a, b) -> bool:
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(np.array_equal(a, b))


def test_seeded_resets_are_reproducible(view):
    actions = np.random.default_rng(0).integers(0, [6, 5], (60, 2))
    env_a = ScalperEnv(view, EnvConfig(episode_s=60))
    env_b = ScalperEnv(view, EnvConfig(episode_s=60))
    first = _rollout(env_a, 11, actions)
    assert all(_same(x, y) for x, y in zip(first, _rollout(env_b, 11, actions), strict=True))
    # the same env, reset again with the seed after other episodes
    _rollout(env_a, 5, actions)
    assert all(_same(x, y) for x, y in zip(first, _rollout(env_a, 11, actions), strict=True))
    starts = {env_a.reset(seed=s)[1]["start_step"] for s in range(6)}
    assert len(starts) > 1


def test_cross_reaches_the_risk_scaled_target_and_pays_taker_fees(view):
    env = ScalperEnv(view, EnvConfig(episode_s=60))
    _, info = env.reset(seed=2)
    k0 = info["start_step"]
    cap_qty = math.floor(info["risk"]["cap_notional"] / view.mid[k0] / env.lot + 1e-9) * env.lot
    _, _, _, _, info = env.step([CROSS, FULL_LONG])
    assert info["position"] == pytest.approx(cap_qty, abs=1e-9)
    acct = env.sim.account()
    assert acct.fees_paid == pytest.approx(info["traded_notional"] * env.config.sim.fees.taker)
    assert info["traded_notional"] == pytest.approx(cap_qty * view.mid[k0], rel=2e-3)
    # holding the position costs the liquidity penalty: (position / visible top-5 bid depth)^2
    depth = view.market.bid_sz[view.book_index[k0 + 1], :5].sum()
    assert info["reward_parts"]["liquidity_penalty"] == pytest.approx(0.05 * (cap_qty / depth) ** 2)
    # half the cap short: the cross sells 1.5 caps' worth (at the new step's cap)
    _, _, _, _, info = env.step([CROSS, 1])
    half = math.floor(info["risk"]["cap_notional"] / 2 / view.mid[k0 + 1] / env.lot + 1e-9) * env.lot
    assert info["position"] == pytest.approx(-half, abs=0.002)


def test_passive_actions_place_post_only_quotes_at_their_offsets(view):
    env = ScalperEnv(view, EnvConfig(episode_s=120))
    env.reset(seed=4)
    tick = env.tick
    for price_action, offset in ((P_TOUCH, 0), (3, 2), (4, 5)):
        env.step([P_NONE, FLAT])
        bid_px, _, ask_px, _ = env.sim.observed_book()
        bb, ba = round(bid_px[0] / tick), round(ask_px[0] / tick)
        if env.sim.account().position != 0.0:
            env.step([CROSS, FLAT])
            continue
        env.step([price_action, FLAT])
        q = env.quote_orders()
        assert round(q["bid"]["price"] / tick) == bb - offset
        assert round(q["ask"]["price"] / tick) == ba + offset
        cap_qty = env._status.cap_notional / view.mid[env._k - 1]
        assert q["bid"]["qty"] == pytest.approx(
            math.floor(cap_qty / 2 / env.lot + 1e-9) * env.lot, abs=0.0015
        )
    # none cancels both quotes
    env.step([P_NONE, FLAT])
    env.step([P_NONE, FLAT])
    assert env.sim.open_orders() == []


def test_inside_improves_a_wide_spread_by_one_tick(view):
    wide = np.flatnonzero(view.micro[:, MICRO_FEATURES.index("spread_ticks")] > 1.5)
    wide = wide[(wide > 60) & (wide < view.n_steps - 100)]
    assert wide.shape[0] > 0, "the synthetic market should show some spreads wider than one tick"
    env = ScalperEnv(view, EnvConfig(episode_s=60))
    env.reset(options={"start_step": int(wide[0])})
    bid_px, _, ask_px, _ = env.sim.observed_book()
    bb, ba = round(bid_px[0] / env.tick), round(ask_px[0] / env.tick)
    assert ba - bb >= 2
    env.step([P_INSIDE, FLAT])
    q = env.quote_orders()
    assert round(q["bid"]["price"] / env.tick) == bb + 1
    assert round(q["ask"]["price"] / env.tick) == ba - 1


def test_an_unchanged_quote_keeps_its_order_and_queue_place(view):
    env = ScalperEnv(view, EnvConfig(episode_s=300))
    env.reset(seed=8)
    kept = moved = 0
    for _ in range(299):
        before = env.quote_orders()["bid"]
        book = env.sim.observed_book()
        flat = env.sim.account().position == 0.0
        env.step([4, FLAT])  # passive_5: rests long enough to be re-quoted
        after = env.quote_orders()["bid"]
        if before is None or before["status"] != "live" or not flat:
            continue
        assert after["id"] == before["id"]  # one order per side, modified in place
        if round(book[0][0] / env.tick) - 5 == round(before["price"] / env.tick):
            assert after["price"] == before["price"]  # same price: left alone, its queue place kept
            kept += 1
        elif after["status"] == "live":
            assert round(after["price"] / env.tick) == round(book[0][0] / env.tick) - 5  # re-priced by amend
            moved += 1
    assert kept >= 3 and moved >= 1  # both cases occurred (not vacuous)


def test_reward_parts_add_up_to_the_mark_to_market_pnl(view):
    env = ScalperEnv(view, EnvConfig(episode_s=120))
    env.reset(seed=5)
    e0 = env.sim.account().equity
    rng = np.random.default_rng(1)
    pnl_units = 0.0
    while True:
        _, reward, term, trunc, info = env.step(rng.integers(0, [6, 5]))
        p = info["reward_parts"]
        assert reward == pytest.approx(
            p["pnl"] - p["trade_penalty"] - p["liquidity_penalty"] - p["breach_penalty"] + p["episode_bonus"]
        )
        assert p["trade_penalty"] == pytest.approx(1e4 * 0.2e-4 * info["traded_notional"] / e0)
        pnl_units += p["pnl"]
        if term or trunc:
            break
    stats = info["episode_stats"]
    assert pnl_units * e0 / 1e4 == pytest.approx(info["pnl"], abs=1e-6)
    acct = env.sim.account()
    assert info["pnl"] == pytest.approx(
        acct.realized_pnl
        + acct.unrealized_pnl
        - acct.fees_paid
        - acct.funding_paid
        - acct.liquidation_fees_paid,
        abs=1e-6,
    )
    assert stats["fees"] == pytest.approx(acct.fees_paid)


def test_daily_loss_cap_flattens_refuses_and_ends_the_episode(view):
    risk = RiskConfig(daily_loss_cap=0.002, max_drawdown=0.0, loss_streak=0)
    env = ScalperEnv(view, EnvConfig(episode_s=300, risk=risk))
    env.reset(seed=6)
    tripped_at = None
    for i in range(300):
        a = [CROSS, FULL_LONG if i % 2 == 0 else FULL_SHORT]
        _, _, term, trunc, info = env.step(a)
        if info["risk"]["tripped_now"]:
            assert info["risk"]["tripped_now"] == KILL_DAILY_LOSS
            tripped_at = i
        if tripped_at is not None and i > tripped_at:
            assert info["refused"] and info["kill_switch"] == KILL_DAILY_LOSS
        if term or trunc:
            break
    assert tripped_at is not None and term and not trunc
    assert info["position"] == 0.0
    assert env.sim.open_orders() == []
    assert info["episode_stats"]["kill_switch_trips"] == [KILL_DAILY_LOSS]
    assert i <= tripped_at + 3  # flattened by market order within a step or two, then terminated


def test_loss_streak_halts_for_the_cooldown_then_trading_resumes(view):
    risk = RiskConfig(daily_loss_cap=0.0, max_drawdown=0.0, loss_streak=2, loss_streak_cooldown_s=5.0)
    env = ScalperEnv(view, EnvConfig(episode_s=300, risk=risk))
    env.reset(seed=7)
    refused = []
    trips = 0
    for i in range(60):
        _, _, term, trunc, info = env.step([CROSS, FULL_LONG if i % 2 == 0 else FLAT])
        refused.append(info["refused"])
        trips += info["risk"]["tripped_now"] == KILL_LOSS_STREAK
    assert trips >= 1 and not term
    # each halt refuses exactly the cooldown's 5 steps, then the next action trades again
    runs = [len(r) for r in "".join("x" if f else "." for f in refused).split(".") if r]
    assert runs and all(r == 5 for r in runs[:-1])


def test_predicted_variance_tightens_the_leverage_cap(view):
    env = ScalperEnv(view, EnvConfig(episode_s=60))
    env.reset(seed=2)
    _, _, _, _, calm = env.step([P_NONE, FLAT])
    env.predicted_variance = (1e-3) ** 2
    _, _, _, _, info = env.step([CROSS, FULL_LONG])
    cfg = env.config.risk
    expected = cfg.target_risk / (1e-3 * math.sqrt(cfg.risk_horizon_s))
    assert info["risk"]["leverage_cap"] == pytest.approx(expected)
    assert info["risk"]["leverage_cap"] < calm["risk"]["leverage_cap"]
    # the cross was sized with the cap in force when it was sent (the calm one), later steps use the tighter one
    env.step([CROSS, FULL_LONG])
    assert abs(env.sim.account().position) * view.mid[env._k] <= info["risk"]["cap_notional"] * 1.01
    with pytest.raises(ValueError, match="predicted_variance"):
        env.predicted_variance = -1.0


def test_sync_and_async_vector_envs_step_and_autoreset(view):
    cfg = EnvConfig(episode_s=20)
    sync = gym.vector.SyncVectorEnv(env_fns(view, cfg, 2))
    obs, _ = sync.reset(seed=0)
    assert obs["micro"].shape == (2, 60, len(MICRO_FEATURES))
    sync.set_attr("predicted_variance", [1e-8, 4e-6])
    assert sync.get_attr("predicted_variance") == (1e-8, 4e-6)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(45):
        obs, rew, term, trunc, info = sync.step(rng.integers(0, [6, 5], (2, 2)))
        ended += int(np.sum(term | trunc))
    assert ended >= 2 and obs["state"].shape[0] == 2
    sync.close()

    asyn = gym.vector.AsyncVectorEnv(env_fns(view, cfg, 2), context="fork")
    try:
        obs_a, _ = asyn.reset(seed=0)
        obs_s, _ = gym.vector.SyncVectorEnv(env_fns(view, cfg, 2)).reset(seed=0)
        np.testing.assert_array_equal(obs_a["state"], obs_s["state"])
        asyn.set_attr("predicted_variance", [1e-8, 4e-6])
        assert asyn.get_attr("predicted_variance") == (1e-8, 4e-6)
        for _ in range(25):
            obs_a, rew, term, trunc, info = asyn.step(rng.integers(0, [6, 5], (2, 2)))
        assert obs_a["micro"].shape == (2, 60, len(MICRO_FEATURES))
    finally:
        asyn.close()


def test_episodes_are_sampled_by_regime(view):
    env = ScalperEnv(view, EnvConfig(episode_s=60))
    counts = env.regime_counts()
    present = [r for r in REGIMES if counts[r] > 0]
    assert len(present) >= 2
    for name in present:
        _, info = env.reset(seed=1, options={"regime": name})
        assert info["regime"] == name
    only = present[-1]
    weights = tuple(1.0 if r == only else 0.0 for r in REGIMES)
    env = ScalperEnv(view, EnvConfig(episode_s=60, regime_weights=weights))
    assert {env.reset(seed=s)[1]["regime"] for s in range(5)} == {only}
    with pytest.raises(ValueError, match="regime"):
        env.reset(options={"regime": "sideways"})


def test_market_view_uses_only_data_received_by_each_step():
    tables = synthetic_tables(0.0, seed=2, minutes=10)
    full = MarketView.from_tables(tables)
    cut_us = int(full.t[300])
    cut = {
        name: t.filter(pc.less_equal(t.column("ts").cast("int64"), cut_us)) if "ts" in t.column_names else t
        for name, t in tables.items()
    }
    part = MarketView.from_tables(cut)
    k = int(np.searchsorted(part.t, cut_us, side="right"))
    assert k > 250 and np.array_equal(part.t[:k], full.t[:k])
    for name in ("book_index", "mid", "micro", "macro", "funding", "regime", "sigma"):
        np.testing.assert_array_equal(getattr(part, name)[:k], getattr(full, name)[:k], err_msg=name)


def test_config_errors_say_what_to_change(view):
    with pytest.raises(ValueError, match="max_leverage"):
        EnvConfig(risk=RiskConfig(max_leverage=20.0), sim=SimConfig(margin=MarginConfig(leverage=10.0)))
    with pytest.raises(ValueError, match="episode needs"):
        ScalperEnv(view, EnvConfig(episode_s=3 * 3600))
    with pytest.raises(ValueError, match="outside MultiDiscrete"):
        env = ScalperEnv(view, EnvConfig(episode_s=30))
        env.reset(seed=0)
        env.step([9, 0])
    with pytest.raises(TypeError, match="MarketView"):
        make_env("not data")


def test_env_reads_the_lake_through_the_market_view(tmp_path):
    from feature_store.lake import Lake

    tables = synthetic_tables(0.0, seed=3, minutes=10)
    lake = Lake(tmp_path / "lake")
    for name, table in tables.items():
        if table.num_rows:
            lake.write(name, table)
    from_lake = MarketView.from_lake(tmp_path / "lake", "BTCUSDT", "2024-01-01", "2024-01-01")
    direct = MarketView.from_tables(tables)
    for name in ("t", "mid", "micro", "macro", "funding", "regime"):
        np.testing.assert_array_equal(getattr(from_lake, name), getattr(direct, name), err_msg=name)
    env = make_env(from_lake, EnvConfig(episode_s=60))
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    for source in (tables, from_lake.market):  # the same env from raw tables or the engine's MarketData
        other = make_env(source, EnvConfig(episode_s=60))
        np.testing.assert_array_equal(other.reset(seed=0)[0]["micro"], obs["micro"])
    with pytest.raises(ValueError, match="no usdm book_snapshots"):
        MarketView.from_lake(tmp_path / "lake", "BTCUSDT", "2024-02-01", "2024-02-02")


def test_micro_features_match_a_direct_computation_from_the_raw_tables():
    tables = synthetic_tables(0.0, seed=4, minutes=5)
    view = MarketView.from_tables(tables)
    books, trades = tables["book_snapshots"], tables["trades"]
    b_recv = books.column("recv_ts").cast("int64").to_numpy()
    b_seen = np.maximum.accumulate(np.maximum(b_recv, books.column("ts").cast("int64").to_numpy()))
    bid_px = np.array(books.column("bid_px").to_pylist())
    ask_px = np.array(books.column("ask_px").to_pylist())
    bid_sz = np.array(books.column("bid_sz").to_pylist())
    ask_sz = np.array(books.column("ask_sz").to_pylist())
    tr_seen = np.maximum.accumulate(trades.column("recv_ts").cast("int64").to_numpy())
    tr_px, tr_qty = trades.column("price").to_numpy(), trades.column("qty").to_numpy()
    tr_side = trades.column("side").to_numpy()
    for k in (1, 7, 100, 250):
        t, t_prev = int(view.t[k]), int(view.t[k - 1])
        j = max(i for i in range(len(b_seen)) if b_seen[i] <= t)
        j_prev = max(i for i in range(len(b_seen)) if b_seen[i] <= t_prev)
        mid = (bid_px[j, 0] + ask_px[j, 0]) / 2
        mid_prev = (bid_px[j_prev, 0] + ask_px[j_prev, 0]) / 2
        in_step = (tr_seen > t_prev) & (tr_seen <= t)
        buy = float(np.sum((tr_px * tr_qty)[in_step & (tr_side > 0)]))
        qb, qa = bid_sz[j, 0], ask_sz[j, 0]
        micro_px = (ask_px[j, 0] * qb + bid_px[j, 0] * qa) / (qb + qa)
        expected = {
            "ret_bp": math.log(mid / mid_prev) * 1e4,
            "spread_ticks": (ask_px[j, 0] - bid_px[j, 0]) / 0.1,
            "imbalance_l1": (qb - qa) / (qb + qa),
            "imbalance_l5": (bid_sz[j, :5].sum() - ask_sz[j, :5].sum())
            / (bid_sz[j, :5].sum() + ask_sz[j, :5].sum()),
            "microprice_ticks": (micro_px - mid) / 0.1,
            "buy_volume": math.log1p(buy / view.config.notional_scale),
            "trade_count": math.log1p(int(in_step.sum())),
        }
        for name, value in expected.items():
            got = float(view.micro[k, MICRO_FEATURES.index(name)])
            assert got == pytest.approx(value, rel=1e-5, abs=1e-5), (k, name)


def test_the_observation_shows_the_book_the_engine_matches_against(view):
    env = ScalperEnv(view, EnvConfig(episode_s=60))
    for seed in range(4):
        _, info = env.reset(seed=seed)
        for _ in range(3):
            k = env._k
            seen = env.sim.observed_book()
            np.testing.assert_array_equal(seen[0], view.market.bid_px[view.book_index[k]])
            np.testing.assert_array_equal(seen[3], view.market.ask_sz[view.book_index[k]])
            env.step([P_TOUCH, FLAT])


def test_onchain_features_appear_only_once_available():
    from agent.market_view import _onchain_features
    from feature_store.records import OnChainMetric, table_from_columns

    day = 1_704_067_200_000_000
    table = table_from_columns(
        OnChainMetric,
        dict(
            exchange="synthetic",
            market="usdm",
            symbol="BTCUSDT",
            ts=np.array([day - 2 * 86_400_000_000, day - 86_400_000_000], dtype=np.int64),
            recv_ts=np.array([day - 86_400_000_000, day], dtype=np.int64),
            asset="BTC",
            metric="tx_count",
            value=np.array([100.0, 150.0]),
            available_at=np.array([day - 80_000_000_000, day + 7_200_000_000], dtype=np.int64),
        ),
    )
    t = np.array([day - 90_000_000_000, day, day + 7_199_000_000, day + 7_200_000_000], dtype=np.int64)
    out = _onchain_features(table, "BTCUSDT", t, ("active_addresses", "tx_count"))
    assert out[:, :2].tolist() == [[0.0, 0.0]] * 4  # a metric with no rows: unknown throughout
    assert out[:, 3].tolist() == [0.0, 1.0, 1.0, 1.0]  # known from the first value's available_at on
    change = math.log1p(150.0) - math.log1p(100.0)
    assert out[:, 2].tolist() == pytest.approx([0.0, 0.0, 0.0, change])  # the new value counts only once out


def test_a_liquidation_ends_the_episode():
    from agent.market_view import ViewConfig
    from agent.sim.market import MarketData

    n = 6000  # 600 s of 100 ms books: flat for 200 s, then down 8 % over 300 s
    ts = 1_704_067_200_000_000 + np.arange(n, dtype=np.int64) * 100_000
    fall = 0.08 * np.clip((np.arange(n) - 2000) / 3000, 0, 1)
    mid = np.round(60_000.0 * (1 - fall), 1)
    levels = np.arange(20) * 0.1
    market = MarketData.from_arrays(
        "BTCUSDT",
        ts,
        bid_px=mid[:, None] - 0.1 - levels,
        bid_sz=np.full((n, 20), 50.0),
        ask_px=mid[:, None] + levels,
        ask_sz=np.full((n, 20), 50.0),
    )
    view = MarketView.build(market, None, ViewConfig(micro_window=10, macro_horizons_s=(60.0,)))
    sim = SimConfig(margin=MarginConfig(leverage=20.0))
    risk = RiskConfig(
        max_leverage=10.0, max_notional=1e9, target_risk=1.0, daily_loss_cap=0.0, max_drawdown=0.0
    )
    env = ScalperEnv(view, EnvConfig(episode_s=500, sim=sim, risk=risk))
    env.reset(options={"start_step": 50})
    _, _, term, _, info = env.step([CROSS, FULL_LONG])
    entry_notional = info["traded_notional"]
    assert info["position"] > 0 and info["risk"]["leverage_cap"] == 10.0
    while not term:
        _, _, term, trunc, info = env.step([P_NONE, FLAT])
        assert not trunc, "an 8 % fall must liquidate a 10x long on 20x isolated margin"
    assert info["liquidated"] and info["position"] == 0.0
    stats = info["episode_stats"]
    assert stats["liquidations"] == 1
    # isolated margin: the loss is the position's initial margin (notional / 20) and the taker fee, no more
    assert -stats["pnl"] == pytest.approx(entry_notional / 20 + stats["fees"], rel=1e-6)


def test_external_features_and_regime_labels_join_on_the_seen_snapshot(view):
    from agent.market_view import ExternalFeatures

    market = view.market
    ts = market.book_ts[::10]  # one feature row a second
    values = np.column_stack([np.arange(ts.shape[0], dtype=float), -np.arange(ts.shape[0], dtype=float)])
    codes = (np.arange(ts.shape[0]) % 3).astype(np.int8)
    v = MarketView.build(market, None, view.config, ExternalFeatures(ts, ("a", "b"), values), (ts, codes))
    assert v.micro_names == (*MICRO_FEATURES, "a", "b")
    seen_ts = market.book_ts[v.book_index]
    row = np.searchsorted(ts, seen_ts, side="right") - 1
    np.testing.assert_array_equal(v.micro[:, -2], row.astype(np.float32))
    np.testing.assert_array_equal(v.regime, codes[row])
    env = ScalperEnv(v, EnvConfig(episode_s=30))
    obs, _ = env.reset(seed=0)
    assert obs["micro"].shape == (60, len(MICRO_FEATURES) + 2) and env.observation_space.contains(obs)
    with pytest.raises(ValueError, match="shape"):
        ExternalFeatures(ts, ("a",), values)


@pytest.mark.slow
def test_env_runs_on_a_feature_snapshot():
    """Uses the dbt-built shared lake of the feature-store tests (built once per process)."""
    from feature_lake import TEST_DAYS, shared_lake

    from feature_store import snapshots

    lake = shared_lake()
    splits = dict(train=(TEST_DAYS[0],) * 2, val=(TEST_DAYS[1],) * 2, test=(TEST_DAYS[2],) * 2)
    sid = snapshots.create(lake.root, **splits)
    meta = snapshots.metadata(lake.root, sid)
    v = MarketView.from_snapshot(lake.root, sid, "val", "BTCUSDT")
    names = snapshots.feature_columns(meta)
    assert v.micro_names == (*MICRO_FEATURES, *names)
    assert not any(n.startswith("markout_") for n in v.micro_names)  # labels never enter the observation
    rows = snapshots.load(lake.root, sid, "val", normalize=True)
    by_ts = {t: i for i, t in enumerate(rows.column("ts_us").to_pylist())}
    regimes = rows.column("regime").to_pylist()
    spread = rows.column("spread_bps").to_numpy()
    checked = 0
    for k in range(5_000, v.n_steps, 9_973):
        i = by_ts.get(int(v.market.book_ts[v.book_index[k]]))
        if i is None:
            continue
        assert REGIMES[v.regime[k]] == regimes[i]
        assert v.micro[k, v.micro_names.index("spread_bps")] == pytest.approx(spread[i], rel=1e-6)
        checked += 1
    assert checked >= 5
    env = ScalperEnv(v, EnvConfig(episode_s=120))
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    for _ in range(5):
        obs, *_ = env.step(env.action_space.sample())


def test_the_hard_notional_cap_holds_under_slow_order_traffic(view):
    from agent.sim.latency import LatencyConfig, LatencyModel

    slow = LatencyConfig(
        entry=LatencyModel("lognormal", 300_000, 0.8), ack=LatencyModel("lognormal", 300_000, 0.8)
    )
    risk = RiskConfig(max_notional=20_000.0, daily_loss_cap=0.0, max_drawdown=0.0, loss_streak=0)
    env = ScalperEnv(view, EnvConfig(episode_s=300, sim=SimConfig(latency=slow), risk=risk))
    rng = np.random.default_rng(7)
    worst = 0.0
    for seed in range(3):
        env.reset(seed=seed)
        for _ in range(300):
            # many flips between crossing and quoting, so cancels and amends are often still travelling
            _, _, term, trunc, info = env.step(rng.integers(0, [6, 5]))
            worst = max(worst, abs(info["position"]) * info["mid"])
            if term or trunc:
                break
    assert 15_000 < worst <= 20_000 * 1.005
