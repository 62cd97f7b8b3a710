"""Event-driven replay engine: the compiled event loop and the Python step API (`Simulator`) on top of it.

Two clocks on one UTC axis: the exchange processes recorded events at their exchange time `ts` and the agent's
requests at send time + entry latency; the agent sees market data at its receive time (feed latency) and
order responses at exchange time + ack latency. `advance(t)` runs everything up to local time t.
At equal times the exchange handles trades, then the book snapshot (which already includes those trades), then
mark and funding rows, then requests arriving (market data first, as hftbacktest does).

Step API, for the gymnasium env:
    sim = Simulator()
    sim.reset(market, SimConfig(), seed=0)        # clock at the first snapshot
    oid = sim.submit(BUY, qty=0.01, price=61800.0, post_only=True)
    sim.cancel(oid); sim.amend(oid, price=..., qty=...)
    step = sim.advance_to(t_us)                   # fills and order updates the agent learnt in (prev, t]
    step.account                                  # AccountState: position, entry, wallet, margin, uPnL, fees ...
    sim.observed_book()                           # top-20 book as the agent sees it now
The compiled functions are cached (numba cache=True, in agent/sim/__pycache__). numba re-checks only the file
of the function it loads, not the files of the functions compiled into it: after editing a module here, delete
agent/sim/__pycache__/*.nbi and *.nbc (a fresh checkout has none).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from numba import njit

from agent.sim.exchange import (
    NO_TICK,
    check_liquidation,
    mid_of,
    on_book,
    on_funding,
    on_request,
    on_trade,
)
from agent.sim.fees import FeeConfig
from agent.sim.latency import (
    REPLAY,
    LatencyConfig,
    clock_skew,
    draw,
    feed_seen_ts,
    recorded_latency,
    seed_rng,
)
from agent.sim.margin import MarginConfig, maintenance_margin
from agent.sim.market import MarketData
from agent.sim.orders import (
    ACCOUNT_DTYPE,
    BUY,
    C_BOOK,
    C_FUND,
    C_HWM,
    C_LAST_ARRIVE,
    C_MARK,
    C_NEXT_ID,
    C_NFILL,
    C_NOW,
    C_NUPD,
    C_REQ_HEAD,
    C_REQ_TAIL,
    C_RESP_HEAD,
    C_RESP_TAIL,
    C_SEEN,
    C_SEQ,
    C_TRADE,
    C_TRADE_SEEN,
    CANCELED,
    CONFIG_DTYPE,
    FILL_DTYPE,
    FILLED,
    FREE,
    GROW,
    GTC,
    IOC,
    LIMIT,
    LIVE,
    MARKET,
    N_CURSORS,
    OK,
    ORDER_DTYPE,
    PENDING,
    POST_ONLY,
    R_NOT_ACTIVE,
    REASON_NAMES,
    REJECTED,
    REQ_AMEND,
    REQ_CANCEL,
    REQ_NEW,
    REQUEST_DTYPE,
    RESPONSE_DTYPE,
    SELL,
    STATUS_NAMES,
)
from agent.sim.queue import QueueConfig

_I64_MAX = np.iinfo(np.int64).max
_O_ID = ORDER_DTYPE.names.index("id")
_O_STATUS = ORDER_DTYPE.names.index("status")
_NO_FILLS = np.zeros(0, dtype=FILL_DTYPE)
_NO_FILLS.flags.writeable = False
_NO_UPDATES = np.zeros(0, dtype=RESPONSE_DTYPE)
_NO_UPDATES.flags.writeable = False


@dataclass(frozen=True)
class SimConfig:
    """Everything the engine needs besides the market. Defaults: Binance USD-M VIP 0 fees, 10 ms entry and ack
    latency, the recorded feed latency, the power-3 queue model with partial fills, 10x isolated leverage."""

    fees: FeeConfig = field(default_factory=FeeConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    margin: MarginConfig = field(default_factory=MarginConfig)
    order_capacity: int = 64  # grows on demand


# ---------------------------------------------------------------------------------------------------------------
# compiled core


@njit(cache=True)
def _compact(buf, cur, head_i, tail_i) -> None:
    h = cur[head_i]
    t = cur[tail_i]
    if h == 0:
        return
    for k in range(t - h):
        buf[k] = buf[h + k]
    cur[head_i] = 0
    cur[tail_i] = t - h


@njit(cache=True)
def apply_responses(t, orders, resps, updates, cur, log) -> None:
    """Responses that reached the agent by local time t update its view of its orders (and the update log)."""
    while cur[C_RESP_HEAD] < cur[C_RESP_TAIL]:
        r = resps[cur[C_RESP_HEAD]]
        if r.local_ts > t:
            break
        o = orders[r.slot]
        o.inflight -= 1
        if o.id == r.order_id:
            terminal = r.status == FILLED or r.status == CANCELED or r.status == REJECTED
            if r.reason == R_NOT_ACTIVE:
                o.cancel_sent = 0
                if terminal:
                    o.local_status = r.status
                    o.local_leaves = r.leaves
            else:
                o.local_status = r.status
                o.local_leaves = r.leaves
                o.local_px_tick = r.px_tick
                if terminal:
                    o.cancel_sent = 0
            o.local_ts = r.local_ts
        if log != 0 and cur[C_NUPD] < updates.shape[0]:
            updates[cur[C_NUPD]] = r
            cur[C_NUPD] += 1
        cur[C_RESP_HEAD] += 1
    if cur[C_RESP_HEAD] == cur[C_RESP_TAIL]:
        cur[C_RESP_HEAD] = 0
        cur[C_RESP_TAIL] = 0


@njit(cache=True)
def advance(
    t_end,
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
    """Process every exchange event and request up to local time t_end; returns OK or GROW (call again after
    growing the buffers: processing stops between events)."""
    c = cfg[0]
    nb = book_ts.shape[0]
    nt = trade_ts.shape[0]
    nf = fund_ts.shape[0]
    nm = mark_ts.shape[0]
    depth = bid_tick.shape[1]
    n_orders = orders.shape[0]
    while True:
        # room for the worst case of one event: every order filled/canceled, a full book walk, a liquidation
        if cur[C_RESP_TAIL] + n_orders + 2 * depth + 4 > resps.shape[0]:
            apply_responses(cur[C_NOW], orders, resps, updates, cur, c.log_updates)
            _compact(resps, cur, C_RESP_HEAD, C_RESP_TAIL)
            if cur[C_RESP_TAIL] + n_orders + 2 * depth + 4 > resps.shape[0]:
                return GROW
        if cur[C_NFILL] + n_orders + 2 * depth + 4 > fills.shape[0]:
            return GROW
        if c.log_updates != 0 and cur[C_NUPD] + resps.shape[0] > updates.shape[0]:
            return GROW
        tb = book_ts[cur[C_BOOK] + 1] if cur[C_BOOK] + 1 < nb else _I64_MAX
        tt = trade_ts[cur[C_TRADE]] if cur[C_TRADE] < nt else _I64_MAX
        tm = mark_ts[cur[C_MARK]] if cur[C_MARK] < nm else _I64_MAX
        tf = fund_ts[cur[C_FUND]] if cur[C_FUND] < nf else _I64_MAX
        tr = reqs[cur[C_REQ_HEAD]].arrive_ts if cur[C_REQ_HEAD] < cur[C_REQ_TAIL] else _I64_MAX
        t = min(min(tb, tt), min(min(tm, tf), tr))
        if t > t_end:
            break
        # the agent's view can lag, but responses that arrived before this event are applied now
        apply_responses(t, orders, resps, updates, cur, c.log_updates)
        if tt == t:
            i = cur[C_TRADE]
            on_trade(
                trade_tick[i],
                trade_qty[i],
                trade_side[i],
                t,
                acct,
                orders,
                fills,
                resps,
                cur,
                cfg,
                lat_ts,
                lat_v,
            )
            cur[C_TRADE] = i + 1
        elif tb == t:
            j = cur[C_BOOK] + 1
            on_book(
                j, bid_tick, bid_sz, ask_tick, ask_sz, t, acct, orders, fills, resps, cur, cfg, lat_ts, lat_v
            )
            if c.mark_from_book != 0:
                m = mid_of(bid_tick, ask_tick, j, c.tick)
                if m == m:
                    acct[0].mark = m
                    check_liquidation(m, t, acct, tiers, orders, fills, resps, cur, cfg, lat_ts, lat_v)
        elif tm == t:
            i = cur[C_MARK]
            acct[0].mark = mark_px[i]
            check_liquidation(mark_px[i], t, acct, tiers, orders, fills, resps, cur, cfg, lat_ts, lat_v)
            cur[C_MARK] = i + 1
        elif tf == t:
            i = cur[C_FUND]
            on_funding(
                fund_rate[i], fund_mark[i], t, acct, tiers, orders, fills, resps, cur, cfg, lat_ts, lat_v
            )
            cur[C_FUND] = i + 1
        else:
            h = cur[C_REQ_HEAD]
            r = reqs[h]
            cur[C_REQ_HEAD] = h + 1
            if cur[C_REQ_HEAD] == cur[C_REQ_TAIL]:
                cur[C_REQ_HEAD] = 0
                cur[C_REQ_TAIL] = 0
            on_request(
                r.kind,
                r.slot,
                r.px_tick,
                r.qty,
                t,
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
            )
    if t_end > cur[C_NOW]:
        cur[C_NOW] = t_end
    apply_responses(t_end, orders, resps, updates, cur, c.log_updates)
    while cur[C_SEEN] + 1 < nb and book_seen[cur[C_SEEN] + 1] <= t_end:
        cur[C_SEEN] += 1
    while cur[C_TRADE_SEEN] < nt and trade_seen[cur[C_TRADE_SEEN]] <= t_end:
        cur[C_TRADE_SEEN] += 1
    return OK


@njit(cache=True)
def _alloc_slot(orders, cur) -> int:
    slot = -1
    for k in range(orders.shape[0]):
        o = orders[k]
        done = o.status == FILLED or o.status == CANCELED or o.status == REJECTED
        ldone = o.local_status == FILLED or o.local_status == CANCELED or o.local_status == REJECTED
        if o.status == FREE or (done and ldone and o.inflight == 0):
            slot = k
            break
    if slot < 0:
        return -1
    if slot + 1 > cur[C_HWM]:
        cur[C_HWM] = slot + 1
    return slot


@njit(cache=True)
def _send(reqs, cur, cfg, lat_ts, lat_v, kind, slot, px_tick, qty) -> bool:
    """Put a request on the wire at the local clock; it arrives after the entry latency, in order."""
    c = cfg[0]
    if cur[C_REQ_TAIL] >= reqs.shape[0]:
        _compact(reqs, cur, C_REQ_HEAD, C_REQ_TAIL)
        if cur[C_REQ_TAIL] >= reqs.shape[0]:
            return False
    now = cur[C_NOW]
    t = now + draw(c.entry_kind, c.entry_base, c.entry_sigma, now, lat_ts, lat_v)
    if t < cur[C_LAST_ARRIVE]:
        t = cur[C_LAST_ARRIVE]
    cur[C_LAST_ARRIVE] = t
    r = reqs[cur[C_REQ_TAIL]]
    r.kind = kind
    r.slot = slot
    r.arrive_ts = t
    r.seq = cur[C_SEQ]
    r.px_tick = px_tick
    r.qty = qty
    cur[C_SEQ] += 1
    cur[C_REQ_TAIL] += 1
    return True


@njit(cache=True)
def submit_order(orders, reqs, cur, cfg, lat_ts, lat_v, side, kind, tif, px_tick, qty) -> int:
    """Send a new order now; returns its id, -1 when the order table is full, -2 when the request queue is."""
    if cur[C_REQ_TAIL] >= reqs.shape[0] and cur[C_REQ_HEAD] == 0:
        return -2
    slot = _alloc_slot(orders, cur)
    if slot < 0:
        return -1
    o = orders[slot]
    oid = cur[C_NEXT_ID]
    cur[C_NEXT_ID] = oid + 1
    o.id = oid
    o.side = side
    o.kind = kind
    o.tif = tif
    o.px_tick = px_tick
    o.local_px_tick = px_tick
    o.qty = qty
    o.leaves = qty
    o.local_leaves = qty
    o.front = 0.0
    o.cum_trade = 0.0
    o.level_qty = 0.0
    o.reserved = 0.0
    o.status = PENDING
    o.local_status = PENDING
    o.reason = 0
    o.submit_ts = cur[C_NOW]
    o.exch_ts = 0
    o.local_ts = cur[C_NOW]
    o.inflight = 1
    o.cancel_sent = 0
    if not _send(reqs, cur, cfg, lat_ts, lat_v, REQ_NEW, slot, px_tick, qty):
        o.status = FREE
        o.inflight = 0
        return -2
    return oid


@njit(cache=True)
def request_cancel(orders, reqs, cur, cfg, lat_ts, lat_v, slot) -> bool:
    """Send a cancel for an order the agent believes active; False if it is not (or a cancel is travelling)."""
    o = orders[slot]
    if o.cancel_sent != 0 or not (o.local_status == PENDING or o.local_status == LIVE):
        return False
    if not _send(reqs, cur, cfg, lat_ts, lat_v, REQ_CANCEL, slot, o.px_tick, 0.0):
        return False
    o.cancel_sent = 1
    o.inflight += 1
    return True


@njit(cache=True)
def request_amend(orders, reqs, cur, cfg, lat_ts, lat_v, slot, px_tick, qty) -> bool:
    o = orders[slot]
    if not (o.local_status == PENDING or o.local_status == LIVE):
        return False
    if not _send(reqs, cur, cfg, lat_ts, lat_v, REQ_AMEND, slot, px_tick, qty):
        return False
    o.inflight += 1
    return True


# ---------------------------------------------------------------------------------------------------------------
# Python step API


@dataclass(frozen=True)
class AccountState:
    position: float
    entry_price: float
    wallet: float  # cash outside the position, including initial margin held by open orders
    position_margin: float  # isolated margin (WB)
    order_margin: float  # initial margin held by open orders
    mark: float
    unrealized_pnl: float
    maintenance_margin: float
    equity: float  # wallet + position margin + unrealized PnL
    realized_pnl: float
    fees_paid: float
    funding_paid: float
    liquidation_fees_paid: float
    insurance_covered: float
    liquidations: int

    @property
    def liquidated(self) -> bool:
        return self.liquidations > 0


@dataclass(frozen=True)
class StepResult:
    now: int  # local time, µs
    fills: np.ndarray  # FILL_DTYPE rows the agent learnt of in this step
    updates: np.ndarray  # RESPONSE_DTYPE rows (order status changes) the agent learnt of in this step
    account: AccountState
    book_index: int  # index of the book snapshot the agent sees (-1: none yet)
    done: bool  # the market data is exhausted


class Simulator:
    """One replay: a market, a config, a seed. Not thread-safe; one per env."""

    def __init__(self) -> None:
        self.market: MarketData | None = None

    # -- setup ------------------------------------------------------------------------------------------------
    def reset(self, market: MarketData, config: SimConfig | None = None, seed: int = 0) -> StepResult:
        from feature_store.instruments import INSTRUMENTS

        inst = INSTRUMENTS.get(market.symbol)
        if inst is not None and inst.inverse:
            raise NotImplementedError(
                f"{market.symbol} is a COIN-M (inverse) contract; the engine's accounting is USD-M linear only"
            )
        self.config = config or SimConfig()
        cfg = self.config
        self.seed = int(seed)
        seed_rng(self.seed)
        c = np.zeros(1, dtype=CONFIG_DTYPE)
        c[0]["tick"] = market.tick_size
        c[0]["lot"] = market.lot_size
        c[0]["eps"] = market.lot_size * 1e-6
        c[0]["maker_fee"] = cfg.fees.maker
        c[0]["taker_fee"] = cfg.fees.taker
        c[0]["liq_fee"] = cfg.margin.liquidation_fee_rate
        if not cfg.margin.leverage > 0:
            raise ValueError(f"MarginConfig.leverage must be positive, got {cfg.margin.leverage}")
        c[0]["leverage"] = cfg.margin.leverage
        c[0]["queue_model"] = cfg.queue.code()
        c[0]["queue_n"] = cfg.queue.n
        c[0]["partial_fills"] = int(cfg.queue.partial_fills)
        c[0]["entry_kind"] = cfg.latency.entry.code()
        c[0]["entry_base"] = cfg.latency.entry.base_us
        c[0]["entry_sigma"] = cfg.latency.entry.sigma
        c[0]["ack_kind"] = cfg.latency.ack.code()
        c[0]["ack_base"] = cfg.latency.ack.base_us
        c[0]["ack_sigma"] = cfg.latency.ack.sigma
        c[0]["log_updates"] = 1
        self._cfg = c
        self._tiers = cfg.margin.tier_array(market.symbol)
        self.orders = np.zeros(max(cfg.order_capacity, 4), dtype=ORDER_DTYPE)
        self.reqs = np.zeros(256, dtype=REQUEST_DTYPE)
        self.resps = np.zeros(1024, dtype=RESPONSE_DTYPE)
        self.fills = np.zeros(1024, dtype=FILL_DTYPE)
        self.updates = np.zeros(4096, dtype=RESPONSE_DTYPE)
        self.acct = np.zeros(1, dtype=ACCOUNT_DTYPE)
        self.acct[0]["cash"] = cfg.margin.initial_cash
        self.cur = np.zeros(N_CURSORS, dtype=np.int64)
        self.cur[C_BOOK] = -1
        self.cur[C_SEEN] = -1
        self.cur[C_NEXT_ID] = 1
        self._order_slot: dict[int, int] = {}
        self._set_market(market)
        self.cur[C_NOW] = market.start_us - 1
        return self.advance_to(market.start_us)

    def continue_with(self, market: MarketData) -> None:
        """Replay the next chunk (e.g. the next day) with the same account and orders; market times must follow."""
        if self.market is None:
            raise RuntimeError("call reset() before continue_with()")
        prev = self.market
        j = int(self.cur[C_BOOK])
        if j >= 0 and market.start_us <= prev.book_ts[j]:
            raise ValueError("continue_with: the next market chunk must start after the current one")
        if j >= 0:
            # carry the exchange's current book over, so requests arriving before the chunk's first snapshot
            # still meet a book
            market = replace(
                market,
                book_ts=np.concatenate([prev.book_ts[j : j + 1], market.book_ts]),
                book_recv_ts=np.concatenate([prev.book_recv_ts[j : j + 1], market.book_recv_ts]),
                bid_px=np.concatenate([prev.bid_px[j : j + 1], market.bid_px]),
                bid_sz=np.concatenate([prev.bid_sz[j : j + 1], market.bid_sz]),
                ask_px=np.concatenate([prev.ask_px[j : j + 1], market.ask_px]),
                ask_sz=np.concatenate([prev.ask_sz[j : j + 1], market.ask_sz]),
            )
        self._set_market(market)
        if j >= 0:
            self.cur[C_BOOK] = 0
            advance(
                self.now,
                *self._m[:16],
                self._m[16],
                self._m[17],
                self.orders,
                self.reqs,
                self.resps,
                self.fills,
                self.updates,
                self.acct,
                self._tiers,
                self.cur,
                self._cfg,
            )

    def _set_market(self, market: MarketData) -> None:
        self.market = market
        lat = self.config.latency
        tick = market.tick_size

        def ticks(px: np.ndarray) -> np.ndarray:
            out = np.full(px.shape, NO_TICK, dtype=np.int64)
            ok = np.isfinite(px)
            out[ok] = np.rint(px[ok] / tick).astype(np.int64)
            return out

        bid_tick, ask_tick = ticks(market.bid_px), ticks(market.ask_px)
        bid_sz = np.where(bid_tick == NO_TICK, 0.0, market.bid_sz)
        ask_sz = np.where(ask_tick == NO_TICK, 0.0, market.ask_sz)
        # replayed latencies: the recorded one-way latency of whatever has receive times, clock skew removed
        src_ts = np.concatenate([market.book_ts, market.trade_ts])
        src_recv = np.concatenate([market.book_recv_ts, market.trade_recv_ts])
        self.skew_us = clock_skew(src_ts, src_recv)
        book_seen = feed_seen_ts(lat.feed, market.book_ts, market.book_recv_ts, self.seed, self.skew_us)
        trade_seen = feed_seen_ts(
            lat.feed, market.trade_ts, market.trade_recv_ts, self.seed + 1, self.skew_us
        )
        lat_ts, lat_v = recorded_latency(src_ts, src_recv, self.skew_us)
        if REPLAY not in (lat.entry.code(), lat.ack.code()):
            lat_ts, lat_v = lat_ts[:0], lat_v[:0]
        self._cfg[0]["mark_from_book"] = int(market.mark_ts.shape[0] == 0)
        self._m = (
            market.book_ts,
            book_seen,
            bid_tick,
            np.ascontiguousarray(bid_sz),
            ask_tick,
            np.ascontiguousarray(ask_sz),
            market.trade_ts,
            trade_seen,
            ticks(market.trade_px) if market.trade_px.shape[0] else np.zeros(0, dtype=np.int64),
            market.trade_qty,
            market.trade_side,
            market.funding_ts,
            market.funding_rate,
            market.funding_mark,
            market.mark_ts,
            market.mark_px,
            lat_ts,
            lat_v,
        )
        self.cur[C_TRADE] = 0
        self.cur[C_FUND] = 0
        self.cur[C_MARK] = 0
        self.cur[C_SEEN] = -1
        self.cur[C_TRADE_SEEN] = 0
        self._fill_read = 0

    # -- agent actions ------------------------------------------------------------------------------------------
    @property
    def now(self) -> int:
        return int(self.cur[C_NOW])

    def submit(
        self,
        side: int,
        qty: float,
        price: float | None = None,
        *,
        post_only: bool = False,
        ioc: bool = False,
    ) -> int:
        """Send an order now. price=None: market order. post_only: rejected if it would take. ioc: the part not
        filled on arrival is canceled. Returns the order id."""
        if side not in (BUY, SELL):
            raise ValueError(f"side must be BUY (+1) or SELL (-1), got {side!r}")
        if not qty > 0:
            raise ValueError(f"qty must be positive, got {qty!r}")
        if price is None:
            kind, tif, px_tick = MARKET, IOC, 0
            if post_only:
                raise ValueError("a market order cannot be post-only; give a price")
        else:
            if not price > 0:
                raise ValueError(f"price must be positive, got {price!r}")
            kind = LIMIT
            tif = POST_ONLY if post_only else (IOC if ioc else GTC)
            px_tick = int(round(price / self.market.tick_size))
        lot = self.market.lot_size
        qty = round(round(qty / lot) * lot, 12)
        if qty <= 0:
            raise ValueError(f"qty rounds to zero lots (lot size {lot})")
        while True:
            oid = submit_order(
                self.orders,
                self.reqs,
                self.cur,
                self._cfg,
                self._m[16],
                self._m[17],
                side,
                kind,
                tif,
                px_tick,
                qty,
            )
            if oid == -1:
                self.orders = _grow(self.orders)
            elif oid == -2:
                self.reqs = _grow(self.reqs)
            else:
                break
        self._order_slot[int(oid)] = self._slot_of(int(oid))
        return int(oid)

    def cancel(self, order_id: int) -> bool:
        """Send a cancel now. False when the agent already knows the order is done or a cancel is travelling."""
        slot = self._slot_of(order_id)
        while True:
            if request_cancel(self.orders, self.reqs, self.cur, self._cfg, self._m[16], self._m[17], slot):
                return True
            if self.cur[C_REQ_TAIL] >= self.reqs.shape[0]:
                self.reqs = _grow(self.reqs)
                continue
            return False

    def amend(self, order_id: int, price: float | None = None, qty: float | None = None) -> bool:
        """Change price and/or total quantity. A new price or a larger quantity goes to the back of the queue; a
        smaller quantity keeps its place. Rejected (order unchanged) if it would cross or go below executed."""
        slot = self._slot_of(order_id)
        o = self.orders[slot]
        px_tick = int(o["local_px_tick"]) if price is None else int(round(price / self.market.tick_size))
        new_qty = float(o["qty"]) if qty is None else float(qty)
        while True:
            if request_amend(
                self.orders, self.reqs, self.cur, self._cfg, self._m[16], self._m[17], slot, px_tick, new_qty
            ):
                return True
            if self.cur[C_REQ_TAIL] >= self.reqs.shape[0]:
                self.reqs = _grow(self.reqs)
                continue
            return False

    def _slot_of(self, order_id: int) -> int:
        slot = self._order_slot.get(order_id)
        if slot is not None:
            rec = self.orders[slot].item()
            if rec[_O_ID] == order_id and rec[_O_STATUS] != FREE:
                return slot
        hits = np.flatnonzero(self.orders["id"][: self.cur[C_HWM]] == order_id)
        if hits.shape[0] == 0:
            raise KeyError(f"order {order_id} is unknown or finished long ago (its slot was reused)")
        return int(hits[0])

    # -- time ---------------------------------------------------------------------------------------------------
    def advance_to(self, t_us: int) -> StepResult:
        """Run the exchange and the agent's view up to local time t_us (>= now)."""
        t_us = int(t_us)
        if t_us < self.now:
            raise ValueError(f"advance_to({t_us}) is before the current time {self.now}")
        self.cur[C_NUPD] = 0
        while True:
            code = advance(
                t_us,
                *self._m[:16],
                self._m[16],
                self._m[17],
                self.orders,
                self.reqs,
                self.resps,
                self.fills,
                self.updates,
                self.acct,
                self._tiers,
                self.cur,
                self._cfg,
            )
            if code == OK:
                break
            self._grow_buffers()
        return StepResult(
            now=self.now,
            fills=self._drain_fills(),
            updates=self.updates[: self.cur[C_NUPD]].copy() if self.cur[C_NUPD] else _NO_UPDATES,
            account=self.account(),
            book_index=int(self.cur[C_SEEN]),
            done=bool(
                self.cur[C_BOOK] + 1 >= self.market.book_ts.shape[0]
                and self.cur[C_TRADE] >= self.market.trade_ts.shape[0]
            ),
        )

    def _grow_buffers(self) -> None:
        depth = self._m[2].shape[1]
        need = self.orders.shape[0] + 2 * depth + 8
        if self.cur[C_RESP_TAIL] + need > self.resps.shape[0]:
            self.resps = _grow(self.resps, self.resps.shape[0] + need)
        if self.cur[C_NFILL] + need > self.fills.shape[0]:
            self._compact_fills()
            if self.cur[C_NFILL] + need > self.fills.shape[0]:
                self.fills = _grow(self.fills, self.fills.shape[0] + need)
        if self.cur[C_NUPD] + self.resps.shape[0] > self.updates.shape[0]:
            self.updates = _grow(self.updates, self.cur[C_NUPD] + 2 * self.resps.shape[0])

    def _compact_fills(self) -> None:
        n = int(self.cur[C_NFILL])
        keep = self.fills[:n][self.fills["local_ts"][:n] > self.now]
        read = self.fills[:n][self.fills["local_ts"][:n] <= self.now]
        self._pending_read = getattr(self, "_pending_read", [])
        self._pending_read.append(read.copy())
        self.fills[: keep.shape[0]] = keep
        self.cur[C_NFILL] = keep.shape[0]

    def _drain_fills(self) -> np.ndarray:
        n = int(self.cur[C_NFILL])
        if n == 0 and not getattr(self, "_pending_read", None):
            return _NO_FILLS
        f = self.fills[:n]
        seen = f["local_ts"] <= self.now
        out = f[seen]
        earlier = getattr(self, "_pending_read", [])
        if earlier:
            out = np.concatenate([*earlier, out])
            self._pending_read = []
        rest = f[~seen].copy()
        self.fills[: rest.shape[0]] = rest
        self.cur[C_NFILL] = rest.shape[0]
        return np.sort(out, order=["local_ts", "exch_ts"], kind="stable")

    # -- views --------------------------------------------------------------------------------------------------
    def account(self) -> AccountState:
        a = dict(zip(ACCOUNT_DTYPE.names, self.acct[0].item(), strict=True))
        mark = a["mark"]
        if not mark > 0 and self.cur[C_BOOK] >= 0:
            mark = float(mid_of(self._m[2], self._m[4], int(self.cur[C_BOOK]), self.market.tick_size))
        pos = a["position"]
        upnl = (mark - a["entry_px"]) * pos if pos and mark > 0 else 0.0
        mm = float(maintenance_margin(self._tiers, abs(pos) * mark)) if pos else 0.0
        return AccountState(
            position=pos,
            entry_price=a["entry_px"],
            wallet=a["cash"],
            position_margin=a["iso_wallet"],
            order_margin=a["reserved"],
            mark=mark,
            unrealized_pnl=upnl,
            maintenance_margin=mm,
            equity=a["cash"] + a["iso_wallet"] + upnl,
            realized_pnl=a["realized_pnl"],
            fees_paid=a["fees_paid"],
            funding_paid=a["funding_paid"],
            liquidation_fees_paid=a["liq_fees_paid"],
            insurance_covered=a["insurance_covered"],
            liquidations=int(a["liquidated"]),
        )

    def observed_book(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """(bid_px, bid_sz, ask_px, ask_sz) of the snapshot the agent sees now, or None before the first."""
        j = int(self.cur[C_SEEN])
        if j < 0:
            return None
        m = self.market
        return m.bid_px[j], m.bid_sz[j], m.ask_px[j], m.ask_sz[j]

    def seen_trades(self) -> slice:
        """Rows of market.trade_* the agent has seen by now (a prefix of the trades)."""
        return slice(0, int(self.cur[C_TRADE_SEEN]))

    def order(self, order_id: int) -> dict:
        """The agent's view of one order (status as last acknowledged) plus the exchange's hidden state."""
        o = dict(zip(ORDER_DTYPE.names, self.orders[self._slot_of(order_id)].item(), strict=True))
        return {
            "id": o["id"],
            "side": o["side"],
            "price": o["local_px_tick"] * self.market.tick_size,
            "qty": o["qty"],
            "status": STATUS_NAMES[o["local_status"]],
            "leaves": o["local_leaves"],
            "cancel_in_flight": bool(o["cancel_sent"]),
            "exchange_status": STATUS_NAMES[o["status"]],
            "queue_ahead": o["front"],
        }

    def open_orders(self) -> list[dict]:
        live = (self.orders["local_status"] == PENDING) | (self.orders["local_status"] == LIVE)
        return [self.order(int(i)) for i in self.orders["id"][live]]


def _grow(arr: np.ndarray, min_size: int | None = None) -> np.ndarray:
    size = max(arr.shape[0] * 2, min_size or 0)
    out = np.zeros(size, dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


def reason_name(code: int) -> str:
    return REASON_NAMES.get(int(code), str(code))
