"""Drift report cost: one Evidently DataDriftPreset report (44 columns, a snapshot split's shape: ~86k rows a day on
the 1 s grid) sampled to 2k / 5k rows, against the unsampled report as the baseline, in the same process.

Prints the median wall time of each (3 runs after a warm-up) and its ratio to the unsampled run, and whether
the planted drift (2 of 44 columns shifted by 0.3 std) is found at each sample size.
"""

from __future__ import annotations

import statistics
import tempfile
import time

import numpy as np
import pyarrow as pa

from feature_store.drift import drift_report

ROWS = 86_400
NUMERIC = 43
REPEATS = 3


def split(rng: np.random.Generator, shift: float) -> pa.Table:
    cols = {f"f{i:02d}": rng.standard_t(5, ROWS) + (shift if i < 2 else 0.0) for i in range(NUMERIC)}
    cols["regime"] = rng.choice(["bull", "bear", "range"], ROWS, p=[0.2, 0.2, 0.6])
    return pa.table(cols)


def timed(reference: pa.Table, current: pa.Table, sample_rows: int, out: str) -> tuple[float, list[str]]:
    times, drifted = [], []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        summary = drift_report(reference, current, out_dir=out, name="bench", sample_rows=sample_rows)
        times.append(time.perf_counter() - t0)
        drifted = summary.drifted_columns
    return statistics.median(times), drifted


def main() -> None:
    rng = np.random.default_rng(0)
    reference, current = split(rng, 0.0), split(rng, 0.3)
    with tempfile.TemporaryDirectory() as out:
        drift_report(reference, current, sample_rows=1_000)  # warm-up: imports Evidently
        base, base_drifted = timed(reference, current, ROWS, out)
        print(f"unsampled ({ROWS:,} rows per side): median {base:.2f} s, drifted {base_drifted}")
        for n in (2_000, 5_000):
            t, drifted = timed(reference, current, n, out)
            print(
                f"sample {n:>6,} rows: median {t:6.2f} s  ratio vs unsampled {base / t:5.1f}x  drifted {drifted}"
            )


if __name__ == "__main__":
    main()
