"""Optuna search over the scalper's training settings (agent/hpo.py); the CLI's `scalper hpo` runs the same code.

Usage: python scripts/hpo_scalper.py --trials 20 --storage sqlite:///runs/optuna.db [--study NAME]
       [--steps-per-trial 20000] [--rounds 4] [--config train.toml] [--snapshot ID]
Several workers may run this at once against one RDB storage URL (e.g. postgresql://...): they share the study.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from agent.hpo import HPOConfig, run_hpo
from agent.train import load_config


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--storage", default="sqlite:///runs/optuna.db")
    parser.add_argument("--study", default="scalper")
    parser.add_argument("--steps-per-trial", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--config", default=None, help="a TrainConfig file (.toml or .json) as the base")
    parser.add_argument("--snapshot", default=None, help="train and validate on this feature snapshot")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    base = load_config(args.config)
    if args.snapshot:
        base = dataclasses.replace(
            base, data=dataclasses.replace(base.data, source="snapshot", snapshot_id=args.snapshot)
        )
    summary = run_hpo(
        HPOConfig(
            base=base,
            trials=args.trials,
            storage=args.storage,
            study_name=args.study,
            steps_per_trial=args.steps_per_trial,
            rounds=args.rounds,
            seed=args.seed,
        )
    )
    print(json.dumps(summary, indent=2, default=str))
    return summary


if __name__ == "__main__":
    main()
