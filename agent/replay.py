"""Experience replay of the agent: n-step transitions in a prioritized buffer stratified by market regime.

Pieces, all numpy:
  SumTree                      binary sum tree over leaf priorities; vectorized batch updates and prefix-sum search.
  NStepAccumulator             per-env queues that turn one-step transitions into n-step ones at insertion time.
  PrioritizedStratifiedReplay  ring buffer + one SumTree per regime stratum; stratified prioritized sampling.

Sampling (Schaul et al. 2016, prioritized replay, made stratified): a batch of B draws gives stratum k an expected
quota B * w_k (w = the configured stratum weights, renormalized over non-empty strata; floor(B * w_k) draws plus one
more with probability equal to the fractional part, so the quota is exact in expectation). Within stratum k an item i
is drawn proportionally to p_i = (priority_i + eps)^alpha (stratified over the prefix sum, one uniform per segment).
The per-draw probability of item i is therefore P(i) = w_k * p_i / sum_{j in k} p_j, and the importance weight
    w_i = (N * P(i))^(-beta) / max_batch (N * P(j))^(-beta),     N = items stored,
corrects both the priorities and the regime stratification back to uniform replay as beta -> 1 (beta annealed
linearly, ReplayConfig.beta_at). Normalizing by the batch maximum (not the buffer-wide maximum) keeps weights <= 1.

N-step returns: for each env, the last n one-step transitions wait in a queue. A full queue emits
(s_t, a_t, R = sum_{k<n} gamma^k r_{t+k}, s_{t+n}, gamma^n). At episode end every pending start is emitted with the
rewards up to the end: `terminated` means the state after the last step has value 0 (bootstrap discount 0);
`truncated` (time limit, data end) means it still has value, so the transition bootstraps from the final observation
with discount gamma^k, k the number of steps summed. The caller passes the true final observation of the episode,
not the autoreset one (gymnasium vector envs put it in info). The regime and extras of an n-step transition are those
of its first step (e.g. the realized next-step return the risk head learns from).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FieldSpec = Mapping[str, tuple[tuple[int, ...], np.dtype | type]]
"""name -> (per-item shape, dtype), e.g. {"micro": ((60, 24), np.float32), "macro": ((12,), np.float32)}."""


@dataclass(frozen=True)
class ReplayConfig:
    """Buffer size, n-step return, priority exponents and regime strata.

    stratum_weights: share of each regime stratum in a batch (length n_strata); None = equal shares.
    """

    capacity: int = 100_000
    n_step: int = 3
    gamma: float = 0.99
    alpha: float = 0.6
    beta_start: float = 0.4
    beta_end: float = 1.0
    beta_anneal_steps: int = 100_000
    priority_eps: float = 1e-6
    n_strata: int = 3
    stratum_weights: tuple[float, ...] | None = None
    n_branches: int = 2
    n_envs: int = 1

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError(f"capacity={self.capacity} must be >= 1 transitions")
        if self.n_step < 1:
            raise ValueError(f"n_step={self.n_step} must be >= 1 (1 = one-step TD)")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma={self.gamma} must lie in [0, 1]")
        if self.alpha < 0:
            raise ValueError(f"alpha={self.alpha} must be >= 0 (0 = uniform within a stratum)")
        if not (0.0 <= self.beta_start <= 1.0 and 0.0 <= self.beta_end <= 1.0):
            raise ValueError(f"beta_start={self.beta_start}, beta_end={self.beta_end} must lie in [0, 1]")
        if self.beta_anneal_steps < 0:
            raise ValueError(f"beta_anneal_steps={self.beta_anneal_steps} must be >= 0")
        if not self.priority_eps > 0:
            raise ValueError(
                f"priority_eps={self.priority_eps} must be > 0 so no transition gets probability 0"
            )
        if self.n_strata < 1:
            raise ValueError(f"n_strata={self.n_strata} must be >= 1 (the number of regime labels)")
        if self.stratum_weights is not None:
            weights = np.asarray(self.stratum_weights, dtype=np.float64)
            if weights.shape != (self.n_strata,) or (weights < 0).any() or not weights.sum() > 0:
                raise ValueError(
                    f"stratum_weights={self.stratum_weights} must hold {self.n_strata} non-negative numbers with a "
                    "positive sum (one per regime id), or be None for equal shares"
                )
        if self.n_branches < 1 or self.n_envs < 1:
            raise ValueError(f"n_branches={self.n_branches} and n_envs={self.n_envs} must be >= 1")

    def beta_at(self, step: int) -> float:
        """Importance-sampling exponent at a training step: linear from beta_start to beta_end."""
        if self.beta_anneal_steps == 0:
            return self.beta_end
        fraction = min(max(step, 0) / self.beta_anneal_steps, 1.0)
        return self.beta_start + fraction * (self.beta_end - self.beta_start)


class SumTree:
    """Sum tree over `capacity` non-negative leaves, stored in one array (root at 1, children of i at 2i, 2i+1).

    Parents are recomputed from their children on every update (never incremented), so no rounding drift builds up.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity={capacity} must be >= 1")
        self.capacity = capacity
        self._leaf_base = 1 << max(0, (capacity - 1).bit_length())  # power of two >= capacity
        self._depth = self._leaf_base.bit_length() - 1
        self._nodes = np.zeros(2 * self._leaf_base, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self._nodes[1])

    def leaves(self, indices: np.ndarray | None = None) -> np.ndarray:
        """Leaf values at `indices` (all leaves when None)."""
        if indices is None:
            return self._nodes[self._leaf_base : self._leaf_base + self.capacity].copy()
        return self._nodes[self._leaf_base + np.asarray(indices, dtype=np.int64)]

    def update(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Set leaves[indices] = values (the last value wins for a repeated index) and refresh their ancestors."""
        indices = np.asarray(indices, dtype=np.int64).ravel()
        if indices.size == 1:  # the insertion path: a scalar walk up is cheaper than array bookkeeping
            self._update_one(int(indices[0]), float(np.asarray(values, dtype=np.float64).ravel()[0]))
            return
        values = np.broadcast_to(np.asarray(values, dtype=np.float64), indices.shape)
        if indices.size == 0:
            return
        if indices.min() < 0 or indices.max() >= self.capacity:
            raise IndexError(
                f"leaf indices must lie in [0, {self.capacity}); got {indices.min()}..{indices.max()}"
            )
        if not np.isfinite(values).all() or (values < 0).any():
            raise ValueError("sum-tree values must be finite and >= 0; check the priorities (NaN TD errors?)")
        # Keep the last occurrence of each index: unique over the reversed array returns first positions there.
        unique, first_in_reversed = np.unique(indices[::-1], return_index=True)
        positions = unique + self._leaf_base
        self._nodes[positions] = values[::-1][first_in_reversed]
        # Repeated parents are fine: every copy writes the same sum of the same (already final) children.
        parents = positions >> 1
        for _ in range(self._depth):
            self._nodes[parents] = self._nodes[2 * parents] + self._nodes[2 * parents + 1]
            parents >>= 1

    def _update_one(self, index: int, value: float) -> None:
        if not 0 <= index < self.capacity:
            raise IndexError(f"leaf index {index} must lie in [0, {self.capacity})")
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(
                f"sum-tree value {value} must be finite and >= 0; check the priorities (NaN TD errors?)"
            )
        nodes = self._nodes
        node = index + self._leaf_base
        nodes[node] = value
        node >>= 1
        while node >= 1:
            nodes[node] = nodes[2 * node] + nodes[2 * node + 1]
            node >>= 1

    def find_prefix_sum(self, targets: np.ndarray) -> np.ndarray:
        """For each target t in [0, total), the leaf i with cumsum(leaves)[i-1] <= t < cumsum(leaves)[i].

        Never returns a zero leaf while total > 0 (a branch with zero mass is never entered, which also guards
        against rounding at segment edges).
        """
        if not self.total > 0:
            raise ValueError("cannot sample from a sum tree whose total is 0; add items first")
        remaining = np.clip(np.asarray(targets, dtype=np.float64).ravel(), 0.0, None)
        node = np.ones(remaining.shape, dtype=np.int64)
        for _ in range(self._depth):
            left = 2 * node
            left_sum = self._nodes[left]
            go_right = ((remaining >= left_sum) & (self._nodes[left + 1] > 0)) | (left_sum <= 0)
            remaining = np.where(go_right, remaining - left_sum, remaining)
            node = np.where(go_right, left + 1, left)
        return node - self._leaf_base


@dataclass
class NStepTransition:
    """One transition as stored: `reward` is the discounted n-step sum, `bootstrap_discount` multiplies V(next_obs)."""

    obs: dict[str, np.ndarray]
    action: np.ndarray
    reward: float
    next_obs: dict[str, np.ndarray]
    bootstrap_discount: float
    n_steps: int
    terminated: bool
    regime: int
    extras: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class _OneStep:
    obs: dict[str, np.ndarray]
    action: np.ndarray
    reward: float
    next_obs: dict[str, np.ndarray]
    regime: int
    extras: dict[str, np.ndarray]


class NStepAccumulator:
    """Per-env queues of the last n one-step transitions; emits n-step transitions as they complete."""

    def __init__(self, n_step: int, gamma: float, n_envs: int) -> None:
        self.n_step = n_step
        self.gamma = gamma
        self._queues: list[deque[_OneStep]] = [deque() for _ in range(n_envs)]

    def pending(self, env_id: int) -> int:
        return len(self._queues[env_id])

    def _emit(self, queue: deque[_OneStep], terminated: bool) -> NStepTransition:
        first = queue[0]
        steps = len(queue)
        discounted = 0.0
        for k, one in enumerate(queue):
            discounted += self.gamma**k * float(one.reward)
        return NStepTransition(
            obs=first.obs,
            action=first.action,
            reward=discounted,
            next_obs=queue[-1].next_obs,
            bootstrap_discount=0.0 if terminated else self.gamma**steps,
            n_steps=steps,
            terminated=terminated,
            regime=first.regime,
            extras=first.extras,
        )

    def push(
        self,
        env_id: int,
        obs: Mapping[str, np.ndarray],
        action: np.ndarray,
        reward: float,
        next_obs: Mapping[str, np.ndarray],
        terminated: bool,
        truncated: bool,
        regime: int,
        extras: Mapping[str, np.ndarray] | None = None,
    ) -> list[NStepTransition]:
        """Add one env step; return the n-step transitions it completes (0 or 1, or all pending at episode end)."""
        if not 0 <= env_id < len(self._queues):
            raise IndexError(f"env_id={env_id} out of range; this accumulator has {len(self._queues)} envs")
        queue = self._queues[env_id]
        # Copies: vectorized envs reuse their output arrays between steps.
        queue.append(
            _OneStep(
                obs={k: np.array(v, copy=True) for k, v in obs.items()},
                action=np.array(action, dtype=np.int64, copy=True),
                reward=float(reward),
                next_obs={k: np.array(v, copy=True) for k, v in next_obs.items()},
                regime=int(regime),
                extras={k: np.array(v, copy=True) for k, v in (extras or {}).items()},
            )
        )
        emitted: list[NStepTransition] = []
        if terminated or truncated:
            while queue:
                emitted.append(self._emit(queue, terminated=bool(terminated)))
                queue.popleft()
        elif len(queue) == self.n_step:
            emitted.append(self._emit(queue, terminated=False))
            queue.popleft()
        return emitted

    def flush(self, env_id: int) -> list[NStepTransition]:
        """Emit every pending start of env_id as a shorter bootstrapped return (collection stopped mid-episode)."""
        queue = self._queues[env_id]
        emitted = []
        while queue:
            emitted.append(self._emit(queue, terminated=False))
            queue.popleft()
        return emitted


@dataclass
class ReplayBatch:
    """A sampled batch. B = batch size, D = action branches.

    obs / next_obs: name -> [B, *shape]; actions [B, D] int64; rewards [B] n-step discounted returns;
    bootstrap_discount [B] (gamma^k, 0 after a terminal state); n_steps [B] steps summed; terminated [B] bool;
    regimes [B]; extras: name -> [B, *shape]; weights [B] importance weights in (0, 1]; probabilities [B] per-draw
    sampling probabilities P(i); indices, serials [B]: pass both back to update_priorities.
    The TD target is rewards + bootstrap_discount * V(next_obs) (see agent/losses.py).
    """

    obs: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: dict[str, np.ndarray]
    bootstrap_discount: np.ndarray
    n_steps: np.ndarray
    terminated: np.ndarray
    regimes: np.ndarray
    extras: dict[str, np.ndarray]
    weights: np.ndarray
    probabilities: np.ndarray
    indices: np.ndarray
    serials: np.ndarray


class PrioritizedStratifiedReplay:
    """Ring buffer of n-step transitions with prioritized sampling stratified by regime id (see module docstring).

    obs_spec: the observation arrays stored for obs and next_obs; extra_spec: per-transition arrays of the first step
    (e.g. {"realized_return": ((), np.float64)}). Memory: about 2 * capacity * sum(obs item bytes).
    """

    def __init__(
        self,
        config: ReplayConfig,
        obs_spec: FieldSpec,
        extra_spec: FieldSpec | None = None,
        seed: int | None = None,
    ) -> None:
        if not obs_spec:
            raise ValueError(
                "obs_spec is empty; name at least one observation array, e.g. {'state': ((16,), float32)}"
            )
        self.config = config
        self.obs_spec = {name: (tuple(shape), np.dtype(dtype)) for name, (shape, dtype) in obs_spec.items()}
        self.extra_spec = {
            name: (tuple(shape), np.dtype(dtype)) for name, (shape, dtype) in (extra_spec or {}).items()
        }
        cap = config.capacity
        self._obs = {name: np.zeros((cap, *shape), dtype) for name, (shape, dtype) in self.obs_spec.items()}
        self._next_obs = {
            name: np.zeros((cap, *shape), dtype) for name, (shape, dtype) in self.obs_spec.items()
        }
        self._extras = {
            name: np.zeros((cap, *shape), dtype) for name, (shape, dtype) in self.extra_spec.items()
        }
        self._actions = np.zeros((cap, config.n_branches), dtype=np.int64)
        self._rewards = np.zeros(cap, dtype=np.float64)
        self._discounts = np.zeros(cap, dtype=np.float64)
        self._n_steps = np.zeros(cap, dtype=np.int64)
        self._terminated = np.zeros(cap, dtype=bool)
        self._regimes = np.full(cap, -1, dtype=np.int64)
        self._serials = np.full(cap, -1, dtype=np.int64)
        self._trees = [SumTree(cap) for _ in range(config.n_strata)]
        self._stratum_sizes = np.zeros(config.n_strata, dtype=np.int64)
        self._accumulator = NStepAccumulator(config.n_step, config.gamma, config.n_envs)
        self._cursor = 0
        self._size = 0
        self._inserted = 0
        self._max_priority = 1.0
        self._rng = np.random.default_rng(seed)
        weights = (
            np.ones(config.n_strata) if config.stratum_weights is None else np.asarray(config.stratum_weights)
        )
        self._stratum_weights = weights.astype(np.float64) / weights.sum()

    def __len__(self) -> int:
        return self._size

    def stored_observations(self) -> dict[str, np.ndarray]:
        """The first-step observations of the stored transitions (views of the filled slots, in slot order)."""
        return {name: arr[: self._size] for name, arr in self._obs.items()}

    # ---- checkpoints -------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the stored transitions, priorities and sampler state to one .npz file (for training checkpoints).

        Refuses while steps wait in the n-step queues: a resumed run restarts its envs, so call flush() first
        (pending starts are then stored as bootstrapped shorter returns, which is what a cut episode is).
        """
        pending = [self._accumulator.pending(env) for env in range(self.config.n_envs)]
        if any(pending):
            raise ValueError(
                f"{sum(pending)} env steps still wait in the n-step queues; call flush() before save()"
            )
        meta = {
            "config": dataclasses.asdict(self.config),
            "obs_spec": {name: [list(shape), dtype.str] for name, (shape, dtype) in self.obs_spec.items()},
            "extra_spec": {
                name: [list(shape), dtype.str] for name, (shape, dtype) in self.extra_spec.items()
            },
            "cursor": self._cursor,
            "size": self._size,
            "inserted": self._inserted,
            "max_priority": self._max_priority,
            "rng": self._rng.bit_generator.state,
        }
        arrays = {f"obs.{name}": arr for name, arr in self._obs.items()}
        arrays |= {f"next_obs.{name}": arr for name, arr in self._next_obs.items()}
        arrays |= {f"extras.{name}": arr for name, arr in self._extras.items()}
        arrays |= {f"tree.{k}": tree._nodes for k, tree in enumerate(self._trees)}
        arrays |= {
            "actions": self._actions,
            "rewards": self._rewards,
            "discounts": self._discounts,
            "n_steps": self._n_steps,
            "terminated": self._terminated,
            "regimes": self._regimes,
            "serials": self._serials,
            "stratum_sizes": self._stratum_sizes,
        }
        with open(path, "wb") as handle:
            np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> PrioritizedStratifiedReplay:
        """Rebuild a buffer written by save(): same config, specs, contents, priorities and random state."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            config_fields = meta["config"]
            if config_fields["stratum_weights"] is not None:
                config_fields["stratum_weights"] = tuple(config_fields["stratum_weights"])
            spec = lambda raw: {name: (tuple(shape), np.dtype(dtype)) for name, (shape, dtype) in raw.items()}  # noqa: E731
            buffer = cls(ReplayConfig(**config_fields), spec(meta["obs_spec"]), spec(meta["extra_spec"]))
            for name in buffer._obs:
                buffer._obs[name][:] = data[f"obs.{name}"]
                buffer._next_obs[name][:] = data[f"next_obs.{name}"]
            for name in buffer._extras:
                buffer._extras[name][:] = data[f"extras.{name}"]
            for k, tree in enumerate(buffer._trees):
                tree._nodes[:] = data[f"tree.{k}"]
            buffer._actions[:] = data["actions"]
            buffer._rewards[:] = data["rewards"]
            buffer._discounts[:] = data["discounts"]
            buffer._n_steps[:] = data["n_steps"]
            buffer._terminated[:] = data["terminated"]
            buffer._regimes[:] = data["regimes"]
            buffer._serials[:] = data["serials"]
            buffer._stratum_sizes[:] = data["stratum_sizes"]
        buffer._cursor, buffer._size = meta["cursor"], meta["size"]
        buffer._inserted, buffer._max_priority = meta["inserted"], meta["max_priority"]
        buffer._rng.bit_generator.state = meta["rng"]
        return buffer

    @property
    def stratum_sizes(self) -> np.ndarray:
        """Items stored per regime stratum, [n_strata]."""
        return self._stratum_sizes.copy()

    def slot_serials(self, indices: np.ndarray) -> np.ndarray:
        """Insertion serial numbers of the transitions now in these slots (-1: empty); pair them with indices."""
        return self._serials[np.asarray(indices, dtype=np.int64)]

    def stratum_priorities(self, stratum: int) -> np.ndarray:
        """Sampling mass p_i = (priority + eps)^alpha of every slot for one stratum ([capacity], 0 elsewhere)."""
        return self._trees[stratum].leaves()

    # ---- insertion -------------------------------------------------------------------------------------------
    def add(
        self,
        obs: Mapping[str, np.ndarray],
        action: np.ndarray,
        reward: float,
        next_obs: Mapping[str, np.ndarray],
        terminated: bool,
        truncated: bool,
        regime: int,
        extras: Mapping[str, np.ndarray] | None = None,
        env_id: int = 0,
    ) -> int:
        """Add one env step of env `env_id`; returns how many n-step transitions it completed and stored."""
        self._check_item(obs, action, regime, extras)
        emitted = self._accumulator.push(
            env_id, obs, action, reward, next_obs, terminated, truncated, regime, extras
        )
        for transition in emitted:
            self._store(transition)
        return len(emitted)

    def add_batch(
        self,
        obs: Mapping[str, np.ndarray],
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: Mapping[str, np.ndarray],
        terminated: np.ndarray,
        truncated: np.ndarray,
        regimes: np.ndarray,
        extras: Mapping[str, np.ndarray] | None = None,
    ) -> int:
        """Add one step of a vectorized env: every array has a leading [n_envs] axis. Returns transitions stored."""
        n_envs = self.config.n_envs
        if np.shape(rewards) != (n_envs,):
            raise ValueError(
                f"rewards has shape {np.shape(rewards)}, expected ({n_envs},) = ReplayConfig.n_envs"
            )
        stored = 0
        for env_id in range(n_envs):
            stored += self.add(
                {k: v[env_id] for k, v in obs.items()},
                actions[env_id],
                float(rewards[env_id]),
                {k: v[env_id] for k, v in next_obs.items()},
                bool(terminated[env_id]),
                bool(truncated[env_id]),
                int(regimes[env_id]),
                {k: v[env_id] for k, v in (extras or {}).items()},
                env_id=env_id,
            )
        return stored

    def flush(self) -> int:
        """Store every pending partial n-step transition of every env (bootstrapped); returns how many."""
        stored = 0
        for env_id in range(self.config.n_envs):
            for transition in self._accumulator.flush(env_id):
                self._store(transition)
                stored += 1
        return stored

    def _check_item(
        self,
        obs: Mapping[str, np.ndarray],
        action: np.ndarray,
        regime: int,
        extras: Mapping[str, np.ndarray] | None,
    ) -> None:
        extras = extras or {}
        if set(obs) != set(self.obs_spec):
            raise ValueError(
                f"obs has arrays {sorted(obs)}, the buffer was built for {sorted(self.obs_spec)}"
            )
        for name, (shape, _) in self.obs_spec.items():
            if np.shape(obs[name]) != shape:
                raise ValueError(f"obs[{name!r}] has shape {np.shape(obs[name])}, obs_spec says {shape}")
        if set(extras) != set(self.extra_spec):
            raise ValueError(
                f"extras has {sorted(extras)}, the buffer was built for {sorted(self.extra_spec)}"
            )
        for name, (shape, _) in self.extra_spec.items():
            if np.shape(extras[name]) != shape:
                raise ValueError(
                    f"extras[{name!r}] has shape {np.shape(extras[name])}, extra_spec says {shape}"
                )
        if np.shape(action) != (self.config.n_branches,):
            raise ValueError(
                f"action has shape {np.shape(action)}, expected ({self.config.n_branches},): one index per branch"
            )
        if not 0 <= int(regime) < self.config.n_strata:
            raise ValueError(
                f"regime={regime} is outside [0, {self.config.n_strata}); map regime labels to ids 0..n_strata-1"
            )

    def _store(self, transition: NStepTransition) -> None:
        slot = self._cursor
        old_regime = self._regimes[slot]
        if old_regime >= 0:
            self._trees[old_regime].update(np.array([slot]), np.array([0.0]))
            self._stratum_sizes[old_regime] -= 1
        for name in self.obs_spec:
            self._obs[name][slot] = transition.obs[name]
            self._next_obs[name][slot] = transition.next_obs[name]
        for name in self.extra_spec:
            self._extras[name][slot] = transition.extras[name]
        self._actions[slot] = transition.action
        self._rewards[slot] = transition.reward
        self._discounts[slot] = transition.bootstrap_discount
        self._n_steps[slot] = transition.n_steps
        self._terminated[slot] = transition.terminated
        self._regimes[slot] = transition.regime
        self._serials[slot] = self._inserted
        # New transitions get the largest priority seen so far, so each is replayed at least about once.
        mass = (self._max_priority + self.config.priority_eps) ** self.config.alpha
        self._trees[transition.regime].update(np.array([slot]), np.array([mass]))
        self._stratum_sizes[transition.regime] += 1
        self._inserted += 1
        self._cursor = (slot + 1) % self.config.capacity
        self._size = min(self._size + 1, self.config.capacity)

    # ---- sampling ----------------------------------------------------------------------------------------------
    def stratum_quotas(self, batch_size: int) -> np.ndarray:
        """Draws per stratum for one batch: floor(B * w_k) plus one with probability frac(B * w_k) (systematic)."""
        weights = np.where(self._stratum_sizes > 0, self._stratum_weights, 0.0)
        if not weights.sum() > 0:
            raise ValueError(
                f"no stratum with a positive weight holds data (sizes {self._stratum_sizes.tolist()}, weights "
                f"{self._stratum_weights.tolist()}); add transitions of a weighted regime first"
            )
        expected = batch_size * weights / weights.sum()
        quotas = np.floor(expected).astype(np.int64)
        fractions = expected - quotas
        extra_draws = int(round(fractions.sum()))
        if extra_draws > 0:
            # Systematic sampling: points u, u+1, ... over the cumulated fractions; each stratum (fraction < 1)
            # is hit at most once and with probability exactly its fraction.
            edges = np.cumsum(fractions)
            points = self._rng.random() + np.arange(extra_draws)
            hits = np.searchsorted(edges, points, side="right")
            # A point past the last edge by rounding belongs to the last stratum that has a fraction at all.
            last_with_fraction = int(np.flatnonzero(fractions > 0)[-1])
            quotas += np.bincount(np.minimum(hits, last_with_fraction), minlength=len(quotas))
        return quotas

    def sampling_probabilities(self, indices: np.ndarray) -> np.ndarray:
        """Per-draw probability P(i) = w_k * p_i / total_k of stored items (k = their stratum)."""
        indices = np.asarray(indices, dtype=np.int64)
        weights = np.where(self._stratum_sizes > 0, self._stratum_weights, 0.0)
        weights = weights / weights.sum()
        strata = self._regimes[indices]
        totals = np.array([tree.total for tree in self._trees])
        masses = np.empty(indices.shape, dtype=np.float64)
        for k, tree in enumerate(self._trees):
            in_k = strata == k
            masses[in_k] = tree.leaves(indices[in_k])
        return weights[strata] * masses / totals[strata]

    def sample(self, batch_size: int, beta: float) -> ReplayBatch:
        """Draw a stratified prioritized batch with importance weights (beta: from ReplayConfig.beta_at(step))."""
        if self._size == 0:
            raise ValueError("the replay buffer is empty; add transitions (and flush) before sampling")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        quotas = self.stratum_quotas(batch_size)
        chosen = []
        for k, quota in enumerate(quotas):
            if quota == 0:
                continue
            tree = self._trees[k]
            # One uniform draw per equal segment of the stratum's prefix sum (lower variance than iid draws).
            targets = (np.arange(quota) + self._rng.random(quota)) * (tree.total / quota)
            chosen.append(tree.find_prefix_sum(targets))
        indices = np.concatenate(chosen)
        probabilities = self.sampling_probabilities(indices)
        raw = (self._size * probabilities) ** (-beta)
        weights = raw / raw.max()
        return ReplayBatch(
            obs={name: arr[indices] for name, arr in self._obs.items()},
            actions=self._actions[indices],
            rewards=self._rewards[indices],
            next_obs={name: arr[indices] for name, arr in self._next_obs.items()},
            bootstrap_discount=self._discounts[indices],
            n_steps=self._n_steps[indices],
            terminated=self._terminated[indices],
            regimes=self._regimes[indices],
            extras={name: arr[indices] for name, arr in self._extras.items()},
            weights=weights,
            probabilities=probabilities,
            indices=indices,
            serials=self._serials[indices],
        )

    def update_priorities(self, indices: np.ndarray, serials: np.ndarray, priorities: np.ndarray) -> int:
        """Set new priorities (e.g. |TD error|) of sampled items; returns how many were applied.

        Items whose slot was overwritten since sampling (serial changed) are skipped, so a new transition does not
        inherit an old one's priority.
        """
        indices = np.asarray(indices, dtype=np.int64)
        priorities = np.asarray(priorities, dtype=np.float64)
        if indices.shape != priorities.shape or np.shape(serials) != indices.shape:
            raise ValueError(
                f"indices {indices.shape}, serials {np.shape(serials)} and priorities {priorities.shape} must match"
            )
        if not np.isfinite(priorities).all() or (priorities < 0).any():
            raise ValueError("priorities must be finite and >= 0; a NaN/inf TD error means the loss diverged")
        current = self._serials[indices] == np.asarray(serials)
        masses = (priorities + self.config.priority_eps) ** self.config.alpha
        strata = self._regimes[indices]
        for k, tree in enumerate(self._trees):
            selected = current & (strata == k)
            tree.update(indices[selected], masses[selected])
        if current.any():
            self._max_priority = max(self._max_priority, float(priorities[current].max()))
        return int(current.sum())
