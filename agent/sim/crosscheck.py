"""Cross-check against hftbacktest (dev dependency): the same market, latency, queue model and quoter in both.

`hbt_events(sim)` turns the snapshot grid the Simulator replays into hftbacktest's event rows: per snapshot, the
levels that changed (removals first, so no transient crossed book), plus a same-size event at every level a
trade hit since the previous snapshot (so both engines reset the traded quantity at the same moments), and the
trades; exchange times are the rows' `ts`, local times the times the Simulator's agent sees them.
`run_hbt_touch_quoter` runs the touch quoter of quoter.py, line for line, inside hftbacktest.
`match_fills` pairs the two fill lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.sim.engine import Simulator
from agent.sim.exchange import NO_TICK
from agent.sim.orders import C_BOOK


def hbt_events(sim: Simulator) -> np.ndarray:
    """hftbacktest event rows (its `event_dtype`) for the market the Simulator was reset with."""
    from hftbacktest import BUY_EVENT, DEPTH_EVENT, EXCH_EVENT, LOCAL_EVENT, SELL_EVENT, TRADE_EVENT
    from hftbacktest.types import event_dtype

    m = sim.market
    book_ts, book_seen, bid_tick, bid_sz, ask_tick, ask_sz = sim._m[:6]
    trade_ts, trade_seen, trade_tick, trade_qty, trade_side = sim._m[6:11]
    tick = m.tick_size
    rows: list[tuple] = []  # (exch_ts, order key, local_ts, ev, px, qty)
    state = ({}, {})  # bid, ask: tick -> qty as hftbacktest's depth holds it
    ti = 0
    nt = trade_ts.shape[0]
    key = 0
    for j in range(book_ts.shape[0]):
        g, seen = int(book_ts[j]), int(book_seen[j])
        hit = (set(), set())  # ticks traded into on the bid (sell aggressor) and on the ask (buy aggressor)
        while ti < nt and trade_ts[ti] <= g:
            ev = TRADE_EVENT | (BUY_EVENT if trade_side[ti] > 0 else SELL_EVENT)
            rows.append(
                (int(trade_ts[ti]), key, int(trade_seen[ti]), ev, trade_tick[ti] * tick, trade_qty[ti])
            )
            key += 1
            hit[0 if trade_side[ti] < 0 else 1].add(int(trade_tick[ti]))
            ti += 1
        removals, updates = [], []
        for s, (ticks, sizes, flag) in enumerate(
            ((bid_tick[j], bid_sz[j], BUY_EVENT), (ask_tick[j], ask_sz[j], SELL_EVENT))
        ):
            new = {int(t): float(q) for t, q in zip(ticks, sizes, strict=True) if t != NO_TICK}
            if not new:
                continue
            deepest = min(new) if s == 0 else max(new)
            book = state[s]
            for t in list(book):
                inside = t >= deepest if s == 0 else t <= deepest
                if inside and t not in new:
                    removals.append((flag, t, 0.0))
                    del book[t]
            for t, q in new.items():
                if book.get(t) != q or t in hit[s]:
                    updates.append((flag, t, q))
                    book[t] = q
        for flag, t, q in removals + updates:
            rows.append((g, key, seen, DEPTH_EVENT | flag, t * tick, q))
            key += 1
    while ti < nt:
        ev = TRADE_EVENT | (BUY_EVENT if trade_side[ti] > 0 else SELL_EVENT)
        rows.append((int(trade_ts[ti]), key, int(trade_seen[ti]), ev, trade_tick[ti] * tick, trade_qty[ti]))
        key += 1
        ti += 1
    arr = np.array(
        rows, dtype=[("e", "i8"), ("k", "i8"), ("l", "i8"), ("ev", "u8"), ("px", "f8"), ("q", "f8")]
    )
    # every row twice: once for the exchange (exchange-time order) and once for the local side (local order);
    # each side of hftbacktest walks its own flagged rows
    n = arr.shape[0]
    out = np.zeros(2 * n, dtype=event_dtype)
    order_local = np.argsort(arr["l"], kind="stable")
    sort_key = np.concatenate([arr["e"], arr["l"][order_local]])
    tie = np.concatenate([np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)])
    src = np.concatenate([np.arange(n), order_local])
    flags = np.concatenate(
        [np.full(n, EXCH_EVENT, dtype=np.uint64), np.full(n, LOCAL_EVENT, dtype=np.uint64)]
    )
    pos = np.lexsort((np.arange(2 * n), tie, sort_key))
    out["ev"] = arr["ev"][src][pos] | flags[pos]
    out["exch_ts"] = arr["e"][src][pos]
    out["local_ts"] = arr["l"][src][pos]
    out["px"] = arr["px"][src][pos]
    out["qty"] = arr["q"][src][pos]
    return out


def _hbt_loop():
    from hftbacktest import CANCELED, EXPIRED, FILLED, GTX, LIMIT, NEW, NONE
    from hftbacktest.order import REJECTED
    from numba import njit

    @njit
    def loop(hbt, first_ts, start, stop, interval, qty, out):
        # a fresh hftbacktest reports i64::MAX as its time; its clock starts at the first event
        hbt.elapse(start - first_ts)
        ids = np.zeros(2, dtype=np.uint64)
        next_id = 1
        n = 0
        decisions = 0
        sent = 0
        while True:
            depth = hbt.depth(0)
            orders = hbt.orders(0)
            for s in range(2):
                target = depth.best_bid_tick if s == 0 else depth.best_ask_tick
                if ids[s] != 0:
                    o = orders.get(ids[s])
                    if o is None:
                        ids[s] = 0
                    else:
                        st = o.status
                        if st == FILLED:
                            out[n, 0] = 1.0 if s == 0 else -1.0
                            out[n, 1] = o.exec_price_tick
                            out[n, 2] = o.exch_timestamp
                            out[n, 3] = o.local_timestamp
                            out[n, 4] = o.qty
                            n += 1
                            ids[s] = 0
                        elif st in (CANCELED, EXPIRED, REJECTED):
                            ids[s] = 0
                        elif st == NEW and o.req == NONE and o.price_tick != target:
                            hbt.cancel(0, ids[s], False)
                if ids[s] == 0:
                    oid = next_id
                    next_id += 1
                    px = target * depth.tick_size
                    if s == 0:
                        hbt.submit_buy_order(0, oid, px, qty, GTX, LIMIT, False)
                    else:
                        hbt.submit_sell_order(0, oid, px, qty, GTX, LIMIT, False)
                    ids[s] = oid
                    sent += 1
            decisions += 1
            if hbt.current_timestamp + interval > stop:
                break
            if hbt.elapse(interval) != 0:
                break
        return n, decisions, sent

    return loop


@dataclass(frozen=True)
class HbtResult:
    fills: np.ndarray  # columns: side, price tick, exchange fill time, local time seen, qty
    decisions: int
    orders_sent: int
    seconds: float  # wall time of the replay (after the first compiled call)
    cpu_seconds: float  # process CPU time of the same (steadier on a shared machine)


def build_hbt(events: np.ndarray, sim: Simulator, queue: str = "power", n: float = 3.0, unit: int = 1):
    """An hftbacktest backtest of `events` with the Simulator's latencies, fees, tick and lot. `unit`: event time
    units per µs (1 for hbt_events; 1000 for hftbacktest's own converter, which writes nanoseconds)."""
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    cfg = sim.config
    if cfg.latency.entry.kind != "constant" or cfg.latency.ack.kind != "constant":
        raise ValueError("the hftbacktest cross-check uses constant order latencies")
    asset = (
        BacktestAsset()
        .data([events])
        .linear_asset(1.0)
        .constant_order_latency(int(cfg.latency.entry.base_us) * unit, int(cfg.latency.ack.base_us) * unit)
        .no_partial_fill_exchange()
        .trading_value_fee_model(cfg.fees.maker, cfg.fees.taker)
        .tick_size(sim.market.tick_size)
        .lot_size(sim.market.lot_size)
        .last_trades_capacity(0)
    )
    if queue == "power":
        asset = asset.power_prob_queue_model(n)
    elif queue == "log":
        asset = asset.log_prob_queue_model()
    elif queue == "risk_averse":
        asset = asset.risk_adverse_queue_model()
    else:
        raise ValueError(f"no hftbacktest counterpart wired for queue model {queue!r}")
    return HashMapMarketDepthBacktest([asset])


def run_hbt_touch_quoter(
    hbt, first_ts: int, start_us: int, stop_us: int, interval_us: int, qty: float
) -> HbtResult:
    """first_ts: the first event's time (hftbacktest's clock starts there)."""
    import time

    loop = _LOOP_CACHE.get("loop")
    if loop is None:
        loop = _LOOP_CACHE["loop"] = _hbt_loop()
    out = np.zeros(((stop_us - start_us) // interval_us * 2 + 16, 5), dtype=np.float64)
    t0, c0 = time.perf_counter(), time.process_time()
    n, decisions, sent = loop(hbt, first_ts, start_us, stop_us, interval_us, qty, out)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    hbt.close()
    return HbtResult(
        fills=out[:n].copy(),
        decisions=int(decisions),
        orders_sent=int(sent),
        seconds=seconds,
        cpu_seconds=cpu,
    )


_LOOP_CACHE: dict = {}


@dataclass(frozen=True)
class FillMatch:
    ours: int
    theirs: int
    matched: int  # same side, same price, same exchange time (within tolerance)
    max_dt_us: int
    unmatched_ours: np.ndarray  # indices into our fills
    unmatched_theirs: np.ndarray


def match_fills(ours: np.ndarray, theirs: np.ndarray, tick: float, tol_us: int = 0) -> FillMatch:
    """Greedy one-to-one pairing on (side, price tick, exchange time within tol_us)."""
    ours = ours[ours["liquidation"] == 0]
    o_side = ours["side"].astype(np.int64)
    o_tick = np.rint(ours["px"] / tick).astype(np.int64)
    o_ts = ours["exch_ts"].astype(np.int64)
    t_side = theirs[:, 0].astype(np.int64)
    t_tick = theirs[:, 1].astype(np.int64)
    t_ts = theirs[:, 2].astype(np.int64)
    used = np.zeros(theirs.shape[0], dtype=bool)
    matched_o = np.zeros(ours.shape[0], dtype=bool)
    max_dt = 0
    by_key: dict[tuple[int, int], list[int]] = {}
    for k in range(theirs.shape[0]):
        by_key.setdefault((int(t_side[k]), int(t_tick[k])), []).append(k)
    for i in range(ours.shape[0]):
        best, best_dt = -1, tol_us + 1
        for k in by_key.get((int(o_side[i]), int(o_tick[i])), ()):
            if used[k]:
                continue
            dt = abs(int(t_ts[k]) - int(o_ts[i]))
            if dt < best_dt:
                best, best_dt = k, dt
        if best >= 0:
            used[best] = True
            matched_o[i] = True
            max_dt = max(max_dt, best_dt)
    return FillMatch(
        ours=int(ours.shape[0]),
        theirs=int(theirs.shape[0]),
        matched=int(matched_o.sum()),
        max_dt_us=int(max_dt),
        unmatched_ours=np.flatnonzero(~matched_o),
        unmatched_theirs=np.flatnonzero(~used),
    )


__all__ = ["hbt_events", "build_hbt", "run_hbt_touch_quoter", "match_fills", "C_BOOK"]
