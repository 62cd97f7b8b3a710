"""The simulated exchange, compiled: order arrival, matching against the replayed book, queue fills, margin.

The replayed market is exogenous (no market impact): the agent's orders never change the recorded book or
trades. A resting order fills
  - by queue: a trade at its price first consumes the estimated quantity ahead (queue.py); what the trade eats
    past it fills the order (the whole order when partial fills are off);
  - by a trade through its price (a trade printed at a worse price for the book means its level was consumed);
  - by the book crossing it (best ask <= a buy's price, best bid >= a sell's price) at the next snapshot.
Passive fills execute at the order's price as maker. Aggressive orders (market, IOC, crossing GTC limits) walk
the levels of the current snapshot as taker, up to their limit; post-only orders that would cross are rejected.
Every exchange-side change sends a response to the agent through the ack latency, on one in-order channel.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from agent.sim.fees import trade_fee
from agent.sim.funding import settle_funding
from agent.sim.latency import draw
from agent.sim.margin import T_MAXLEV, apply_fill, bracket, liquidate, should_liquidate
from agent.sim.orders import (
    BUY,
    C_BOOK,
    C_HWM,
    C_LAST_RESP,
    C_NFILL,
    C_NLIVE,
    C_RESP_TAIL,
    C_SEQ,
    CANCELED,
    FILLED,
    GTC,
    IOC,
    LIMIT,
    LIVE,
    POST_ONLY,
    R_AMEND_REJECTED,
    R_BAD_REQUEST,
    R_INSUFFICIENT_MARGIN,
    R_LIQUIDATION,
    R_MAX_NOTIONAL,
    R_NO_BOOK,
    R_NO_LIQUIDITY,
    R_NONE,
    R_NOT_ACTIVE,
    R_POST_ONLY_CROSS,
    REJECTED,
    REQ_AMEND,
    REQ_CANCEL,
    REQ_NEW,
)
from agent.sim.queue import executable_after_trade, on_depth_change

NO_TICK = -1  # padding of the book tick arrays


@njit(cache=True)
def respond(orders, slot, resps, cur, cfg, lat_ts, lat_v, exch_ts, reason) -> int:
    """Queue a response carrying the order's current exchange state; returns its local arrival time."""
    c = cfg[0]
    o = orders[slot]
    t = exch_ts + draw(c.ack_kind, c.ack_base, c.ack_sigma, exch_ts, lat_ts, lat_v)
    if t < cur[C_LAST_RESP]:
        t = cur[C_LAST_RESP]
    cur[C_LAST_RESP] = t
    k = cur[C_RESP_TAIL]
    r = resps[k]
    r.local_ts = t
    r.exch_ts = exch_ts
    r.seq = cur[C_SEQ]
    r.slot = slot
    r.order_id = o.id
    r.status = o.status
    r.leaves = o.leaves
    r.px_tick = o.px_tick
    r.reason = reason
    cur[C_SEQ] += 1
    cur[C_RESP_TAIL] = k + 1
    o.inflight += 1
    o.exch_ts = exch_ts
    return t


@njit(cache=True)
def record_fill(fills, cur, acct, order_id, side, px, qty, fee, maker, liq, exch_ts, local_ts) -> None:
    k = cur[C_NFILL]
    f = fills[k]
    f.order_id = order_id
    f.side = side
    f.px = px
    f.qty = qty
    f.fee = fee
    f.maker = maker
    f.liquidation = liq
    f.exch_ts = exch_ts
    f.local_ts = local_ts
    f.position_after = acct[0].position
    cur[C_NFILL] = k + 1


@njit(cache=True)
def _release(orders, slot, acct, part: float) -> None:
    """Give back the initial margin held for `part` of the order's leaves."""
    o = orders[slot]
    if o.reserved == 0.0:
        return
    rel = o.reserved if o.leaves <= 0.0 else o.reserved * min(part / o.leaves, 1.0)
    o.reserved -= rel
    acct[0].reserved -= rel
    if acct[0].reserved < 1e-9:
        acct[0].reserved = 0.0


@njit(cache=True)
def fill_order(
    orders, slot, px_tick, qty, maker, exch_ts, acct, fills, resps, cur, cfg, lat_ts, lat_v
) -> None:
    c = cfg[0]
    o = orders[slot]
    px = px_tick * c.tick
    fee = trade_fee(px, qty, maker, c.maker_fee, c.taker_fee)
    _release(orders, slot, acct, qty)
    apply_fill(acct, o.side, qty, px, fee, c.leverage, c.eps)
    o.leaves -= qty
    if o.leaves <= c.eps:
        o.leaves = 0.0
        if o.status == LIVE:
            cur[C_NLIVE] -= 1
        o.status = FILLED
        if o.reserved != 0.0:
            acct[0].reserved -= o.reserved
            o.reserved = 0.0
    t_local = respond(orders, slot, resps, cur, cfg, lat_ts, lat_v, exch_ts, R_NONE)
    record_fill(fills, cur, acct, o.id, o.side, px, qty, fee, 1 if maker else 0, 0, exch_ts, t_local)


@njit(cache=True)
def level_qty(ticks, sizes, j, tick, is_bid) -> float:
    """Displayed size at `tick` in snapshot j: the size, 0 if the price is inside the covered range but absent,
    -1 if it is beyond the deepest level shown (unknown)."""
    deepest = NO_TICK
    for k in range(ticks.shape[1]):
        t = ticks[j, k]
        if t == NO_TICK:
            break
        if t == tick:
            return sizes[j, k]
        deepest = t
    if deepest == NO_TICK:
        return -1.0
    if is_bid:
        return 0.0 if tick > deepest else -1.0
    return 0.0 if tick < deepest else -1.0


@njit(cache=True)
def _opening_qty(pos: float, side: int, qty: float) -> float:
    if pos == 0.0 or (pos > 0.0) == (side > 0):
        return qty
    return max(qty - abs(pos), 0.0)


@njit(cache=True)
def _margin_check(acct, tiers, cfg, side, qty, px, reserve_for) -> int:
    """R_NONE when the opening part of the order fits the available balance and the leverage bracket."""
    c = cfg[0]
    a = acct[0]
    opening = _opening_qty(a.position, side, qty)
    if opening <= c.eps:
        return R_NONE
    im = opening * px / c.leverage
    if im > a.cash - a.reserved + reserve_for + 1e-9:
        return R_INSUFFICIENT_MARGIN
    notional = abs(a.position + side * qty) * px
    if tiers[bracket(tiers, notional), T_MAXLEV] < c.leverage - 1e-12:
        return R_MAX_NOTIONAL
    return R_NONE


@njit(cache=True)
def _take(
    orders,
    slot,
    limit_tick,
    has_limit,
    j,
    bid_tick,
    bid_sz,
    ask_tick,
    ask_sz,
    exch_ts,
    acct,
    fills,
    resps,
    cur,
    cfg,
    lat_ts,
    lat_v,
) -> None:
    """Walk the opposite side of snapshot j as taker, up to the limit price."""
    c = cfg[0]
    o = orders[slot]
    ticks = ask_tick if o.side == BUY else bid_tick
    sizes = ask_sz if o.side == BUY else bid_sz
    for k in range(ticks.shape[1]):
        t = ticks[j, k]
        if t == NO_TICK:
            break
        if has_limit and ((o.side == BUY and t > limit_tick) or (o.side != BUY and t < limit_tick)):
            break
        avail = math.floor(sizes[j, k] / c.lot + 1e-9) * c.lot
        take = min(o.leaves, avail)
        if take > c.eps:
            fill_order(orders, slot, t, take, False, exch_ts, acct, fills, resps, cur, cfg, lat_ts, lat_v)
        if o.leaves <= c.eps:
            return


@njit(cache=True)
def _rest(
    orders,
    slot,
    j,
    bid_tick,
    bid_sz,
    ask_tick,
    ask_sz,
    front_override,
    exch_ts,
    acct,
    resps,
    cur,
    cfg,
    lat_ts,
    lat_v,
) -> None:
    """Put the order in the book behind the displayed size at its price (or `front_override` if >= 0)."""
    c = cfg[0]
    o = orders[slot]
    if o.side == BUY:
        q = level_qty(bid_tick, bid_sz, j, o.px_tick, True)
    else:
        q = level_qty(ask_tick, ask_sz, j, o.px_tick, False)
    if q < 0.0:
        q = 0.0  # beyond the shown depth: nothing known ahead
    o.level_qty = q
    o.front = q if front_override < 0.0 else front_override
    o.cum_trade = 0.0
    if o.status != LIVE:
        cur[C_NLIVE] += 1
    o.status = LIVE
    # hold initial margin for the opening part of what rests
    opening = _opening_qty(acct[0].position, o.side, o.leaves)
    im = opening * o.px_tick * c.tick / c.leverage
    acct[0].reserved += im - o.reserved
    o.reserved = im
    respond(orders, slot, resps, cur, cfg, lat_ts, lat_v, exch_ts, R_NONE)


@njit(cache=True)
def _finish(orders, slot, status, reason, exch_ts, acct, resps, cur, cfg, lat_ts, lat_v) -> None:
    o = orders[slot]
    if o.status == LIVE:
        cur[C_NLIVE] -= 1
    o.status = status
    if o.reserved != 0.0:
        acct[0].reserved -= o.reserved
        o.reserved = 0.0
    respond(orders, slot, resps, cur, cfg, lat_ts, lat_v, exch_ts, reason)


@njit(cache=True)
def on_request(
    kind,
    slot,
    px_tick,
    qty,
    exch_ts,
    bid_tick,
    bid_sz,
    ask_tick,
    ask_sz,
    acct,
    tiers,
    orders,
    fills,
    resps,
    cur,
    cfg,
    lat_ts,
    lat_v,
) -> None:
    """A request reaches the exchange at exch_ts."""
    c = cfg[0]
    o = orders[slot]
    o.inflight -= 1
    j = cur[C_BOOK]
    if kind == REQ_NEW:
        if j < 0:
            _finish(orders, slot, REJECTED, R_NO_BOOK, exch_ts, acct, resps, cur, cfg, lat_ts, lat_v)
            return
        if o.qty <= c.eps:
            _finish(orders, slot, REJECTED, R_BAD_REQUEST, exch_ts, acct, resps, cur, cfg, lat_ts, lat_v)
            return
        best_bid = bid_tick[j, 0]
        best_ask = ask_tick[j, 0]
        if o.kind == LIMIT:
            crosses = (o.side == BUY and best_ask != NO_TICK and o.px_tick >= best_ask) or (
                o.side != BUY and best_bid != NO_TICK and o.px_tick <= best_bid
            )
            if crosses and o.tif == POST_ONLY:
                _finish(
                    orders, slot, REJECTED, R_POST_ONLY_CROSS, exch_ts, acct, resps, cur, cfg, lat_ts, lat_v
                )
                return
            ref_px = o.px_tick * c.tick
        else:
            ref = best_ask if o.side == BUY else best_bid
            if ref == NO_TICK:
                _finish(orders, slot, REJECTED, R_NO_LIQUIDITY, exch_ts, acct, resps, cur, cfg, lat_ts, lat_v)
                return
            ref_px = ref * c.tick
            crosses = True
        why = _margin_check(acct, tiers, cfg, o.side, o.qty, ref_px, 0.0)
        if why != R_NONE:
            _finish(orders, slot, REJECTED, why, exch_ts, acct, resps, cur, cfg, lat_ts, lat_v)
            return
        if crosses:
            _take(
                orders,
                slot,
                o.px_tick,
                o.kind == LIMIT,
                j,
                bid_tick,
                bid_sz,
                ask_tick,
                ask_sz,
                exch_ts,
                acct,
                fills,
                resps,
                cur,
                cfg,
                lat_ts,
                lat_v,
            )
            if o.leaves <= c.eps:
                return
            if o.kind == LIMIT and o.tif == GTC:
                # the rest opens a new level at the limit price: nothing displayed is ahead of it
                _rest(
                    orders,
                    slot,
                    j,
                    bid_tick,
                    bid_sz,
                    ask_tick,
                    ask_sz,
                    0.0,
                    exch_ts,
                    acct,
                    resps,
                    cur,
                    cfg,
                    lat_ts,
                    lat_v,
                )
                o.level_qty = 0.0
                return
            _finish(orders, slot, CANCELED, R_NO_LIQUIDITY, exch_ts, acct, resps, cur, cfg, lat_ts, lat_v)
            return
        if o.tif == IOC:
            _finish(orders, slot, CANCELED, R_NO_LIQUIDITY, exch_ts, acct, resps, cur, cfg, lat_ts, lat_v)
            return
        _rest(
            orders,
            slot,
            j,
            bid_tick,
            bid_sz,
            ask_tick,
            ask_sz,
            -1.0,
            exch_ts,
            acct,
            resps,
            cur,
            cfg,
            lat_ts,
            lat_v,
        )
        return
    if o.status != LIVE:  # cancel or amend of an order that already left the book (or never entered it)
        respond(orders, slot, resps, cur, cfg, lat_ts, lat_v, exch_ts, R_NOT_ACTIVE)
        return
    if kind == REQ_CANCEL:
        _finish(orders, slot, CANCELED, R_NONE, exch_ts, acct, resps, cur, cfg, lat_ts, lat_v)
        return
    if kind == REQ_AMEND:
        executed = o.qty - o.leaves
        new_leaves = qty - executed
        best_bid = bid_tick[j, 0]
        best_ask = ask_tick[j, 0]
        crosses = (o.side == BUY and best_ask != NO_TICK and px_tick >= best_ask) or (
            o.side != BUY and best_bid != NO_TICK and px_tick <= best_bid
        )
        if new_leaves <= c.eps or crosses:
            respond(orders, slot, resps, cur, cfg, lat_ts, lat_v, exch_ts, R_AMEND_REJECTED)
            return
        if px_tick != o.px_tick or new_leaves > o.leaves + c.eps:
            why = _margin_check(acct, tiers, cfg, o.side, new_leaves, px_tick * c.tick, o.reserved)
            if why != R_NONE:
                respond(orders, slot, resps, cur, cfg, lat_ts, lat_v, exch_ts, why)
                return
            # a new price or a larger size loses priority: back of the queue
            o.px_tick = px_tick
            o.qty = qty
            o.leaves = new_leaves
            _rest(
                orders,
                slot,
                j,
                bid_tick,
                bid_sz,
                ask_tick,
                ask_sz,
                -1.0,
                exch_ts,
                acct,
                resps,
                cur,
                cfg,
                lat_ts,
                lat_v,
            )
            return
        # a smaller size keeps its place
        _release(orders, slot, acct, o.leaves - new_leaves)
        o.qty = qty
        o.leaves = new_leaves
        respond(orders, slot, resps, cur, cfg, lat_ts, lat_v, exch_ts, R_NONE)


@njit(cache=True)
def on_trade(tick, qty, aggressor, exch_ts, acct, orders, fills, resps, cur, cfg, lat_ts, lat_v) -> None:
    """A recorded trade: resting orders on the other side at its price move up the queue; through it, fill."""
    if cur[C_NLIVE] == 0:
        return
    c = cfg[0]
    for slot in range(cur[C_HWM]):
        o = orders[slot]
        if o.status != LIVE or o.side == aggressor:
            continue
        through = (aggressor == BUY and o.px_tick < tick) or (aggressor != BUY and o.px_tick > tick)
        if through:
            fill_order(
                orders, slot, o.px_tick, o.leaves, True, exch_ts, acct, fills, resps, cur, cfg, lat_ts, lat_v
            )
            continue
        if o.px_tick != tick:
            continue
        o.front -= qty
        o.cum_trade += qty
        ex = executable_after_trade(o.front, c.lot)
        if ex > 0.0:
            q = o.leaves if c.partial_fills == 0 else min(o.leaves, ex)
            o.front += q if c.partial_fills != 0 else 0.0
            fill_order(orders, slot, o.px_tick, q, True, exch_ts, acct, fills, resps, cur, cfg, lat_ts, lat_v)


@njit(cache=True)
def on_book(
    j, bid_tick, bid_sz, ask_tick, ask_sz, exch_ts, acct, orders, fills, resps, cur, cfg, lat_ts, lat_v
) -> None:
    """Snapshot j becomes the exchange's book: update queue estimates, fill orders the book now crosses."""
    cur[C_BOOK] = j
    if cur[C_NLIVE] == 0:
        return
    c = cfg[0]
    best_bid = bid_tick[j, 0]
    best_ask = ask_tick[j, 0]
    for slot in range(cur[C_HWM]):
        o = orders[slot]
        if o.status != LIVE:
            continue
        is_bid = o.side == BUY
        if is_bid:
            q = level_qty(bid_tick, bid_sz, j, o.px_tick, True)
        else:
            q = level_qty(ask_tick, ask_sz, j, o.px_tick, False)
        if q < 0.0:
            q = o.level_qty  # beyond the shown depth: assume unchanged
        if q != o.level_qty or o.cum_trade != 0.0:
            o.front, o.cum_trade = on_depth_change(
                c.queue_model, c.queue_n, o.front, o.cum_trade, o.level_qty, q
            )
            o.level_qty = q
        if (is_bid and best_ask != NO_TICK and o.px_tick >= best_ask) or (
            not is_bid and best_bid != NO_TICK and o.px_tick <= best_bid
        ):
            fill_order(
                orders, slot, o.px_tick, o.leaves, True, exch_ts, acct, fills, resps, cur, cfg, lat_ts, lat_v
            )


@njit(cache=True)
def check_liquidation(mark, exch_ts, acct, tiers, orders, fills, resps, cur, cfg, lat_ts, lat_v) -> bool:
    """Liquidate at the mark if the isolated margin balance is below maintenance (open orders canceled first)."""
    if not should_liquidate(acct, tiers, mark):
        return False
    c = cfg[0]
    for slot in range(cur[C_HWM]):
        if orders[slot].status == LIVE:
            _finish(orders, slot, CANCELED, R_LIQUIDATION, exch_ts, acct, resps, cur, cfg, lat_ts, lat_v)
    pos, fee, _ = liquidate(acct, mark, c.liq_fee)
    t = exch_ts + draw(c.ack_kind, c.ack_base, c.ack_sigma, exch_ts, lat_ts, lat_v)
    if t < cur[C_LAST_RESP]:
        t = cur[C_LAST_RESP]
    cur[C_LAST_RESP] = t
    record_fill(fills, cur, acct, -1, -1 if pos > 0.0 else 1, mark, abs(pos), fee, 0, 1, exch_ts, t)
    return True


@njit(cache=True)
def on_funding(rate, mark, exch_ts, acct, tiers, orders, fills, resps, cur, cfg, lat_ts, lat_v) -> None:
    m = mark if not math.isnan(mark) else acct[0].mark
    if m > 0.0:
        settle_funding(acct, rate, m)
        check_liquidation(
            acct[0].mark if acct[0].mark > 0.0 else m,
            exch_ts,
            acct,
            tiers,
            orders,
            fills,
            resps,
            cur,
            cfg,
            lat_ts,
            lat_v,
        )


@njit(cache=True)
def mid_of(bid_tick, ask_tick, j, tick) -> float:
    b = bid_tick[j, 0]
    a = ask_tick[j, 0]
    if b == NO_TICK or a == NO_TICK:
        return np.nan
    return 0.5 * (b + a) * tick


__all__ = [
    "NO_TICK",
    "on_request",
    "on_trade",
    "on_book",
    "on_funding",
    "check_liquidation",
    "mid_of",
]
