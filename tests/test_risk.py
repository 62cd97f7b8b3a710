"""Risk rules: leverage cap from volatility, notional cap and order clipping, breach penalties, kill switches."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.risk import (
    DAY_US,
    KILL_DAILY_LOSS,
    KILL_DRAWDOWN,
    KILL_LOSS_STREAK,
    RiskConfig,
    RiskManager,
    cap_notional,
    clip_order_qty,
    leverage_cap,
)

T0 = 1_723_075_200_000_000 + 3_600_000_000  # 2024-08-08 01:00 UTC
SEC = 1_000_000


def test_leverage_cap_targets_one_sigma_loss_over_the_horizon():
    cfg = RiskConfig(target_risk=0.01, risk_horizon_s=60.0, max_leverage=10.0, sigma_floor=1e-6)
    # sigma 5e-4 per 1 s step -> 60 s sigma = 5e-4 * sqrt(60); a one-sigma move costs lev * that = 1 %.
    lev = leverage_cap(cfg, 1.0, realized_sigma=5e-4)
    assert lev == pytest.approx(0.01 / (5e-4 * math.sqrt(60.0)))
    assert lev * 5e-4 * math.sqrt(60) == pytest.approx(0.01)
    # with 10 s steps the same per-step sigma spans fewer steps per horizon
    assert leverage_cap(cfg, 10.0, 5e-4) == pytest.approx(0.01 / (5e-4 * math.sqrt(6.0)))
    # calm market: the ceiling binds
    assert leverage_cap(cfg, 1.0, 1e-6) == 10.0


def test_leverage_cap_takes_the_more_cautious_of_prediction_and_realized():
    cfg = RiskConfig(sigma_floor=1e-6)
    realized_only = leverage_cap(cfg, 1.0, 4e-4)
    assert leverage_cap(cfg, 1.0, 4e-4, predicted_variance=(8e-4) ** 2) == pytest.approx(realized_only / 2)
    assert leverage_cap(cfg, 1.0, 4e-4, predicted_variance=(1e-4) ** 2) == pytest.approx(realized_only)
    assert leverage_cap(cfg, 1.0, 4e-4, predicted_variance=math.nan) == pytest.approx(realized_only)
    # no usable estimate at all: the floor decides
    floor_cfg = RiskConfig(sigma_floor=2e-4, max_leverage=10.0)
    assert leverage_cap(floor_cfg, 1.0, math.nan, None) == pytest.approx(
        floor_cfg.target_risk / (2e-4 * math.sqrt(60))
    )


def test_cap_notional_is_the_lower_of_hard_cap_and_leverage_times_equity():
    cfg = RiskConfig(max_notional=50_000.0)
    assert cap_notional(cfg, 3.0, 10_000.0) == 30_000.0
    assert cap_notional(cfg, 8.0, 10_000.0) == 50_000.0
    assert cap_notional(cfg, 8.0, -5.0) == 0.0


@given(
    side=st.sampled_from([1, -1]),
    qty=st.floats(0, 10, allow_nan=False),
    position=st.floats(-10, 10, allow_nan=False),
    cap=st.floats(0, 10, allow_nan=False),
)
def test_clipped_orders_never_take_the_position_past_the_cap(side, qty, position, cap):
    q = clip_order_qty(side, qty, position, cap)
    assert 0.0 <= q <= qty
    after = position + side * q
    # the cap holds after a full fill, unless the position already sat beyond it on that side (then nothing adds)
    assert abs(after) <= max(cap, abs(position)) + 1e-9
    if side * position > cap:
        assert q == 0.0
    # reducing toward flat is never blocked
    if side * position < 0:
        assert q >= min(qty, abs(position)) - 1e-9
    # maximal: any larger order would cross the cap
    if q < qty:
        assert (
            position + side * (q + 1e-6) > cap - 1e-12 if side > 0 else position - (q + 1e-6) < -cap + 1e-12
        )


def _mgr(**kw) -> RiskManager:
    cfg = RiskConfig(**{"sigma_floor": 1e-4, "max_notional": 1e9, **kw})
    m = RiskManager(cfg, step_s=1.0)
    m.reset(T0, 10_000.0)
    return m


def test_breach_penalty_grows_with_repeated_breaches_and_decays_when_clean():
    m = _mgr(breach_penalty=0.5, target_risk=0.01, max_leverage=10.0)
    # lev cap = 0.01 / (1e-3 * sqrt 60) = 1.29 -> cap notional ~ 12.9k at equity 10k
    status = m.update(T0, 10_000.0, position=0.1, mark=60_000.0, realized_sigma=1e-3)
    assert status.cap_notional == pytest.approx(10_000 * 0.01 / (1e-3 * math.sqrt(60)))
    assert not status.breach and status.penalty == 0.0
    penalties = []
    for k in range(1, 4):
        status = m.update(T0 + k * SEC, 10_000.0, position=0.5, mark=60_000.0, realized_sigma=1e-3)
        assert status.breach
        penalties.append(status.penalty)
    assert penalties == [0.5, 1.0, 1.5]
    status = m.update(T0 + 4 * SEC, 10_000.0, position=0.1, mark=60_000.0, realized_sigma=1e-3)
    assert not status.breach and status.penalty == 0.0 and status.breach_streak == 2
    status = m.update(T0 + 5 * SEC, 10_000.0, position=0.0, mark=60_000.0, realized_sigma=1e-3, clipped=True)
    assert status.breach and status.penalty == 1.5  # clipping an order is a breach too


def test_a_position_at_the_cap_may_drift_within_the_tolerance_band():
    m = _mgr(breach_penalty=0.5, target_risk=0.01, max_leverage=10.0, breach_tolerance=0.05)
    cap = 10_000 * 0.01 / (1e-3 * math.sqrt(60))
    at_cap = cap / 60_000.0
    assert not m.update(
        T0, 10_000.0, at_cap, 60_000.0 * 1.049, 1e-3
    ).breach  # price up 4.9 %: inside the band
    assert m.update(T0 + SEC, 10_000.0, at_cap, 60_000.0 * 1.051, 1e-3).breach
    with pytest.raises(ValueError, match="breach_tolerance"):
        RiskConfig(breach_tolerance=-0.1)


def test_daily_loss_cap_halts_until_the_next_utc_day():
    m = _mgr(daily_loss_cap=0.02, max_drawdown=0.0, loss_streak=0)
    assert not m.update(T0, 9_801.0, 0.0, 60_000.0, 1e-4).halted
    status = m.update(T0 + SEC, 9_800.0, 0.0, 60_000.0, 1e-4)
    assert status.halted and status.tripped_now == KILL_DAILY_LOSS and status.kill_switch == KILL_DAILY_LOSS
    next_day = (T0 // DAY_US + 1) * DAY_US
    assert status.halt_until_us == next_day
    later = m.update(next_day - SEC, 9_900.0, 0.0, 60_000.0, 1e-4)
    assert later.halted and later.tripped_now == ""
    # a new day: released, and the day's loss is measured from the new day's starting equity
    released = m.update(next_day, 9_700.0, 0.0, 60_000.0, 1e-4)
    assert not released.halted and released.kill_switch == ""
    assert not m.update(next_day + SEC, 9_600.0, 0.0, 60_000.0, 1e-4).halted
    assert m.update(next_day + 2 * SEC, 9_500.0, 0.0, 60_000.0, 1e-4).tripped_now == KILL_DAILY_LOSS


def test_drawdown_guard_measures_from_the_peak_and_holds_until_reset():
    m = _mgr(daily_loss_cap=0.0, max_drawdown=0.05, loss_streak=0)
    m.update(T0, 12_000.0, 0.0, 60_000.0, 1e-4)
    assert not m.update(T0 + SEC, 11_401.0, 0.0, 60_000.0, 1e-4).halted  # 4.99 % below the peak
    status = m.update(T0 + 2 * SEC, 11_400.0, 0.0, 60_000.0, 1e-4)
    assert status.tripped_now == KILL_DRAWDOWN
    assert m.update(T0 + 10 * DAY_US, 13_000.0, 0.0, 60_000.0, 1e-4).halted
    m.reset(T0 + 10 * DAY_US, 13_000.0)
    assert not m.halted(T0 + 10 * DAY_US)


def _round_trip(m: RiskManager, t: int, start_eq: float, end_eq: float, side: float = 1.0):
    m.update(t, start_eq, 0.0, 60_000.0, 1e-4)
    m.update(t + SEC, start_eq, 0.01 * side, 60_000.0, 1e-4)
    return m.update(t + 2 * SEC, end_eq, 0.0, 60_000.0, 1e-4)


def test_loss_streak_halts_for_the_cooldown_and_a_winner_resets_the_count():
    m = _mgr(daily_loss_cap=0.0, max_drawdown=0.0, loss_streak=3, loss_streak_cooldown_s=60.0)
    eq, t = 10_000.0, T0
    status = _round_trip(m, t, eq, eq - 1)
    status = _round_trip(m, t + 10 * SEC, eq - 1, eq - 2)
    assert status.losing_round_trips == 2 and not status.halted
    status = _round_trip(m, t + 20 * SEC, eq - 2, eq - 1)  # a winner
    assert status.losing_round_trips == 0
    for k in range(3):
        status = _round_trip(m, t + (30 + 10 * k) * SEC, eq - 1 - k, eq - 2 - k, side=-1.0)
    assert status.tripped_now == KILL_LOSS_STREAK and status.halted
    tripped_at = t + 52 * SEC
    assert status.halt_until_us == tripped_at + 60 * SEC
    assert m.update(tripped_at + 59 * SEC, eq, 0.0, 60_000.0, 1e-4).halted
    assert not m.update(tripped_at + 60 * SEC, eq, 0.0, 60_000.0, 1e-4).halted


def test_a_flip_through_zero_closes_one_round_trip_and_opens_the_next():
    m = _mgr(daily_loss_cap=0.0, max_drawdown=0.0, loss_streak=2)
    m.update(T0, 10_000.0, 0.0, 60_000.0, 1e-4)
    m.update(T0 + SEC, 10_000.0, 0.01, 60_000.0, 1e-4)
    assert m.update(T0 + 2 * SEC, 9_999.0, -0.01, 60_000.0, 1e-4).losing_round_trips == 1
    status = m.update(T0 + 3 * SEC, 9_998.0, 0.0, 60_000.0, 1e-4)
    assert status.tripped_now == KILL_LOSS_STREAK


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="max_drawdown"):
        RiskConfig(max_drawdown=1.5)
    with pytest.raises(ValueError, match="target_risk"):
        RiskConfig(target_risk=0.0)
