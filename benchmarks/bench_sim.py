"""Replay engine speed against hftbacktest 2.4.4, in the same process, on the USD-M BTCUSDT capture.

The workload (issue 5): a market maker re-quoting one post-only bid and one ask at the touch every 100 ms, 10 ms
order entry and ack latency, the power (n=3) queue model, recorded feed latency, over the 344 s capture.
Timed, medians of 5 warm runs:
- ours: agent.sim quoter.run_touch_quoter (compiled loop: matching, queue, latency, margin) on the 100 ms top-20
  snapshot grid + every trade (feature_store's exact book rebuild);
- hftbacktest on the same snapshot grid and trades (agent.sim.crosscheck.hbt_events): the same market;
- hftbacktest on its own conversion of the full depth stream (hftbacktest.data.utils.binancefutures.convert,
  every diff): the workload behind the design doc's 47 ms;
- cold start of ours in a fresh process (import + cached-compilation load + first replay), market from .npz;
- env steps/s: the Python step API (advance_to + the same quoting decisions in Python) at 100 ms and 1 s steps,
  and hftbacktest's backtest object driven from Python with the same decisions (its elapse/depth/orders calls;
  ours also returns fills, order updates and the account on every step).
Prints market-seconds per wall-second, the ratios, and the extrapolated time for a year of 100 ms data.
Usage: python benchmarks/bench_sim.py [capture.gz]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from agent.sim import (
    BUY,
    SELL,
    LatencyConfig,
    LatencyModel,
    MarginConfig,
    MarketData,
    QueueConfig,
    SimConfig,
    Simulator,
)
from agent.sim.crosscheck import build_hbt, hbt_events, match_fills, run_hbt_touch_quoter
from agent.sim.quoter import run_touch_quoter
from feature_store.sources.binance_capture import load_capture

ROOT = Path(__file__).resolve().parents[1]
CAPTURE = ROOT.parent / "shared" / "data" / "binance" / "usdm" / "btcusdt_20240808.gz"
INTERVAL = 100_000
RUNS = 5
CONFIG = SimConfig(
    latency=LatencyConfig(entry=LatencyModel(base_us=10_000), ack=LatencyModel(base_us=10_000)),
    queue=QueueConfig(model="power", n=3.0, partial_fills=False),
    margin=MarginConfig(initial_cash=1e9),
)
YEAR_S = 365 * 86_400

COLD = """
import time, sys
t0 = time.perf_counter()
import numpy as np
from agent.sim import MarketData, SimConfig, Simulator, LatencyConfig, LatencyModel, QueueConfig, MarginConfig
from agent.sim.quoter import run_touch_quoter
t1 = time.perf_counter()
z = np.load(sys.argv[1])
m = MarketData.from_arrays("BTCUSDT", **{k: z[k] for k in z.files})
t2 = time.perf_counter()
cfg = SimConfig(latency=LatencyConfig(entry=LatencyModel(base_us=10_000), ack=LatencyModel(base_us=10_000)),
                queue=QueueConfig(model="power", n=3.0, partial_fills=False), margin=MarginConfig(initial_cash=1e9))
sim = Simulator(); sim.reset(m, cfg)
r = run_touch_quoter(sim, 100_000, 0.001, start_us=m.start_us + 1_000_037)
t3 = time.perf_counter()
print(t1 - t0, t3 - t2, len(r.fills))
"""


# numba's own floor: importing numba and loading one trivial cached function in a fresh process
FLOOR = """
import time
t0 = time.perf_counter()
import numba
from trivial_cached import add_one
add_one(1)
print(time.perf_counter() - t0)
"""
TRIVIAL = "from numba import njit\n\n\n@njit(cache=True)\ndef add_one(x):\n    return x + 1\n"


def numba_floor(tmp: Path) -> float:
    (tmp / "trivial_cached.py").write_text(TRIVIAL)
    runs = []
    for _ in range(4):  # the first run compiles and writes the cache
        out = subprocess.run(
            [sys.executable, "-c", FLOOR], capture_output=True, text=True, check=True, cwd=tmp
        )
        runs.append(float(out.stdout.split()[0]))
    return statistics.median(runs[1:])


def ours_once(market: MarketData, start: int):
    sim = Simulator()
    sim.reset(market, CONFIG)
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_touch_quoter(sim, INTERVAL, market.lot_size, start_us=start)
    return time.perf_counter() - t0, res, time.process_time() - c0


def python_steps(market: MarketData, step_us: int, start: int) -> tuple[int, float, int]:
    """The step API driven from Python: what a gymnasium env pays per step (no observation building)."""
    sim = Simulator()
    sim.reset(market, CONFIG)
    sim.advance_to(start)
    ids = {BUY: None, SELL: None}
    steps = fills = 0
    t0 = time.perf_counter()
    t = start
    while t <= market.end_us:
        res = sim.advance_to(t)
        fills += res.fills.shape[0]
        book = sim.observed_book()
        if book is not None:
            for side, target in ((BUY, book[0][0]), (SELL, book[2][0])):
                oid = ids[side]
                if oid is not None:
                    o = sim.order(oid)
                    if o["status"] in ("filled", "canceled", "rejected"):
                        oid = ids[side] = None
                    elif (
                        o["status"] == "live"
                        and abs(o["price"] - target) > 1e-9
                        and not o["cancel_in_flight"]
                    ):
                        sim.cancel(oid)
                if oid is None:
                    ids[side] = sim.submit(side, market.lot_size, float(target), post_only=True)
        steps += 1
        t += step_us
    return steps, time.perf_counter() - t0, fills


def hbt_python_steps(events: np.ndarray, sim: Simulator, step_us: int, start: int) -> tuple[int, float]:
    """The same decisions driven from Python through hftbacktest's backtest object."""
    from hftbacktest import CANCELED, EXPIRED, FILLED, GTX, LIMIT, NEW, NONE

    market = sim.market
    hbt = build_hbt(events, sim, queue="power", n=3.0)
    hbt.elapse(start - int(events["exch_ts"][0]))
    ids = [0, 0]
    next_id = 1
    steps = 0
    t0 = time.perf_counter()
    t = start
    while t <= market.end_us:
        depth = hbt.depth(0)
        orders = hbt.orders(0)
        for s, target in ((0, depth.best_bid_tick), (1, depth.best_ask_tick)):
            if ids[s]:
                o = orders.get(ids[s])
                st = o.status
                if st in (FILLED, CANCELED, EXPIRED):
                    ids[s] = 0
                elif st == NEW and o.req == NONE and o.price_tick != target:
                    hbt.cancel(0, ids[s], False)
            if not ids[s]:
                px = target * market.tick_size
                if s == 0:
                    hbt.submit_buy_order(0, next_id, px, market.lot_size, GTX, LIMIT, False)
                else:
                    hbt.submit_sell_order(0, next_id, px, market.lot_size, GTX, LIMIT, False)
                ids[s] = next_id
                next_id += 1
        steps += 1
        t += step_us
        if t <= market.end_us:
            hbt.elapse(step_us)
    wall = time.perf_counter() - t0
    hbt.close()
    return steps, wall


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else CAPTURE
    print(f"capture {path}")
    t0 = time.perf_counter()
    market = MarketData.from_tables(load_capture([path], "usdm", symbol="BTCUSDT").tables, symbol="BTCUSDT")
    span = market.duration_s
    print(
        f"loaded in {time.perf_counter() - t0:.1f} s: {market.book_ts.shape[0]} snapshots, "
        f"{market.trade_ts.shape[0]} trades, {span:.1f} s of market"
    )
    start = market.start_us + 1_000_037
    replay_s = (market.end_us - start) / 1e6

    t0 = time.perf_counter()
    ours_once(market, start)
    first_ours = time.perf_counter() - t0
    ours_runs = [ours_once(market, start) for _ in range(RUNS)]
    ours_t = statistics.median(r[0] for r in ours_runs)
    ours_cpu = statistics.median(r[2] for r in ours_runs)
    ours_res = ours_runs[-1][1]

    sim = Simulator()
    sim.reset(market, CONFIG)
    events = hbt_events(sim)
    first_ev = int(events["exch_ts"][0])

    def hbt_grid():
        hbt = build_hbt(events, sim, queue="power", n=3.0)
        return run_hbt_touch_quoter(hbt, first_ev, start, market.end_us, INTERVAL, market.lot_size)

    t0 = time.perf_counter()
    hbt_grid()
    first_hbt = time.perf_counter() - t0
    grid_runs = [hbt_grid() for _ in range(RUNS)]
    hbt_grid_t = statistics.median(r.seconds for r in grid_runs)
    hbt_grid_cpu = statistics.median(r.cpu_seconds for r in grid_runs)
    match = match_fills(ours_res.fills, grid_runs[-1].fills, market.tick_size)

    from hftbacktest.data.utils.binancefutures import convert

    t0 = time.perf_counter()
    native = convert(str(path), buffer_size=5_000_000)
    convert_s = time.perf_counter() - t0

    def hbt_native():  # its converter writes nanoseconds
        hbt = build_hbt(native, sim, queue="power", n=3.0, unit=1000)
        return run_hbt_touch_quoter(
            hbt,
            int(native["exch_ts"][0]),
            start * 1000,
            market.end_us * 1000,
            INTERVAL * 1000,
            market.lot_size,
        )

    native_runs = [hbt_native() for _ in range(RUNS)]
    hbt_native_t = statistics.median(r.seconds for r in native_runs)
    hbt_native_cpu = statistics.median(r.cpu_seconds for r in native_runs)

    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "market.npz"
        np.savez(
            npz,
            book_ts=market.book_ts,
            book_recv_ts=market.book_recv_ts,
            bid_px=market.bid_px,
            bid_sz=market.bid_sz,
            ask_px=market.ask_px,
            ask_sz=market.ask_sz,
            trade_ts=market.trade_ts,
            trade_recv_ts=market.trade_recv_ts,
            trade_px=market.trade_px,
            trade_qty=market.trade_qty,
            trade_side=market.trade_side,
        )
        colds = []
        for _ in range(3):
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", COLD, str(npz)], capture_output=True, text=True, check=True, cwd=ROOT
            ).stdout.split()
            colds.append((float(out[0]), float(out[1]), time.perf_counter() - t0))
        floor = numba_floor(Path(tmp))
        cold_import = statistics.median(c[0] for c in colds)
        cold_first = statistics.median(c[1] for c in colds)
        cold_process = statistics.median(c[2] for c in colds)

    python_steps(market, 100_000, start)  # warm the Python paths
    hbt_python_steps(events, sim, 100_000, start)
    steps100, wall100, _ = python_steps(market, 100_000, start)
    steps1s, wall1s, _ = python_steps(market, 1_000_000, start)
    hsteps100, hwall100 = hbt_python_steps(events, sim, 100_000, start)

    def rate(t: float) -> float:
        return replay_s / t

    print()
    print(f"replay of {replay_s:.1f} market-seconds, touch quoter every 100 ms, 10 ms latency, power-3 queue")
    print(
        f"  ours (snapshot grid + trades):         {ours_t * 1e3:8.2f} ms warm  {rate(ours_t):>10,.0f} market-s/s  "
        f"first call {first_ours:.2f} s | fills {ours_res.fills.shape[0]}, orders {ours_res.orders_sent}"
    )
    print(
        f"  hftbacktest (same grid + trades):      {hbt_grid_t * 1e3:8.2f} ms warm  {rate(hbt_grid_t):>10,.0f} "
        f"market-s/s  first call {first_hbt:.2f} s | fills {grid_runs[-1].fills.shape[0]}, "
        f"matched exactly {match.matched}"
    )
    print(
        f"  hftbacktest (its full depth stream):   {hbt_native_t * 1e3:8.2f} ms warm  {rate(hbt_native_t):>10,.0f} "
        f"market-s/s  ({native.shape[0]} events; convert {convert_s:.1f} s) | fills {native_runs[-1].fills.shape[0]}"
    )
    print(
        f"  ratio ours / hftbacktest, same data:   {hbt_grid_t / ours_t:6.2f}x market-seconds per wall-second "
        f"({hbt_grid_cpu / ours_cpu:.2f}x per CPU-second: {ours_cpu * 1e3:.2f} vs {hbt_grid_cpu * 1e3:.2f} ms)"
    )
    print(
        f"  ratio ours / hftbacktest, its stream:  {hbt_native_t / ours_t:6.2f}x "
        f"({hbt_native_cpu / ours_cpu:.2f}x per CPU-second)"
    )
    print(
        f"  cold start (fresh process): import {cold_import:.2f} s + cached load and first replay "
        f"{cold_first:.2f} s = {cold_import + cold_first:.2f} s (whole process {cold_process:.2f} s); "
        f"numba's floor (import + one trivial cached function) {floor:.2f} s"
    )
    print(
        f"  step API from Python: {steps100 / wall100:,.0f} steps/s at 100 ms "
        f"({replay_s / wall100:,.0f} market-s/s), {steps1s / wall1s:,.0f} steps/s at 1 s; hftbacktest driven "
        f"the same way: {hsteps100 / hwall100:,.0f} steps/s at 100 ms; ratio {hwall100 / wall100:.2f}x"
    )
    year_h = YEAR_S / rate(ours_t) / 3600
    print(
        f"  a year of 100 ms data at this density: {year_h * 60:.1f} min of replay on one core (batch path)"
    )


if __name__ == "__main__":
    main()
