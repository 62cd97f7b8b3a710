"""Replay buffer throughput: insertion, stratified prioritized sampling and priority updates.

Prints medians of: insertion rate through the n-step path (env steps/s), one `sample(B)` + `update_priorities`
round on a full buffer, and the same sum-tree work (B prefix searches + B leaf updates) done by a textbook
per-item Python sum tree in this process (the baseline), with the ratio.
Usage: python benchmarks/bench_replay.py [capacity] [batch]
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from agent.replay import PrioritizedStratifiedReplay, ReplayConfig, SumTree


class LoopSumTree:
    """Baseline: the usual one-item-at-a-time sum tree (update walks up, search walks down, in Python)."""

    def __init__(self, capacity: int) -> None:
        self.base = 1 << max(0, (capacity - 1).bit_length())
        self.nodes = [0.0] * (2 * self.base)

    def update(self, index: int, value: float) -> None:
        node = index + self.base
        self.nodes[node] = value
        node //= 2
        while node >= 1:
            self.nodes[node] = self.nodes[2 * node] + self.nodes[2 * node + 1]
            node //= 2

    def find(self, target: float) -> int:
        node = 1
        while node < self.base:
            left = 2 * node
            if target < self.nodes[left]:
                node = left
            else:
                target -= self.nodes[left]
                node = left + 1
        return node - self.base


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(capacity: int = 1 << 17, batch: int = 256) -> None:
    rng = np.random.default_rng(0)
    window, micro_features, state_features = 30, 16, 24
    spec = {
        "micro": ((window, micro_features), np.float32),
        "macro": ((8,), np.float32),
        "state": ((state_features,), np.float32),
    }
    config = ReplayConfig(capacity=capacity, n_step=3, n_strata=3)
    buffer = PrioritizedStratifiedReplay(config, spec, seed=0)
    obs = {name: rng.normal(size=shape).astype(dtype) for name, (shape, dtype) in spec.items()}
    action = np.array([1, 2])

    t0 = time.perf_counter()
    for t in range(capacity):
        buffer.add(obs, action, 0.1, obs, t % 1000 == 999, False, t % 3)
    insert_s = time.perf_counter() - t0
    print(
        f"insert: {capacity} env steps in {insert_s:.2f} s = {capacity / insert_s:,.0f} steps/s (n-step + store)"
    )

    def sample_and_update() -> None:
        drawn = buffer.sample(batch, beta=0.5)
        buffer.update_priorities(drawn.indices, drawn.serials, rng.random(batch))

    replay_round = median_seconds(sample_and_update, 200)

    tree, loop_tree = SumTree(capacity), LoopSumTree(capacity)
    leaves = rng.random(capacity)
    tree.update(np.arange(capacity), leaves)
    for i, value in enumerate(leaves):
        loop_tree.update(i, float(value))

    def vector_tree_round() -> None:
        found = tree.find_prefix_sum(rng.random(batch) * tree.total)
        tree.update(found, rng.random(batch))

    def loop_tree_round() -> None:
        total = loop_tree.nodes[1]
        for target, value in zip(rng.random(batch) * total, rng.random(batch), strict=True):
            loop_tree.update(loop_tree.find(float(target)), float(value))

    vector_s = median_seconds(vector_tree_round, 200)
    loop_s = median_seconds(loop_tree_round, 50)
    print(
        f"sample({batch}) + update_priorities, 3 strata, full buffer of {capacity}: {replay_round * 1e3:.3f} ms"
    )
    print(f"sum tree only, {batch} searches + {batch} updates: vectorized {vector_s * 1e3:.3f} ms")
    print(
        f"  per-item Python baseline {loop_s * 1e3:.3f} ms, ratio baseline/vectorized = {loop_s / vector_s:.1f}x"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
