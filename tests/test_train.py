"""Training loop: exact resume from a checkpoint, curriculum stages, the risk head feeding the env, config files, PPO.

Tiny networks on 12 synthetic minutes (the first 60 % is the train split), a few hundred env steps per run.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from agent.env import EnvConfig
from agent.market_view import ViewConfig
from agent.policy_factory import NetConfig
from agent.ppo import gae
from agent.replay import PrioritizedStratifiedReplay
from agent.train import (
    DataConfig,
    TrainConfig,
    Validation,
    load_config,
    load_model,
    read_metrics,
    stage_env_config,
    train,
)

TINY = NetConfig(
    lstm_hidden=8, macro_hidden=8, state_hidden=8, latent=16, trunk_hidden=16, head_hidden=8, risk_hidden=8
)


def tiny_config(tmp_path, **overrides) -> TrainConfig:
    values = dict(
        total_steps=270,
        data=DataConfig(minutes=12, signal_strength=1.0),
        view=ViewConfig(micro_window=8, macro_horizons_s=(60.0,)),
        env=EnvConfig(episode_s=60),
        net=TINY,
        curriculum_steps=90,
        curriculum_episode_s=30,
        learning_starts=40,
        batch_size=16,
        buffer_capacity=1_000,
        eps_decay_steps=200,
        risk_feed_after=60,
        checkpoint_every=150,
        log_every=5,
        runs_root=str(tmp_path),
        device="cpu",
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.mark.parametrize("mirror, val_every", [(False, 0), (True, 100)])
def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(tmp_path, mirror, val_every):
    options = dict(run_name="run", mirror_augment=mirror, val_every=val_every)
    straight = train(tiny_config(tmp_path / "a", **options))
    first_half = train(tiny_config(tmp_path / "b", total_steps=150, **options))
    assert first_half.steps == 150  # curriculum: 3 episodes of 30 steps, then one of 60: a boundary at 150
    stored = PrioritizedStratifiedReplay.load(
        first_half.run_dir / "checkpoints" / f"{150:010d}" / "replay.npz"
    )
    assert len(stored) == (300 if mirror else 150)  # mirror augmentation stores each step's mirror image too
    resumed = train(tiny_config(tmp_path / "b", **options))
    assert resumed.resumed_from == 150
    assert (resumed.steps, resumed.updates, resumed.episodes) == (
        straight.steps,
        straight.updates,
        straight.episodes,
    )
    a = torch.load(straight.model_path, weights_only=False)["state_dict"]
    b = torch.load(resumed.model_path, weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"parameter {name} differs after resume"
    # the logs too: rows after the checkpoint were truncated and written again, identically
    assert (straight.run_dir / "metrics.jsonl").read_text() == (resumed.run_dir / "metrics.jsonl").read_text()
    assert resumed.mean_return_last == straight.mean_return_last
    assert (resumed.best_val_pnl, resumed.best_val_step) == (straight.best_val_pnl, straight.best_val_step)
    if val_every:  # validated at the first episode ends past 100 and 200, and the final network at 270:
        rows = read_metrics(straight.run_dir, "val")  # model.pt is the best of the three
        assert [r["step"] for r in rows] == [150, 210, 270]
        best = max(rows, key=lambda r: r["lower_bound"])
        assert (straight.best_val_step, straight.best_val_pnl) == (
            best["step"],
            pytest.approx(best["mean_pnl"]),
        )
        assert all(r["lower_bound"] <= r["mean_pnl"] for r in rows)
        net, config, _ = load_model(straight.run_dir)
        model_pnl, _ = Validation(config).score(net)
        assert model_pnl == pytest.approx(straight.best_val_pnl)  # model.pt is that network


def test_training_runs_the_curriculum_and_feeds_the_risk_head(tmp_path):
    config = tiny_config(tmp_path, total_steps=210, run_name="c")
    result = train(config)
    episodes = read_metrics(result.run_dir, "episode")
    stages = [int(e["stage"]) for e in episodes]
    assert stages == [1, 1, 1, 2, 2]
    lengths = np.diff([0] + [e["step"] for e in episodes])
    assert lengths[:3].tolist() == [30, 30, 30] and lengths[3] == 60
    losses = read_metrics(result.run_dir, "train")
    assert losses and all(np.isfinite(r["loss"]) for r in losses)
    assert result.updates == 210 - 40 + 1
    net, loaded, saved = load_model(result.run_dir)
    assert loaded == config
    # the risk head outputs variances on the scale of the train split's one-step returns
    assert saved["variance_scale"] > 0
    s1 = stage_env_config(config, 1)
    assert s1.episode_s == 30 and s1.sim.latency.entry.base_us == 0 and s1.sim.latency.ack.base_us == 0
    assert stage_env_config(config, 2) == config.env


def test_risk_head_prediction_reaches_the_env(tmp_path, monkeypatch):
    from agent.env import ScalperEnv

    seen = []
    original = ScalperEnv.step

    def spy(self, action):
        seen.append(self.predicted_variance)
        return original(self, action)

    monkeypatch.setattr(ScalperEnv, "step", spy)
    train(tiny_config(tmp_path, total_steps=90, risk_feed_after=60, learning_starts=30, run_name="r"))
    assert all(v is None for v in seen[:60])
    assert len(seen) == 90 and all(v is not None and v > 0 for v in seen[60:])


def test_config_file_round_trip(tmp_path):
    path = tmp_path / "train.toml"
    path.write_text(
        'algo = "dqn"\ntotal_steps = 123\n[data]\nminutes = 7\nsplit_fractions = [0.5, 0.25, 0.25]\n'
        "[env]\nepisode_s = 90.0\n[view]\nmicro_window = 12\nmacro_horizons_s = [60.0, 300.0]\n"
    )
    config = load_config(path, seed=5)
    assert config.total_steps == 123 and config.seed == 5
    assert config.data.split_fractions == (0.5, 0.25, 0.25) and config.env.episode_s == 90.0
    assert config.view.macro_horizons_s == (60.0, 300.0)
    with pytest.raises(ValueError, match="unknown settings"):
        load_config(None, learning_rat=1e-3)
    json_path = tmp_path / "c.json"
    json_path.write_text(json.dumps({"net": {"latent": 24}}))
    assert load_config(json_path).net.latent == 24


def test_gae_matches_a_hand_computation():
    rewards = np.array([1.0, 0.0, 2.0])
    values = np.array([0.5, 0.4, 0.3])
    next_values = np.array([0.4, 0.3, 9.0])
    terminated = np.array([0.0, 0.0, 1.0])
    ends = np.array([False, False, True])
    gamma, lam = 0.9, 0.8
    d2 = 2.0 - 0.3
    d1 = 0.0 + 0.9 * 0.3 - 0.4
    d0 = 1.0 + 0.9 * 0.4 - 0.5
    want = [d0 + gamma * lam * (d1 + gamma * lam * d2), d1 + gamma * lam * d2, d2]
    np.testing.assert_allclose(gae(rewards, values, next_values, terminated, ends, gamma, lam), want)


def test_ppo_trains_on_the_same_encoder(tmp_path):
    config = tiny_config(
        tmp_path, algo="ppo", total_steps=128, ppo_rollout=64, ppo_minibatch=32, run_name="p"
    )
    result = train(config)
    assert result.algo == "ppo" and result.steps == 128 and result.updates == 2 * 4 * 2
    net, _, _ = load_model(result.run_dir)
    assert type(net).__name__ == "BranchingActorCritic"
    rows = read_metrics(result.run_dir, "train")
    assert len(rows) == 2 and all(np.isfinite(r["loss"]) for r in rows)


def test_fresh_run_discards_older_checkpoints(tmp_path):
    config = tiny_config(tmp_path, total_steps=150, run_name="f", learning_starts=30)
    train(config)
    again = train(config, resume=False)
    assert again.resumed_from is None and again.steps == 150
    resumed = train(dataclasses.replace(config, total_steps=210))
    assert resumed.resumed_from == 150


def test_blind_features_hide_columns_by_name_and_refuse_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="unknown observation features \\['tod_cosine'\\]"):
        train(tiny_config(tmp_path, run_name="x", blind_features=("tod_cosine",)))
    result = train(
        tiny_config(tmp_path, run_name="b", total_steps=60, blind_features=("tod_sin", "time_to_funding"))
    )
    net, _, _ = load_model(result.run_dir)
    assert torch.isinf(net.encoder.macro_scale).sum() == 1 and torch.isinf(net.encoder.state_scale).sum() == 1


def test_tensorboard_events_hold_the_logged_scalars_once_after_a_resume(tmp_path):
    options = dict(run_name="tb", val_every=100)
    train(tiny_config(tmp_path, total_steps=150, **options))
    resumed = train(tiny_config(tmp_path, **options))  # rows after step 150 are written again
    assert_tensorboard_matches_metrics(resumed.run_dir)
    fresh = train(tiny_config(tmp_path, total_steps=210, **options), resume=False)  # over the old run's files
    assert_tensorboard_matches_metrics(fresh.run_dir)


def assert_tensorboard_matches_metrics(run_dir) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    for kind, name in (("episode", "pnl"), ("val", "lower_bound"), ("train", "td_loss")):
        rows = read_metrics(run_dir, kind)
        logged = events.Scalars(f"{kind}/{name}")
        assert [e.step for e in logged] == [r["step"] for r in rows], kind
        assert [e.value for e in logged] == pytest.approx([r[name] for r in rows], rel=1e-6)


def test_synthetic_data_spans_days_as_the_source_lands_them():
    import datetime as dt

    import pyarrow.compute as pc

    from agent.train import _synthetic_tables
    from feature_store.sources.synthetic import SyntheticConfig, SyntheticSource

    tables = _synthetic_tables(3, 1.0, 1450, "BTCUSDT")  # one whole day and the first 10 minutes of the next
    cfg = SyntheticConfig(seed=3, signal_strength=1.0)
    second = cfg.first_day + dt.timedelta(days=1)
    expected = SyntheticSource(cfg, day_seconds=600).load_day("BTCUSDT", second)  # chained without our tables
    books = tables["book_snapshots"]
    assert books.num_rows == (86_400 + 600) * 10
    for name in ("book_snapshots", "trades", "mark_prices"):
        day_two = tables[name].filter(pc.equal(tables[name]["date"], second.isoformat()))
        assert day_two.equals(expected[name]), name
    assert (np.diff(books["ts"].cast("int64").to_numpy()) > 0).all()  # one time line across midnight
