"""PPO on the scalper env: the alternative to the branching DQN, on the same encoder (agent/policy_factory.py).

BranchingActorCritic: MultiStreamStateEncoder -> two categorical heads (price offset, size bucket; the joint policy
is their product, so log pi(a) = log pi_price + log pi_size) and a value head. train_ppo is the clipped-surrogate
PPO of Schulman et al. 2017 in cleanrl's single-file shape: roll out `ppo_rollout` steps of one env, GAE(lambda)
advantages (bootstrapping through time-limit truncations, not through terminations), `ppo_epochs` passes of
shuffled minibatches, advantage normalization per minibatch, global gradient clipping. The curriculum, data, run
directory and model.pt layout are those of agent/train.py. Left out on purpose: checkpoint-resume (rollouts span
episode boundaries and the replay engine cannot be serialized; DQN runs resume exactly, PPO runs restart).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Categorical

from agent.env import ScalperEnv
from agent.nets import EncoderConfig, MultiStreamStateEncoder, mlp, resolve_device


class BranchingActorCritic(nn.Module):
    """forward(micro, macro, state) -> (price logits [B, n_price], size logits [B, n_size], value [B])."""

    def __init__(
        self,
        encoder: EncoderConfig,
        n_price: int,
        n_size: int,
        head_hidden: int = 64,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        self.encoder = MultiStreamStateEncoder(encoder)
        self.price_head = mlp(encoder.latent, head_hidden, n_price)
        self.size_head = mlp(encoder.latent, head_hidden, n_size)
        self.value_head = mlp(encoder.latent, head_hidden, 1)
        self.to(resolve_device(device))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, micro: Tensor, macro: Tensor, state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        latent = self.encoder(micro, macro, state)
        return self.price_head(latent), self.size_head(latent), self.value_head(latent).squeeze(-1)

    def distributions(
        self, micro: Tensor, macro: Tensor, state: Tensor
    ) -> tuple[Categorical, Categorical, Tensor]:
        price_logits, size_logits, value = self(micro, macro, state)
        return Categorical(logits=price_logits), Categorical(logits=size_logits), value

    @torch.no_grad()
    def greedy_actions(self, micro: Tensor, macro: Tensor, state: Tensor) -> Tensor:
        """The most likely action of each branch: [B, 2] int64 (deterministic evaluation)."""
        price_logits, size_logits, _ = self(micro, macro, state)
        return torch.stack([price_logits.argmax(-1), size_logits.argmax(-1)], dim=-1)


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    episode_end: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """Generalized advantage estimates over one rollout of one env.

    next_values[t]: V of the state after step t (the true final observation at an episode end); terminated[t]: the
    next state has value 0; episode_end[t]: terminated or truncated, the recursion restarts after t.
    """
    adv = np.zeros_like(rewards)
    running = 0.0
    for t in range(rewards.shape[0] - 1, -1, -1):
        delta = rewards[t] + gamma * next_values[t] * (1.0 - terminated[t]) - values[t]
        running = delta + gamma * lam * (0.0 if episode_end[t] else running)
        adv[t] = running
    return adv


def train_ppo(config):
    """PPO run of a TrainConfig with algo="ppo"; returns agent.train.TrainResult."""
    from agent.obs import encoder_input_columns
    from agent.policy_factory import as_tensors, make_policy
    from agent.train import (
        MetricsLog,
        TrainResult,
        config_to_dict,
        market_view,
        return_variance,
        save_model,
        seed_everything,
        stage_env_config,
        view_config_for,
    )

    started = time.perf_counter()
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    device = resolve_device(config.device)
    run_dir = Path(config.runs_root) / config.model_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config_to_dict(config), indent=2))
    seed_everything(config.seed)
    view = market_view(config.data, "train", view_config_for(config))
    envs = {stage: ScalperEnv(view, stage_env_config(config, stage)) for stage in (1, 2)}
    obs_space, act_space = envs[2].observation_space, envs[2].action_space
    net = make_policy("ppo", obs_space, act_space, config.net, device=device)
    net.encoder.blind_inputs(**encoder_input_columns(view, config.blind_features))
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate, eps=1e-5)
    log = MetricsLog(run_dir, truncate_at=0)

    step, updates, episode = 0, 0, 0
    returns, pnls = [], []
    env = envs[1 if config.curriculum_steps > 0 else 2]
    obs, _ = env.reset(seed=config.seed)
    episode_return, stage = 0.0, 1 if config.curriculum_steps > 0 else 2
    while step < config.total_steps:
        horizon = min(config.ppo_rollout, config.total_steps - step)
        buf: dict[str, list] = {
            k: [] for k in ("obs", "act", "logp", "value", "rew", "next_value", "term", "end")
        }
        for _ in range(horizon):
            with torch.no_grad():
                d_price, d_size, value = net.distributions(*as_tensors(obs, device))
                a = torch.stack([d_price.sample(), d_size.sample()], dim=-1)[0]
                logp = d_price.log_prob(a[:1]) + d_size.log_prob(a[1:])
            action = a.cpu().numpy()
            next_obs, reward, terminated, truncated, info = env.step(action)
            end = terminated or truncated
            with torch.no_grad():  # V(s') of the true next state, also at a time-limit cut
                next_value = 0.0 if terminated else float(net(*as_tensors(next_obs, device))[2][0])
            for key, v in zip(
                buf,
                (obs, action, float(logp[0]), float(value[0]), reward, next_value, float(terminated), end),
                strict=True,
            ):
                buf[key].append(v)
            episode_return += reward
            step += 1
            obs = next_obs
            if end:
                episode += 1
                returns.append(episode_return)
                pnls.append(info["episode_stats"]["pnl"])
                log.write("episode", step, stage=stage, episode_return=episode_return, pnl=pnls[-1])
                stage = 1 if step < config.curriculum_steps else 2
                env = envs[stage]
                obs, _ = env.reset(seed=config.seed + episode)
                episode_return = 0.0

        rewards = np.asarray(buf["rew"], dtype=np.float64)
        values = np.asarray(buf["value"], dtype=np.float64)
        next_values = np.asarray(buf["next_value"], dtype=np.float64)
        ends = np.asarray(buf["end"], dtype=bool)
        # a rollout that cuts an episode bootstraps its last step from V(s') (next_values), like a truncation
        adv = gae(
            rewards, values, next_values, np.asarray(buf["term"]), ends, config.gamma, config.ppo_gae_lambda
        )
        ret = adv + values
        stacked = {k: np.stack([o[k] for o in buf["obs"]]) for k in buf["obs"][0]}
        micro, macro, state = as_tensors(stacked, device)
        actions = torch.as_tensor(np.stack(buf["act"]), dtype=torch.int64, device=device)
        old_logp = torch.as_tensor(buf["logp"], dtype=torch.float32, device=device)
        adv_t = torch.as_tensor(adv, dtype=torch.float32, device=device)
        ret_t = torch.as_tensor(ret, dtype=torch.float32, device=device)
        n = rewards.shape[0]
        order_rng = np.random.default_rng(config.seed + updates)
        for _ in range(config.ppo_epochs):
            for idx in np.array_split(order_rng.permutation(n), max(1, math.ceil(n / config.ppo_minibatch))):
                idx_t = torch.as_tensor(idx, device=device)
                d_price, d_size, value = net.distributions(micro[idx_t], macro[idx_t], state[idx_t])
                a = actions[idx_t]
                logp = d_price.log_prob(a[:, 0]) + d_size.log_prob(a[:, 1])
                ratio = (logp - old_logp[idx_t]).exp()
                mb_adv = adv_t[idx_t]
                if mb_adv.shape[0] > 1:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                surrogate = torch.min(
                    ratio * mb_adv, ratio.clamp(1 - config.ppo_clip, 1 + config.ppo_clip) * mb_adv
                ).mean()
                value_loss = 0.5 * (value - ret_t[idx_t]).pow(2).mean()
                entropy = (d_price.entropy() + d_size.entropy()).mean()
                loss = -surrogate + config.ppo_value_coef * value_loss - config.ppo_entropy * entropy
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
                optimizer.step()
                updates += 1
        log.write(
            "train",
            step,
            loss=float(loss.detach()),
            policy_loss=float(-surrogate.detach()),
            value_loss=float(value_loss.detach()),
            entropy=float(entropy.detach()),
            approx_kl=float((old_logp[idx_t] - logp).mean().detach()),
        )
    model_path = run_dir / "model.pt"
    net.eval()
    save_model(
        model_path,
        net,
        config,
        {"variance_scale": return_variance(view), "spaces": (obs_space, act_space), "steps": step},
    )
    log.close()
    result = TrainResult(
        model_id=config.model_id,
        run_dir=run_dir,
        model_path=model_path,
        algo="ppo",
        steps=step,
        updates=updates,
        episodes=episode,
        wall_s=time.perf_counter() - started,
        device=str(device),
        resumed_from=None,
        mean_return_last=float(np.mean(returns[-10:])) if returns else math.nan,
        mean_pnl_last=float(np.mean(pnls[-10:])) if pnls else math.nan,
    )
    (run_dir / "train_result.json").write_text(json.dumps(result.as_dict(), indent=2))
    return result
