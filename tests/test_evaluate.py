"""Evaluation: the report's numbers follow from the episodes, all policies meet the same windows, markouts and
drawdowns match hand computations, and recording fills leaves the simulation unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_train import tiny_config

from agent.baselines import SymmetricMarketMaker
from agent.env import ScalperEnv
from agent.evaluate import (
    EpisodeTrace,
    EvalConfig,
    RecordingSimulator,
    bootstrap_interval,
    chained_equity,
    comparison_table,
    evaluate,
    markouts,
    max_drawdown,
    run_episode,
)
from agent.sim.orders import BUY, SELL
from agent.train import market_view, train, view_config_for


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    config = tiny_config(root, run_name="m", total_steps=90, learning_starts=30)
    train(config)
    return root, config


def test_report_compares_every_policy_on_the_same_windows(trained):
    root, _ = trained
    report = evaluate("m", EvalConfig(runs_root=str(root), reports_root=str(root / "reports"), n_boot=200))
    on_disk = json.loads((root / "reports" / "m" / "report.json").read_text())
    assert on_disk["model_id"] == "m" and on_disk["split"] == "test"
    for name in ("equity.png", "drawdown.png", "inventory.png"):
        assert (root / "reports" / "m" / name).stat().st_size > 1000
    policies = report["policies"]
    assert set(policies) == {"agent", "buy_and_hold", "twap", "symmetric_mm", "avellaneda_stoikov", "random"}
    windows = report["windows"]
    assert windows >= 2 and all(p["all"]["episodes"] == windows for p in policies.values())
    assert sum(f["episodes"] for f in policies["agent"]["by_fold"]) == windows
    assert sum(r["episodes"] for r in policies["random"]["by_regime"].values()) == windows
    for name, diff in report["agent_minus_baseline"].items():
        want = policies["agent"]["all"]["mean_pnl"] - policies[name]["all"]["mean_pnl"]
        assert diff["mean"] == pytest.approx(want, abs=1e-9)
        lo, hi = diff["ci95"]
        assert lo <= diff["mean"] <= hi
    mm = policies["symmetric_mm"]["all"]
    assert mm["fills_per_episode"] > 0 and 0 < mm["fill_rate"] <= 1 and mm["maker_share"] == 1.0
    assert "agent" in comparison_table(report)


def test_recording_fills_does_not_change_the_simulation(trained):
    _, config = trained
    view = market_view(config.data, "test", view_config_for(config))
    plain = ScalperEnv(view, config.env)
    recorded = ScalperEnv(view, config.env)
    recorded.sim = RecordingSimulator()
    start = plain.tiled_starts()[0]
    stats = []
    for env in (plain, recorded):
        policy = SymmetricMarketMaker(env)
        obs, _ = env.reset(seed=3, options={"start_step": start})
        while True:
            obs, _, term, trunc, info = env.step(policy.act(obs))
            if term or trunc:
                stats.append(info["episode_stats"])
                break
    assert stats[0] == stats[1]
    trace = run_episode(recorded, SymmetricMarketMaker(recorded), start, seed=3)
    assert trace.stats == stats[1]
    assert len(trace.fills) == stats[1]["fills"]
    assert trace.equity.shape == trace.position.shape == (stats[1]["steps"] + 1,)


def test_markouts_drawdown_and_chained_equity_by_hand():
    mid = np.array([100.0, 101.0, 102.0, 99.0, 100.0])
    trace = EpisodeTrace(
        start_step=0,
        regime="range",
        stats={"pnl": 1.0},
        equity=np.array([1000.0, 1002.0, 999.0]),
        position=np.zeros(3),
        fills=[(1, BUY, 100.0, 1.0, True), (2, SELL, 103.0, 1.0, True)],
    )
    got = markouts([trace], mid, (1, 2))
    # h=1: buy at 100 then mid[2]=102 -> +200 bp; sell at 103 then mid[3]=99 -> +388.35 bp
    assert got["1"] == pytest.approx((200.0 + 4 / 103 * 1e4) / 2)
    # h=2: mid[3]=99 -> -100 bp; mid[4]=100 -> +291.26 bp
    assert got["2"] == pytest.approx((-100.0 + 3 / 103 * 1e4) / 2)
    second = EpisodeTrace(0, "bull", {"pnl": 0}, np.array([500.0, 495.0, 505.0]), np.zeros(3))
    path = chained_equity([trace, second])
    np.testing.assert_allclose(path, [0, 2, -1, -6, 4])
    assert max_drawdown(path) == 8.0


def test_bootstrap_interval_brackets_the_statistic():
    rng = np.random.default_rng(0)
    x = list(rng.normal(1.0, 1.0, 200))
    lo, hi = bootstrap_interval(x, lambda s: float(np.mean(s)), 1000, seed=1)
    assert lo < np.mean(x) < hi and lo > 0.7 and hi < 1.3
    assert np.isnan(bootstrap_interval([1.0], np.mean, 10, 0)[0])


def test_honesty_experiment_smoke(tmp_path):
    """The experiment's machinery end to end on a few hundred steps (learning is not expected at this size: the
    full run is scripts/experiment_honesty.py). The printed verdicts follow from the intervals."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "experiment_honesty.py"
    spec = importlib.util.spec_from_file_location("experiment_honesty", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    summary = module.run_experiment((1.0, 0.0), steps=200, minutes=12, root=tmp_path, smoke=True, n_boot=100)
    on_disk = json.loads((tmp_path / "reports" / "experiment_honesty_none_smoke.json").read_text())
    assert set(on_disk["results"]) == {"signal=1", "signal=0"}
    assert on_disk["fees"] == "none"  # the documented default tier, named in the report
    with_signal, without = summary["results"]["signal=1"], summary["results"]["signal=0"]
    # standing aside beats losing baselines without having learned anything: no claim for it at signal > 0
    assert with_signal["holds"] == (
        not with_signal["stand_aside"]
        and with_signal["vs_symmetric_mm"]["ci95"][0] > 0
        and with_signal["vs_random"]["ci95"][0] > 0
    )
    for result in (with_signal, without):  # a run that stands aside shows its best network beside it
        assert ("network" in result) == result["stand_aside"] == result["selection"]["stand_aside"]
    lo, hi = without["agent_sharpe_daily_ci95"]
    assert without["holds"] == (lo <= 0 <= hi)
    assert with_signal["windows"] >= 2 and with_signal["train_steps"] == 200


def test_honesty_experiment_fee_tiers_and_reward(tmp_path):
    """--fees picks a named tier of agent/sim/fees.py (Binance's published rates); the reward is the net PnL."""
    import importlib.util
    from pathlib import Path

    from agent.sim.fees import FEE_TIERS, fee_tier

    path = Path(__file__).resolve().parents[1] / "scripts" / "experiment_honesty.py"
    spec = importlib.util.spec_from_file_location("experiment_honesty", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.experiment_config(1.0, 100, 12, 0, "mm", tmp_path, smoke=True)
    assert config.env.sim.fees == FEE_TIERS["mm"]
    assert config.env.sim.fees.maker < 0 < config.env.sim.fees.taker  # a maker rebate, a taker fee
    assert FEE_TIERS["vip0"].maker == 0.0002 and FEE_TIERS["vip0"].taker == 0.0005
    reward = config.env.reward
    assert reward.trade_penalty_bps == reward.sharpe_weight == reward.drawdown_weight == 0.0
    with pytest.raises(ValueError, match="vip0"):
        fee_tier("vip1")
    with pytest.raises(SystemExit):
        module.main(["--fees", "vip1"])


def test_report_json_is_strict_and_tabulates(trained):
    root, _ = trained
    evaluate(
        "m",
        EvalConfig(
            runs_root=str(root),
            reports_root=str(root / "strict"),
            n_boot=50,
            plots=False,
            baselines=("random",),
        ),
    )
    text = (root / "strict" / "m" / "report.json").read_text()
    report = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    table = comparison_table(report)
    assert "random" in table and "vs random" in table
