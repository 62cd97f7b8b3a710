"""Learning honesty, as an experiment: does training find a planted edge, and only when there is one?

On the synthetic market (feature_store/sources/synthetic.py) with order-flow signal strength s, train the branching
DQN on the first 60 % of `minutes` of market, then evaluate it out of sample on the last 20 % (non-overlapping
windows, the same windows for every policy; agent/evaluate.py). Two claims are checked and printed:
  signal > 0: the agent's net PnL per window beats the symmetric market maker and the random policy, the
              bootstrap 95 % interval of the paired difference lying above 0 (the agent's own mean PnL and its
              interval are reported beside it), and the agent is a network that passed validation: a run that
              stands aside (TrainConfig.val_stand_aside) earns 0, which beats baselines that lose, and learned
              nothing;
  signal = 0: the agent's daily Sharpe interval contains 0 (no significant profit, and no significant loss).

Fee tier (`--fees`, agent/sim/fees.FEE_TIERS): vip0 (Binance USD-M VIP 0, 2 / 5 bp maker / taker), vip9 (0 / 1.7 bp),
mm (the USD-M liquidity-provider programme's -0.5 bp maker rebate, VIP 9 taker 1.7 bp) or none. The default is
`none`, a deliberate choice: this experiment asks whether *learning* finds an edge that is there and invents none
that is not, and the planted edge is too small for any real tier. scripts/edge_by_fee_tier.py measures it: a causal
rule that trades the queue imbalance by market orders earns about 0.12-0.17 bp of traded notional before fees (+17
per 120 s window at signal 1, CI above 0; nothing at signal 0), against 1.7 bp a side for the cheapest real taker;
the same lean through passive quotes loses about 0.4 bp of notional to adverse selection at every signal. So no
policy can show the planted edge after real fees, and with the mm tier's rebate the symmetric market maker earns
the rebate at signal 0 as well (significantly positive): a fee tier would make the two claims test fees, not
learning. A real HFT scalper trades at vip9 / mm rates; run `--fees mm` and `--fees vip0` to see what the agent does
there (the JSON report names the tier).

Reward: the net PnL alone (PNL_REWARD below), so that the agent optimizes what the claims measure.
Results go to reports/experiment_honesty_<fees>.json.

Usage: python scripts/experiment_honesty.py [--steps 100000] [--minutes 1440] [--seed 0] [--fees none] [--smoke]
`--smoke` runs a few hundred steps on a few minutes of market: it checks the machinery, not learning.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from agent.env import EnvConfig, RewardConfig
from agent.evaluate import EvalConfig, comparison_table, evaluate
from agent.market_view import FUNDING_FEATURES, ViewConfig, macro_feature_names, onchain_feature_names
from agent.policy_factory import NetConfig
from agent.risk import RiskConfig
from agent.sim.engine import SimConfig
from agent.sim.fees import FEE_TIERS, fee_tier
from agent.train import DataConfig, TrainConfig, train

# The reward of the experiment is the net PnL (after fees) alone: RewardConfig's default shaping charges 0.2 bp of
# traded notional on top of fees and adds end-of-episode Sharpe / Sortino / drawdown terms; the planted edge is
# worth about 0.1-0.15 bp per traded notional, so that shaping alone makes trading on it a loss in reward terms.
# The risk rules' soft breach penalty goes too (the hard position cap and the kill switches stay): it charges
# 0.5 x a growing streak whenever a full-size position's notional drifts above a cap that moves every step with
# price and volatility, several times the edge, so the agent learned that holding anything is expensive.
DEFAULT_FEES = "none"
PNL_REWARD = RewardConfig(
    trade_penalty_bps=0.0, liquidity_penalty=0.0, sharpe_weight=0.0, sortino_weight=0.0, drawdown_weight=0.0
)
PNL_RISK = RiskConfig(breach_penalty=0.0)
# What the agent may look at: the last seconds of order flow (the micro window: mid returns, spread, level-1 / 5
# imbalance, microprice, trade volumes and counts, OFI, realized volatility) and its own account. Hidden: the
# top-20 book block, the slow context (1 / 5 min returns, volatility, volume and flow, regime, time of day), funding
# and on-chain values. The synthetic market makes the slow context worthless in expectation (compensated regimes, a
# martingale price at signal 0), and on six hours of one path all of these fingerprint time. Measured (60k steps,
# seed 0, signal 1; mean PnL per window): with every feature but the clocks, +88 on the agent's own training windows
# and -8.8 on the validation windows (the plain imbalance rule: +31.6 and +10.5); without the slow context but with
# the book, in-sample +50 to +84 and +3.1 (-3.5, 10.2) on the test windows. Hiding them asks the question the
# experiment is about, whether the agent finds the planted order-flow edge, without the means to memorize the path.
MACRO_HORIZONS_S = (60.0, 300.0)
BLIND_FEATURES = (
    "book",
    *macro_feature_names(MACRO_HORIZONS_S),
    *FUNDING_FEATURES,
    *onchain_feature_names(ViewConfig().onchain_metrics),
)


def experiment_config(signal: float, steps: int, minutes: int, seed: int, fees: str, root: Path, smoke: bool):
    env = EnvConfig(
        episode_s=60.0 if smoke else 120.0,
        sim=SimConfig(fees=fee_tier(fees)),
        reward=PNL_REWARD,
        risk=PNL_RISK,
    )
    net = (
        NetConfig(
            lstm_hidden=8,
            macro_hidden=8,
            state_hidden=8,
            latent=16,
            trunk_hidden=16,
            head_hidden=8,
            risk_hidden=8,
            return_head=True,
        )
        if smoke
        else NetConfig(
            lstm_hidden=32,
            macro_hidden=32,
            state_hidden=32,
            latent=64,
            trunk_hidden=64,
            head_hidden=32,
            # the auxiliary next-step return head teaches the encoder the (small, noisy) drift that TD targets
            # alone leave buried in the mark-to-market noise of a held position
            return_head=True,
        )
    )
    # gamma 0.9 (a ~10 s horizon, the planted signal's persistence: its correlation with the forward return falls
    # from 0.16 at 1 s to 0.07 at 10 s) bootstraps less noise than 0.99; a 10 s micro window holds that history and
    # trains ~1.5x faster than 30 s. 1440 minutes of market (one synthetic day, 14.4 h to train on, 143 two-minute
    # validation and test windows each; longer runs span days): on 6 h the agent fit the noise of its one path
    # (in-sample +50 per window, out of sample 0 to +3);
    # one gradient step per two env steps replays each stored transition ~16 times instead of ~32.
    return TrainConfig(
        seed=seed,
        total_steps=steps,
        data=DataConfig(synthetic_seed=seed + 11, signal_strength=signal, minutes=minutes),
        view=ViewConfig(micro_window=8 if smoke else 10, macro_horizons_s=MACRO_HORIZONS_S),
        env=env,
        net=net,
        curriculum_steps=steps // 5,
        curriculum_episode_s=30.0 if smoke else 60.0,
        learning_starts=min(500, steps // 5),
        batch_size=16 if smoke else 64,
        train_every=1 if smoke else 2,
        gamma=0.9,
        # the synthetic market is symmetric up <-> down (mirrored regimes, an edge odd in the imbalance): train on
        # each transition and its mirror image, so one trending training path cannot teach a side (agent/mirror.py)
        mirror_augment=True,
        blind_features=BLIND_FEATURES,
        # keep the network that did best on the validation windows (the test windows stay for the verdicts), on
        # every window of the val split (143 at 1440 minutes: the lower bound's standard error is 1.54x smaller
        # than on 60), and only if it beats standing aside there (TrainConfig.val_stand_aside)
        val_every=max(1, steps // 12),
        val_windows=0,
        buffer_capacity=100_000,
        eps_decay_steps=max(1, steps // 2),
        risk_feed_after=min(1_000, steps // 3),
        checkpoint_every=steps,
        runs_root=str(root / "runs"),
        run_name=f"honesty-signal{signal:g}-fees_{fees}-seed{seed}{'-smoke' if smoke else ''}",
    )


def verdicts(report: dict, signal: float) -> dict:
    """The claims, on the policy the training run delivers ("agent"). When its validation kept no network, the
    agent stands aside and the best network's own out-of-sample figures are reported beside it ("network")."""
    diff = report["agent_minus_baseline"]
    agent = report["policies"]["agent"]["all"]
    lo, hi = agent["sharpe_daily_ci95"]
    selection = report.get("selection") or {}
    out = {
        "stand_aside": bool(selection.get("stand_aside")),
        "selection": selection,
        "agent_mean_pnl": agent["mean_pnl"],
        "agent_mean_pnl_ci95": agent["mean_pnl_ci95"],
        "agent_sharpe_daily": agent["sharpe_daily"],
        "agent_sharpe_daily_ci95": (lo, hi),
        "agent_fills_per_window": agent["fills_per_episode"],
        "vs_symmetric_mm": diff["symmetric_mm"],
        "vs_random": diff["random"],
        "windows": report["windows"],
        # the design's wording: "with no signal the agent must not show significant profit"; a significant loss
        # also fails "the interval contains 0" and is reported separately
        "significant_profit": bool(lo > 0) if lo == lo else False,
        "significant_loss": bool(hi < 0) if hi == hi else False,
    }
    if "agent_network" in report["policies"]:
        network = report["policies"]["agent_network"]["all"]
        out["network"] = {
            "mean_pnl": network["mean_pnl"],
            "mean_pnl_ci95": network["mean_pnl_ci95"],
            "sharpe_daily_ci95": network["sharpe_daily_ci95"],
            "fills_per_window": network["fills_per_episode"],
        }
    if signal > 0:
        # standing aside (PnL 0) beats the losing baselines too: the claim is about a learned strategy
        out["claim"] = "a validated network beats symmetric MM and random (difference CI above 0)"
        out["holds"] = bool(
            not out["stand_aside"] and diff["symmetric_mm"]["above_zero"] and diff["random"]["above_zero"]
        )
    else:
        out["claim"] = "agent's daily Sharpe interval contains 0"
        out["holds"] = bool(lo <= 0 <= hi) if lo == lo and hi == hi else False  # NaN: undefined, not held
    return out


def run_experiment(
    signals: tuple[float, ...] = (1.0, 0.0),
    steps: int = 100_000,
    minutes: int = 1440,
    seed: int = 0,
    fees: str = DEFAULT_FEES,
    root: str | Path = ".",
    smoke: bool = False,
    n_boot: int = 2000,
) -> dict:
    root = Path(root)
    results = {}
    for signal in signals:
        started = time.perf_counter()
        config = experiment_config(signal, steps, minutes, seed, fees, root, smoke)
        trained = train(config, resume=False)
        report = evaluate(
            trained.model_id,
            EvalConfig(
                runs_root=config.runs_root, reports_root=str(root / "reports"), n_boot=n_boot, plots=not smoke
            ),
        )
        results[f"signal={signal:g}"] = {
            "model_id": trained.model_id,
            "train_steps": trained.steps,
            "train_wall_s": trained.wall_s,
            "wall_s": time.perf_counter() - started,
            **verdicts(report, signal),
        }
        print(f"\n== signal {signal:g}, fee tier {fees}: {trained.model_id}")
        print(comparison_table(report))
    summary = {
        "fees": fees,
        "steps": steps,
        "minutes": minutes,
        "seed": seed,
        "smoke": smoke,
        "results": results,
    }
    out = root / "reports" / f"experiment_honesty_{fees}{'_smoke' if smoke else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str))
    for name, r in results.items():
        print(f"{name}: {r['claim']}: {'HOLDS' if r['holds'] else 'DOES NOT HOLD'}")
    return summary


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--minutes", type=int, default=1440)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--signals", default="1.0,0.0")
    parser.add_argument("--fees", choices=sorted(FEE_TIERS), default=DEFAULT_FEES)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--root", default=".")
    args = parser.parse_args(argv)
    steps, minutes = (300, 12) if args.smoke else (args.steps, args.minutes)
    return run_experiment(
        tuple(float(s) for s in args.signals.split(",")),
        steps=steps,
        minutes=minutes,
        seed=args.seed,
        fees=args.fees,
        root=args.root,
        smoke=args.smoke,
        n_boot=200 if args.smoke else 2000,
    )


if __name__ == "__main__":
    main()
