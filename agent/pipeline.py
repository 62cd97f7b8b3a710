"""The demo pipeline on landed data: short training -> out-of-sample evaluation -> export, then a comparison table.

`run_pipeline_demo()` is what `make demo` calls after landing the embedded (synthetic) days: it takes the first
`minutes` of the first landed day of `symbol` (DataConfig source "lake_day": 60 % train, 20 % validation, 20 %
test, in time order), trains a small branching DQN for `total_steps` env steps, evaluates it against every baseline
on the test windows (reports/<model id>/), exports and registers it (runs/<model id>/export/, <lake>/registry/models)
and prints the table. A few minutes on two CPU cores with the defaults.
"""

from __future__ import annotations

from pathlib import Path

from agent.env import EnvConfig
from agent.evaluate import EvalConfig, comparison_table, evaluate
from agent.export import export
from agent.market_view import ViewConfig
from agent.policy_factory import NetConfig
from agent.train import DataConfig, TrainConfig, train


def first_landed_day(lake_root: str | Path, symbol: str) -> str:
    from feature_store.lake import Lake

    for info in Lake(lake_root).describe(zones=("raw",)):
        if info.table == "book_snapshots":
            days = sorted(d for (s, d), rows in info.partitions.items() if s == symbol and rows > 0)
            if days:
                return str(days[0])
    raise ValueError(
        f"the lake at {lake_root} has no book snapshots of {symbol}; land data first (`scalper demo` lands "
        "synthetic days, `scalper ingest ...` real ones)"
    )


def demo_config(
    lake_root: str | Path,
    symbol: str,
    day: str,
    minutes: int,
    total_steps: int,
    runs_root: str | Path,
    seed: int,
    episode_s: float = 300.0,
) -> TrainConfig:
    return TrainConfig(
        seed=seed,
        total_steps=total_steps,
        data=DataConfig(source="lake_day", lake_root=str(lake_root), symbol=symbol, day=day, minutes=minutes),
        view=ViewConfig(micro_window=30, macro_horizons_s=(60.0, 300.0)),
        env=EnvConfig(episode_s=episode_s),
        net=NetConfig(
            lstm_hidden=32, macro_hidden=32, state_hidden=32, latent=64, trunk_hidden=64, head_hidden=32
        ),
        curriculum_steps=min(1_000, total_steps // 4),
        curriculum_episode_s=episode_s / 3,
        learning_starts=min(500, total_steps // 5),
        eps_decay_steps=max(1, total_steps * 2 // 3),
        risk_feed_after=min(1_000, total_steps // 3),
        checkpoint_every=max(1, total_steps // 2),
        runs_root=str(runs_root),
        run_name=f"demo-{symbol}-{day}-s{seed}",
    )


def run_pipeline_demo(
    lake_root: str | Path = "lake",
    symbol: str = "BTCUSDT",
    day: str | None = None,
    minutes: int = 90,
    total_steps: int = 4_000,
    runs_root: str | Path = "runs",
    reports_root: str | Path = "reports",
    seed: int = 0,
    progress: bool = True,
    episode_s: float = 300.0,
) -> dict:
    """Train, evaluate and export on the landed data; print and return the comparison."""
    day = day or first_landed_day(lake_root, symbol)
    config = demo_config(lake_root, symbol, day, minutes, total_steps, runs_root, seed, episode_s)
    config = TrainConfig(**{**config.__dict__, "progress": progress})
    result = train(config, resume=False)
    report = evaluate(
        result.model_id,
        EvalConfig(runs_root=str(runs_root), reports_root=str(reports_root), progress=progress),
    )
    exported = export(
        result.model_id, runs_root=str(runs_root), lake_root=str(lake_root), reports_root=str(reports_root)
    )
    table = comparison_table(report)
    print(
        f"\nmodel {result.model_id}: {result.steps} env steps, {result.updates} updates in {result.wall_s:.0f} s"
    )
    print(
        f"out of sample: {report['windows']} windows of {report['episode_steps']} steps ({report['data']})\n"
    )
    print(table)
    lat = exported.latency_us["onnxruntime"]
    print(
        f"\nexported to {exported.bundle_dir} (ONNX max |diff| {exported.max_abs_diff_onnx:.1e}; CPU decision "
        f"latency p50 {lat['p50']:.0f} us, p99 {lat['p99']:.0f} us); report in {Path(reports_root) / result.model_id}"
    )
    return {"train": result.as_dict(), "report": report, "export": exported, "table": table}
