"""Policy factory: one call builds the DQN or the PPO network for an env's spaces, both on the same state encoder.

make_policy("dqn" | "ppo", observation_space, action_space, NetConfig) reads the stream widths from the env's Dict
observation (agent/obs.py: micro [T, F], macro [F], book [20, 4] + state [F] joined into one flat state vector) and
the branch sizes from its MultiDiscrete action, so training, evaluation and export all build the same network from
the same two spaces. `as_tensors` turns observations (one, or a batch) into the encoder's three input tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from agent.nets import BranchingDQNConfig, EncoderConfig, RiskAwareBranchingDQN
from agent.obs import encoder_inputs

ALGOS = ("dqn", "ppo")


@dataclass(frozen=True)
class NetConfig:
    """Layer sizes shared by both algorithms (the encoder) and their heads."""

    lstm_hidden: int = 64
    macro_hidden: int = 64
    state_hidden: int = 64
    latent: int = 128
    trunk_hidden: int = 128
    head_hidden: int = 64
    risk_hidden: int = 64
    n_quantiles: int = 0  # DQN only: > 0 switches to a QR-DQN distributional critic
    return_head: bool = False  # DQN only: auxiliary next-step return head (agent/nets.BranchingDQNConfig)


def stream_widths(observation_space: spaces.Dict) -> tuple[int, int, int]:
    """(micro features per step, macro features, flat state features) of the env's observation space."""
    missing = {"micro", "macro", "book", "state"} - set(observation_space.spaces)
    if missing:
        raise ValueError(
            f"observation space lacks {sorted(missing)}; build it with agent/obs.observation_space (the scalper env)"
        )
    micro = observation_space["micro"].shape[-1]
    macro = observation_space["macro"].shape[0]
    state = int(np.prod(observation_space["book"].shape)) + observation_space["state"].shape[0]
    return micro, macro, state


def encoder_config(observation_space: spaces.Dict, net: NetConfig) -> EncoderConfig:
    micro, macro, state = stream_widths(observation_space)
    return EncoderConfig(
        micro_features=micro,
        macro_features=macro,
        state_features=state,
        lstm_hidden=net.lstm_hidden,
        macro_hidden=net.macro_hidden,
        state_hidden=net.state_hidden,
        latent=net.latent,
    )


def branch_sizes(action_space: spaces.MultiDiscrete) -> tuple[int, int]:
    if not isinstance(action_space, spaces.MultiDiscrete) or action_space.nvec.shape != (2,):
        raise ValueError(
            f"action space {action_space} must be MultiDiscrete([n_price, n_size]) (agent/env.ScalperEnv)"
        )
    return int(action_space.nvec[0]), int(action_space.nvec[1])


def make_policy(
    kind: str,
    observation_space: spaces.Dict,
    action_space: spaces.MultiDiscrete,
    net: NetConfig | None = None,
    *,
    variance_scale: float = 1.0,
    device: str | torch.device | None = None,
) -> nn.Module:
    """The network of algorithm `kind` for these spaces: RiskAwareBranchingDQN or ppo.BranchingActorCritic.

    variance_scale (DQN): the train-fit variance of the one-step mid log return, the risk head's output scale.
    """
    net = net or NetConfig()
    encoder = encoder_config(observation_space, net)
    n_price, n_size = branch_sizes(action_space)
    if kind == "dqn":
        config = BranchingDQNConfig(
            encoder=encoder,
            n_price=n_price,
            n_size=n_size,
            trunk_hidden=net.trunk_hidden,
            head_hidden=net.head_hidden,
            risk_hidden=net.risk_hidden,
            n_quantiles=net.n_quantiles,
            variance_scale=variance_scale,
            return_head=net.return_head,
        )
        return RiskAwareBranchingDQN(config, device=device)
    if kind == "ppo":
        from agent.ppo import BranchingActorCritic  # ppo imports this module: import late

        return BranchingActorCritic(encoder, n_price, n_size, net.head_hidden, device=device)
    raise ValueError(f"unknown policy kind {kind!r}; choose one of {ALGOS}")


def as_tensors(obs: dict[str, np.ndarray], device: torch.device) -> tuple[torch.Tensor, ...]:
    """(micro, macro, state) float32 tensors on `device`; a single observation gets a batch axis of 1."""
    micro, macro, state = encoder_inputs(obs)
    if micro.ndim == 2:
        micro, macro, state = micro[None], macro[None], state[None]
    return tuple(
        torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)
        for a in (micro, macro, state)
    )
