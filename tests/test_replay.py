"""Tests of agent/replay.py: sum tree vs a cumsum reference, stratified prioritized sampling statistics,
importance weights, n-step returns against hand computations, ring-buffer overwrite."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.losses import branching_double_dqn_target, branching_td_loss, taken_action_values
from agent.nets import BranchingDQNConfig, EncoderConfig, RiskAwareBranchingDQN
from agent.replay import NStepAccumulator, PrioritizedStratifiedReplay, ReplayConfig, SumTree

torch.set_num_threads(1)

STATE_SPEC = {"state": ((1,), np.float32)}


def chi_square_p_value(observed: np.ndarray, expected: np.ndarray) -> float:
    """Upper tail of the chi-square statistic with len-1 degrees of freedom (regularized upper gamma)."""
    statistic = float(((observed - expected) ** 2 / expected).sum())
    dof = len(observed) - 1
    return float(
        torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64), torch.tensor(statistic / 2))
    )


def step_obs(t: float) -> dict[str, np.ndarray]:
    return {"state": np.array([t], dtype=np.float32)}


def fill(buffer: PrioritizedStratifiedReplay, regimes: list[int]) -> None:
    """One one-step transition per regime entry; obs value = insertion order."""
    for t, regime in enumerate(regimes):
        buffer.add(step_obs(t), np.array([0, 0]), 0.0, step_obs(t + 1), False, False, regime)


def all_slots(buffer: PrioritizedStratifiedReplay) -> tuple[np.ndarray, np.ndarray]:
    indices = np.arange(len(buffer))
    return indices, buffer.slot_serials(indices)


# ---- sum tree -------------------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(1, 40),
    updates=st.lists(
        st.lists(st.tuples(st.integers(0, 39), st.integers(0, 9)), max_size=12), min_size=1, max_size=6
    ),
)
def test_sum_tree_matches_cumsum_reference(capacity, updates):
    tree = SumTree(capacity)
    reference = np.zeros(capacity)
    for batch in updates:
        batch = [(i % capacity, v) for i, v in batch]
        if not batch:
            continue
        indices = np.array([i for i, _ in batch])
        values = np.array([v for _, v in batch], dtype=float)
        tree.update(indices, values)
        for i, v in batch:  # sequential semantics: the last write of an index wins
            reference[i] = v
    np.testing.assert_array_equal(tree.leaves(), reference)
    assert tree.total == reference.sum()
    if reference.sum() > 0:
        # integer leaves keep the arithmetic exact; targets sit between integer prefix sums
        targets = np.arange(int(reference.sum())) + 0.5
        expected = np.searchsorted(np.cumsum(reference), targets, side="right")
        np.testing.assert_array_equal(tree.find_prefix_sum(targets), expected)
        assert (reference[tree.find_prefix_sum(targets)] > 0).all()


def test_sum_tree_rejects_bad_values():
    tree = SumTree(4)
    with pytest.raises(ValueError, match="finite"):
        tree.update(np.array([1]), np.array([np.nan]))
    with pytest.raises(IndexError):
        tree.update(np.array([4]), np.array([1.0]))
    with pytest.raises(ValueError, match="total is 0"):
        tree.find_prefix_sum(np.array([0.0]))


# ---- stratified prioritized sampling --------------------------------------------------------------------------------
def test_sampling_within_each_stratum_is_proportional_to_priority_power_alpha():
    config = ReplayConfig(capacity=64, n_step=1, alpha=0.7, n_strata=3, stratum_weights=(0.5, 0.3, 0.2))
    buffer = PrioritizedStratifiedReplay(config, STATE_SPEC, seed=123)
    rng = np.random.default_rng(7)
    regimes = list(rng.integers(0, 3, size=60))
    fill(buffer, regimes)
    indices, serials = all_slots(buffer)
    priorities = rng.uniform(0.05, 5.0, size=len(indices))
    assert buffer.update_priorities(indices, serials, priorities) == len(indices)

    counts = np.zeros(len(buffer))
    stratum_draws = np.zeros(3)
    for _ in range(500):
        batch = buffer.sample(40, beta=0.5)
        np.add.at(counts, batch.indices, 1)
        stratum_draws += np.bincount(batch.regimes, minlength=3)
    np.testing.assert_allclose(stratum_draws / stratum_draws.sum(), [0.5, 0.3, 0.2], atol=0.01)

    mass = (priorities + config.priority_eps) ** config.alpha
    regimes = np.asarray(regimes)
    for k in range(3):
        members = regimes == k
        observed = counts[members]
        expected = observed.sum() * mass[members] / mass[members].sum()
        # Draws are stratified over the prefix sum, so counts vary less than a multinomial's and the test is
        # conservative; the power check below shows it still separates right from wrong proportions.
        p_value = chi_square_p_value(observed, expected)
        assert p_value > 1e-3, f"stratum {k}: draws not proportional to priority^alpha (p={p_value:.2e})"
        # power check: the same counts clearly reject uniform sampling within the stratum
        uniform = np.full(members.sum(), observed.sum() / members.sum())
        assert chi_square_p_value(observed, uniform) < 1e-6


def test_stratum_quotas_are_exact_in_expectation_and_reach_small_strata():
    config = ReplayConfig(capacity=32, n_step=1, n_strata=3)
    buffer = PrioritizedStratifiedReplay(config, STATE_SPEC, seed=5)
    fill(buffer, [0] * 20 + [1] * 8 + [2] * 2)
    quotas = np.array([buffer.stratum_quotas(2) for _ in range(3000)])
    assert (quotas.sum(axis=1) == 2).all()
    assert quotas.max() == 1  # floor(2/3) = 0 plus at most one extra draw
    np.testing.assert_allclose(quotas.mean(axis=0), [2 / 3] * 3, atol=0.03)


def test_empty_stratum_share_goes_to_the_others():
    config = ReplayConfig(capacity=16, n_step=1, n_strata=3, stratum_weights=(0.2, 0.0, 0.8))
    buffer = PrioritizedStratifiedReplay(config, STATE_SPEC, seed=1)
    fill(buffer, [0, 0, 1, 1])  # stratum 2 holds nothing, stratum 1 has weight 0
    batch = buffer.sample(10, beta=1.0)
    assert (batch.regimes == 0).all()
    np.testing.assert_allclose(batch.probabilities, 0.5)


def test_importance_weights_match_hand_computation():
    config = ReplayConfig(
        capacity=8, n_step=1, alpha=1.0, priority_eps=1e-12, n_strata=2, stratum_weights=(3, 1)
    )
    buffer = PrioritizedStratifiedReplay(config, STATE_SPEC, seed=2)
    fill(buffer, [0, 0, 1, 1])
    indices, serials = all_slots(buffer)
    buffer.update_priorities(indices, serials, np.array([1.0, 3.0, 2.0, 2.0]))
    # P(i) = w_k * p_i / total_k with w = (0.75, 0.25)
    expected_p = np.array([0.75 * 1 / 4, 0.75 * 3 / 4, 0.25 * 2 / 4, 0.25 * 2 / 4])
    np.testing.assert_allclose(buffer.sampling_probabilities(indices), expected_p, rtol=1e-9)
    batch = buffer.sample(8, beta=0.5)  # quotas 6 and 2: stratum 1 is in every batch
    raw = (4 * expected_p[batch.indices]) ** -0.5
    np.testing.assert_allclose(batch.weights, raw / raw.max(), rtol=1e-9)
    np.testing.assert_allclose(batch.weights.max(), 1.0)


def test_beta_one_weights_undo_priorities_and_stratification():
    """With beta = 1, the importance-weighted mean of a per-item value over draws is the plain buffer mean."""
    config = ReplayConfig(capacity=64, n_step=1, alpha=1.0, n_strata=3)
    buffer = PrioritizedStratifiedReplay(config, STATE_SPEC, seed=3)
    regimes = [0] * 30 + [1] * 8 + [2] * 4  # equal quotas heavily oversample regime 2
    fill(buffer, regimes)
    rng = np.random.default_rng(3)
    values = np.asarray(regimes) * 10.0 + rng.normal(size=len(regimes))
    indices, serials = all_slots(buffer)
    buffer.update_priorities(
        indices, serials, values - values.min() + 0.5
    )  # priorities correlate with values
    weighted, unweighted = [], []
    for _ in range(600):
        batch = buffer.sample(32, beta=1.0)
        inverse = 1.0 / (len(buffer) * batch.probabilities)
        weighted.append(np.mean(values[batch.indices] * inverse))
        unweighted.append(np.mean(values[batch.indices]))
    assert np.mean(weighted) == pytest.approx(values.mean(), abs=0.25)
    assert np.mean(unweighted) - values.mean() > 3.0  # the correction is doing real work


def test_beta_annealing():
    config = ReplayConfig(beta_start=0.4, beta_end=1.0, beta_anneal_steps=100)
    assert config.beta_at(0) == pytest.approx(0.4)
    assert config.beta_at(50) == pytest.approx(0.7)
    assert config.beta_at(1000) == pytest.approx(1.0)


def test_new_transitions_get_the_max_priority_seen():
    config = ReplayConfig(capacity=8, n_step=1, alpha=1.0, priority_eps=1e-12, n_strata=1)
    buffer = PrioritizedStratifiedReplay(config, STATE_SPEC)
    fill(buffer, [0, 0])
    indices, serials = all_slots(buffer)
    buffer.update_priorities(indices, serials, np.array([7.0, 0.5]))
    fill(buffer, [0])
    assert buffer.stratum_priorities(0)[2] == pytest.approx(7.0)


def test_overwrite_moves_stratum_and_skips_stale_priority_updates():
    config = ReplayConfig(capacity=4, n_step=1, n_strata=2)
    buffer = PrioritizedStratifiedReplay(config, STATE_SPEC, seed=0)
    fill(buffer, [0, 0, 0, 0])
    old_indices, old_serials = all_slots(buffer)
    for t in range(2):  # overwrite slots 0 and 1 with regime-1 transitions
        buffer.add(step_obs(100 + t), np.array([1, 1]), 0.0, step_obs(101 + t), False, False, 1)
    assert len(buffer) == 4
    np.testing.assert_array_equal(buffer.stratum_sizes, [2, 2])
    np.testing.assert_array_equal(buffer.stratum_priorities(0)[:2], [0.0, 0.0])
    before = buffer.stratum_priorities(1).copy()
    applied = buffer.update_priorities(old_indices, old_serials, np.full(4, 50.0))
    assert applied == 2  # only slots 2 and 3 still hold the sampled transitions
    np.testing.assert_array_equal(buffer.stratum_priorities(1), before)
    batch = buffer.sample(64, beta=1.0)
    assert set(batch.obs["state"][batch.regimes == 1, 0]) <= {100.0, 101.0}


def test_save_load_round_trip(tmp_path):
    config = ReplayConfig(capacity=16, n_step=2, n_strata=2, stratum_weights=(0.25, 0.75))
    buffer = PrioritizedStratifiedReplay(
        config, STATE_SPEC, extra_spec={"realized_return": ((), np.float64)}, seed=4
    )
    for t in range(20):  # wraps the ring
        buffer.add(
            step_obs(t),
            np.array([t % 3, 1]),
            float(t),
            step_obs(t + 1),
            t == 9,
            False,
            t % 2,
            extras={"realized_return": np.float64(t / 100)},
        )
    with pytest.raises(ValueError, match="flush"):
        buffer.save(tmp_path / "replay.npz")
    buffer.flush()
    drawn = buffer.sample(8, beta=0.5)
    buffer.update_priorities(drawn.indices, drawn.serials, np.linspace(0.1, 3.0, 8))
    buffer.save(tmp_path / "replay.npz")
    restored = PrioritizedStratifiedReplay.load(tmp_path / "replay.npz")
    assert restored.config == config and len(restored) == len(buffer)
    np.testing.assert_array_equal(restored.stratum_sizes, buffer.stratum_sizes)
    for k in range(2):
        np.testing.assert_array_equal(restored.stratum_priorities(k), buffer.stratum_priorities(k))
    original, again = buffer.sample(12, beta=0.7), restored.sample(12, beta=0.7)  # same random state too
    for name in ("indices", "serials", "rewards", "bootstrap_discount", "weights", "actions"):
        np.testing.assert_array_equal(getattr(again, name), getattr(original, name))
    np.testing.assert_array_equal(again.extras["realized_return"], original.extras["realized_return"])
    # inserting continues the ring and the serial numbers where they stopped
    for replay in (buffer, restored):
        replay.add(
            step_obs(99), np.array([0, 0]), 0.0, step_obs(100), True, False, 0, {"realized_return": 0.0}
        )
    np.testing.assert_array_equal(restored.slot_serials(np.arange(16)), buffer.slot_serials(np.arange(16)))


def test_bad_inputs_are_named():
    buffer = PrioritizedStratifiedReplay(ReplayConfig(capacity=4, n_step=1, n_strata=2), STATE_SPEC)
    with pytest.raises(ValueError, match="regime=2"):
        buffer.add(step_obs(0), np.array([0, 0]), 0.0, step_obs(1), False, False, 2)
    with pytest.raises(ValueError, match=r"obs\['state'\]"):
        buffer.add({"state": np.zeros(3)}, np.array([0, 0]), 0.0, step_obs(1), False, False, 0)
    with pytest.raises(ValueError, match="extras has"):
        buffer.add(step_obs(0), np.array([0, 0]), 0.0, step_obs(1), False, False, 0, {"realized_return": 0.1})
    with pytest.raises(ValueError, match="action"):
        buffer.add(step_obs(0), np.array([0]), 0.0, step_obs(1), False, False, 0)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(4, beta=0.5)
    fill(buffer, [0])
    with pytest.raises(ValueError, match="NaN"):
        buffer.update_priorities(np.array([0]), np.array([0]), np.array([np.nan]))
    with pytest.raises(ValueError, match="stratum_weights"):
        ReplayConfig(n_strata=2, stratum_weights=(1.0,))


# ---- n-step returns ---------------------------------------------------------------------------------------------------
GAMMA = 0.9
REWARDS = [1.0, 2.0, 3.0, 4.0, 5.0]


def run_episode(
    accumulator: NStepAccumulator, env_id: int, terminated: bool, truncated: bool, start: int = 0
):
    emitted = []
    for t, reward in enumerate(REWARDS):
        last = t == len(REWARDS) - 1
        emitted += accumulator.push(
            env_id,
            step_obs(start + t),
            np.array([t, 0]),
            reward,
            step_obs(start + t + 1),
            terminated and last,
            truncated and last,
            regime=t % 2,
        )
    return emitted


def summary(transitions):
    return [
        (
            float(tr.obs["state"][0]),
            tr.reward,
            float(tr.next_obs["state"][0]),
            tr.bootstrap_discount,
            tr.n_steps,
        )
        for tr in transitions
    ]


def assert_transitions(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g == pytest.approx(e, rel=1e-12)


def test_n_step_returns_with_termination_inside_the_window():
    transitions = run_episode(NStepAccumulator(3, GAMMA, 1), 0, terminated=True, truncated=False)
    # (start obs, R, next obs, bootstrap discount, steps summed)
    assert_transitions(
        summary(transitions),
        [
            (0, 1 + 0.9 * 2 + 0.81 * 3, 3, 0.729, 3),
            (1, 2 + 0.9 * 3 + 0.81 * 4, 4, 0.729, 3),
            (2, 3 + 0.9 * 4 + 0.81 * 5, 5, 0.0, 3),  # the window reaches the terminal step: no bootstrap
            (3, 4 + 0.9 * 5, 5, 0.0, 2),
            (4, 5, 5, 0.0, 1),
        ],
    )
    assert [tr.terminated for tr in transitions] == [False, False, True, True, True]
    assert [int(tr.action[0]) for tr in transitions] == [0, 1, 2, 3, 4]
    assert [tr.regime for tr in transitions] == [0, 1, 0, 1, 0]  # regime of the first step


def test_n_step_returns_with_truncation_bootstrap_from_final_obs():
    transitions = run_episode(NStepAccumulator(3, GAMMA, 1), 0, terminated=False, truncated=True)
    assert_transitions(
        summary(transitions)[2:],
        [(2, 3 + 0.9 * 4 + 0.81 * 5, 5, 0.729, 3), (3, 4 + 0.9 * 5, 5, 0.81, 2), (4, 5, 5, 0.9, 1)],
    )
    assert not any(tr.terminated for tr in transitions)


def test_episode_shorter_than_n():
    accumulator = NStepAccumulator(5, GAMMA, 1)
    assert accumulator.push(0, step_obs(0), np.array([0, 0]), 1.0, step_obs(1), False, False, 0) == []
    transitions = accumulator.push(0, step_obs(1), np.array([0, 0]), 2.0, step_obs(2), True, False, 0)
    assert_transitions(summary(transitions), [(0, 1 + 0.9 * 2, 2, 0.0, 2), (1, 2, 2, 0.0, 1)])
    assert accumulator.pending(0) == 0


def test_envs_keep_separate_queues_and_flush_bootstraps():
    accumulator = NStepAccumulator(3, GAMMA, 2)
    emitted = {0: [], 1: []}
    for t, reward in enumerate(REWARDS[:4]):  # interleave two envs, env 1 with rewards x10
        emitted[0] += accumulator.push(
            0, step_obs(t), np.array([0, 0]), reward, step_obs(t + 1), False, False, 0
        )
        emitted[1] += accumulator.push(
            1, step_obs(50 + t), np.array([0, 0]), 10 * reward, step_obs(51 + t), False, False, 1
        )
    assert_transitions(summary(emitted[0]), [(0, 5.23, 3, 0.729, 3), (1, 7.94, 4, 0.729, 3)])
    assert_transitions(summary(emitted[1]), [(50, 52.3, 53, 0.729, 3), (51, 79.4, 54, 0.729, 3)])
    assert_transitions(summary(accumulator.flush(0)), [(2, 3 + 0.9 * 4, 4, 0.81, 2), (3, 4, 4, 0.9, 1)])
    assert accumulator.pending(1) == 2


def test_buffer_stores_n_step_transitions_of_a_vectorized_env():
    config = ReplayConfig(capacity=32, n_step=2, gamma=GAMMA, n_strata=2, n_envs=2)
    buffer = PrioritizedStratifiedReplay(config, STATE_SPEC, extra_spec={"realized_return": ((), np.float64)})
    stored = 0
    for t in range(3):
        stored += buffer.add_batch(
            obs={"state": np.array([[t], [10 + t]], dtype=np.float32)},
            actions=np.array([[t, 1], [t, 2]]),
            rewards=np.array([1.0, 2.0]),
            next_obs={"state": np.array([[t + 1], [11 + t]], dtype=np.float32)},
            terminated=np.array([False, t == 2]),
            truncated=np.array([False, False]),
            regimes=np.array([0, 1]),
            extras={"realized_return": np.array([0.01 * t, -0.01 * t])},
        )
    # env 0: starts 0, 1 complete (2 steps each); env 1 terminates at t=2: starts 10, 11, 12 all stored
    assert stored == 5 and len(buffer) == 5
    assert buffer.flush() == 1  # env 0's pending start 2
    batch = buffer.sample(64, beta=1.0)
    by_start = {float(s): i for i, s in enumerate(batch.obs["state"][:, 0])}
    expected = {  # start -> (return, discount, next obs, realized return of the first step)
        0.0: (1 + 0.9, 0.81, 2, 0.0),
        1.0: (1 + 0.9, 0.81, 3, 0.01),
        2.0: (1.0, 0.9, 3, 0.02),
        10.0: (2 + 1.8, 0.81, 12, 0.0),
        11.0: (2 + 1.8, 0.0, 13, -0.01),
        12.0: (2.0, 0.0, 13, -0.02),
    }
    assert set(by_start) == set(expected)
    for start, (ret, discount, next_obs, realized) in expected.items():
        i = by_start[start]
        assert batch.rewards[i] == pytest.approx(ret)
        assert batch.bootstrap_discount[i] == pytest.approx(discount)
        assert batch.next_obs["state"][i, 0] == next_obs
        assert batch.extras["realized_return"][i] == pytest.approx(realized)


# ---- the pieces together ------------------------------------------------------------------------------------------------
def test_sampled_batch_drives_a_double_dqn_update():
    torch.manual_seed(0)
    window, micro_f, state_f = 4, 3, 2
    spec = {
        "micro": ((window, micro_f), np.float32),
        "macro": ((0,), np.float32),
        "state": ((state_f,), np.float32),
    }
    config = ReplayConfig(capacity=128, n_step=3, gamma=0.95, n_strata=3)
    buffer = PrioritizedStratifiedReplay(config, spec, seed=0)
    rng = np.random.default_rng(0)

    def obs():
        return {
            "micro": rng.normal(size=(window, micro_f)).astype(np.float32),
            "macro": np.zeros(0, np.float32),
            "state": rng.normal(size=state_f).astype(np.float32),
        }

    current = obs()
    for t in range(100):
        following = obs()
        buffer.add(current, rng.integers(0, 3, size=2), rng.normal(), following, t % 25 == 24, False, t % 3)
        current = following
    net_config = BranchingDQNConfig(
        EncoderConfig(micro_f, 0, state_f, lstm_hidden=8, latent=16), n_price=3, n_size=3
    )
    online = RiskAwareBranchingDQN(net_config, device="cpu")
    target_net = RiskAwareBranchingDQN(net_config, device="cpu")
    target_net.load_state_dict(online.state_dict())

    batch = buffer.sample(32, beta=config.beta_at(0))
    tensors = lambda d: [torch.as_tensor(d[k]) for k in ("micro", "macro", "state")]  # noqa: E731
    with torch.no_grad():
        next_online, next_target = online(*tensors(batch.next_obs)), target_net(*tensors(batch.next_obs))
    y = branching_double_dqn_target(
        torch.as_tensor(batch.rewards, dtype=torch.float32),
        torch.as_tensor(batch.bootstrap_discount, dtype=torch.float32),
        [next_online.q_price, next_online.q_size],
        [next_target.q_price, next_target.q_size],
    )
    out = online(*tensors(batch.obs))
    taken = taken_action_values([out.q_price, out.q_size], torch.as_tensor(batch.actions))
    loss, priorities = branching_td_loss(taken, y, torch.as_tensor(batch.weights, dtype=torch.float32))
    loss.backward()
    assert math.isfinite(loss.item()) and online.price_advantage[0].weight.grad is not None
    assert buffer.update_priorities(batch.indices, batch.serials, priorities.numpy()) == len(batch.indices)
