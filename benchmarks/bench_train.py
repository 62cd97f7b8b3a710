"""Training throughput on CPU: our branching DQN loop against stable-baselines3's DQN on the same env and network.

Both train on the same synthetic market view (the train split of 30 minutes, 2-minute episodes) with one torch
thread, batch 64, one gradient step per env step after the same warm-up, the same buffer size and the same state
encoder (agent/nets.MultiStreamStateEncoder, same widths): SB3 gets the env through two gymnasium wrappers,
FlatObservation (the Dict observation flattened to one Box, which SB3's DQN needs) and FlatAction (Discrete(n_price *
n_size) mapped to the env's MultiDiscrete action), and a features extractor that unflattens the Box back into the
encoder's three inputs, with a Q head of the same hidden size. What differs is the algorithm around the network:
ours samples a prioritized, regime-stratified buffer with n-step returns, computes Double-DQN branching targets (three
forward passes per update: online, online on s', target on s') and trains the risk head; SB3's DQN samples uniformly,
one-step targets from the target net (two forward passes), one joint Q head over n_price * n_size actions.

Printed: env steps per second and gradient updates per second of each (median of `repeats` runs), the ratio
ours / SB3, and the bare env's step rate for scale. Usage: python benchmarks/bench_train.py [steps] [repeats]
"""

from __future__ import annotations

import statistics
import sys
import time

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from agent.env import EnvConfig, ScalperEnv
from agent.market_view import ViewConfig
from agent.nets import EncoderConfig, MultiStreamStateEncoder
from agent.policy_factory import NetConfig, encoder_config
from agent.train import DataConfig, TrainConfig, market_view, train, view_config_for

NET = NetConfig(lstm_hidden=32, macro_hidden=32, state_hidden=32, latent=64, trunk_hidden=64, head_hidden=32)
BATCH, LEARNING_STARTS, BUFFER = 64, 200, 20_000


class FlatObservation(gym.ObservationWrapper):
    """The Dict observation as one float32 Box, keys in sorted order (gymnasium's flatten order)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.keys = sorted(env.observation_space.spaces)
        self.shapes = {k: env.observation_space[k].shape for k in self.keys}
        size = sum(int(np.prod(s)) for s in self.shapes.values())
        bound = float(env.observation_space["micro"].high.max())
        self.observation_space = spaces.Box(-bound, bound, (size,), np.float32)

    def observation(self, observation):
        return np.concatenate([np.asarray(observation[k], np.float32).ravel() for k in self.keys])


class FlatAction(gym.ActionWrapper):
    """Discrete(n_price * n_size) -> the env's MultiDiscrete([n_price, n_size])."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.n_price, self.n_size = (int(n) for n in env.action_space.nvec)
        self.action_space = spaces.Discrete(self.n_price * self.n_size)

    def action(self, action):
        a = int(action)
        return np.array([a // self.n_size, a % self.n_size], dtype=np.int64)


def sb3_extractor(shapes: dict[str, tuple[int, ...]], encoder: EncoderConfig):
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class StreamEncoderExtractor(BaseFeaturesExtractor):
        """Unflattens FlatObservation's Box into (micro, macro, state) and runs our encoder on it."""

        def __init__(self, observation_space: spaces.Box) -> None:
            super().__init__(observation_space, features_dim=encoder.latent)
            self.encoder = MultiStreamStateEncoder(encoder)
            offsets, start = {}, 0
            for k in sorted(shapes):
                size = int(np.prod(shapes[k]))
                offsets[k] = (start, start + size)
                start += size
            self.offsets = offsets

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            def part(k):
                a, b = self.offsets[k]
                return obs[:, a:b].reshape(-1, *shapes[k])

            state = torch.cat([part("book").flatten(1), part("state")], dim=-1)
            return self.encoder(part("micro"), part("macro"), state)

    return StreamEncoderExtractor


def timed(fn, repeats: int) -> list[tuple[float, float]]:
    out = []
    for r in range(repeats):
        t0 = time.perf_counter()
        steps, updates = fn(r)
        dt = time.perf_counter() - t0
        out.append((steps / dt, updates / dt))
    return out


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    torch.set_num_threads(1)
    base = TrainConfig(
        total_steps=steps,
        data=DataConfig(minutes=30, signal_strength=1.0),
        view=ViewConfig(micro_window=30, macro_horizons_s=(60.0, 300.0)),
        env=EnvConfig(episode_s=120.0),
        net=NET,
        curriculum_steps=0,
        learning_starts=LEARNING_STARTS,
        batch_size=BATCH,
        buffer_capacity=BUFFER,
        checkpoint_every=10 * steps,
        device="cpu",
        runs_root="/tmp/bench_train_runs",
    )
    view = market_view(base.data, "train", view_config_for(base))
    env = ScalperEnv(view, base.env)

    def bare_env(r: int) -> tuple[int, int]:
        env.reset(seed=r)
        rng = np.random.default_rng(r)
        for _ in range(steps):
            _, _, term, trunc, _ = env.step(rng.integers(0, env.action_space.nvec))
            if term or trunc:
                env.reset()
        return steps, 0

    def ours(r: int) -> tuple[int, int]:
        result = train(TrainConfig(**{**base.__dict__, "run_name": f"bench-{r}", "seed": r}), resume=False)
        return result.steps, result.updates

    from stable_baselines3 import DQN

    flat_env = FlatAction(FlatObservation(ScalperEnv(view, base.env)))
    shapes = {k: env.observation_space[k].shape for k in env.observation_space.spaces}
    extractor = sb3_extractor(shapes, encoder_config(env.observation_space, NET))

    def sb3(r: int) -> tuple[int, int]:
        model = DQN(
            "MlpPolicy",
            flat_env,
            learning_rate=base.learning_rate,
            buffer_size=BUFFER,
            learning_starts=LEARNING_STARTS,
            batch_size=BATCH,
            train_freq=1,
            gradient_steps=1,
            target_update_interval=1_000,
            policy_kwargs=dict(
                features_extractor_class=extractor, net_arch=[NET.trunk_hidden, NET.head_hidden]
            ),
            device="cpu",
            seed=r,
            verbose=0,
        )
        model.learn(total_timesteps=steps)
        return steps, model._n_updates

    params_ours = sum(
        p.numel()
        for p in __import__("agent.policy_factory", fromlist=["make_policy"])
        .make_policy("dqn", env.observation_space, env.action_space, NET, device="cpu")
        .parameters()
    )
    print(
        f"steps per run: {steps}, repeats: {repeats}, torch threads: 1, batch {BATCH}, warm-up {LEARNING_STARTS}"
    )
    rates = {
        "bare env (random actions)": timed(bare_env, repeats),
        "ours": timed(ours, repeats),
        "sb3": timed(sb3, repeats),
    }
    model = DQN(
        "MlpPolicy",
        flat_env,
        policy_kwargs=dict(features_extractor_class=extractor, net_arch=[NET.trunk_hidden, NET.head_hidden]),
        device="cpu",
    )
    params_sb3 = sum(p.numel() for p in model.q_net.parameters())
    print(
        f"parameters: ours {params_ours:,} (Q + risk heads), SB3 {params_sb3:,} (one Q head over {flat_env.action_space.n} joint actions)"
    )
    med = {}
    for name, runs in rates.items():
        med[name] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
        print(
            f"{name:<28} env steps/s {med[name][0]:>9.1f}   gradient updates/s {med[name][1]:>8.1f}   runs {[round(r[0]) for r in runs]}"
        )
    print(
        f"ratio ours / SB3: env steps/s {med['ours'][0] / med['sb3'][0]:.2f}x, "
        f"updates/s {med['ours'][1] / med['sb3'][1]:.2f}x"
    )


if __name__ == "__main__":
    main()
