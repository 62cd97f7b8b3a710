"""HPO: the validation score by hand, and a real Optuna study in SQLite storage with intermediate scores, median
pruning decisions consistent with the recorded values, and a second run continuing the same study."""

from __future__ import annotations

import dataclasses

import numpy as np
import optuna
import pytest
from test_train import tiny_config

from agent.hpo import HPOConfig, run_hpo, suggest, validation_score


def test_validation_score_by_hand():
    r = np.array([1.0, 3.0, -2.0, -4.0, 2.0])
    regimes = ["bull", "bull", "bear", "bear", "range"]
    got = validation_score(r, regimes)
    bull, bear = np.array([1.0, 3.0]), np.array([-2.0, -4.0])
    sharpe = np.mean([min(3.0, bull.mean() / bull.std()), max(-3.0, bear.mean() / bear.std()), 0.0])
    down_bull = np.sqrt(np.mean(np.minimum(bull, 0) ** 2))  # 0: no losing window -> clipped +3
    assert down_bull == 0
    sortino = np.mean([3.0, bear.mean() / np.sqrt(np.mean(bear**2)), 0.0])
    means = np.array([2.0, 2.0, -3.0])  # range, bull, bear means
    instability = min(3.0, means.std() / (np.abs(r).mean() + 0.01))
    assert got["sharpe"] == pytest.approx(sharpe)
    assert got["sortino"] == pytest.approx(sortino)
    assert got["instability"] == pytest.approx(instability)
    assert got["score"] == pytest.approx(0.4 * sharpe + 0.4 * sortino - 0.2 * instability)
    # earning evenly across regimes beats the same mean earned in one regime only
    even = validation_score(np.array([1.0, 1.2, 0.8, 1.1]), ["bull", "bear", "bull", "bear"])
    lopsided = validation_score(np.array([2.0, 0.1, 2.2, -0.1]), ["bull", "bear", "bull", "bear"])
    assert even["score"] > lopsided["score"]
    with pytest.raises(ValueError, match="no validation windows"):
        validation_score(np.array([]), [])


def test_study_in_sqlite_with_pruning_and_resume(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    base = tiny_config(tmp_path / "runs", learning_starts=20, checkpoint_every=60)
    config = HPOConfig(
        base=base,
        trials=3,
        storage=storage,
        study_name="t",
        steps_per_trial=120,
        rounds=2,
        val_windows=3,
        pruner_startup_trials=1,
        pruner_warmup_rounds=0,
    )
    first = run_hpo(config)
    assert first["trials"] == 3 and first["complete"] + first["pruned"] == 3
    study = optuna.load_study(study_name="t", storage=storage)
    trials = study.trials
    for t in trials:
        assert set(t.intermediate_values) <= {1, 2} and 1 in t.intermediate_values
        assert (tmp_path / "runs" / "hpo" / "t" / t.user_attrs["model_id"] / "model.pt").exists()
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.value == t.intermediate_values[2]
    # every trial's fate follows MedianPruner's rule on the values recorded before it (sequential trials)
    done = optuna.trial.TrialState.COMPLETE
    for t in trials:
        prune_at = None
        for step in sorted(t.intermediate_values):
            earlier = [
                u.intermediate_values[step]
                for u in trials
                if u.number < t.number and u.state == done and step in u.intermediate_values
            ]
            if len(earlier) >= 1 and t.intermediate_values[step] < np.median(earlier):
                prune_at = step
                break
        if prune_at is None:
            assert t.state == done, f"trial {t.number} was pruned against the median rule"
        else:
            assert t.state == optuna.trial.TrialState.PRUNED and max(t.intermediate_values) == prune_at
    second = run_hpo(dataclasses.replace(config, trials=1))
    assert second["trials"] == 4


def test_search_space_builds_valid_configs(tmp_path):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        config = suggest(study.ask(), tiny_config(tmp_path))
        assert config.net.latent == 2 * config.net.lstm_hidden and 1 <= config.n_step <= 5
