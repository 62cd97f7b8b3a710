"""Isolated-margin accounting: Binance's liquidation price (perp_margin.md worked examples and tier table),
liquidation in the engine at the mark, funding sign and amount, fee accounting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_synthetic import T0, ladder

from agent.sim import BUY, SELL, FeeConfig, LatencyConfig, LatencyModel, MarginConfig, SimConfig, Simulator
from agent.sim.margin import TIERS, liquidation_price, tiers_for

ZERO_LAT = LatencyConfig(
    entry=LatencyModel(base_us=1), ack=LatencyModel(base_us=1), feed=LatencyModel(base_us=0)
)


@pytest.mark.parametrize("symbol", sorted(TIERS))
def test_tier_cum_follows_the_recurrence(symbol):
    t = tiers_for(symbol)
    assert t[0, 4] == 0.0
    for n in range(1, t.shape[0]):
        assert t[n, 0] == t[n - 1, 1]  # contiguous brackets
        assert t[n, 4] == pytest.approx(t[n, 0] * (t[n, 2] - t[n - 1, 2]) + t[n - 1, 4], abs=1e-6)


def test_worked_example_a_btcusdt_isolated():
    tiers = tiers_for("BTCUSDT")
    assert liquidation_price(+1, 1.0, 60_000.0, 3_000.0, tiers) == pytest.approx(57_236.18, abs=0.005)
    assert liquidation_price(-1, 1.0, 60_000.0, 3_000.0, tiers) == pytest.approx(62_736.32, abs=0.005)


def test_worked_example_b_isolated_vectors():
    wb = 1_535_443.01
    eth = np.array([[0.0, 1e12, 0.10, 5, 135_365.0]])
    btc = np.array([[0.0, 1e12, 0.025, 20, 16_300.0]])
    assert liquidation_price(+1, 3_683.979, 1_456.84, wb, eth) == pytest.approx(1_114.78, abs=0.005)
    assert liquidation_price(+1, 109.488, 32_481.98, wb, btc) == pytest.approx(18_778.73, abs=0.005)


def test_worked_example_b_cross_vectors():
    wb = 1_535_443.01
    eth = np.array([[0.0, 1e12, 0.10, 5, 135_365.0]])
    btc = np.array([[0.0, 1e12, 0.025, 20, 16_300.0]])
    lp_eth = liquidation_price(+1, 3_683.979, 1_456.84, wb, eth, 71_200.81, -56_354.57)
    lp_btc = liquidation_price(+1, 109.488, 32_481.98, wb, btc, 356_512.51, -448_192.89)
    assert lp_eth == pytest.approx(1_153.26, abs=0.005)
    assert lp_btc == pytest.approx(26_316.89, abs=0.005)


@settings(max_examples=200, deadline=None)
@given(
    side=st.sampled_from([1, -1]),
    qty=st.floats(min_value=0.001, max_value=5.0),
    entry=st.floats(min_value=1_000.0, max_value=100_000.0),
    lev=st.sampled_from([2, 5, 10, 20]),
)
def test_isolated_formula_reduces_to_the_closed_form(side, qty, entry, lev):
    tiers = tiers_for("BTCUSDT")
    lp = liquidation_price(side, qty, entry, qty * entry / lev, tiers)
    b = np.searchsorted(tiers[:, 1], qty * lp, side="right")
    mmr, cum = tiers[b, 2], tiers[b, 4]
    if side == 1:
        ref = (entry * (1 - 1 / lev) - cum / qty) / (1 - mmr)
    else:
        ref = (entry * (1 + 1 / lev) + cum / qty) / (1 + mmr)
    assert lp == pytest.approx(max(ref, 0.0), rel=1e-9)


def _open(side: int, marks: list[tuple[int, float]], funding=None, fees=FeeConfig(0.0, 0.0)):
    """1 BTC at 60,000 with 20x isolated, no fees: WB = 3,000 (worked example A)."""
    market = ladder(n=20, bid=59_999.9, ask=60_000.0, size=2.0, marks=marks, funding=funding)
    if side == SELL:
        market = ladder(n=20, bid=60_000.0, ask=60_000.1, size=2.0, marks=marks, funding=funding)
    sim = Simulator()
    cfg = SimConfig(fees=fees, latency=ZERO_LAT, margin=MarginConfig(initial_cash=10_000.0, leverage=20))
    sim.reset(market, cfg)
    sim.submit(side, 1.0)  # market order: takes 1.0 at 60,000
    sim.advance_to(T0 + 5_000)
    acct = sim.account()
    assert acct.position == side * 1.0 and acct.entry_price == 60_000.0
    assert acct.position_margin == pytest.approx(3_000.0)
    return sim


@pytest.mark.parametrize("side,lp", [(BUY, 57_236.18), (SELL, 62_736.32)])
def test_engine_liquidates_when_the_mark_crosses_the_formula_price(side, lp):
    away = 0.02 if side == BUY else -0.02
    marks = [(200_000, lp + away), (300_000, lp - away)]
    sim = _open(side, marks)
    resting = sim.submit(side, 0.5, 50_000.0 if side == BUY else 70_000.0)
    sim.advance_to(T0 + 250_000)
    assert sim.account().liquidations == 0  # 2 cents on the safe side
    res = sim.advance_to(T0 + 400_000)
    acct = res.account
    assert acct.liquidations == 1 and acct.position == 0.0
    liq = res.fills[res.fills["liquidation"] == 1]
    mark = lp - away
    assert liq["px"][0] == pytest.approx(mark) and liq["qty"][0] == 1.0 and liq["exch_ts"][0] == T0 + 300_000
    fee = 1.0 * mark * 0.0125
    assert liq["fee"][0] == pytest.approx(fee) and acct.liquidation_fees_paid == pytest.approx(fee)
    # margin balance at the trigger is just under maintenance (~286 USDT), less than the 0.0125 clearance fee:
    # the whole isolated margin is lost, the insurance fund covers the rest
    left = 3_000.0 + side * (mark - 60_000.0) - fee
    assert left < 0
    assert acct.wallet == pytest.approx(7_000.0)
    assert acct.insurance_covered == pytest.approx(-left)
    assert sim.order(resting)["status"] == "canceled"  # open orders canceled first


def test_funding_sign_and_amount_worked_example_d():
    funding = [(100_000, 0.0001, 60_000.0), (200_000, -0.000125, 60_000.0)]
    for side, first, second in ((BUY, 3.00, -3.75), (SELL, -3.00, 3.75)):
        market = ladder(n=20, bid=59_999.9, ask=60_000.0, size=2.0, funding=funding)
        if side == SELL:
            market = ladder(n=20, bid=60_000.0, ask=60_000.1, size=2.0, funding=funding)
        sim = Simulator()
        sim.reset(market, SimConfig(fees=FeeConfig(0.0, 0.0), latency=ZERO_LAT))
        sim.submit(side, 0.5)
        sim.advance_to(T0 + 150_000)
        a1 = sim.account()
        assert a1.funding_paid == pytest.approx(first)
        a2 = sim.advance_to(T0 + 250_000).account
        assert a2.funding_paid == pytest.approx(first + second)
        assert a2.wallet + a2.position_margin == pytest.approx(10_000.0 - first - second)


def test_fee_accounting_maker_and_taker_and_book_walk():
    sizes = np.full((20, 20), 0.3)
    market = ladder(n=20, bid=60_000.0, ask=60_000.1, ask_sz=sizes, trades=[(60_000, 59_999.9, 1.0, -1)])
    sim = Simulator()
    sim.reset(market, SimConfig(latency=ZERO_LAT, margin=MarginConfig(initial_cash=100_000.0, leverage=10)))
    sim.submit(BUY, 1.0)  # walks 0.3 @ .1, 0.3 @ .2, 0.3 @ .3, 0.1 @ .4
    maker = sim.submit(SELL, 0.5, 60_000.5)  # rests (passive) ...
    bid = sim.submit(BUY, 0.2, 60_000.0)  # ... and a bid the sell trade fills through
    res = sim.advance_to(T0 + 150_000)
    f = res.fills
    taker = f[f["maker"] == 0]
    assert list(np.round(taker["px"], 1)) == [60_000.1, 60_000.2, 60_000.3, 60_000.4]
    assert list(np.round(taker["qty"], 6)) == [0.3, 0.3, 0.3, 0.1]
    notional = float(np.sum(taker["px"] * taker["qty"]))
    assert notional / 1.0 == pytest.approx(60_000.22)  # VWAP of the walk
    assert np.sum(taker["fee"]) == pytest.approx(notional * 0.0005)
    made = f[f["maker"] == 1]
    assert made["px"][0] == 60_000.0 and made["fee"][0] == pytest.approx(60_000.0 * 0.2 * 0.0002)
    acct = res.account
    assert acct.fees_paid == pytest.approx(notional * 0.0005 + 60_000.0 * 0.2 * 0.0002)
    assert acct.position == pytest.approx(1.2)
    assert acct.entry_price == pytest.approx((notional + 12_000.0) / 1.2)
    # conservation: everything not in fees is wallet + isolated margin (nothing realized yet)
    assert acct.wallet + acct.position_margin == pytest.approx(100_000.0 - acct.fees_paid)
    assert acct.order_margin == pytest.approx(0.0)  # the resting sell only reduces the long: nothing held
    assert sim.order(maker)["status"] == "live" and sim.order(bid)["status"] == "filled"


def test_closing_realizes_pnl_and_releases_margin():
    market = ladder(n=30, bid_top=[60_000.0] * 10 + [60_100.0] * 20, ask=60_000.1)
    sim = Simulator()
    sim.reset(market, SimConfig(fees=FeeConfig(0.0, 0.0), latency=ZERO_LAT, margin=MarginConfig(leverage=5)))
    sim.submit(BUY, 0.1)  # at 60,000.1
    sim.advance_to(T0 + 1_500_000)
    sim.submit(SELL, 0.04)  # at the new bid 60,100.0
    acct = sim.advance_to(T0 + 1_600_000).account
    assert acct.realized_pnl == pytest.approx((60_100.0 - 60_000.1) * 0.04)
    assert acct.position_margin == pytest.approx(0.06 * 60_000.1 / 5)
    assert acct.wallet == pytest.approx(10_000.0 - 0.06 * 60_000.1 / 5 + acct.realized_pnl)


def _reference_book(fills, leverage):
    """Plain-Python average-cost ledger: position, entry, realized PnL, margin in the position, cash."""
    pos = entry = realized = margin = 0.0
    cash = 0.0
    for side, qty, px, fee in fills:
        cash -= fee
        if pos and (pos > 0) != (side > 0):
            closed = min(qty, abs(pos))
            pnl = (px - entry) * closed * (1 if pos > 0 else -1)
            release = margin * closed / abs(pos)
            realized += pnl
            margin -= release
            cash += release + pnl
            pos += side * closed
            qty -= closed
            if abs(pos) < 1e-12:
                pos, entry, cash, margin = 0.0, 0.0, cash + margin, 0.0
        if qty > 1e-12:
            entry = (abs(pos) * entry + qty * px) / (abs(pos) + qty)
            pos += side * qty
            margin += qty * px / leverage
            cash -= qty * px / leverage
    return pos, entry, realized, margin, cash


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([1, -1]),
            st.integers(min_value=1, max_value=2000).map(lambda n: n / 1000),
            st.integers(min_value=550_000, max_value=650_000).map(lambda n: n / 10),
            st.floats(min_value=0.0, max_value=5.0),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_fill_accounting_matches_an_average_cost_ledger(fills):
    from agent.sim.margin import apply_fill
    from agent.sim.orders import ACCOUNT_DTYPE

    acct = np.zeros(1, dtype=ACCOUNT_DTYPE)
    for side, qty, px, fee in fills:
        apply_fill(acct, side, qty, px, fee, 10.0, 1e-9)
    pos, entry, realized, margin, cash = _reference_book(fills, 10.0)
    a = acct[0]
    assert a["position"] == pytest.approx(pos, abs=1e-9)
    assert a["entry_px"] == pytest.approx(entry, rel=1e-9, abs=1e-6)
    assert a["realized_pnl"] == pytest.approx(realized, rel=1e-9, abs=1e-6)
    assert a["iso_wallet"] == pytest.approx(margin, rel=1e-9, abs=1e-6)
    assert a["cash"] == pytest.approx(cash, rel=1e-9, abs=1e-6)
    # conservation: wallet + margin = start - fees + realized
    assert a["cash"] + a["iso_wallet"] == pytest.approx(-sum(f[3] for f in fills) + realized, abs=1e-6)
