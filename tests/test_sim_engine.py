"""Order handling in the replay engine: cancels racing fills, post-only, IOC, book walks, amends, margin checks,
chunked replay."""

from __future__ import annotations

import numpy as np
import pytest
from sim_synthetic import STEP, T0, ladder

from agent.sim import BUY, LatencyConfig, LatencyModel, MarginConfig, SimConfig, Simulator
from agent.sim.orders import (
    R_AMEND_REJECTED,
    R_INSUFFICIENT_MARGIN,
    R_MAX_NOTIONAL,
    R_NOT_ACTIVE,
    R_POST_ONLY_CROSS,
)
from agent.sim.quoter import run_touch_quoter

LAT = 10_000
CFG = SimConfig(latency=LatencyConfig(feed=LatencyModel(base_us=0)))


def test_cancel_in_flight_that_arrives_after_the_fill_does_not_undo_it():
    # our bid rests from T0+10ms; a sell prints through it at T0+25ms; we cancel at T0+20ms (arrives +30ms)
    sim = Simulator()
    sim.reset(ladder(n=10, trades=[(25_000, 59_999.9, 1.0, -1)]), CFG)
    oid = sim.submit(BUY, 0.003, 60_000.0, post_only=True)
    sim.advance_to(T0 + 20_000)
    assert sim.order(oid)["status"] == "live"
    assert sim.cancel(oid)
    assert not sim.cancel(oid)  # one cancel travels at a time
    res = sim.advance_to(T0 + 100_000)
    assert list(res.fills["exch_ts"]) == [T0 + 25_000]
    assert res.account.position == pytest.approx(0.003)
    o = sim.order(oid)
    assert o["status"] == "filled" and not o["cancel_in_flight"]
    reasons = [int(r) for r in res.updates["reason"]]
    assert R_NOT_ACTIVE in reasons  # the exchange answered the cancel with 'not active'
    assert res.updates["status"][-1] == 3  # and the order stays filled


def test_cancel_that_arrives_first_wins():
    sim = Simulator()
    sim.reset(ladder(n=10, trades=[(45_000, 59_999.9, 1.0, -1)]), CFG)
    oid = sim.submit(BUY, 0.003, 60_000.0, post_only=True)
    sim.advance_to(T0 + 20_000)
    sim.cancel(oid)  # arrives T0 + 30 ms, before the trade
    res = sim.advance_to(T0 + 100_000)
    assert res.fills.shape[0] == 0 and sim.order(oid)["status"] == "canceled"
    assert res.account.order_margin == 0.0


def test_post_only_that_would_cross_is_rejected():
    sim = Simulator()
    sim.reset(ladder(n=10), CFG)
    oid = sim.submit(BUY, 0.001, 60_000.1, post_only=True)
    res = sim.advance_to(T0 + 50_000)
    assert sim.order(oid)["status"] == "rejected"
    assert int(res.updates["reason"][0]) == R_POST_ONLY_CROSS
    assert res.fills.shape[0] == 0


def test_ioc_takes_what_it_can_and_cancels_the_rest():
    sizes = np.full((10, 20), 0.2)
    sim = Simulator()
    sim.reset(ladder(n=10, ask_sz=sizes), CFG)
    oid = sim.submit(BUY, 1.0, 60_000.2, ioc=True)  # levels .1 and .2 only: 0.4
    res = sim.advance_to(T0 + 50_000)
    assert list(np.round(res.fills["px"], 1)) == [60_000.1, 60_000.2]
    assert sim.order(oid)["status"] == "canceled"
    assert res.account.position == pytest.approx(0.4)


def test_crossing_gtc_limit_takes_then_rests_at_its_price():
    sizes = np.full((10, 20), 0.2)
    sim = Simulator()
    sim.reset(ladder(n=10, ask_sz=sizes), CFG)
    oid = sim.submit(BUY, 0.5, 60_000.1)
    res = sim.advance_to(T0 + 50_000)
    assert res.fills["qty"].sum() == pytest.approx(0.2)
    o = sim.order(oid)
    assert o["status"] == "live" and o["leaves"] == pytest.approx(0.3) and o["queue_ahead"] == 0.0


def test_amend_smaller_keeps_the_queue_place_price_change_requeues():
    bsz = np.full((20, 20), 1.0)
    bsz[:, 0] = 0.5
    trades = [(30_000, 60_000.0, 0.2, -1)]
    sim = Simulator()
    sim.reset(ladder(n=20, bid_sz=bsz, trades=trades), CFG)
    oid = sim.submit(BUY, 0.010, 60_000.0, post_only=True)
    sim.advance_to(T0 + 40_000)
    assert sim.order(oid)["queue_ahead"] == pytest.approx(0.3)
    sim.amend(oid, qty=0.004)
    sim.advance_to(T0 + 70_000)
    o = sim.order(oid)
    assert o["queue_ahead"] == pytest.approx(0.3) and o["leaves"] == pytest.approx(0.004)
    sim.amend(oid, price=59_999.9)  # new price: back of that level (1.0 shown)
    sim.advance_to(T0 + 100_000)
    o = sim.order(oid)
    assert o["price"] == pytest.approx(59_999.9) and o["queue_ahead"] == pytest.approx(1.0)
    sim.amend(oid, price=60_000.1)  # would cross as a maker order: refused, order unchanged
    res = sim.advance_to(T0 + 150_000)
    assert int(res.updates["reason"][-1]) == R_AMEND_REJECTED
    assert sim.order(oid)["price"] == pytest.approx(59_999.9)


def test_order_beyond_the_available_margin_is_rejected():
    sim = Simulator()
    sim.reset(ladder(n=10), SimConfig(margin=MarginConfig(initial_cash=1_000.0, leverage=10)))
    ok = sim.submit(BUY, 0.1, 59_990.0)  # 599.9 initial margin
    too_much = sim.submit(BUY, 0.1, 59_990.0)  # another 599.9: only 400.1 left
    res = sim.advance_to(T0 + 50_000)
    assert sim.order(ok)["status"] == "live" and sim.order(too_much)["status"] == "rejected"
    assert int(res.updates["reason"][-1]) == R_INSUFFICIENT_MARGIN
    assert res.account.order_margin == pytest.approx(599.9)


def test_leverage_above_the_bracket_maximum_is_refused():
    # 125x is allowed only below 50k notional (tier 1); 0.9 BTC at 60k is 54k
    sim = Simulator()
    sim.reset(ladder(n=10), SimConfig(margin=MarginConfig(initial_cash=10_000.0, leverage=125)))
    small = sim.submit(BUY, 0.8, 59_990.0)
    big = sim.submit(BUY, 0.1, 59_990.0)  # would take the long to 0.9
    sim.advance_to(T0 + 50_000)
    assert sim.order(small)["status"] == "live"
    assert sim.order(big)["status"] == "live"  # open orders are not position: both fit on their own
    sim2 = Simulator()
    sim2.reset(ladder(n=10), SimConfig(margin=MarginConfig(initial_cash=10_000.0, leverage=125)))
    too_big = sim2.submit(BUY, 0.9, 59_990.0)
    res = sim2.advance_to(T0 + 50_000)
    assert sim2.order(too_big)["status"] == "rejected"
    assert int(res.updates["reason"][-1]) == R_MAX_NOTIONAL


def test_inverse_contracts_are_refused_up_front():
    from dataclasses import replace

    m = replace(ladder(n=5), symbol="BTCUSD_PERP", lot_size=1.0)
    with pytest.raises(NotImplementedError, match="COIN-M"):
        Simulator().reset(m, CFG)


def test_market_order_before_any_book_is_rejected_not_dropped():
    sim = Simulator()
    m = ladder(n=10)
    sim.reset(m, CFG)
    assert sim.observed_book() is not None
    with pytest.raises(ValueError, match="positive"):
        sim.submit(BUY, 0.0)
    with pytest.raises(ValueError, match="before the current time"):
        sim.advance_to(T0 - 1)


def _random_market(seed: int, n: int = 600):
    rng = np.random.default_rng(seed)
    top = 60_000.0 + 0.1 * np.cumsum(rng.integers(-1, 2, n))
    trades = []
    for j in range(1, n):
        for _ in range(rng.integers(0, 4)):
            side = int(rng.choice([-1, 1]))
            px = top[j - 1] + (0.1 if side > 0 else 0.0)
            trades.append(
                (
                    int((j - 1) * STEP + rng.integers(1, STEP)),
                    round(px, 1),
                    float(rng.integers(1, 400)) / 1000,
                    side,
                )
            )
    sizes = rng.integers(1, 3000, (n, 20)) / 1000.0
    return ladder(
        n=n, bid_top=top, ask=60_000.1, bid_sz=sizes, ask_sz=sizes[::-1], trades=trades, feed_lag_us=3_000
    )


def test_chunked_replay_matches_one_pass():
    full = _random_market(5)
    one = Simulator()
    one.reset(full, CFG)
    r_one = run_touch_quoter(one, 100_000, 0.002)
    assert r_one.fills.shape[0] > 20
    cut = 300
    first = _slice(full, 0, cut)
    second = _slice(full, cut, full.book_ts.shape[0])
    two = Simulator()
    two.reset(first, CFG)
    r_a = run_touch_quoter(two, 100_000, 0.002, stop_us=int(full.book_ts[cut - 1]))
    two.continue_with(second)
    r_b = run_touch_quoter(two, 100_000, 0.002, start_us=int(full.book_ts[cut - 1]) + 100_000)
    both = np.concatenate([r_a.fills, r_b.fills])
    assert np.array_equal(
        both[["exch_ts", "px", "qty", "side"]], r_one.fills[["exch_ts", "px", "qty", "side"]]
    )
    assert two.account() == one.account()


def _slice(m, a, b):
    from dataclasses import replace

    """Snapshots a..b-1 and the trades that fall in them (after snapshot a-1, up to snapshot b-1)."""
    t = (m.trade_ts > (m.book_ts[a - 1] if a > 0 else -1)) & (m.trade_ts <= m.book_ts[b - 1])
    return replace(
        m,
        book_ts=m.book_ts[a:b],
        book_recv_ts=m.book_recv_ts[a:b],
        bid_px=m.bid_px[a:b],
        bid_sz=m.bid_sz[a:b],
        ask_px=m.ask_px[a:b],
        ask_sz=m.ask_sz[a:b],
        trade_ts=m.trade_ts[t],
        trade_recv_ts=m.trade_recv_ts[t],
        trade_px=m.trade_px[t],
        trade_qty=m.trade_qty[t],
        trade_side=m.trade_side[t],
    )


def test_buffers_grow_mid_replay_without_losing_or_repeating_fills():
    # 3,000 sell trades of one lot into our 5 BTC bid at the touch (nothing ahead): 3,000 partial fills in one
    # advance, three times the initial fill buffer
    trades = [(1_000 + k * 60, 60_000.0, 0.001, -1) for k in range(3_000)]
    bsz = np.full((40, 20), 1.0)
    bsz[:, 0] = 0.0  # an empty touch level: we are first in the queue
    sim = Simulator()
    sim.reset(ladder(n=40, bid_sz=bsz, trades=trades), SimConfig(margin=MarginConfig(initial_cash=100_000.0)))
    sim.advance_to(T0 + 500)
    oid = sim.submit(BUY, 5.0, 60_000.0, post_only=True)
    res = sim.advance_to(T0 + 39 * STEP)
    first_live = T0 + LAT
    expected = sum(1 for t in trades if T0 + t[0] > first_live + 500)
    assert res.fills.shape[0] == expected
    assert np.all(np.diff(res.fills["exch_ts"]) > 0)
    assert res.fills["qty"].sum() == pytest.approx(0.001 * expected)
    assert sim.order(oid)["leaves"] == pytest.approx(5.0 - 0.001 * expected)
    assert sim.advance_to(T0 + 39 * STEP + 1).fills.shape[0] == 0
