"""Out-of-sample evaluation of a trained model against the baselines, walk-forward over held-out windows.

`evaluate(model_id)` (CLI `scalper evaluate --model ID`) loads runs/<id>/model.pt, builds the env over the held-out
split of the data the model was trained on ("test" by default; the synthetic market's last 20 % in time, a
snapshot's test split, a lake test window), cuts it into back-to-back non-overlapping episodes in time order
(env.tiled_starts: independent windows, each starting from a flat account) and runs the agent and every baseline of
agent/baselines.py on exactly the same episodes with the same reset seeds. The model is fixed: "walk-forward" here
means it meets the windows in time order and the report shows each contiguous fold and each regime separately.

Per policy (pooled, per regime of the episode's first step, per fold):
  PnL (per episode, quote currency) with a bootstrap 95 % interval; Sharpe and Sortino of the per-step equity
  returns scaled to one day (sqrt(steps per day)), intervals by resampling whole episodes (a block bootstrap:
  steps inside an episode are not independent); max drawdown of the chained equity path; trade statistics (fills,
  maker share, traded notional, fees, episode win rate); fill rate (orders with any fill / orders sent); markouts of
  own fills (signed mid move after the fill, bp, at several horizons); liquidations and kill-switch trips.
  Agent minus each baseline: the paired per-episode PnL difference with its bootstrap interval.
"agent" is what the training run delivers: its network, or standing aside when the run's validation kept no
network (model.pt's "selection", agent/train.py); then the best network still plays as "agent_network", to show
what it would have done, and the report carries the selection record.
Output: reports/<model id>/report.json and plots (equity, drawdown, inventory: agent/reports.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from agent.baselines import BASELINES, ASParams, AvellanedaStoikov, Policy, StandAside
from agent.env import ScalperEnv
from agent.market_view import REGIMES, macro_feature_names
from agent.policy_factory import as_tensors
from agent.sim.engine import Simulator
from agent.sim.orders import BUY
from agent.train import load_model, market_view, stands_aside, view_config_for

DAY_S = 86_400.0


@dataclass(frozen=True)
class EvalConfig:
    split: str = "test"
    max_episodes: int | None = None  # None: every non-overlapping window of the split
    episode_s: float | None = None  # None: the training config's episode length
    folds: int = 3
    n_boot: int = 2000
    seed: int = 0
    baselines: tuple[str, ...] = tuple(BASELINES)
    markout_steps: tuple[int, ...] = (1, 5, 30)
    runs_root: str = "runs"
    reports_root: str = "reports"
    plots: bool = True
    progress: bool = False


class RecordingSimulator(Simulator):
    """The replay engine, remembering the fills of each step and the ids of the orders sent (for fill rate and
    markouts). Nothing in the simulation changes."""

    def reset(self, *args, **kwargs):
        self.step_fills = np.zeros(0)
        self.sent: set[int] = set()
        return super().reset(*args, **kwargs)

    def submit(self, *args, **kwargs):
        order_id = super().submit(*args, **kwargs)
        if order_id is not None and order_id >= 0:
            self.sent.add(int(order_id))
        return order_id

    def advance_to(self, t_us: int):
        result = super().advance_to(t_us)
        self.step_fills = result.fills
        return result


class AgentPolicy(Policy):
    """A trained network as a baselines.Policy: greedy (DQN) or most likely (PPO) action per branch; a DQN's risk
    head feeds the env's leverage cap as in training."""

    def __init__(self, env: ScalperEnv, net: torch.nn.Module, feed_variance: bool = True) -> None:
        super().__init__(env)
        self.env = env.unwrapped
        self.net = net
        self.device = next(net.parameters()).device
        self.feed_variance = feed_variance and hasattr(net, "risk_head")

    @torch.no_grad()
    def act(self, obs):
        tensors = as_tensors(obs, self.device)
        if self.feed_variance:
            out = self.net(*tensors)
            self.env.predicted_variance = float(out.variance[0])
            return np.array([int(out.q_price.argmax()), int(out.q_size.argmax())], dtype=np.int64)
        return self.net.greedy_actions(*tensors)[0].cpu().numpy().astype(np.int64)


def delivered_policies(env: ScalperEnv, net: torch.nn.Module, saved: dict) -> dict[str, Policy]:
    """{"agent": what the run delivers} and, when that is standing aside, {"agent_network": the best network}."""
    if stands_aside(saved):
        return {"agent": StandAside(env), "agent_network": AgentPolicy(env, net)}
    return {"agent": AgentPolicy(env, net)}


@dataclass
class EpisodeTrace:
    start_step: int
    regime: str
    stats: dict
    equity: np.ndarray  # per step, from the start (len steps + 1)
    position: np.ndarray
    fills: list[tuple[int, int, float, float, bool]] = field(
        default_factory=list
    )  # (step, side, px, qty, maker)
    orders_sent: int = 0
    orders_filled: int = 0


def run_episode(env: ScalperEnv, policy: Policy, start: int, seed: int) -> EpisodeTrace:
    obs, info = env.reset(seed=seed, options={"start_step": start})
    policy.reset()
    equity, position, fills = [info["equity"]], [0.0], []
    filled_ids: set[int] = set()
    step = 0
    while True:
        obs, _, terminated, truncated, info = env.step(policy.act(obs))
        step += 1
        equity.append(info["equity"])
        position.append(info["position"])
        for f in env.sim.step_fills:
            if not f["liquidation"]:
                fills.append(
                    (start + step, int(f["side"]), float(f["px"]), float(f["qty"]), bool(f["maker"]))
                )
                filled_ids.add(int(f["order_id"]))
        if terminated or truncated:
            break
    sent = env.sim.sent
    return EpisodeTrace(
        start_step=start,
        regime=REGIMES[int(env.view.regime[start])],
        stats=info["episode_stats"],
        equity=np.asarray(equity),
        position=np.asarray(position),
        fills=fills,
        orders_sent=len(sent),
        orders_filled=len(filled_ids & sent),
    )


# ---- statistics ---------------------------------------------------------------------------------------------------
def bootstrap_interval(
    samples: list, statistic, n_boot: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of statistic(resampled list of per-episode items): a block bootstrap over episodes."""
    n = len(samples)
    if n < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        v = statistic([samples[i] for i in rng.integers(0, n, n)])
        if math.isfinite(v):
            values.append(v)
    if not values:
        return (math.nan, math.nan)
    a = (1 - level) / 2
    return float(np.quantile(values, a)), float(np.quantile(values, 1 - a))


def step_returns(trace: EpisodeTrace) -> np.ndarray:
    eq = trace.equity
    return np.diff(eq) / np.where(eq[:-1] > 0, eq[:-1], np.nan)


def daily_ratio(traces: list[EpisodeTrace], steps_per_day: float, downside: bool = False) -> float:
    r = np.concatenate([step_returns(t) for t in traces]) if traces else np.zeros(0)
    r = r[np.isfinite(r)]
    if r.shape[0] < 2:
        return math.nan
    scale = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)) if downside else r.std()
    if scale == 0:
        return 0.0 if r.mean() == 0 else math.copysign(math.inf, r.mean())
    return float(r.mean() / scale * math.sqrt(steps_per_day))


def chained_equity(traces: list[EpisodeTrace]) -> np.ndarray:
    """The walk-forward equity path: each window's PnL path appended to the running total (starts at 0)."""
    parts, level = [np.zeros(1)], 0.0
    for t in traces:
        pnl = t.equity[1:] - t.equity[0]
        parts.append(level + pnl)
        level += pnl[-1] if pnl.shape[0] else 0.0
    return np.concatenate(parts)


def max_drawdown(path: np.ndarray) -> float:
    return float(np.max(np.maximum.accumulate(path) - path)) if path.shape[0] else 0.0


def markouts(traces: list[EpisodeTrace], mid: np.ndarray, horizons: tuple[int, ...]) -> dict[str, float]:
    """Mean signed mid move after own fills, bp of the fill price: + means the fill was followed by a favourable
    move (bought below the later mid / sold above it)."""
    out = {}
    for h in horizons:
        moves = []
        for t in traces:
            for step, side, px, _qty, _maker in t.fills:
                k = min(step + h, mid.shape[0] - 1)
                sign = 1.0 if side == BUY else -1.0
                moves.append(sign * (mid[k] - px) / px * 1e4)
        out[f"{h}"] = float(np.mean(moves)) if moves else math.nan
    return out


def summarize(
    traces: list[EpisodeTrace], mid: np.ndarray, steps_per_day: float, config: EvalConfig, seed: int
) -> dict:
    if not traces:
        return {"episodes": 0}
    pnl = np.array([t.stats["pnl"] for t in traces])
    fills = [f for t in traces for f in t.fills]
    sent = sum(t.orders_sent for t in traces)
    mean_pnl = lambda s: float(np.mean([t.stats["pnl"] for t in s]))  # noqa: E731
    sharpe = lambda s: daily_ratio(s, steps_per_day)  # noqa: E731
    sortino = lambda s: daily_ratio(s, steps_per_day, downside=True)  # noqa: E731
    path = chained_equity(traces)
    return {
        "episodes": len(traces),
        "mean_pnl": float(pnl.mean()),
        "mean_pnl_ci95": bootstrap_interval(traces, mean_pnl, config.n_boot, seed),
        "total_pnl": float(pnl.sum()),
        "sharpe_daily": sharpe(traces),
        "sharpe_daily_ci95": bootstrap_interval(traces, sharpe, config.n_boot, seed + 1),
        "sortino_daily": sortino(traces),
        "sortino_daily_ci95": bootstrap_interval(traces, sortino, config.n_boot, seed + 2),
        "max_drawdown": max_drawdown(path),
        "max_drawdown_episode_mean": float(np.mean([t.stats["max_drawdown"] for t in traces])),
        "win_rate": float(np.mean(pnl > 0)),
        "fills_per_episode": float(np.mean([t.stats["fills"] for t in traces])),
        "maker_share": float(np.mean([f[4] for f in fills])) if fills else math.nan,
        "traded_notional_per_episode": float(np.mean([t.stats["traded_notional"] for t in traces])),
        "fees_per_episode": float(np.mean([t.stats["fees"] for t in traces])),
        "funding_per_episode": float(np.mean([t.stats["funding"] for t in traces])),
        "fill_rate": (sum(t.orders_filled for t in traces) / sent) if sent else math.nan,
        "orders_sent": sent,
        "markout_bp": markouts(traces, mid, config.markout_steps),
        "liquidations": int(sum(t.stats["liquidations"] for t in traces)),
        "kill_switch_trips": int(sum(len(t.stats["kill_switch_trips"]) for t in traces)),
    }


def paired_difference(a: list[EpisodeTrace], b: list[EpisodeTrace], n_boot: int, seed: int) -> dict:
    """Mean per-episode PnL of a minus b on the same windows, with a bootstrap 95 % interval."""
    diff = np.array([x.stats["pnl"] - y.stats["pnl"] for x, y in zip(a, b, strict=True)])
    lo, hi = bootstrap_interval(list(diff), lambda s: float(np.mean(s)), n_boot, seed)
    return {
        "mean": float(diff.mean()),
        "ci95": (lo, hi),
        "above_zero": bool(lo > 0),
        "below_zero": bool(hi < 0),
    }


def make_baseline(name: str, env: ScalperEnv, seed: int) -> Policy:
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {sorted(BASELINES)}")
    if name == "random":
        return BASELINES[name](env, seed=seed)
    if name == "avellaneda_stoikov":
        # its volatility input: the 300 s realized vol when the view has it, else the longest horizon it has
        names = macro_feature_names(env.unwrapped.view.config.macro_horizons_s)
        vols = [n for n in names if n.startswith("vol_bp_")]
        wanted = ASParams().vol_feature
        return AvellanedaStoikov(env, ASParams(vol_feature=wanted if wanted in vols else vols[-1]))
    return BASELINES[name](env)


def evaluate_policies(
    env: ScalperEnv, policies: dict[str, Policy], config: EvalConfig
) -> tuple[dict[str, list[EpisodeTrace]], dict]:
    """Run every policy on the same walk-forward windows; return the traces and the metrics report."""
    env.sim = RecordingSimulator()
    starts = env.tiled_starts()
    if config.max_episodes is not None:
        starts = starts[: config.max_episodes]
    if len(starts) < 2:
        raise ValueError(
            f"the {config.split} split holds {len(starts)} episode window(s) of {env.episode_steps} steps; need at "
            "least 2 for intervals: give more held-out data or shorten episode_s"
        )
    traces: dict[str, list[EpisodeTrace]] = {}
    for name, policy in policies.items():
        traces[name] = [
            run_episode(env, policy, start, config.seed + i)
            for i, start in enumerate(tqdm(starts, desc=name, disable=not config.progress))
        ]
    steps_per_day = DAY_S / env.step_s
    mid = env.view.mid
    fold_of = np.array_split(np.arange(len(starts)), min(config.folds, len(starts)))
    report: dict = {"windows": len(starts), "episode_steps": env.episode_steps, "policies": {}}
    for p, (name, ts) in enumerate(traces.items()):
        seed = config.seed + 1000 * p
        entry = {"all": summarize(ts, mid, steps_per_day, config, seed)}
        entry["by_regime"] = {
            r: summarize([t for t in ts if t.regime == r], mid, steps_per_day, config, seed)
            for r in REGIMES
            if any(t.regime == r for t in ts)
        }
        entry["by_fold"] = [
            summarize([ts[i] for i in idx], mid, steps_per_day, config, seed) for idx in fold_of
        ]
        report["policies"][name] = entry
    if "agent" in traces:
        report["agent_minus_baseline"] = {
            name: paired_difference(traces["agent"], ts, config.n_boot, config.seed + 7)
            for name, ts in traces.items()
            if name != "agent"
        }
    return traces, report


def evaluate(model_id: str, config: EvalConfig | None = None) -> dict:
    """Evaluate runs/<model_id> on its held-out split; write reports/<model_id>/report.json (+ plots)."""
    config = config or EvalConfig()
    run_dir = Path(config.runs_root) / model_id
    net, train_config, saved = load_model(run_dir, device="cpu")
    env_config = train_config.env
    if config.episode_s is not None:
        from dataclasses import replace

        env_config = replace(env_config, episode_s=config.episode_s)
    view = market_view(train_config.data, config.split, view_config_for(train_config))
    env = ScalperEnv(view, env_config)
    policies = delivered_policies(env, net, saved)
    for name in config.baselines:
        policies[name] = make_baseline(name, env, config.seed)
    traces, report = evaluate_policies(env, policies, config)
    report = {
        "model_id": model_id,
        "algo": train_config.algo,
        "split": config.split,
        "data": train_config.data.describe(),
        "data_range_us": [int(view.t[0]), int(view.t[-1])],
        "eval_config": asdict(config),
        "selection": saved.get("selection"),
        **report,
    }
    out_dir = Path(config.reports_root) / model_id
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.plots:
        from agent.reports import plot_report

        report["plots"] = [str(p) for p in plot_report(traces, out_dir)]
    (out_dir / "report.json").write_text(
        json.dumps(jsonable(report), indent=2, default=_json_default, allow_nan=False)
    )
    return report


def jsonable(value):
    """Plain JSON values: numpy scalars and arrays unwrapped, tuples as lists, NaN / inf as null (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _num(value, spec: str) -> str:
    """A number for the table; "n/a" for a missing or undefined one (null in report.json)."""
    return (
        "n/a"
        if value is None or (isinstance(value, float) and not math.isfinite(value))
        else format(value, spec)
    )


def comparison_table(report: dict) -> str:
    """A plain-text table: one row per policy (mean PnL and interval, daily Sharpe, drawdown, fills, fill rate),
    and the agent's paired PnL difference against each baseline. Works on evaluate()'s result or report.json."""
    header = f"{'policy':<20}{'mean PnL':>11}{'95% CI':>22}{'Sharpe/d':>10}{'maxDD':>10}{'fills/ep':>10}{'fill rate':>10}"
    lines = [header, "-" * len(header)]
    selection = report.get("selection") or {}
    if selection.get("stand_aside"):
        lines = [
            "the run's validation kept no network: the agent stands aside (best network's lower 95 % bound "
            f"{_num(selection['network_val_lower'], '.2f')} per window on {selection['val_windows']} validation "
            f"windows, standing aside {_num(selection['stand_aside_val_lower'], '.2f')}); "
            "agent_network is that network, played anyway",
            *lines,
        ]
    for name, entry in report["policies"].items():
        a = entry["all"]
        lo, hi = a["mean_pnl_ci95"]
        interval = f"({_num(lo, '.2f')}, {_num(hi, '.2f')})"
        lines.append(
            f"{name:<20}{_num(a['mean_pnl'], '.2f'):>11}{interval:>22}{_num(a['sharpe_daily'], '.2f'):>10}"
            f"{_num(a['max_drawdown'], '.2f'):>10}{_num(a['fills_per_episode'], '.1f'):>10}"
            f"{_num(a['fill_rate'], '.2f'):>10}"
        )
    if "agent_minus_baseline" in report:
        lines.append("")
        lines.append("agent - baseline, mean PnL per episode (paired, bootstrap 95 % CI):")
        for name, d in report["agent_minus_baseline"].items():
            lo, hi = d["ci95"]
            verdict = (
                "agent better"
                if d["above_zero"]
                else ("agent worse" if d["below_zero"] else "no significant difference")
            )
            lines.append(
                f"  vs {name:<20}{_num(d['mean'], '.2f'):>10}  ({_num(lo, '.2f')}, {_num(hi, '.2f')})  {verdict}"
            )
    return "\n".join(lines)
