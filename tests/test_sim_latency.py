"""Latency: order entry, exchange ack and market-data delay (constant, lognormal, replayed)."""

from __future__ import annotations

import numpy as np
import pytest
from sim_synthetic import STEP, T0, ladder

from agent.sim import BUY, LatencyConfig, LatencyModel, SimConfig, Simulator
from agent.sim.latency import CONSTANT, LOGNORMAL, REPLAY, clock_skew, draw, feed_seen_ts, seed_rng

ENTRY = 7_000
ACK = 3_000
NO_DATA = np.zeros(0, dtype=np.int64), np.zeros(0)


def _config(entry=LatencyModel(base_us=ENTRY), ack=LatencyModel(base_us=ACK), feed=None) -> SimConfig:
    lat = (
        LatencyConfig(entry=entry, ack=ack)
        if feed is None
        else LatencyConfig(entry=entry, ack=ack, feed=feed)
    )
    return SimConfig(latency=lat)


def test_order_sent_at_t_cannot_fill_on_a_trade_before_t_plus_latency():
    t_send = T0 + 150_000
    arrive = t_send + ENTRY
    # sells printed below our bid: each would fill a resting bid at 60,000 in full
    trades = [
        (arrive - T0 - 1, 59_999.9, 0.5, -1),
        (arrive - T0, 59_999.9, 0.5, -1),
        (arrive - T0 + 1, 59_999.9, 0.5, -1),
    ]
    sim = Simulator()
    sim.reset(ladder(n=10, trades=trades), _config())
    sim.advance_to(t_send)
    oid = sim.submit(BUY, 0.002, 60_000.0, post_only=True)
    early = sim.advance_to(arrive + 1 + ACK - 1)
    assert early.fills.shape[0] == 0  # filled at the exchange, but the agent does not know yet
    assert sim.order(oid)["exchange_status"] == "filled"
    res = sim.advance_to(arrive + 1 + ACK)
    # not on the trade 1 µs before arrival, nor on the one at the arrival instant (market data goes first)
    assert list(res.fills["exch_ts"]) == [arrive + 1]
    assert list(res.fills["local_ts"]) == [arrive + 1 + ACK]
    assert sim.order(oid)["status"] == "filled"


def test_ack_reaches_the_agent_after_the_ack_latency():
    sim = Simulator()
    sim.reset(ladder(n=10), _config())
    oid = sim.submit(BUY, 0.001, 59_999.0, post_only=True)
    sim.advance_to(T0 + ENTRY + ACK - 1)
    assert sim.order(oid)["status"] == "pending" and sim.order(oid)["exchange_status"] == "live"
    res = sim.advance_to(T0 + ENTRY + ACK)
    assert sim.order(oid)["status"] == "live"
    assert list(res.updates["local_ts"]) == [T0 + ENTRY + ACK]


def test_feed_delay_shows_each_snapshot_only_when_received():
    bid_top = 60_000.0 + 0.1 * np.arange(10)
    lag = 40_000
    sim = Simulator()
    sim.reset(
        ladder(n=10, bid_top=bid_top, ask=60_000.1), _config(feed=LatencyModel(kind="constant", base_us=lag))
    )
    for j in range(1, 9):
        sim.advance_to(T0 + j * STEP + lag - 1)
        assert sim.observed_book()[0][0] == pytest.approx(bid_top[j - 1])
        sim.advance_to(T0 + j * STEP + lag)
        assert sim.observed_book()[0][0] == pytest.approx(bid_top[j])


def test_replayed_feed_latency_uses_recorded_receive_times():
    sim = Simulator()
    sim.reset(ladder(n=10, feed_lag_us=25_000), _config())
    sim.advance_to(T0 + 3 * STEP + 24_999)
    assert sim.cur[4] == 2  # snapshot 3 is received 25 ms after it happened
    sim.advance_to(T0 + 3 * STEP + 25_000)
    assert sim.cur[4] == 3


def test_replayed_order_latency_follows_the_recorded_series():
    # everything arrives 12 ms late on the recorder: replayed entry latency is 12 ms (+ 1 ms offset)
    sim = Simulator()
    cfg = _config(entry=LatencyModel(kind="replay", base_us=1_000))
    sim.reset(ladder(n=10, feed_lag_us=12_000), cfg)
    sim.advance_to(T0 + 200_000)
    sim.submit(BUY, 0.001, 59_999.0, post_only=True)
    sim.advance_to(T0 + 400_000)
    assert sim.orders[0]["exch_ts"] == T0 + 200_000 + 13_000


def test_clock_skew_correction_matches_a_recorder_behind_the_exchange():
    ts = np.array([100, 200, 300], dtype=np.int64)
    recv = ts - np.array([1_300, 1_250, 1_310])
    assert clock_skew(ts, recv) == 1_310
    seen = feed_seen_ts(LatencyModel(kind="replay", base_us=0), ts, recv, 0, clock_skew(ts, recv))
    assert np.all(seen >= ts) and np.all(np.diff(seen) >= 0)


def test_lognormal_draws_are_seeded_and_centred_on_the_median():
    seed_rng(7)
    a = np.array([draw(LOGNORMAL, 10_000.0, 0.5, 0, *NO_DATA) for _ in range(4000)])
    seed_rng(7)
    b = np.array([draw(LOGNORMAL, 10_000.0, 0.5, 0, *NO_DATA) for _ in range(4000)])
    assert np.array_equal(a, b)
    assert np.all(a >= 1)
    assert np.median(a) == pytest.approx(10_000, rel=0.05)
    assert np.std(np.log(a)) == pytest.approx(0.5, rel=0.07)
    assert draw(CONSTANT, 10_000.0, 0.5, 0, *NO_DATA) == 10_000


def test_replay_draw_steps_through_the_recorded_series():
    rec_ts = np.array([0, 100, 200], dtype=np.int64)
    rec_v = np.array([5.0, 9.0, 2.0])
    assert [draw(REPLAY, 1.0, 0.0, t, rec_ts, rec_v) for t in (0, 99, 100, 250)] == [6, 6, 10, 3]


def test_lognormal_jitter_keeps_requests_in_order():
    sim = Simulator()
    sim.reset(ladder(n=40), _config(entry=LatencyModel(kind="lognormal", base_us=10_000, sigma=1.0)), seed=3)
    ids = []
    for k in range(20):
        sim.advance_to(T0 + k * 1_000)
        ids.append(sim.submit(BUY, 0.001, 59_990.0 - k, post_only=True))
    sim.advance_to(T0 + 30 * STEP)
    arrivals = [int(sim.orders[sim._slot_of(i)]["exch_ts"]) for i in ids]
    assert arrivals == sorted(arrivals)  # one channel: no request overtakes another
