"""Training of the scalping agent: a readable branching-DQN loop (cleanrl style) with exact-resume checkpoints.

One call, `train(TrainConfig) -> TrainResult`, runs everything; `scalper train --snapshot ID [--config FILE]` calls
it with `load_config(FILE)` and the snapshot id set in `config.data`. The loop, top to bottom:

  data        DataConfig picks the market: a feature snapshot's "train" split (MarketView.from_snapshot), a lake
              date range, or the synthetic market cut in time into train / val / test (walk-forward order).
  curriculum  stage 1 (first `curriculum_steps` env steps): zero order-entry/ack latency and short episodes;
              stage 2: the configured latency and full episodes. The stage is chosen at every episode reset.
  acting      epsilon-greedy on each branch independently (price offset, size bucket); the risk head's predicted
              variance of the next one-step mid log return goes to the env's leverage-cap hook
              (env.predicted_variance) once `risk_feed_after` steps have trained it.
  learning    PrioritizedStratifiedReplay (n-step returns, strata = regime of the transition's first step),
              Double-DQN branching targets (agent/losses.py) or their quantile version, importance-weighted TD
              loss + `risk_loss_weight` * Gaussian variance NLL of the realized next-step mid log return.
              `mirror_augment` also stores each transition's mirror image (agent/mirror.py) as a second trajectory.
              Target network: soft (Polyak, `target_tau` per update) or hard every `target_period` updates.
              Mixed precision (torch.autocast + GradScaler) on CUDA; CPU runs in float32. Before the first update
              the encoder's input standardization is fit to the stored observations (`normalize_inputs`).
  validation  with `val_every`, the greedy policy plays the first `val_windows` windows of the val split every
              `val_every` env steps (at an episode end) and once more at the end; model.pt is the network with
              the highest lower 95 % bound of its mean PnL there. Standing aside (no orders: StandAside) is a
              candidate too (`val_stand_aside`): when no network's bound beats it, model.pt records that the
              run delivers no strategy ("selection" in model.pt; evaluation reports the delivered policy and the
              best network both, export refuses).
  checkpoints at the first episode end after every `checkpoint_every` env steps: networks, optimizer, grad
              scaler, replay buffer (agent/replay.save), loop counters and the RNG states of python, numpy, torch
              and the exploration generator. The replay engine itself cannot be serialized, so checkpoints sit on
              episode boundaries, where the env is rebuilt by its reset seed (seed + episode number): a resumed
              run continues bit for bit like an uninterrupted one (tests/test_train.py checks it).
  logs        metrics.jsonl and TensorBoard event files (tb/; `tensorboard --logdir runs`), the same scalars.

Files of a run, under <runs_root>/<model_id>/: config.json, metrics.jsonl, checkpoints/<step>/, model.pt (the final
network with what evaluation and export need to rebuild it), tb/ (TensorBoard events).
`algo="ppo"` runs agent/ppo.py instead, on the same data, env, encoder and run layout.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import time
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from loguru import logger
from torch.nn import functional as F
from tqdm import tqdm

from agent.baselines import StandAside, run_policy
from agent.env import EnvConfig, ScalperEnv
from agent.losses import (
    branching_double_dqn_quantile_target,
    branching_double_dqn_target,
    branching_quantile_loss,
    branching_td_loss,
    gaussian_variance_nll,
    taken_action_values,
)
from agent.market_view import REGIMES, MarketView, ViewConfig
from agent.mirror import ObservationMirror
from agent.nets import RiskAwareBranchingDQN, resolve_device
from agent.obs import encoder_input_columns
from agent.policy_factory import ALGOS, NetConfig, as_tensors, make_policy
from agent.replay import PrioritizedStratifiedReplay, ReplayBatch, ReplayConfig
from agent.sim.engine import SimConfig
from agent.sim.latency import LatencyConfig, LatencyModel

SPLITS = ("train", "val", "test")
TIME_SPLIT_TABLES = ("book_snapshots", "trades", "mark_prices")  # cut in time; funding / on-chain stay whole


# ---- configuration ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataConfig:
    """Where the market comes from.

    source: "synthetic" (SyntheticSource, `minutes` from the start of its first day, over several days when
    `minutes` > 1440 (chained as the source lands them), cut into train / val / test
    by `split_fractions` in time order), "snapshot" (feature snapshot `snapshot_id` in `lake_root`; splits are the
    snapshot's own), "lake" (raw tables of `lake_root`, one (start, end) day window per split) or "lake_day" (the
    first `minutes` of day `day` in the lake's raw tables, cut in time like the synthetic market: quick runs on
    landed data, e.g. the demo).
    """

    source: str = "synthetic"
    symbol: str = "BTCUSDT"
    lake_root: str = "lake"
    snapshot_id: str | None = None
    windows: dict[str, tuple[str, str]] | None = None  # source "lake": split -> (first day, last day)
    day: str | None = None  # source "lake_day"
    synthetic_seed: int = 1
    signal_strength: float = 1.0
    minutes: int = 60
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)

    def __post_init__(self) -> None:
        if self.source not in ("synthetic", "snapshot", "lake", "lake_day"):
            raise ValueError(f"data source {self.source!r}; choose synthetic, snapshot, lake or lake_day")
        if self.source == "lake_day" and not self.day:
            raise ValueError("data source 'lake_day' needs day='YYYY-MM-DD' (a landed day of the symbol)")
        if self.source == "snapshot" and not self.snapshot_id:
            raise ValueError("data source 'snapshot' needs snapshot_id (scalper train --snapshot ID)")
        if self.source == "lake" and not self.windows:
            raise ValueError(
                "data source 'lake' needs windows={'train': (start, end), 'val': ..., 'test': ...}"
            )
        if len(self.split_fractions) != 3 or min(self.split_fractions) <= 0:
            raise ValueError(
                f"split_fractions={self.split_fractions}: three positive shares (train, val, test)"
            )

    def describe(self) -> str:
        if self.source == "snapshot":
            return f"snapshot {self.snapshot_id} ({self.symbol})"
        if self.source == "lake":
            return f"lake {self.lake_root} {self.symbol} {self.windows}"
        if self.source == "lake_day":
            return f"lake {self.lake_root} {self.symbol} {self.day} first {self.minutes} min split {self.split_fractions}"
        return (
            f"synthetic {self.symbol} seed {self.synthetic_seed} signal {self.signal_strength} "
            f"{self.minutes} min split {self.split_fractions}"
        )


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on; the defaults train a small agent on the synthetic market."""

    algo: str = "dqn"
    seed: int = 0
    total_steps: int = 20_000
    data: DataConfig = field(default_factory=DataConfig)
    view: ViewConfig = field(default_factory=lambda: ViewConfig(micro_window=30))
    env: EnvConfig = field(default_factory=lambda: EnvConfig(episode_s=300.0))
    net: NetConfig = field(default_factory=NetConfig)
    # curriculum (stage 1: no order latency, short episodes)
    curriculum_steps: int = 5_000
    curriculum_episode_s: float = 120.0
    # DQN
    learning_rate: float = 3e-4
    batch_size: int = 64
    buffer_capacity: int = 50_000
    n_step: int = 3
    gamma: float = 0.99
    per_alpha: float = 0.6
    per_beta_start: float = 0.4
    per_beta_anneal_steps: int = 20_000
    learning_starts: int = 500
    train_every: int = 1
    target_tau: float = 0.005  # soft update per gradient step; 0 = hard updates every target_period
    target_period: int = 1_000
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_decay_steps: int = 10_000
    huber_delta: float = 1.0
    grad_clip: float = 10.0
    risk_loss_weight: float = 0.1
    return_loss_weight: float = 1.0  # auxiliary return head's squared error (when NetConfig.return_head)
    risk_feed_after: int = 1_000  # env steps before the risk head's variance tightens the leverage cap
    # standardize the network's inputs with the mean / std of the observations stored before learning starts
    # (MultiStreamStateEncoder.set_input_scaling; fixed afterwards and saved with the network)
    normalize_inputs: bool = True
    # observation features the network must not see (agent/obs.encoder_input_columns names), e.g. clocks such as
    # tod_sin / tod_cos / time_to_funding, with which a network memorizes a short training path by its time
    blind_features: tuple[str, ...] = ()
    # store every transition's mirror image too (agent/mirror.py): for markets whose law is symmetric up <-> down
    mirror_augment: bool = False
    # PPO (agent/ppo.py)
    ppo_rollout: int = 512
    ppo_epochs: int = 4
    ppo_minibatch: int = 128
    ppo_clip: float = 0.2
    ppo_gae_lambda: float = 0.95
    ppo_entropy: float = 0.01
    ppo_value_coef: float = 0.5
    # model selection on the validation split: every `val_every` env steps (at the next episode end; 0 = off) the
    # greedy policy plays the first `val_windows` back-to-back validation windows; model.pt is the network with the
    # highest lower 95 % bound of the mean PnL per window there (mean - 1.96 standard errors: the best of a dozen
    # noisy means is mostly the luckiest), not the last one; the test split stays untouched for evaluation.
    # val_windows 0: every window of the val split.
    val_every: int = 0
    val_windows: int = 30
    # with val_every: standing aside (no orders, PnL 0) is a candidate as well, and a network is delivered only
    # when its lower bound beats it; else the run delivers no strategy (a network that could not show on
    # validation that it beats doing nothing is a bet on training noise: at signal 0 the best one lost out of
    # sample through adversely selected quotes)
    val_stand_aside: bool = True
    # bookkeeping
    runs_root: str = "runs"
    run_name: str | None = None
    checkpoint_every: int = 5_000
    log_every: int = 100  # gradient updates between loss log rows
    device: str | None = None  # None: CUDA when present
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    # small batches gain nothing from intra-op threads and lose a lot on a busy machine (spinning threads)
    torch_threads: int | None = 1
    progress: bool = False

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo={self.algo!r}; choose one of {ALGOS}")
        if self.total_steps < 1 or self.batch_size < 1 or self.train_every < 1:
            raise ValueError("total_steps, batch_size and train_every must be >= 1")
        if not 0.0 <= self.target_tau <= 1.0:
            raise ValueError(f"target_tau={self.target_tau} must lie in [0, 1] (0 = periodic hard updates)")
        if self.target_tau == 0 and self.target_period < 1:
            raise ValueError("hard target updates need target_period >= 1")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every={self.checkpoint_every} must be >= 1 env steps")
        if self.val_every < 0 or self.val_windows < 0:
            raise ValueError(
                f"val_every={self.val_every} (>= 0 env steps, 0 = off) and val_windows={self.val_windows} "
                "(>= 1, or 0 for every window of the val split)"
            )

    @property
    def model_id(self) -> str:
        """run_name, else the algorithm and a digest of the configuration (same config -> same id)."""
        if self.run_name:
            return self.run_name
        digest = hashlib.sha256(json.dumps(config_to_dict(self), sort_keys=True).encode()).hexdigest()
        return f"{self.algo}-{digest[:10]}"


def config_to_dict(config: Any) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def _build(cls, values: dict):
    """A (nested) frozen dataclass from plain values; tuples restored from lists; unknown keys refused."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown settings {sorted(unknown)}; known: {sorted(names)}")
    kwargs = {}
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    for key, value in values.items():
        default = names[key].default
        if default is dataclasses.MISSING and names[key].default_factory is not dataclasses.MISSING:
            default = names[key].default_factory()
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            value = _build(type(default), value)
        elif isinstance(value, list) and "tuple" in str(hints[key]):
            value = tuple(value)
        elif key == "windows" and isinstance(value, dict):
            value = {k: tuple(v) for k, v in value.items()}
        kwargs[key] = value
    return cls(**kwargs)


def config_from_dict(values: dict) -> TrainConfig:
    """TrainConfig from a (nested) dict as written to config.json or read from a config file."""
    return _build(TrainConfig, values)


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """TrainConfig from a .toml or .json file (sections = nested configs), with keyword overrides on top."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config file {path} does not exist")
        if path.suffix == ".toml":
            values = tomllib.loads(path.read_text())
        elif path.suffix == ".json":
            values = json.loads(path.read_text())
        else:
            raise ValueError(f"config file {path}: use .toml or .json")
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return config_from_dict(values)


# ---- data and envs ------------------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _synthetic_tables(seed: int, signal: float, minutes: int, symbol: str) -> dict[str, pa.Table]:
    """The first `minutes` of the synthetic market from its first day, across as many days as they span (each
    whole day as SyntheticSource lands it, chained through the day's end state; the rest of the last day)."""
    from datetime import timedelta

    from feature_store.sources.synthetic import (
        SECONDS_PER_DAY,
        SyntheticConfig,
        SyntheticSource,
        simulate_day,
    )

    cfg = SyntheticConfig(seed=seed, signal_strength=signal)
    source = SyntheticSource(cfg)
    whole_days, rest = divmod(int(minutes * 60 * 1000 // cfg.grid_ms), SECONDS_PER_DAY * 1000 // cfg.grid_ms)
    days = [cfg.first_day + timedelta(days=d) for d in range(whole_days + (rest > 0))]
    parts = [source.load_day(symbol, day) for day in days[:whole_days]]
    if rest:
        parts.append(
            simulate_day(cfg, symbol, days[-1], source.state_at(symbol, days[-1]), n_steps=rest).tables
        )
    if len(parts) == 1:
        return parts[0]
    return {name: pa.concat_tables([part[name] for part in parts]) for name in parts[0]}


@lru_cache(maxsize=4)
def _lake_day_tables(lake_root: str, symbol: str, day: str, minutes: int) -> dict[str, pa.Table]:
    """The first `minutes` of one landed day (book, trades, marks), with that day's funding and the on-chain rows
    of the days before it (they become known after the day they describe). Only the window is read: a landed day
    of 100 ms books is large."""
    from datetime import date, timedelta

    import pyarrow.dataset as ds

    from feature_store.lake import Lake
    from feature_store.records import RECORD_TYPES, conform

    lake = Lake(lake_root)
    first = lake.read("book_snapshots", symbol=symbol, start=day, end=day, columns=["ts"])
    if first.num_rows == 0:
        raise ValueError(
            f"the lake at {lake_root} has no book_snapshots for {symbol} on {day}; land that day first"
        )
    t0 = _as_us(first.column("ts"), pc.min)
    stamp = pa.timestamp("us", tz="UTC")
    tables = {}
    for name in TIME_SPLIT_TABLES:
        delta = lake.delta(name)
        if delta is None:
            tables[name] = RECORD_TYPES[name].schema.empty_table()
            continue
        ts = ds.field("ts")
        window = (
            (ds.field("symbol") == symbol)
            & (ds.field("date") == day)
            & (ts >= pa.scalar(t0, stamp))
            & (ts < pa.scalar(t0 + int(minutes * 60e6), stamp))
        )
        tables[name] = conform(
            RECORD_TYPES[name], delta.to_pyarrow_dataset().to_table(filter=window).sort_by("ts")
        )
    tables["funding_rates"] = lake.read("funding_rates", symbol=symbol, start=day, end=day)
    early = (date.fromisoformat(day) - timedelta(days=3)).isoformat()
    tables["onchain_metrics"] = lake.read("onchain_metrics", symbol=symbol, start=early, end=day)
    return tables


def _first_book_us(tables: dict[str, pa.Table]) -> int:
    return _as_us(tables["book_snapshots"].column("ts"), pc.min)


def _as_us(column: pa.ChunkedArray, reduce) -> int:
    value = reduce(column.cast(pa.int64()) if not pa.types.is_integer(column.type) else column).as_py()
    return int(value)


def time_window(tables: dict[str, pa.Table], lo_us: int, hi_us: int) -> dict[str, pa.Table]:
    """Book, trades and marks with exchange time in [lo_us, hi_us); funding and on-chain rows kept whole (the
    view aligns them causally by time)."""
    out = {}
    for name, table in tables.items():
        if name in TIME_SPLIT_TABLES and table.num_rows:
            t = table.column("ts")
            t_us = t.cast(pa.int64()) if not pa.types.is_integer(t.type) else t
            out[name] = table.filter(pc.and_(pc.greater_equal(t_us, lo_us), pc.less(t_us, hi_us)))
        else:
            out[name] = table
    return out


def split_tables(
    tables: dict[str, pa.Table], fractions: tuple[float, ...], split: str
) -> dict[str, pa.Table]:
    """The `split` share of raw tables cut in time order (train, then val, then test)."""
    ts = tables["book_snapshots"].column("ts")
    t0, t1 = _as_us(ts, pc.min), _as_us(ts, pc.max)
    bounds = np.concatenate([[0.0], np.cumsum(fractions) / np.sum(fractions)])
    i = SPLITS.index(split)
    lo = t0 + int(bounds[i] * (t1 - t0))
    hi = t0 + int(bounds[i + 1] * (t1 - t0)) + (1 if i == len(SPLITS) - 1 else 0)
    return time_window(tables, lo, hi)


def market_view(data: DataConfig, split: str, view: ViewConfig) -> MarketView:
    """The MarketView of one split ("train", "val", "test") of the configured data."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; choose one of {SPLITS}")
    if data.source == "snapshot":
        return MarketView.from_snapshot(data.lake_root, data.snapshot_id, split, data.symbol, view)
    if data.source == "lake":
        if split not in data.windows:
            raise ValueError(f"DataConfig.windows has no {split!r} window; give (first day, last day) for it")
        start, end = data.windows[split]
        return MarketView.from_lake(data.lake_root, data.symbol, start, end, view)
    if data.source == "lake_day":
        tables = _lake_day_tables(str(data.lake_root), data.symbol, data.day, data.minutes)
    else:
        tables = _synthetic_tables(data.synthetic_seed, data.signal_strength, data.minutes, data.symbol)
    return MarketView.from_tables(split_tables(tables, data.split_fractions, split), view)


def stage_env_config(config: TrainConfig, stage: int) -> EnvConfig:
    """Curriculum stage 1: no order-entry / ack latency and `curriculum_episode_s` episodes; stage 2: as configured."""
    if stage == 2:
        return config.env
    instant = LatencyModel(kind="constant", base_us=0)
    latency = LatencyConfig(entry=instant, ack=instant, feed=config.env.sim.latency.feed)
    sim: SimConfig = dataclasses.replace(config.env.sim, latency=latency)
    return dataclasses.replace(
        config.env, sim=sim, episode_s=min(config.curriculum_episode_s, config.env.episode_s)
    )


def view_config_for(config: TrainConfig) -> ViewConfig:
    """The view's feed latency must equal the engine's (ScalperEnv checks): take it from the env config."""
    return dataclasses.replace(config.view, feed=config.env.sim.latency.feed)


def return_variance(view: MarketView) -> float:
    """Train-fit variance of the one-step mid log return: the risk head's output scale."""
    r = np.diff(np.log(view.mid))
    var = float(np.mean(r**2)) if r.shape[0] else 0.0
    return var if var > 0 else 1e-10


# ---- seeding, logging, checkpoints --------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_states() -> dict:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class MetricsLog:
    """Scalars as JSON lines (metrics.jsonl) and as TensorBoard events (tb/, `tensorboard --logdir runs`)."""

    def __init__(self, run_dir: Path, truncate_at: int | None = None, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only where a run logs

        self.path = run_dir / "metrics.jsonl"
        if truncate_at is not None and self.path.exists():
            # a resumed run drops rows written after its checkpoint: they are written again, identically
            with open(self.path, "r+b") as handle:
                handle.truncate(truncate_at)
        self._file = open(self.path, "a")  # noqa: SIM115 (kept open for the run; close() closes it)
        # purge_step: TensorBoard hides the earlier files' events from that step on, as the truncation above does
        # (a fresh run over an old run directory, truncate_at 0, hides them all)
        if purge_step is None and truncate_at == 0:
            purge_step = 0
        self._tb = SummaryWriter(str(run_dir / "tb"), purge_step=purge_step)

    def write(self, kind: str, step: int, **values: float) -> None:
        row = {"kind": kind, "step": step, **{k: float(v) for k, v in values.items()}}
        self._file.write(json.dumps(row) + "\n")
        for k, v in values.items():
            self._tb.add_scalar(f"{kind}/{k}", v, step)

    def offset(self) -> int:
        self._file.flush()
        return self.path.stat().st_size

    def close(self) -> None:
        self._file.close()
        self._tb.close()


def read_metrics(run_dir: str | Path, kind: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line]
    return [r for r in rows if kind is None or r["kind"] == kind]


@dataclass
class LoopState:
    """Counters of the training loop (checkpointed)."""

    step: int = 0  # env steps taken
    updates: int = 0  # gradient steps taken
    episode: int = 0  # episodes finished (the next reset uses seed + episode)
    next_checkpoint: int = 0
    returns: list[float] = field(default_factory=list)  # episode returns so far (for the result summary)
    pnls: list[float] = field(default_factory=list)
    next_validation: int = 0
    best_val_lower: float | None = None  # best lower bound of the validation mean PnL so far
    best_val_pnl: float | None = None  # that network's mean validation PnL, and the step it was measured at
    best_val_step: int | None = None
    last_val_step: int | None = None  # the env step of the latest validation


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / "checkpoints" / "latest"
    if not pointer.exists():
        return None
    return run_dir / "checkpoints" / pointer.read_text().strip()


def _write_pointer(run_dir: Path, name: str) -> None:
    pointer = run_dir / "checkpoints" / "latest"
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(name)
    os.replace(tmp, pointer)  # atomic: a crash leaves the previous checkpoint current


@dataclass
class TrainResult:
    model_id: str
    run_dir: Path
    model_path: Path
    algo: str
    steps: int
    updates: int
    episodes: int
    wall_s: float
    device: str
    resumed_from: int | None
    mean_return_last: float  # mean episode return over the last 10 episodes
    mean_pnl_last: float
    best_val_pnl: float | None = None  # with val_every: the saved network's mean validation PnL per window
    best_val_step: int | None = None  # and the env step it was taken at
    stand_aside: bool = False  # with val_every: no network beat standing aside on validation (see Validation)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["run_dir"], d["model_path"] = str(self.run_dir), str(self.model_path)
        return d


def save_model(path: Path, net: torch.nn.Module, config: TrainConfig, extra: dict) -> None:
    """The final network and what rebuilding it needs: algo, config, spaces' widths, variance scale."""
    torch.save({"state_dict": net.state_dict(), "config": config_to_dict(config), **extra}, path)


def load_model(
    model_dir: str | Path, device: str | None = "cpu"
) -> tuple[torch.nn.Module, TrainConfig, dict]:
    """(network in eval mode, TrainConfig, saved extras) of a finished run directory."""
    path = Path(model_dir) / "model.pt"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: train the model first (scalper train) or check the model id"
        )
    saved = torch.load(path, map_location="cpu", weights_only=False)
    config = config_from_dict(saved["config"])
    obs_space, act_space = saved["spaces"]
    net = make_policy(
        config.algo,
        obs_space,
        act_space,
        config.net,
        variance_scale=saved.get("variance_scale", 1.0),
        device=device,
    )
    net.load_state_dict(saved["state_dict"])
    net.eval()
    return net, config, saved


# ---- the DQN loop -------------------------------------------------------------------------------------------------
def epsilon(config: TrainConfig, step: int) -> float:
    fraction = min(step / max(config.eps_decay_steps, 1), 1.0)
    return config.eps_start + fraction * (config.eps_end - config.eps_start)


def obs_spec(observation_space) -> dict:
    return {name: (space.shape, np.float32) for name, space in observation_space.spaces.items()}


def dqn_update(
    net: RiskAwareBranchingDQN,
    target: RiskAwareBranchingDQN,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    batch: ReplayBatch,
    config: TrainConfig,
    device: torch.device,
    use_amp: bool,
) -> dict[str, float | np.ndarray]:
    """One gradient step on a replay batch: TD loss (or quantile loss) + weighted variance NLL."""
    obs = as_tensors(batch.obs, device)
    next_obs = as_tensors(batch.next_obs, device)

    def t(a: np.ndarray, dtype=torch.float32) -> torch.Tensor:
        return torch.as_tensor(a, dtype=dtype, device=device)

    rewards, discounts, weights = t(batch.rewards), t(batch.bootstrap_discount), t(batch.weights)
    actions = t(batch.actions, torch.int64)
    realized = t(batch.extras["realized_return"])
    with torch.autocast(device.type, enabled=use_amp):
        if net.return_head is not None:
            out, predicted_return = net.forward_with_return(*obs)
        else:
            out, predicted_return = net(*obs), None
        with torch.no_grad():
            online_next = net(*next_obs)
            target_next = target(*next_obs)
        online_q = [online_next.q_price.float(), online_next.q_size.float()]
        if net.config.distributional:
            y = branching_double_dqn_quantile_target(
                rewards,
                discounts,
                online_q,
                [target_next.price_quantiles.float(), target_next.size_quantiles.float()],
            )
            taken = taken_action_values([out.price_quantiles.float(), out.size_quantiles.float()], actions)
            td_loss, priorities = branching_quantile_loss(taken, y, weights)
        else:
            y = branching_double_dqn_target(
                rewards, discounts, online_q, [target_next.q_price.float(), target_next.q_size.float()]
            )
            taken = taken_action_values([out.q_price.float(), out.q_size.float()], actions)
            td_loss, priorities = branching_td_loss(taken, y, weights, config.huber_delta)
        risk_loss = gaussian_variance_nll(out.variance.float(), realized)
        loss = td_loss + config.risk_loss_weight * risk_loss
        if predicted_return is not None:
            # in units of the train split's one-step return standard deviation (the risk head's variance scale)
            scaled = realized / net.variance_scale.sqrt()
            return_loss = F.mse_loss(predicted_return.float(), scaled)
            loss = loss + config.return_loss_weight * return_loss
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return {
        "loss": float(loss.detach()),
        "td_loss": float(td_loss.detach()),
        "risk_nll": float(risk_loss.detach()),
        **({} if predicted_return is None else {"return_mse": float(return_loss.detach())}),
        "grad_norm": float(grad_norm),
        "q_mean": float(torch.stack(taken).mean().detach()),
        "priorities": priorities.float().cpu().numpy(),
    }


class Validation:
    """Mean PnL per window on the first `val_windows` back-to-back windows of the val split: of a network's greedy
    policy (`score`), and of standing aside (`stand_aside_score`, the null candidate, scored once)."""

    def __init__(self, config: TrainConfig) -> None:
        view = market_view(config.data, "val", view_config_for(config))
        self.env = ScalperEnv(view, stage_env_config(config, 2))
        self.starts = self.env.tiled_starts()[: config.val_windows or None]
        if not self.starts:
            raise ValueError(
                f"the validation split is shorter than one {self.env.config.episode_s:g} s episode; "
                "give the data more minutes or set val_every=0"
            )
        self.stand_aside_score = self._score(StandAside(self.env))

    def score(self, net: RiskAwareBranchingDQN) -> tuple[float, float]:
        """(mean PnL per window, its lower 95 % bound: mean - 1.96 standard errors)."""
        from agent.evaluate import AgentPolicy  # evaluate imports this module

        return self._score(AgentPolicy(self.env, net))

    def _score(self, policy) -> tuple[float, float]:
        stats = run_policy(self.env, policy, len(self.starts), starts=self.starts)
        return stats.mean, stats.mean - 1.96 * stats.std / math.sqrt(len(self.starts))


def validate(
    net: RiskAwareBranchingDQN, validation: Validation, state: LoopState, log: MetricsLog
) -> dict | None:
    """Score `net` on the validation windows; a copy of its weights when it is the best so far, else None."""
    val_pnl, val_lower = validation.score(net)
    state.last_val_step = state.step
    log.write("val", state.step, mean_pnl=val_pnl, lower_bound=val_lower)
    if state.best_val_lower is None or val_lower > state.best_val_lower:
        state.best_val_lower, state.best_val_pnl, state.best_val_step = val_lower, val_pnl, state.step
        return copy.deepcopy(net.state_dict())
    return None


def selection_record(config: TrainConfig, validation: Validation, state: LoopState) -> dict:
    """What the run delivers: the best network, or nothing when its lower bound does not beat standing aside's."""
    aside_pnl, aside_lower = validation.stand_aside_score
    return {
        "stand_aside": bool(config.val_stand_aside and not state.best_val_lower > aside_lower),
        "val_windows": len(validation.starts),
        "network_val_pnl": state.best_val_pnl,
        "network_val_lower": state.best_val_lower,
        "network_val_step": state.best_val_step,
        "stand_aside_val_pnl": aside_pnl,
        "stand_aside_val_lower": aside_lower,
    }


def stands_aside(saved: dict) -> bool:
    """Whether a run's validation kept no network (the model.pt extras that load_model returns)."""
    return bool((saved.get("selection") or {}).get("stand_aside"))


def fit_input_scaling(
    net: RiskAwareBranchingDQN,
    target: RiskAwareBranchingDQN,
    replay: PrioritizedStratifiedReplay,
    device,
    blind: dict[str, list[int]],
) -> None:
    """Fit the encoders' input standardization (online and target alike) to the observations stored so far."""
    stored = replay.stored_observations()
    if not stored or next(iter(stored.values())).shape[0] < 2:
        return
    inputs = as_tensors(stored, device)
    for model in (net, target):
        model.encoder.set_input_scaling(*inputs)
        model.encoder.blind_inputs(**blind)


def soft_update(target: torch.nn.Module, online: torch.nn.Module, tau: float) -> None:
    """Polyak averaging target <- target + tau * (online - target), all parameters in one fused call."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)


def train(config: TrainConfig, resume: bool = True) -> TrainResult:
    """Train (or continue, when `resume` and the run directory holds a checkpoint) and save model.pt."""
    if config.algo == "ppo":
        from agent.ppo import train_ppo

        return train_ppo(config)
    started = time.perf_counter()
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    device = resolve_device(config.device)
    use_amp = config.amp and device.type == "cuda"
    run_dir = Path(config.runs_root) / config.model_id
    if not resume and (run_dir / "checkpoints").exists():
        shutil.rmtree(
            run_dir / "checkpoints"
        )  # a fresh run must not leave an older run's checkpoints to resume
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config_to_dict(config), indent=2))

    seed_everything(config.seed)
    view = market_view(config.data, "train", view_config_for(config))
    envs = {stage: ScalperEnv(view, stage_env_config(config, stage)) for stage in (1, 2)}
    obs_space, act_space = envs[2].observation_space, envs[2].action_space
    variance_scale = return_variance(view)
    net = make_policy("dqn", obs_space, act_space, config.net, variance_scale=variance_scale, device=device)
    blind = encoder_input_columns(view, config.blind_features)
    net.encoder.blind_inputs(**blind)
    target = copy.deepcopy(net)
    target.eval()
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate, foreach=True)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    replay_config = ReplayConfig(
        capacity=config.buffer_capacity,
        n_step=config.n_step,
        gamma=config.gamma,
        alpha=config.per_alpha,
        beta_start=config.per_beta_start,
        beta_anneal_steps=config.per_beta_anneal_steps,
        n_strata=len(REGIMES),
        n_envs=2 if config.mirror_augment else 1,  # the mirrored trajectory has its own n-step queue
    )
    mirror = ObservationMirror.for_env(envs[2]) if config.mirror_augment else None
    replay = PrioritizedStratifiedReplay(
        replay_config, obs_spec(obs_space), {"realized_return": ((), np.float64)}, seed=config.seed + 104_729
    )
    explore = np.random.default_rng(config.seed + 7_919)
    state = LoopState(next_checkpoint=config.checkpoint_every, next_validation=config.val_every)
    validation = Validation(config) if config.val_every else None
    best_net: dict | None = None

    resumed_from = None
    checkpoint = latest_checkpoint(run_dir) if resume else None
    metrics_offset = None
    if checkpoint is not None:
        saved = torch.load(
            checkpoint / "state.pt", map_location="cpu", weights_only=False
        )  # RNG states must stay on CPU
        net.load_state_dict(saved["net"])
        target.load_state_dict(saved["target"])
        best_net = saved.get("best_net")
        optimizer.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
        replay = PrioritizedStratifiedReplay.load(checkpoint / "replay.npz")
        state = LoopState(**saved["loop"])
        explore.bit_generator.state = saved["explore_rng"]
        set_rng_states(saved["rng"])
        metrics_offset = saved["metrics_offset"]
        resumed_from = state.step
        logger.info(f"{config.model_id}: resumed from step {state.step} ({checkpoint})")
    elif resume is False and (run_dir / "metrics.jsonl").exists():
        metrics_offset = 0
    # rows at the checkpoint's own step were written before it was saved: they are kept, the rest is written again
    log = MetricsLog(
        run_dir, truncate_at=metrics_offset, purge_step=None if resumed_from is None else resumed_from + 1
    )

    def save_checkpoint() -> None:
        name = f"{state.step:010d}"
        path = run_dir / "checkpoints" / name
        path.mkdir(parents=True, exist_ok=True)
        replay.save(path / "replay.npz")
        torch.save(
            {
                "net": net.state_dict(),
                "target": target.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "loop": dataclasses.asdict(state),
                "explore_rng": explore.bit_generator.state,
                "rng": rng_states(),
                "metrics_offset": log.offset(),
                "best_net": best_net,
            },
            path / "state.pt",
        )
        _write_pointer(run_dir, name)
        for old in (run_dir / "checkpoints").iterdir():  # keep the last two
            if old.is_dir() and old.name < name and old.name not in _recent(run_dir, 2):
                shutil.rmtree(old)

    bar = tqdm(
        total=config.total_steps, initial=state.step, disable=not config.progress, desc=config.model_id
    )
    n_price, n_size = (int(n) for n in act_space.nvec)
    while state.step < config.total_steps:
        stage = 1 if state.step < config.curriculum_steps else 2
        env = envs[stage]
        obs, info = env.reset(seed=config.seed + state.episode)
        regime = REGIMES.index(info["regime"])
        episode_return, done = 0.0, False
        while not done and state.step < config.total_steps:
            # no train/eval switching: the networks have no dropout or batch statistics
            with torch.no_grad():
                out = net(*as_tensors(obs, device))
            greedy = (int(out.q_price.argmax()), int(out.q_size.argmax()))
            eps = epsilon(config, state.step)
            explore_draw = explore.random(2)
            random_action = (int(explore.integers(n_price)), int(explore.integers(n_size)))
            action = np.array([random_action[d] if explore_draw[d] < eps else greedy[d] for d in range(2)])
            if state.step >= config.risk_feed_after:
                env.predicted_variance = float(out.variance[0])
            next_obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            replay.add(
                obs, action, reward, next_obs, terminated, truncated, regime,
                extras={"realized_return": np.float64(info["mid_return"])},
            )  # fmt: skip
            if mirror is not None:
                replay.add(
                    mirror.observation(obs), mirror.action(action), reward, mirror.observation(next_obs),
                    terminated, truncated, mirror.regime(regime),
                    extras={"realized_return": np.float64(-info["mid_return"])}, env_id=1,
                )  # fmt: skip
            obs, regime = next_obs, REGIMES.index(info["regime"])
            episode_return += reward
            state.step += 1
            bar.update(1)

            if (
                state.step >= config.learning_starts
                and state.step % config.train_every == 0
                and len(replay) > 0
            ):
                if config.normalize_inputs and state.updates == 0:
                    fit_input_scaling(net, target, replay, device, blind)
                batch = replay.sample(config.batch_size, replay_config.beta_at(state.step))
                stats = dqn_update(net, target, optimizer, scaler, batch, config, device, use_amp)
                replay.update_priorities(batch.indices, batch.serials, stats.pop("priorities"))
                state.updates += 1
                if config.target_tau > 0:
                    soft_update(target, net, config.target_tau)
                elif state.updates % config.target_period == 0:
                    target.load_state_dict(net.state_dict())
                if state.updates % config.log_every == 0:
                    log.write("train", state.step, epsilon=eps, **stats)
        if done and validation is not None and state.step >= state.next_validation:
            while state.next_validation <= state.step:
                state.next_validation += config.val_every
            best_net = validate(net, validation, state, log) or best_net
        if done:
            state.episode += 1
            state.returns.append(episode_return)
            stats_e = info["episode_stats"]
            state.pnls.append(stats_e["pnl"])
            log.write(
                "episode",
                state.step,
                stage=stage,
                episode_return=episode_return,
                pnl=stats_e["pnl"],
                sharpe=stats_e["sharpe"],
                fills=stats_e["fills"],
                max_drawdown=stats_e["max_drawdown"],
            )
            if state.step >= state.next_checkpoint or state.step >= config.total_steps:
                while state.next_checkpoint <= state.step:
                    state.next_checkpoint += config.checkpoint_every
                save_checkpoint()
    bar.close()
    replay.flush()  # a run cut mid-episode stores the partial n-step returns of its last steps
    model_path = run_dir / "model.pt"
    net.eval()
    selection = None
    if validation is not None:
        if state.last_val_step != state.step:  # the final network is a candidate too
            best_net = validate(net, validation, state, log) or best_net
        selection = selection_record(config, validation, state)
        log.write("selection", state.step, **selection)
    if best_net is not None:
        net.load_state_dict(best_net)
    save_model(
        model_path,
        net,
        config,
        {
            "variance_scale": variance_scale,
            "spaces": (obs_space, act_space),
            "steps": state.step,
            "selection": selection,
        },
    )
    log.close()
    result = TrainResult(
        model_id=config.model_id,
        run_dir=run_dir,
        model_path=model_path,
        algo="dqn",
        steps=state.step,
        updates=state.updates,
        episodes=state.episode,
        wall_s=time.perf_counter() - started,
        device=str(device),
        resumed_from=resumed_from,
        mean_return_last=float(np.mean(state.returns[-10:])) if state.returns else math.nan,
        mean_pnl_last=float(np.mean(state.pnls[-10:])) if state.pnls else math.nan,
        best_val_pnl=state.best_val_pnl,
        best_val_step=state.best_val_step,
        stand_aside=bool(selection and selection["stand_aside"]),
    )
    (run_dir / "train_result.json").write_text(json.dumps(result.as_dict(), indent=2))
    return result


def _recent(run_dir: Path, keep: int) -> set[str]:
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.is_dir())
    return set(names[-keep:])
