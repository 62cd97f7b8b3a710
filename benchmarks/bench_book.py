"""Order-book rebuild + 100 ms top-20 sampling on the real USD-M BTCUSDT capture, against a naive baseline.

Timed, each the median of 3 runs in this process:
- rebuild: feature_store.book.rebuild_book (Binance sequencing, numba level updates, grid sampling) over the
  parsed depth stream;
- baseline: the same sequencing plan applied to a pure-Python dict book that re-sorts each side on every grid
  tick (checked to give the same grid books);
- load: the whole load_capture (gzip, JSON parsing of every line, all tables, QC), for scale.
Prints depth events/s, level updates/s, real-time factor and the ratio rebuild vs baseline.
Usage: python benchmarks/bench_book.py [capture.gz ...]   (default: ../shared/data/binance/usdm/btcusdt_20240808.gz,
else the 60 s project sample)
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

from feature_store.book import OP_APPLY, OP_INVALIDATE, OP_LOAD, DepthEvents, plan_sequence, rebuild_book
from feature_store.sources.binance_capture import load_capture

ROOT = Path(__file__).resolve().parents[1]
SHARED_CAPTURE = ROOT.parent / "shared" / "data" / "binance" / "usdm" / "btcusdt_20240808.gz"
SAMPLE_CAPTURE = ROOT / "data" / "binance_sample" / "usdm_btcusdt_20240808_first60s.gz"
GRID_US = 100_000
DEPTH = 20


def naive_rebuild(events: DepthEvents, rule: str) -> list[tuple]:
    """Dict book, Python loop per level, full sort of both sides on every grid tick."""
    kinds, indices, _ = plan_sequence(events, rule)
    offsets, side = events.level_offsets, events.level_side.tolist()
    price, qty, ts = events.level_price.tolist(), events.level_qty.tolist(), events.ts_us.tolist()
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    rows: list[tuple] = []
    valid, next_tick, last_t = False, 0, 0

    def sample(tick: int) -> None:
        top_b = sorted(bids.items(), reverse=True)[:DEPTH]
        top_a = sorted(asks.items())[:DEPTH]
        rows.append((tick, top_b, top_a))

    for kind, e in zip(kinds.tolist(), indices.tolist(), strict=True):
        if kind == OP_INVALIDATE:
            valid = False
            continue
        if kind == OP_LOAD:
            bids.clear()
            asks.clear()
            valid = False
        else:
            t = ts[e]
            if valid:
                while next_tick < t:
                    sample(next_tick)
                    next_tick += GRID_US
            else:
                valid, next_tick = True, -(-t // GRID_US) * GRID_US
            last_t = t
        for j in range(offsets[e], offsets[e + 1]):
            book = bids if side[j] > 0 else asks
            if qty[j] == 0.0:
                book.pop(price[j], None)
            else:
                book[price[j]] = qty[j]
        assert kind in (OP_LOAD, OP_APPLY)
    if valid:
        while next_tick <= last_t:
            sample(next_tick)
            next_tick += GRID_US
    return rows


def timed(fn, repeats: int = 3) -> tuple[float, float, object]:
    """Median wall seconds, median CPU seconds of this process (steadier on a shared machine), last result."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), out


def main(paths: list[Path]) -> None:
    load_s, load_cpu, loaded = timed(lambda: load_capture(paths, "usdm"))
    (symbol,) = loaded.depth
    events = loaded.depth[symbol]
    lines = loaded.qc.lines
    diffs = int((~events.is_snapshot).sum())
    levels = len(events.level_price)
    span_s = (events.ts_us.max() - events.ts_us.min()) / 1e6
    rebuild_book(events, "futures")  # compile (cached on disk after the first run)
    fast_s, fast_cpu, fast = timed(
        lambda: rebuild_book(events, "futures", grid_ms=GRID_US // 1000, depth=DEPTH)
    )
    naive_s, naive_cpu, naive = timed(lambda: naive_rebuild(events, "futures"))

    samples = fast.samples
    assert len(naive) == len(samples), (len(naive), len(samples))
    for r, (tick, top_b, top_a) in enumerate(naive):
        assert samples.ts_us[r] == tick
        nb, na = len(top_b), len(top_a)
        assert np.array_equal(samples.bid_px[r, :nb], [p for p, _ in top_b])
        assert np.array_equal(samples.bid_sz[r, :nb], [q for _, q in top_b])
        assert np.array_equal(samples.ask_px[r, :na], [p for p, _ in top_a])
        assert np.array_equal(samples.ask_sz[r, :na], [q for _, q in top_a])

    print(f"capture: {', '.join(str(p) for p in paths)}")
    print(
        f"  {lines:,} lines; {symbol}: {diffs:,} depth diffs, {levels:,} level updates, {span_s:.0f} s of market"
    )
    print(f"  grid rows: {len(samples):,} (100 ms, top {DEPTH}); identical between rebuild and baseline")
    print("median of 3:")
    print(
        f"  rebuild + sample : {fast_s * 1e3:8.1f} ms  {diffs / fast_s:12,.0f} diffs/s  "
        f"{levels / fast_s:12,.0f} levels/s  {span_s / fast_s:8,.0f}x real time  (CPU {fast_cpu * 1e3:.1f} ms)"
    )
    print(
        f"  naive dict book  : {naive_s * 1e3:8.1f} ms  {diffs / naive_s:12,.0f} diffs/s  "
        f"{levels / naive_s:12,.0f} levels/s  {span_s / naive_s:8,.0f}x real time  (CPU {naive_cpu * 1e3:.1f} ms)"
    )
    print(f"  speed-up vs naive: {naive_s / fast_s:.1f}x wall, {naive_cpu / fast_cpu:.1f}x CPU")
    print(
        f"  load_capture (parse all {lines:,} lines + all tables): {load_s:.2f} s, {lines / load_s:,.0f} lines/s"
        f"  (CPU {load_cpu:.2f} s)"
    )


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:]]
    if not args:
        args = [SHARED_CAPTURE if SHARED_CAPTURE.is_file() else SAMPLE_CAPTURE]
    main(args)
