"""Hyper-parameter search with Optuna: TPE sampling, median pruning on intermediate validation scores, RDB storage.

`run_hpo(HPOConfig)` (CLI `scalper hpo --trials N --storage URL`, script scripts/hpo_scalper.py) optimizes a
TrainConfig. Each trial trains in `rounds` equal chunks of env steps, resuming its own checkpoint between chunks
(agent/train.py resumes exactly), and after every chunk scores the agent on the validation split: the validation
score is reported to Optuna as the intermediate value of that round, and MedianPruner stops trials whose score is
below the median of earlier trials at the same round. The study lives in any SQLAlchemy URL (sqlite:///... by
default; Postgres/MySQL for workers on several machines), created on first use and resumed after.

Validation score (`validation_score`), over the non-overlapping validation windows grouped by the regime of their
first step, with per-window returns r (PnL / starting equity, bp):
    score = 0.4 * mean_regimes clip(Sharpe_regime) + 0.4 * mean_regimes clip(Sortino_regime) - 0.2 * instability
Sharpe = mean(r) / std(r), Sortino = mean(r) / downside deviation (per window, not annualized; 0 when the
dispersion is 0), each clipped to +-3; instability = min(3, std over regimes of the regime's mean r / (mean |r| +
0.01 bp)): a policy that earns in one regime and loses in another scores below one that earns evenly.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
from loguru import logger

from agent.env import ScalperEnv
from agent.evaluate import AgentPolicy, RecordingSimulator, run_episode
from agent.market_view import REGIMES
from agent.train import TrainConfig, load_model, market_view, train, view_config_for

RATIO_CLIP = 3.0


@dataclass(frozen=True)
class HPOConfig:
    base: TrainConfig = field(default_factory=TrainConfig)
    trials: int = 20
    storage: str = "sqlite:///runs/optuna.db"
    study_name: str = "scalper"
    steps_per_trial: int = 20_000
    rounds: int = 4  # intermediate validation scores per trial (pruning points)
    val_windows: int | None = None  # None: every validation window
    seed: int = 0
    pruner_startup_trials: int = 3
    pruner_warmup_rounds: int = 1
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if self.trials < 1 or self.rounds < 1 or self.steps_per_trial < self.rounds:
            raise ValueError("trials and rounds must be >= 1 and steps_per_trial >= rounds")


def suggest(trial: optuna.Trial, base: TrainConfig) -> TrainConfig:
    """The search space: optimizer, return horizon, exploration, target updates, risk-loss weight, network width."""
    width = trial.suggest_categorical("width", [32, 64, 128])
    net = dataclasses.replace(
        base.net,
        lstm_hidden=width,
        macro_hidden=width,
        state_hidden=width,
        latent=2 * width,
        trunk_hidden=2 * width,
        head_hidden=width,
    )
    return dataclasses.replace(
        base,
        net=net,
        learning_rate=trial.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        gamma=trial.suggest_float("gamma", 0.9, 0.999),
        n_step=trial.suggest_int("n_step", 1, 5),
        batch_size=trial.suggest_categorical("batch_size", [32, 64, 128]),
        target_tau=trial.suggest_float("target_tau", 1e-3, 5e-2, log=True),
        eps_decay_steps=trial.suggest_int("eps_decay_steps", 1_000, 20_000, log=True),
        risk_loss_weight=trial.suggest_float("risk_loss_weight", 0.01, 1.0, log=True),
    )


def _ratio(r: np.ndarray, downside: bool) -> float:
    if r.shape[0] < 2:
        return 0.0
    scale = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)) if downside else r.std()
    if scale == 0:
        return 0.0 if r.mean() == 0 else math.copysign(RATIO_CLIP, r.mean())
    return float(np.clip(r.mean() / scale, -RATIO_CLIP, RATIO_CLIP))


def validation_score(window_returns_bp: np.ndarray, window_regimes: list[str]) -> dict[str, float]:
    """The objective of the module docstring from per-window returns (bp) and each window's regime label."""
    r_all = np.asarray(window_returns_bp, dtype=np.float64)
    regimes = [g for g in REGIMES if g in window_regimes]
    if not regimes:
        raise ValueError("no validation windows: give the validation split more data than one episode")
    groups = [r_all[[w == g for w in window_regimes]] for g in regimes]
    sharpe = float(np.mean([_ratio(r, downside=False) for r in groups]))
    sortino = float(np.mean([_ratio(r, downside=True) for r in groups]))
    means = np.array([r.mean() for r in groups])
    instability = (
        float(min(RATIO_CLIP, means.std() / (np.abs(r_all).mean() + 0.01))) if len(groups) > 1 else 0.0
    )
    score = 0.4 * sharpe + 0.4 * sortino - 0.2 * instability
    return {"score": score, "sharpe": sharpe, "sortino": sortino, "instability": instability}


def validate(run_dir: Path, max_windows: int | None, seed: int) -> dict[str, float]:
    """Score a trained run on its validation split (the agent alone, the same windows for every trial)."""
    net, config, _ = load_model(run_dir)
    env = ScalperEnv(market_view(config.data, "val", view_config_for(config)), config.env)
    env.sim = RecordingSimulator()
    starts = env.tiled_starts()[:max_windows]
    policy = AgentPolicy(env, net)
    traces = [run_episode(env, policy, s, seed + i) for i, s in enumerate(starts)]
    returns_bp = np.array([t.stats["return"] * 1e4 for t in traces])
    return validation_score(returns_bp, [t.regime for t in traces])


def make_study(config: HPOConfig) -> optuna.Study:
    if config.storage.startswith("sqlite:///"):
        Path(config.storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return optuna.create_study(
        study_name=config.study_name,
        storage=optuna.storages.RDBStorage(config.storage),
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=config.pruner_startup_trials, n_warmup_steps=config.pruner_warmup_rounds
        ),
        load_if_exists=True,
    )


def run_hpo(config: HPOConfig) -> dict:
    """Run `config.trials` more trials in the (new or existing) study; return a summary with the best trial."""
    study = make_study(config)
    runs_root = Path(config.base.runs_root) / "hpo" / config.study_name
    chunk = max(1, config.steps_per_trial // config.rounds)

    def objective(trial: optuna.Trial) -> float:
        trial_config = dataclasses.replace(
            suggest(trial, config.base),
            runs_root=str(runs_root),
            run_name=f"trial-{trial.number:04d}",
            checkpoint_every=chunk,
            seed=config.base.seed + trial.number,
        )
        trial.set_user_attr("model_id", trial_config.run_name)
        score = math.nan
        for round_ in range(1, config.rounds + 1):
            result = train(dataclasses.replace(trial_config, total_steps=chunk * round_))
            parts = validate(result.run_dir, config.val_windows, config.seed)
            score = parts["score"]
            trial.set_user_attr(f"round_{round_}", parts)
            trial.report(score, round_)
            if trial.should_prune():
                raise optuna.TrialPruned(f"round {round_}: validation score {score:.3f} below the median")
        return score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=config.trials, timeout=config.timeout_s, catch=())
    states = [t.state for t in study.trials]
    summary = {
        "study": config.study_name,
        "storage": config.storage,
        "trials": len(study.trials),
        "complete": states.count(optuna.trial.TrialState.COMPLETE),
        "pruned": states.count(optuna.trial.TrialState.PRUNED),
    }
    try:
        best = study.best_trial
        summary.update(
            best_value=best.value, best_params=best.params, best_model=best.user_attrs.get("model_id")
        )
    except ValueError:  # every trial pruned or failed
        summary.update(best_value=None, best_params=None, best_model=None)
    logger.info(f"HPO {config.study_name}: {json.dumps(summary, default=str)}")
    return summary
