"""Model selection against standing aside: a run with validation delivers a network only when its lower 95 %
bound on the validation windows beats that of placing no orders at all; otherwise evaluation's "agent" stands aside
(with the best network beside it as "agent_network") and export refuses. Real tiny training runs on the synthetic
market, real evaluation and export."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from test_train import tiny_config

from agent.baselines import StandAside, run_policy
from agent.env import EnvConfig, ScalperEnv
from agent.evaluate import EvalConfig, comparison_table, evaluate
from agent.export import export
from agent.sim.engine import SimConfig
from agent.sim.fees import fee_tier
from agent.train import (
    LoopState,
    load_model,
    market_view,
    read_metrics,
    selection_record,
    train,
    view_config_for,
)


def gated_config(root, **overrides):
    # Binance VIP 0 fees (2 / 5 bp) on a 270-step network: every fill costs more than a one-tick spread is worth,
    # so no greedy policy of it can show a positive lower bound on the validation windows; one that never trades
    # ties standing aside at 0, which does not beat it either
    env = EnvConfig(episode_s=60, sim=SimConfig(fees=fee_tier("vip0")))
    return tiny_config(root, run_name="gated", env=env, val_every=100, val_windows=0, **overrides)


@pytest.fixture(scope="module")
def gated_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gated")
    result = train(gated_config(root))
    report = evaluate(
        "gated", EvalConfig(runs_root=str(root), reports_root=str(root / "reports"), n_boot=100)
    )
    return root, result, report


def test_standing_aside_scores_zero_without_sending_an_order(tmp_path):
    config = tiny_config(tmp_path)
    env = ScalperEnv(market_view(config.data, "val", view_config_for(config)), config.env)
    stats = run_policy(env, StandAside(env), 2, starts=env.tiled_starts()[:2])
    assert stats.pnl.tolist() == [0.0, 0.0]
    assert env.sim.open_orders() == [] and env.unwrapped._acct.position == 0


def test_run_without_a_validated_network_delivers_no_strategy(gated_run):
    root, result, report = gated_run
    _, _, saved = load_model(result.run_dir)
    selection = saved["selection"]
    val_rows = read_metrics(result.run_dir, "val")
    assert (
        selection["val_windows"] == 2
    )  # val_windows=0: every window of the val split (2.4 min of 60 s windows)
    assert (selection["stand_aside_val_pnl"], selection["stand_aside_val_lower"]) == (0.0, 0.0)
    assert selection["network_val_lower"] == max(r["lower_bound"] for r in val_rows)
    assert selection["network_val_lower"] <= 0.0 and selection["stand_aside"] and result.stand_aside
    assert read_metrics(result.run_dir, "selection")[0]["stand_aside"] == 1.0

    agent, network = report["policies"]["agent"]["all"], report["policies"]["agent_network"]["all"]
    assert agent["orders_sent"] == 0 and agent["mean_pnl"] == 0.0
    assert agent["sharpe_daily_ci95"] == (0.0, 0.0)  # no return, no risk: the interval contains 0, exactly
    # the best network, played anyway beside it (here it learned to trade little or nothing: a tie at best)
    assert report["agent_minus_baseline"]["agent_network"]["mean"] == pytest.approx(-network["mean_pnl"])
    assert report["selection"] == selection
    assert "the agent stands aside" in comparison_table(report)

    with pytest.raises(ValueError, match="no strategy to export.*val_stand_aside=false"):
        export("gated", runs_root=str(root), lake_root=None, reports_root=str(root / "reports"))


def test_the_gate_can_be_turned_off_and_keeps_the_same_network(gated_run, tmp_path):
    _, gated, gated_report = gated_run
    ungated = train(gated_config(tmp_path, val_stand_aside=False))
    _, _, saved = load_model(ungated.run_dir)
    assert not ungated.stand_aside and not saved["selection"]["stand_aside"]
    # the gate decides what is delivered, not which network is kept: the same best network either way
    a = torch.load(gated.model_path, weights_only=False)["state_dict"]
    b = torch.load(ungated.model_path, weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    report = evaluate(
        "gated",
        EvalConfig(runs_root=str(tmp_path), reports_root=str(tmp_path / "r"), n_boot=100, plots=False),
    )
    assert "agent_network" not in report["policies"]
    delivered, played_anyway = (
        report["policies"]["agent"]["all"],
        gated_report["policies"]["agent_network"]["all"],
    )
    assert (delivered["mean_pnl"], delivered["orders_sent"]) == (
        played_anyway["mean_pnl"],
        played_anyway["orders_sent"],
    )


@pytest.mark.parametrize("network_lower, delivered", [(0.5, True), (0.0, False), (-3.0, False)])
def test_a_network_is_delivered_only_when_its_bound_beats_standing_aside(tmp_path, network_lower, delivered):
    validation = SimpleNamespace(stand_aside_score=(0.0, 0.0), starts=[0, 120, 240])
    state = LoopState(best_val_lower=network_lower, best_val_pnl=network_lower + 2.0, best_val_step=90)
    for gate in (True, False):
        record = selection_record(tiny_config(tmp_path, val_stand_aside=gate), validation, state)
        assert record["stand_aside"] is (gate and not delivered)
        assert (record["network_val_lower"], record["network_val_step"], record["val_windows"]) == (
            network_lower,
            90,
            3,
        )


def test_dashboard_says_the_agent_stands_aside(gated_run, tmp_path, monkeypatch):
    from test_dashboard import run_app

    root, _, _ = gated_run
    at = run_app(monkeypatch, tmp_path / "empty_lake", root / "reports")
    warnings = [w.value for w in at.warning]
    assert any("kept no network" in w and "agent_network" in w for w in warnings), warnings
