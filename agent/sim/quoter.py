"""Compiled batch path: a market maker that keeps one post-only bid and one ask at the touch.

Every `interval_us` of local time it looks at the book it sees; an order whose price is no longer the touch is
canceled (once the agent knows it is live), and a side without an order gets a new one at the touch. This is
the benchmark strategy and the cross-check against hftbacktest; the whole loop runs compiled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from agent.sim.engine import Simulator, _grow, advance, request_cancel, submit_order
from agent.sim.exchange import NO_TICK
from agent.sim.orders import (
    BUY,
    C_NFILL,
    C_SEEN,
    CANCELED,
    FILLED,
    GROW,
    LIMIT,
    LIVE,
    OK,
    POST_ONLY,
    REJECTED,
    SELL,
)

# quoter state slots
Q_NEXT_T, Q_BID_SLOT, Q_ASK_SLOT, Q_DECISIONS, Q_ORDERS_SENT, Q_CANCELS_SENT = range(6)


@njit(cache=True)
def _quote_side(side, target, qslot, qs, orders, reqs, cur, cfg, lat_ts, lat_v, qty) -> int:
    slot = qs[qslot]
    if slot >= 0:
        o = orders[slot]
        ls = o.local_status
        if ls in (FILLED, CANCELED, REJECTED):
            slot = -1
        elif (
            ls == LIVE
            and o.local_px_tick != target
            and o.cancel_sent == 0
            and request_cancel(orders, reqs, cur, cfg, lat_ts, lat_v, slot)
        ):
            qs[Q_CANCELS_SENT] += 1
    if slot < 0 and target != NO_TICK:
        oid = submit_order(orders, reqs, cur, cfg, lat_ts, lat_v, side, LIMIT, POST_ONLY, target, qty)
        if oid < 0:
            return GROW
        # find the slot of the new order (lowest free slot was taken)
        for k in range(orders.shape[0]):
            if orders[k].id == oid:
                slot = k
                break
        qs[Q_ORDERS_SENT] += 1
    qs[qslot] = slot
    return OK


@njit(cache=True)
def quote_loop(
    t_stop,
    interval,
    qty,
    qs,
    book_ts,
    book_seen,
    bid_tick,
    bid_sz,
    ask_tick,
    ask_sz,
    trade_ts,
    trade_seen,
    trade_tick,
    trade_qty,
    trade_side,
    fund_ts,
    fund_rate,
    fund_mark,
    mark_ts,
    mark_px,
    lat_ts,
    lat_v,
    orders,
    reqs,
    resps,
    fills,
    updates,
    acct,
    tiers,
    cur,
    cfg,
) -> int:
    while qs[Q_NEXT_T] <= t_stop:
        t = qs[Q_NEXT_T]
        code = advance(
            t,
            book_ts,
            book_seen,
            bid_tick,
            bid_sz,
            ask_tick,
            ask_sz,
            trade_ts,
            trade_seen,
            trade_tick,
            trade_qty,
            trade_side,
            fund_ts,
            fund_rate,
            fund_mark,
            mark_ts,
            mark_px,
            lat_ts,
            lat_v,
            orders,
            reqs,
            resps,
            fills,
            updates,
            acct,
            tiers,
            cur,
            cfg,
        )
        if code != OK:
            return code
        j = cur[C_SEEN]
        if j >= 0:
            if (
                _quote_side(BUY, bid_tick[j, 0], Q_BID_SLOT, qs, orders, reqs, cur, cfg, lat_ts, lat_v, qty)
                != OK
            ):
                return GROW
            if (
                _quote_side(SELL, ask_tick[j, 0], Q_ASK_SLOT, qs, orders, reqs, cur, cfg, lat_ts, lat_v, qty)
                != OK
            ):
                return GROW
        qs[Q_DECISIONS] += 1
        qs[Q_NEXT_T] = t + interval
    return OK


@dataclass(frozen=True)
class QuoterResult:
    fills: np.ndarray  # FILL_DTYPE
    decisions: int
    orders_sent: int
    cancels_sent: int


def run_touch_quoter(
    sim: Simulator,
    interval_us: int = 100_000,
    qty: float = 0.001,
    start_us: int | None = None,
    stop_us: int | None = None,
) -> QuoterResult:
    """Run the touch quoter on a reset Simulator from start_us (default: its clock) to stop_us (default: the
    last snapshot). Responses are not logged (the batch path only needs fills)."""
    log_updates = int(sim._cfg[0]["log_updates"])
    sim._cfg[0]["log_updates"] = 0
    m = sim._m
    qs = np.zeros(6, dtype=np.int64)
    qs[Q_NEXT_T] = sim.now if start_us is None else int(start_us)
    qs[Q_BID_SLOT] = -1
    qs[Q_ASK_SLOT] = -1
    stop = int(sim.market.end_us if stop_us is None else stop_us)
    n_fill0 = int(sim.cur[C_NFILL])
    est = int((stop - qs[Q_NEXT_T]) // max(interval_us, 1)) * 2 + 64
    if sim.fills.shape[0] < n_fill0 + est:
        sim.fills = _grow(sim.fills, n_fill0 + est)
    qty_lots = round(round(qty / sim.market.lot_size) * sim.market.lot_size, 12)
    while True:
        code = quote_loop(
            stop,
            int(interval_us),
            qty_lots,
            qs,
            *m,
            sim.orders,
            sim.reqs,
            sim.resps,
            sim.fills,
            sim.updates,
            sim.acct,
            sim._tiers,
            sim.cur,
            sim._cfg,
        )
        if code == OK:
            break
        sim._grow_buffers()
        sim.orders = _grow(sim.orders)
    sim._cfg[0]["log_updates"] = log_updates
    fills = sim.fills[n_fill0 : sim.cur[C_NFILL]].copy()
    sim.cur[C_NFILL] = n_fill0  # handed over here: a later advance_to does not report them again
    return QuoterResult(
        fills=fills,
        decisions=int(qs[Q_DECISIONS]),
        orders_sent=int(qs[Q_ORDERS_SENT]),
        cancels_sent=int(qs[Q_CANCELS_SENT]),
    )
