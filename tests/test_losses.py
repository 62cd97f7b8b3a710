"""Tests of agent/losses.py against hand computations and an independent loop-based reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agent.losses import (
    branching_double_dqn_quantile_target,
    branching_double_dqn_target,
    branching_quantile_loss,
    branching_td_loss,
    gaussian_variance_nll,
    quantile_huber_loss,
    quantile_midpoints,
    taken_action_values,
)

torch.set_num_threads(1)


def test_double_dqn_target_matches_hand_computation():
    rewards = torch.tensor([1.0, 2.0])
    discount = torch.tensor([0.9, 0.0])  # second transition ended in a terminal state
    # Online net picks price action 1 and size action 1 for sample 0; the target net's own argmax differs
    # (price 0, size 1), so plain DQN (max of the target net) would give another number.
    online_price = torch.tensor([[1.0, 5.0, 2.0], [0.0, 0.0, 9.0]])
    target_price = torch.tensor([[10.0, 3.0, 7.0], [1.0, 1.0, 1.0]])
    online_size = torch.tensor([[0.0, 4.0], [3.0, 1.0]])
    target_size = torch.tensor([[2.0, 8.0], [5.0, 5.0]])
    y = branching_double_dqn_target(
        rewards, discount, [online_price, online_size], [target_price, target_size]
    )
    # sample 0: (Q^-_price(s', 1) + Q^-_size(s', 1)) / 2 = (3 + 8) / 2 = 5.5 -> 1 + 0.9 * 5.5
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 5.5, 2.0]))
    plain_dqn = rewards + discount * (target_price.max(-1).values + target_size.max(-1).values) / 2
    assert not torch.allclose(y, plain_dqn)


def test_double_dqn_target_carries_no_gradient():
    online = [torch.randn(4, 3, requires_grad=True)]
    target = [torch.randn(4, 3, requires_grad=True)]
    y = branching_double_dqn_target(torch.zeros(4), torch.ones(4), online, target)
    assert not y.requires_grad


def test_quantile_target_matches_hand_computation():
    rewards = torch.tensor([0.5])
    discount = torch.tensor([0.5])
    online_price = torch.tensor([[0.0, 1.0]])  # greedy price action 1
    online_size = torch.tensor([[2.0, 0.0, 1.0]])  # greedy size action 0
    target_price = torch.tensor([[[9.0, 9.0], [1.0, 3.0]]])  # [1, 2 actions, 2 quantiles]
    target_size = torch.tensor([[[5.0, 7.0], [0.0, 0.0], [9.0, 9.0]]])
    y = branching_double_dqn_quantile_target(
        rewards, discount, [online_price, online_size], [target_price, target_size]
    )
    # branch-averaged quantiles: ((1 + 5) / 2, (3 + 7) / 2) = (3, 5) -> 0.5 + 0.5 * (3, 5)
    torch.testing.assert_close(y, torch.tensor([[2.0, 3.0]]))


def test_taken_action_values_picks_per_branch():
    price = torch.arange(6.0).view(2, 3)
    size_quantiles = torch.arange(8.0).view(2, 2, 2)
    actions = torch.tensor([[2, 1], [0, 0]])
    taken_price, taken_size = taken_action_values([price, size_quantiles], actions)
    torch.testing.assert_close(taken_price, torch.tensor([2.0, 3.0]))
    torch.testing.assert_close(taken_size, torch.tensor([[2.0, 3.0], [4.0, 5.0]]))
    with pytest.raises(ValueError, match="one index per branch"):
        taken_action_values([price, size_quantiles], actions[:, :1])


def test_branching_td_loss_hand_computation():
    target = torch.tensor([1.0, 0.0])
    q_price = torch.tensor([0.5, 3.0])  # errors 0.5, -3
    q_size = torch.tensor([1.0, -1.0])  # errors 0, 1
    weights = torch.tensor([1.0, 0.5])
    loss, priority = branching_td_loss([q_price, q_size], target, weights, huber_delta=1.0)
    huber = lambda e: 0.5 * e**2 if abs(e) <= 1 else abs(e) - 0.5  # noqa: E731
    per_sample = [(huber(0.5) + huber(0.0)) / 2 * 1.0, (huber(-3.0) + huber(1.0)) / 2 * 0.5]
    assert loss.item() == pytest.approx(np.mean(per_sample))
    torch.testing.assert_close(priority, torch.tensor([0.25, 2.0]))


def reference_quantile_huber(predicted: np.ndarray, target: np.ndarray, kappa: float) -> np.ndarray:
    """Dabney et al. 2018, eq. 10, written as explicit loops."""
    batch, n = predicted.shape
    out = np.zeros(batch)
    for b in range(batch):
        for i in range(n):
            tau = (2 * i + 1) / (2 * n)
            acc = 0.0
            for target_j in target[b]:
                u = target_j - predicted[b, i]
                huber = 0.5 * u * u if abs(u) <= kappa else kappa * (abs(u) - 0.5 * kappa)
                acc += abs(tau - (1.0 if u < 0 else 0.0)) * huber / kappa
            out[b] += acc / target.shape[1]
    return out


@pytest.mark.parametrize("kappa", [0.1, 1.0, 3.0])
def test_quantile_huber_loss_matches_reference(kappa):
    rng = np.random.default_rng(int(kappa * 10))
    predicted = rng.normal(scale=2.0, size=(5, 7))
    target = rng.normal(scale=2.0, size=(5, 9))
    got = quantile_huber_loss(torch.as_tensor(predicted), torch.as_tensor(target), kappa=kappa)
    np.testing.assert_allclose(got.numpy(), reference_quantile_huber(predicted, target, kappa), rtol=1e-10)


def test_quantile_huber_minimiser_is_the_quantiles():
    """Fitting N quantiles to samples with a small kappa recovers the sample quantiles at tau_hat."""
    torch.manual_seed(0)
    samples = torch.randn(1, 4000, dtype=torch.float64) * 2.0 + 1.0
    predicted = torch.zeros(1, 5, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([predicted], lr=0.05)
    for _ in range(400):
        loss = quantile_huber_loss(predicted, samples, kappa=0.01).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    expected = torch.quantile(samples[0], quantile_midpoints(5, dtype=torch.float64))
    torch.testing.assert_close(predicted.detach()[0], expected, atol=0.05, rtol=0)


def test_branching_quantile_loss_averages_branches():
    rng = np.random.default_rng(1)
    z_price, z_size, target = (torch.as_tensor(rng.normal(size=(3, 4))) for _ in range(3))
    weights = torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64)
    loss, priority = branching_quantile_loss([z_price, z_size], target, weights)
    per_sample = (quantile_huber_loss(z_price, target) + quantile_huber_loss(z_size, target)) / 2
    torch.testing.assert_close(priority, per_sample)
    torch.testing.assert_close(loss, (per_sample * weights).mean())


def test_quantile_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="kappa"):
        quantile_huber_loss(torch.zeros(2, 3), torch.zeros(2, 3), kappa=0.0)
    with pytest.raises(ValueError, match="batch"):
        quantile_huber_loss(torch.zeros(2, 3), torch.zeros(3, 3))


def test_gaussian_variance_nll_is_minimised_at_mean_square():
    returns = torch.tensor([1e-4, -3e-4, 2e-4, 0.0], dtype=torch.float64)
    mean_square = returns.pow(2).mean()
    grid = mean_square * torch.tensor([0.5, 0.9, 1.0, 1.1, 2.0], dtype=torch.float64)
    losses = torch.stack([gaussian_variance_nll(v.expand(4), returns) for v in grid])
    assert losses.argmin().item() == 2
    # and the value is the Gaussian NLL up to the constant 0.5 * log(2 pi)
    v = torch.full((4,), 2e-8, dtype=torch.float64)
    reference = torch.nn.functional.gaussian_nll_loss(
        torch.zeros(4, dtype=torch.float64), returns, v, eps=1e-30, reduction="mean"
    )
    torch.testing.assert_close(gaussian_variance_nll(v, returns), reference)
