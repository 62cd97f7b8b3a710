"""Queue position: probability models against plain-Python references, and fills in the engine that happen
exactly when the queue ahead has traded."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_synthetic import STEP, T0, ladder

from agent.sim import BUY, QueueConfig, SimConfig, Simulator
from agent.sim.queue import (
    LOG,
    LOG2,
    POWER,
    POWER2,
    POWER3,
    RISK_AVERSE,
    on_depth_change,
    prob_behind,
)

sizes = st.floats(min_value=0.001, max_value=1e4, allow_nan=False)


def _reference_prob(model: int, n: float, front: float, back: float) -> float:
    if model == POWER:
        return back**n / (back**n + front**n)
    if model == LOG:
        return math.log1p(back) / (math.log1p(back) + math.log1p(front))
    if model == POWER2:
        return back**n / (back + front) ** n
    if model == LOG2:
        return math.log1p(back) / math.log1p(back + front)
    if model == POWER3:
        return 1 - (front / (front + back)) ** n
    raise AssertionError(model)


@settings(max_examples=200, deadline=None)
@given(
    model=st.sampled_from([POWER, LOG, POWER2, LOG2, POWER3]),
    n=st.floats(min_value=0.5, max_value=4.0),
    front=sizes,
    back=sizes,
)
def test_probability_models_match_reference(model, n, front, back):
    assert prob_behind(model, n, front, back) == pytest.approx(
        _reference_prob(model, n, front, back), rel=1e-9
    )


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from([RISK_AVERSE, POWER, LOG, POWER2, LOG2, POWER3]),
    front_frac=st.floats(min_value=0.0, max_value=1.0),
    prev=sizes,
    new_frac=st.floats(min_value=0.0, max_value=2.0),
)
def test_depth_change_bounds(model, front_frac, prev, new_frac):
    front = prev * front_frac
    new = prev * new_frac
    est, cum = on_depth_change(model, 3.0, front, 0.0, prev, new)
    assert cum == 0.0
    assert est <= new + 1e-9  # never more ahead than the level holds
    assert est <= front + 1e-9  # a book change never pushes the order back
    if new >= prev or model == RISK_AVERSE:
        assert est == pytest.approx(min(front, new))  # only a cap: increases join behind, risk-averse ignores
    else:
        assert est >= front - (prev - new) - 1e-9  # cannot advance by more than the decrease


def test_power_split_of_a_cancel_by_hand():
    # 4 ahead, 6 behind; 4 canceled: p(behind) = 6^3 / (6^3 + 4^3)
    p = 216 / (216 + 64)
    expected = 4 - (1 - p) * 4 + min(6 - p * 4, 0)
    est, _ = on_depth_change(POWER, 3.0, 4.0, 0.0, 10.0, 6.0)
    assert est == pytest.approx(expected)
    # a trade of 1 already counted: only 3 of the 4 are a cancel
    est2, _ = on_depth_change(POWER, 3.0, 3.0, 1.0, 10.0, 6.0)
    p2 = 7**3 / (7**3 + 3**3)
    assert est2 == pytest.approx(3 - (1 - p2) * 3 + min(7 - p2 * 3, 0))


def _resting_bid(partial: bool, trades):
    # bid level 60,000 shows 0.05 throughout (refilled behind us); we join behind it with 0.010
    market = ladder(n=30, size=0.05, trades=trades)
    sim = Simulator()
    sim.reset(market, SimConfig(queue=QueueConfig(model="power", partial_fills=partial)))
    oid = sim.submit(BUY, 0.010, 60_000.0, post_only=True)  # arrives T0 + 10 ms, 0.05 ahead
    res = sim.advance_to(T0 + 29 * STEP)
    return oid, sim, res


def test_fills_exactly_after_the_queue_ahead_has_traded():
    trades = [
        (20_000, 60_000.0, 0.020, -1),
        (50_000, 60_000.0, 0.020, -1),
        (80_000, 60_000.0, 0.010, -1),  # the 0.05 ahead is gone: nothing for us yet
        (120_000, 60_000.0, 0.004, -1),  # 4 lots past the queue: 0.004 of ours
        (150_000, 60_000.0, 0.010, -1),  # the remaining 0.006
        (170_000, 60_000.0, 0.010, -1),  # nothing left to fill
    ]
    oid, sim, res = _resting_bid(True, trades)
    fills = res.fills
    assert [round(q, 9) for q in fills["qty"]] == [0.004, 0.006]
    assert list(fills["exch_ts"]) == [T0 + 120_000, T0 + 150_000]
    assert np.all(fills["px"] == 60_000.0) and np.all(fills["maker"] == 1)
    assert sim.order(oid)["status"] == "filled"
    assert res.account.position == pytest.approx(0.010)


def test_whole_order_fills_once_through_without_partial_fills():
    trades = [(20_000, 60_000.0, 0.050, -1), (60_000, 60_000.0, 0.0004, -1), (90_000, 60_000.0, 0.0006, -1)]
    _, _, res = _resting_bid(False, trades)
    # 0.0004 past the queue rounds to 0 lots; 0.0010 past it is one lot: the whole 0.010 fills then
    assert list(res.fills["exch_ts"]) == [T0 + 90_000]
    assert res.fills["qty"][0] == pytest.approx(0.010)


def test_trade_on_the_other_side_or_price_does_not_move_the_queue():
    trades = [
        (20_000, 60_000.1, 0.5, 1),
        (30_000, 59_999.9, 0.001, -1),
    ]  # buy at the ask; sell below: through
    oid, sim, res = _resting_bid(True, trades)
    # the sell printed below our bid means our level was consumed: filled in full at our price
    assert list(res.fills["exch_ts"]) == [T0 + 30_000]
    assert res.fills["px"][0] == 60_000.0


def test_book_decrease_moves_the_order_by_the_model():
    # level 60,000: 0.04 when we join, grows to 0.10 (all behind us), then drops to 0.06 with no trade
    n = 10
    bsz = np.full((n, 20), 1.0)
    bsz[:, 0] = [0.04, 0.04, 0.10, 0.10, 0.06, 0.06, 0.06, 0.06, 0.06, 0.06]
    for model, n_exp in (("power", 3.0), ("risk_averse", 3.0), ("log", 3.0)):
        sim = Simulator()
        sim.reset(ladder(n=n, bid_sz=bsz), SimConfig(queue=QueueConfig(model=model, n=n_exp)))
        oid = sim.submit(BUY, 0.001, 60_000.0, post_only=True)
        sim.advance_to(T0 + 3 * STEP)
        assert sim.order(oid)["queue_ahead"] == pytest.approx(0.04)
        sim.advance_to(T0 + 5 * STEP)
        code = {"power": POWER, "risk_averse": RISK_AVERSE, "log": LOG}[model]
        p = _reference_prob(code, 3.0, 0.04, 0.06) if code != RISK_AVERSE else 1.0
        expected = min(0.04 - (1 - p) * 0.04 + min(0.06 - p * 0.04, 0), 0.06)
        assert sim.order(oid)["queue_ahead"] == pytest.approx(expected)
