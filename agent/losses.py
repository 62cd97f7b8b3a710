"""Learning targets and losses of the branching agent: Double DQN targets, TD loss, quantile Huber, variance NLL.

Targets for branching heads follow Tavakoli et al. 2018 ("Action Branching Architectures", BDQ), Double DQN variant:
the online net picks the greedy action of every branch at s', the target net evaluates it, and the bootstrap value
is the MEAN over branches,
    y = R^(n) + gamma_eff * (1/D) * sum_d Q^-_d(s', argmax_a Q_d(s', a)),
with one shared target y for all D branches. `gamma_eff` is the per-transition bootstrap discount the replay buffer
stores (gamma^k for a k-step return, 0 after a terminal state). The TD loss averages the branch losses.

The distributional variant (QR-DQN heads) uses the same greedy choice (by expected Q) and averages the target
quantile vectors across branches quantile by quantile, then trains each branch's taken-action quantiles against that
shared target with the quantile Huber loss of Dabney et al. 2018.

Shapes: B = batch, n_d = actions of branch d, N = quantiles. All functions take lists of per-branch tensors so the
number of branches is not fixed here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F


def _check_branches(name: str, tensors: Sequence[Tensor], ndim: int) -> None:
    if len(tensors) == 0:
        raise ValueError(f"{name} is empty; pass one tensor per action branch")
    for d, t in enumerate(tensors):
        if t.dim() != ndim:
            raise ValueError(f"{name}[{d}] has shape {tuple(t.shape)}, expected {ndim} dimensions")


def branching_double_dqn_target(
    rewards: Tensor,
    bootstrap_discount: Tensor,
    online_next_q: Sequence[Tensor],
    target_next_q: Sequence[Tensor],
) -> Tensor:
    """Double DQN target shared by all branches, bootstrap averaged across branches (BDQ).

    rewards, bootstrap_discount: [B]; online_next_q[d], target_next_q[d]: [B, n_d]. Returns y: [B] (no gradient).
    """
    _check_branches("online_next_q", online_next_q, 2)
    _check_branches("target_next_q", target_next_q, 2)
    if len(online_next_q) != len(target_next_q):
        raise ValueError(
            f"online_next_q has {len(online_next_q)} branches, target_next_q {len(target_next_q)}; pass both nets' "
            "outputs for the same next states"
        )
    with torch.no_grad():
        evaluated = []
        for online_q, target_q in zip(online_next_q, target_next_q, strict=True):
            greedy = online_q.argmax(dim=-1, keepdim=True)
            evaluated.append(target_q.gather(-1, greedy).squeeze(-1))
        bootstrap = torch.stack(evaluated, dim=0).mean(dim=0)
        return rewards + bootstrap_discount * bootstrap


def branching_double_dqn_quantile_target(
    rewards: Tensor,
    bootstrap_discount: Tensor,
    online_next_q: Sequence[Tensor],
    target_next_quantiles: Sequence[Tensor],
) -> Tensor:
    """Distributional Double DQN target: greedy by the online expected Q, target quantiles averaged across branches.

    rewards, bootstrap_discount: [B]; online_next_q[d]: [B, n_d]; target_next_quantiles[d]: [B, n_d, N].
    Returns target quantiles [B, N] (no gradient).
    """
    _check_branches("online_next_q", online_next_q, 2)
    _check_branches("target_next_quantiles", target_next_quantiles, 3)
    if len(online_next_q) != len(target_next_quantiles):
        raise ValueError(
            f"online_next_q has {len(online_next_q)} branches, target_next_quantiles {len(target_next_quantiles)}"
        )
    with torch.no_grad():
        evaluated = []
        for online_q, target_z in zip(online_next_q, target_next_quantiles, strict=True):
            greedy = online_q.argmax(dim=-1)
            index = greedy.view(-1, 1, 1).expand(-1, 1, target_z.shape[-1])
            evaluated.append(target_z.gather(1, index).squeeze(1))
        bootstrap = torch.stack(evaluated, dim=0).mean(dim=0)  # [B, N]
        return rewards.unsqueeze(-1) + bootstrap_discount.unsqueeze(-1) * bootstrap


def taken_action_values(branch_values: Sequence[Tensor], actions: Tensor) -> list[Tensor]:
    """Pick the value (or quantile vector) of the taken action in every branch.

    branch_values[d]: [B, n_d] or [B, n_d, N]; actions: [B, D] int64. Returns a list of [B] or [B, N].
    """
    if actions.dim() != 2 or actions.shape[1] != len(branch_values):
        raise ValueError(
            f"actions has shape {tuple(actions.shape)}, expected [batch, {len(branch_values)}] (one index per branch)"
        )
    taken = []
    for d, values in enumerate(branch_values):
        index = actions[:, d].long()
        if values.dim() == 2:
            taken.append(values.gather(-1, index.unsqueeze(-1)).squeeze(-1))
        else:
            taken.append(values.gather(1, index.view(-1, 1, 1).expand(-1, 1, values.shape[-1])).squeeze(1))
    return taken


def branching_td_loss(
    taken_q: Sequence[Tensor], target: Tensor, weights: Tensor | None = None, huber_delta: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Importance-weighted TD loss averaged over branches, and new priorities.

    taken_q[d]: [B] online Q of the taken action of branch d; target: [B] shared target; weights: [B] importance
    weights (None = 1). The per-branch loss is Huber(target - Q_d) (huber_delta <= 0: squared error / 2).
    Returns (scalar loss, per-sample priority [B] = mean over branches of |TD error|, detached).
    """
    _check_branches("taken_q", taken_q, 1)
    td = torch.stack([target - q for q in taken_q], dim=0)  # [D, B]
    if huber_delta > 0:
        per_branch = F.huber_loss(td, torch.zeros_like(td), reduction="none", delta=huber_delta)
    else:
        per_branch = 0.5 * td.pow(2)
    per_sample = per_branch.mean(dim=0)
    if weights is not None:
        per_sample = per_sample * weights
    return per_sample.mean(), td.abs().mean(dim=0).detach()


def quantile_midpoints(
    n_quantiles: int, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """tau_hat_i = (2i - 1) / (2N), i = 1..N: the quantile levels QR-DQN's outputs estimate."""
    return (torch.arange(n_quantiles, device=device, dtype=dtype or torch.float32) + 0.5) / n_quantiles


def quantile_huber_loss(predicted: Tensor, target: Tensor, kappa: float = 1.0) -> Tensor:
    """Quantile Huber loss per sample (Dabney et al. 2018, eq. 10), summed over predicted quantiles.

    predicted: [B, N] quantiles at levels tau_hat; target: [B, M] samples of the target distribution (no gradient
    flows into it). With u_ij = target_j - predicted_i,
        rho_ij = |tau_hat_i - 1{u_ij < 0}| * L_kappa(u_ij) / kappa,   loss_b = sum_i mean_j rho_ij,
    L_kappa the Huber function. kappa must be > 0. Returns [B].
    """
    if predicted.dim() != 2 or target.dim() != 2 or predicted.shape[0] != target.shape[0]:
        raise ValueError(
            f"predicted {tuple(predicted.shape)} and target {tuple(target.shape)} must be [batch, N] and [batch, M]"
        )
    if not kappa > 0:
        raise ValueError(f"kappa={kappa} must be > 0 (the Huber threshold of the quantile loss)")
    tau = quantile_midpoints(predicted.shape[1], device=predicted.device, dtype=predicted.dtype)
    u = target.detach().unsqueeze(1) - predicted.unsqueeze(2)  # [B, N, M]
    huber = F.huber_loss(u, torch.zeros_like(u), reduction="none", delta=kappa)
    weight = (tau.view(1, -1, 1) - (u < 0).to(predicted.dtype)).abs()
    return (weight * huber / kappa).mean(dim=2).sum(dim=1)


def branching_quantile_loss(
    taken_quantiles: Sequence[Tensor],
    target_quantiles: Tensor,
    weights: Tensor | None = None,
    kappa: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Distributional TD loss averaged over branches, and new priorities.

    taken_quantiles[d]: [B, N]; target_quantiles: [B, M] shared target; weights: [B] importance weights.
    Returns (scalar loss, per-sample priority [B] = the branch-averaged quantile loss, detached).
    """
    _check_branches("taken_quantiles", taken_quantiles, 2)
    per_sample = torch.stack([quantile_huber_loss(z, target_quantiles, kappa) for z in taken_quantiles]).mean(
        0
    )
    priority = per_sample.detach()
    if weights is not None:
        per_sample = per_sample * weights
    return per_sample.mean(), priority


def gaussian_variance_nll(variance: Tensor, realized_return: Tensor) -> Tensor:
    """Gaussian negative log-likelihood of a zero-mean return under the predicted variance (constant dropped).

    variance: [B] > 0 (the risk head output); realized_return: [B]. Returns the mean of
    0.5 * (log variance + return^2 / variance); minimised at variance = E[return^2 | state].
    Unlike torch's gaussian_nll_loss it does not clamp the variance at 1e-6, which would flatten the loss for
    one-second returns whose variance is ~1e-8.
    """
    if variance.shape != realized_return.shape:
        raise ValueError(
            f"variance {tuple(variance.shape)} and realized_return {tuple(realized_return.shape)} must match"
        )
    return 0.5 * (variance.log() + realized_return.pow(2) / variance).mean()
