"""The synthetic market: schema validity, book/trade consistency, stylized facts, the planted edge, determinism
and day chaining. Statistics are computed here from the output tables with plain numpy, not from model internals.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_store import records
from feature_store.instruments import UnknownSymbolError
from feature_store.sources.synthetic import (
    I_REGIME,
    REGIMES,
    SyntheticConfig,
    SyntheticSource,
    initial_state,
    simulate_day,
)

DAY = dt.date(2024, 3, 1)
SYMBOL = "BTCUSDT"
TICK = 0.1
LOT = 0.001
STEPS_PER_HOUR = 36_000  # at 100 ms


def _simulate(hours: float, **knobs) -> tuple:
    cfg = SyntheticConfig(epoch=DAY, **knobs)
    result = simulate_day(cfg, SYMBOL, DAY, initial_state(cfg, SYMBOL), n_steps=int(hours * STEPS_PER_HOUR))
    return cfg, result


@pytest.fixture(scope="module")
def calm():
    """Three hours at signal 0."""
    return _simulate(3.0)[1]


@pytest.fixture(scope="module")
def edged():
    """Two hours with a planted edge."""
    return _simulate(2.0, signal_strength=0.5, seed=7)[1]


def _levels(table: pa.Table, column: str) -> np.ndarray:
    return table[column].combine_chunks().values.to_numpy().reshape(-1, records.BOOK_LEVELS)


def _book(result):
    b = result.tables["book_snapshots"]
    ts = b["ts"].cast(pa.int64()).to_numpy()
    return ts, _levels(b, "bid_px"), _levels(b, "bid_sz"), _levels(b, "ask_px"), _levels(b, "ask_sz")


def _trades(result):
    t = result.tables["trades"]
    return (
        t["ts"].cast(pa.int64()).to_numpy(),
        t["price"].to_numpy(),
        t["qty"].to_numpy(),
        t["side"].to_numpy().astype(np.int64),
        t["trade_id"].to_numpy(),
    )


def _one_second_returns(result):
    """Mid log returns on the 1 s grid, and the level-1 imbalance at the start of each second."""
    _, bpx, bsz, apx, asz = _book(result)
    mid = 0.5 * (bpx[:, 0] + apx[:, 0])[::10]
    imbalance = ((bsz[:, 0] - asz[:, 0]) / (bsz[:, 0] + asz[:, 0]))[::10]
    return np.diff(np.log(mid)), imbalance[:-1]


def _slope_ci(x: np.ndarray, y: np.ndarray, z: float) -> tuple[float, float, float]:
    """OLS slope of y on x with a heteroskedasticity-robust (White) standard error: (slope, lo, hi).

    The products x_t * r_{t+1} are martingale differences under the null, so no HAC correction is needed.
    """
    xc = x - x.mean()
    slope = float((xc * y).sum() / (xc * xc).sum())
    resid = y - y.mean() - slope * xc
    se = math.sqrt(float((xc**2 * resid**2).sum())) / float((xc * xc).sum())
    return slope, slope - z * se, slope + z * se


def _corr_ci(x: np.ndarray, y: np.ndarray, z: float) -> tuple[float, float, float]:
    """Correlation with a robust CI: the slope CI of standardized y on standardized x."""
    return _slope_ci((x - x.mean()) / x.std(), (y - y.mean()) / y.std(), z)


# ------------------------------------------------------------------------------------------------ schema


def test_tables_conform_to_record_schemas(calm):
    assert set(calm.tables) == set(SyntheticSource().tables())
    for name, table in calm.tables.items():
        rtype = records.record_type(name)
        assert table.schema.equals(rtype.schema), name
        if table.num_rows == 0:
            continue
        assert set(table["exchange"].unique().to_pylist()) == {"synthetic"}
        assert set(table["market"].unique().to_pylist()) == {"usdm"}
        assert set(table["symbol"].unique().to_pylist()) == {SYMBOL}
        assert set(table["date"].unique().to_pylist()) == {DAY.isoformat()}
        ts = table["ts"].cast(pa.int64()).to_numpy()
        recv = table["recv_ts"].cast(pa.int64()).to_numpy()
        assert np.all(np.diff(ts) >= 0), f"{name}: ts not sorted"
        assert np.all(recv > ts), f"{name}: recv_ts must follow ts"
        assert np.all(recv - ts < 1_000_000), f"{name}: latency above a second"
    assert calm.tables["book_snapshots"].num_rows == 3 * STEPS_PER_HOUR


def test_books_are_valid(calm):
    ts, bpx, bsz, apx, asz = _book(calm)
    assert np.all(np.diff(ts) == 100_000)
    assert ts[0] == int(dt.datetime(2024, 3, 1, tzinfo=dt.UTC).timestamp()) * 1_000_000
    assert np.all(bpx[:, 0] < apx[:, 0]), "crossed or locked book"
    assert np.all(np.diff(bpx, axis=1) < 0) and np.all(np.diff(apx, axis=1) > 0), "levels out of order"
    assert np.all(bpx > 0) and np.all(bsz > 0) and np.all(asz > 0)
    for px in (bpx, apx):
        assert np.allclose(np.round(px / TICK), px / TICK, atol=1e-6), "price off the tick grid"
    for sz in (bsz, asz):
        assert np.allclose(np.round(sz / LOT), sz / LOT, atol=1e-6), "size off the lot grid"


def test_trades_are_valid(calm):
    ts, px, qty, side, ids = _trades(calm)
    assert len(ts) > 3 * 3600 * 10, "expected tens of trades a second"
    assert np.all(np.diff(ids) == 1)
    assert np.all(px > 0) and np.all(qty > 0)
    assert np.allclose(np.round(qty / LOT), qty / LOT, atol=1e-6)
    assert set(np.unique(side)) == {-1, 1}


# --------------------------------------------------------------------------------- trades versus the book


def test_trades_hit_the_book_in_force(calm):
    """Every trade prints at a level of the snapshot in force (its side's), most at the touch."""
    bts, bpx, _, apx, _ = _book(calm)
    ts, px, _, side, _ = _trades(calm)
    step = (ts - bts[0]) // 100_000
    levels = np.where(side[:, None] > 0, apx[step], bpx[step])
    on_level = np.isclose(levels, px[:, None], rtol=0.0, atol=1e-6)
    assert on_level.any(axis=1).all(), "a trade printed at a price the book in force does not show"
    at_touch = on_level[:, 0].mean()
    assert at_touch > 0.9, at_touch


def test_trades_deplete_the_queue_before_the_price_moves(calm):
    """When the best ask rises (bid falls), buys (sells) at the old best price traded exactly its queue;
    when it stays, trades at the touch took less than the queue."""
    bts, bpx, bsz, apx, asz = _book(calm)
    ts, px, qty, side, _ = _trades(calm)
    step = (ts - bts[0]) // 100_000
    n = len(bts)
    checked_moves = 0
    for sgn, touch_px, touch_sz in ((1, apx[:, 0], asz[:, 0]), (-1, bpx[:, 0], bsz[:, 0])):
        at_touch = (side == sgn) & np.isclose(px, touch_px[step], rtol=0.0, atol=1e-6)
        traded = np.bincount(step[at_touch], weights=qty[at_touch], minlength=n)[: n - 1]
        moved_away = sgn * (touch_px[1:] - touch_px[:-1]) > 0
        stayed = touch_px[1:] == touch_px[:-1]
        assert np.allclose(traded[moved_away], touch_sz[:-1][moved_away], atol=LOT / 2), (
            "a price moved before its queue was traded out"
        )
        assert np.all(traded[stayed] < touch_sz[:-1][stayed] + LOT / 2)
        # where the queue held, its change is the net of adds, cancels and trades: it shrinks on trading
        busy = stayed & (traded > 0)
        assert np.mean((touch_sz[1:] - touch_sz[:-1])[busy] < 0) > 0.5
        checked_moves += int(moved_away.sum())
    assert checked_moves > 1000


# ---------------------------------------------------------------------------------------------- stylized facts


def test_returns_are_heavy_tailed_and_volatility_clusters(calm):
    r, _ = _one_second_returns(calm)
    z = (r - r.mean()) / r.std()
    excess_kurtosis = float((z**4).mean() - 3.0)
    assert excess_kurtosis > 3.0, excess_kurtosis
    a = np.abs(r) - np.abs(r).mean()
    bound = 4.0 / math.sqrt(len(a))  # about 4 standard errors of an ACF under no dependence
    for lag in (1, 5, 30, 120):
        acf = float((a[:-lag] * a[lag:]).mean() / a.var())
        assert acf > bound, (lag, acf)
    # ... while returns themselves are not autocorrelated
    assert abs(float(np.corrcoef(r[:-1], r[1:])[0, 1])) < bound


def test_spreads_are_one_tick_mostly_and_widen_under_stress(calm):
    _, bpx, _, apx, _ = _book(calm)
    spread_ticks = np.round((apx[:, 0] - bpx[:, 0]) / TICK)
    assert (spread_ticks == 1).mean() > 0.9
    assert (spread_ticks > 1).any()
    # per minute: share of wide-spread snapshots against realized volatility
    mid = 0.5 * (bpx[:, 0] + apx[:, 0])
    per_min = 600
    m = (len(mid) - 1) // per_min
    rv = np.sqrt((np.diff(np.log(mid[: m * per_min + 1])) ** 2)[: m * per_min].reshape(m, per_min).sum(1))
    wide = (spread_ticks[: m * per_min] > 1).reshape(m, per_min).mean(1)
    calm_minutes, stressed_minutes = rv <= np.quantile(rv, 0.5), rv >= np.quantile(rv, 0.8)
    assert wide[stressed_minutes].mean() > 1.5 * wide[calm_minutes].mean()


def test_depth_grows_away_from_the_touch(calm):
    _, _, bsz, _, asz = _book(calm)
    for sz in (bsz, asz):
        mean_by_level = sz.mean(axis=0)
        assert np.all(np.diff(mean_by_level) > 0), mean_by_level
        assert mean_by_level[-1] > 2.0 * mean_by_level[0]


def test_trade_arrivals_cluster(calm):
    ts, _, qty, _, _ = _trades(calm)
    counts = np.bincount((ts - _book(calm)[0][0]) // 1_000_000)
    assert counts.var() / counts.mean() > 3.0, "per-second counts should be overdispersed (Poisson: 1)"
    c = counts - counts.mean()
    assert float((c[:-1] * c[1:]).mean() / c.var()) > 0.2
    assert qty.mean() > 3.0 * np.median(qty), "trade sizes should be heavy-tailed"


def test_regimes_switch_with_their_own_volatility_and_a_compensated_trend():
    """On a 1 s grid (cheap whole days) with hour-long spells and a steep trend: all regimes occur, range is
    calmer, bull spells move up more often than down and bear spells the reverse, yet no regime's mean return is
    distinguishable from zero: the reversals compensate the trend (uncompensated, the trend would be ~4 se)."""
    cfg = SyntheticConfig(
        epoch=DAY,
        grid_ms=1000,
        trades_per_second=2.0,
        seed=3,
        regime_hours=(1.0, 1.0, 1.0),
        trend_bps_per_hour=150.0,
        reversal_bps=30.0,
    )
    result = simulate_day(cfg, SYMBOL, DAY, initial_state(cfg, SYMBOL), with_tables=False)
    regime = result.regime
    assert set(np.unique(regime)) == {0, 1, 2}
    assert int((np.diff(regime) != 0).sum()) >= 10
    r = np.diff(np.log(result.mid))
    reg = regime[:-1]
    vol = {REGIMES[g]: r[reg == g].std() for g in range(3)}
    assert vol["range"] < min(vol["bull"], vol["bear"]), vol
    for g, sign in ((1, 1), (2, -1)):
        rg = r[reg == g]
        moves = rg[rg != 0]
        up_share = (moves > 0).mean()
        assert sign * (up_share - 0.5) > 3.0 * 0.5 / math.sqrt(len(moves)), (REGIMES[g], up_share, len(moves))
        se = rg.std() / math.sqrt(len(rg))
        assert abs(rg.mean()) < 3.0 * se, (REGIMES[g], rg.mean(), se)
        trend_per_s = 150.0 * 1e-4 / 3600.0
        assert trend_per_s > 3.0 * se, "the test would not see an uncompensated trend"


def test_a_steep_trend_is_compensated_exactly():
    """An hour of one unending bull spell with the steepest tilt: without the reversals the climb would be many
    standard errors; with them the mean 1 s return is indistinguishable from zero."""
    cfg = SyntheticConfig(
        epoch=DAY, seed=8, regime_hours=(1e6, 1e6, 1e6), trend_bps_per_hour=5000.0, reversal_bps=25.0
    )
    state = initial_state(cfg, SYMBOL)
    state.istate[I_REGIME] = REGIMES.index("bull")
    result = simulate_day(cfg, SYMBOL, DAY, state, n_steps=STEPS_PER_HOUR)
    assert set(np.unique(result.regime)) == {1}
    r, _ = _one_second_returns(result)
    se = r.std() / math.sqrt(len(r))
    reversals = r < -15e-4
    assert reversals.sum() >= 10
    assert r[~reversals].mean() > 4.0 * se, "the tilt alone should climb steeply"
    assert abs(r.mean()) < 3.0 * se, (r.mean(), se)


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    grid_ms=st.sampled_from([50, 100, 250, 1000]),
    signal=st.floats(0.0, 1.0),
    annual_vol=st.floats(0.05, 3.0),
    wide=st.floats(0.0, 0.5),
    trend=st.floats(0.0, 3000.0),
    reversal=st.floats(2.0, 300.0),
    gap=st.floats(1.0, 5.0),
    growth=st.floats(0.0, 1.0),
)
def test_book_and_trade_invariants_hold_for_any_knobs(
    seed, grid_ms, signal, annual_vol, wide, trend, reversal, gap, growth
):
    cfg = SyntheticConfig(
        epoch=DAY, seed=seed, grid_ms=grid_ms, signal_strength=signal, annual_vol=annual_vol,
        wide_spread_prob=wide, trend_bps_per_hour=trend, reversal_bps=reversal, level_gap_ticks=gap,
        depth_growth=growth, regime_hours=(0.05, 0.05, 0.05),
    )  # fmt: skip
    steps_per_s = 1000 // grid_ms
    result = simulate_day(cfg, SYMBOL, DAY, initial_state(cfg, SYMBOL), n_steps=120 * steps_per_s)
    b = result.tables["book_snapshots"]
    bpx, bsz, apx, asz = (_levels(b, c) for c in ("bid_px", "bid_sz", "ask_px", "ask_sz"))
    assert np.all(bpx[:, 0] < apx[:, 0])
    assert np.all(np.diff(bpx, axis=1) < 0) and np.all(np.diff(apx, axis=1) > 0)
    assert np.all(bpx > 0) and np.all(bsz >= LOT) and np.all(asz >= LOT)
    ts, px, qty, side, _ = _trades(result)
    bts = b["ts"].cast(pa.int64()).to_numpy()
    step = (ts - bts[0]) // (grid_ms * 1000)
    assert np.all((step >= 0) & (step < len(bts)))
    levels = np.where(side[:, None] > 0, apx[step], bpx[step])
    assert np.isclose(levels, px[:, None], rtol=0.0, atol=1e-6).any(axis=1).all()
    assert np.all(qty >= LOT) and np.all(np.diff(ts) >= 0)


# ------------------------------------------------------------------------------------------------ the edge


def test_no_edge_at_signal_zero(calm):
    """Imbalance and trade flow say nothing about the next second's (or five seconds') return: the 99 % CI of
    the correlation contains 0, and is narrower than the edge planted at signal 0.5 (correlation ~0.1)."""
    r, imbalance = _one_second_returns(calm)
    corr, lo, hi = _corr_ci(imbalance, r, 2.576)
    assert lo < 0.0 < hi, (corr, lo, hi)
    assert hi - lo < 0.08
    # five-second blocks, imbalance at the block start
    r5 = r[: len(r) // 5 * 5].reshape(-1, 5).sum(1)
    corr5, lo5, hi5 = _corr_ci(imbalance[: len(r5) * 5 : 5], r5, 2.576)
    assert lo5 < 0.0 < hi5, (corr5, lo5, hi5)
    # signed trade flow over the past second
    ts, _, qty, side, _ = _trades(calm)
    sec = (ts - _book(calm)[0][0]) // 1_000_000
    flow = np.bincount(sec, weights=side * qty, minlength=len(r) + 1)[: len(r) + 1]
    # flow[s] is traded during second s, r[s] is the mid return over second s: pair flow[s - 1] with r[s]
    corr_f, lo_f, hi_f = _corr_ci(flow[: len(r) - 1], r[1:], 2.576)
    assert lo_f < 0.0 < hi_f, (corr_f, lo_f, hi_f)


def test_planted_edge_is_recovered_with_its_sign(edged):
    r, imbalance = _one_second_returns(edged)
    corr, lo, hi = _corr_ci(imbalance, r, 2.576)
    assert lo > 0.04, (corr, lo, hi)
    # it carries into the next seconds
    r5 = r[: len(r) // 5 * 5].reshape(-1, 5).sum(1)
    corr5, _, _ = _corr_ci(imbalance[: len(r5) * 5 : 5], r5, 1.96)
    assert corr5 > 0.0, corr5


def test_edge_grows_with_signal_strength():
    slopes = []
    for strength in (0.2, 0.8):
        _, result = _simulate(1.0, signal_strength=strength, seed=11)
        r, imbalance = _one_second_returns(result)
        slopes.append(_slope_ci(imbalance, r / r.std(), 1.96))
    (weak, _, weak_hi), (strong, strong_lo, _) = slopes
    assert weak > 0.0 and strong_lo > weak_hi, slopes


# -------------------------------------------------------------------------------- determinism and chaining


def test_same_seed_same_market_other_seed_other_market():
    _, a = _simulate(0.25, seed=5)
    _, b = _simulate(0.25, seed=5)
    _, c = _simulate(0.25, seed=6)
    for name in a.tables:
        assert a.tables[name].equals(b.tables[name]), name
    assert not a.tables["trades"].equals(c.tables["trades"])


def test_chaining_and_buffer_growth_draw_the_same_randomness():
    cfg = SyntheticConfig(epoch=DAY, seed=2)
    start = initial_state(cfg, SYMBOL)
    full = simulate_day(cfg, SYMBOL, DAY, start, n_steps=STEPS_PER_HOUR // 2)
    chained = simulate_day(cfg, SYMBOL, DAY, start, n_steps=STEPS_PER_HOUR // 2, with_tables=False)
    small = simulate_day(cfg, SYMBOL, DAY, start, n_steps=STEPS_PER_HOUR // 2, trade_capacity=1)
    assert full.end_state.to_json() == chained.end_state.to_json()
    assert full.tables["trades"].equals(small.tables["trades"])
    assert full.tables["book_snapshots"].equals(small.tables["book_snapshots"])


def _coarse(**knobs) -> SyntheticConfig:
    # a 1 s grid and few trades keep whole days cheap; chaining does not depend on either
    return SyntheticConfig(epoch=DAY, grid_ms=1000, trades_per_second=2.0, seed=4, **knobs)


def test_a_day_is_the_same_alone_or_in_sequence(tmp_path):
    day2 = DAY + dt.timedelta(days=2)
    alone = SyntheticSource(_coarse(), state_dir=tmp_path / "alone").load_day(SYMBOL, day2)
    seq_source = SyntheticSource(_coarse(), state_dir=tmp_path / "seq")
    first = seq_source.load_day(SYMBOL, DAY)
    second = seq_source.load_day(SYMBOL, DAY + dt.timedelta(days=1))
    in_sequence = seq_source.load_day(SYMBOL, day2)
    for name in alone:
        assert alone[name].equals(in_sequence[name]), name
    # a new source on the same state_dir resumes from the cached states
    cached = SyntheticSource(_coarse(), state_dir=tmp_path / "alone")
    assert cached.state_at(SYMBOL, day2).to_json() == seq_source.state_at(SYMBOL, day2).to_json()
    assert len(list((tmp_path / "alone").rglob("*.json"))) == 4  # epoch, day 1, day 2, day 3
    # prices continue across midnight: the first book of a day is one step from the last of the day before
    for before, after in ((first, second), (second, in_sequence)):
        last = before["book_snapshots"].slice(before["book_snapshots"].num_rows - 1)
        nxt = after["book_snapshots"].slice(0, 1)
        last_mid = 0.5 * (last["bid_px"][0].values[0].as_py() + last["ask_px"][0].values[0].as_py())
        next_mid = 0.5 * (nxt["bid_px"][0].values[0].as_py() + nxt["ask_px"][0].values[0].as_py())
        assert abs(next_mid / last_mid - 1.0) < 0.01
        ids_before = before["trades"]["trade_id"].to_numpy()
        assert after["trades"]["trade_id"].to_numpy()[0] == ids_before[-1] + 1
    # another knob is another chain: its states live apart
    SyntheticSource(_coarse(signal_strength=0.5), state_dir=tmp_path / "alone").state_at(SYMBOL, DAY)
    assert len({p.parent for p in (tmp_path / "alone").rglob("*.json")}) == 2


def test_funding_mark_and_onchain_tables():
    tables = SyntheticSource(_coarse()).load_day(SYMBOL, DAY)
    funding = tables["funding_rates"].to_pydict()
    hours = [t.hour for t in funding["ts"]]
    assert hours == [0, 8, 16]
    assert all(abs(r) < 0.0075 for r in funding["rate"]) and sum(r > 0 for r in funding["rate"]) >= 2
    assert funding["interval_hours"] == [8.0, 8.0, 8.0]
    mark = tables["mark_prices"]
    assert mark.num_rows == 86_400
    book = tables["book_snapshots"]
    mid = 0.5 * (_levels(book, "bid_px")[:, 0] + _levels(book, "ask_px")[:, 0])
    assert np.all(np.abs(mark["mark_price"].to_numpy() / mid - 1.0) < 0.005)
    assert np.all(np.abs(mark["index_price"].to_numpy() / mid - 1.0) < 0.01)
    nft = mark["next_funding_ts"].cast(pa.int64()).to_numpy()
    mts = mark["ts"].cast(pa.int64()).to_numpy()
    assert np.all((nft > mts) & (nft - mts <= 8 * 3600 * 1_000_000))
    onchain = tables["onchain_metrics"].to_pydict()
    assert sorted(onchain["metric"]) == ["active_addresses", "exchange_netflow", "tx_count"]
    assert set(onchain["asset"]) == {"BTC"}
    published = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(2), tzinfo=dt.UTC)
    assert all(a == published for a in onchain["available_at"])
    assert all(r >= a for r, a in zip(onchain["recv_ts"], onchain["available_at"], strict=True))
    values = dict(zip(onchain["metric"], onchain["value"], strict=True))
    assert values["active_addresses"] > 0 and values["tx_count"] > 0


@pytest.mark.parametrize(
    ("symbol", "market", "tick", "start"),
    [("ETHUSDT", "usdm", 0.01, 3000.0), ("BTCUSD_PERP", "coinm", 0.1, 60000.0)],
)
def test_other_instruments_get_valid_books_on_their_grid(symbol, market, tick, start):
    cfg = SyntheticConfig(epoch=DAY, start_price=start)
    result = simulate_day(cfg, symbol, DAY, initial_state(cfg, symbol), n_steps=3000)
    _, bpx, bsz, apx, _ = _book(result)
    assert set(result.tables["trades"]["market"].unique().to_pylist()) == {market}
    assert np.all(bpx[:, 0] < apx[:, 0]) and np.all(np.diff(bpx, axis=1) < 0)
    assert np.allclose(np.round(bpx / tick), bpx / tick, atol=1e-6)
    assert abs(bpx[-1, 0] / start - 1.0) < 0.05
    assert (np.round((apx[:, 0] - bpx[:, 0]) / tick) == 1).mean() > 0.9


def test_refusals_name_the_fix():
    source = SyntheticSource(SyntheticConfig(epoch=DAY))
    with pytest.raises(UnknownSymbolError, match="instruments.py"):
        source.load_day("NOPEUSDT", DAY)
    with pytest.raises(ValueError, match="epoch"):
        source.load_day(SYMBOL, DAY - dt.timedelta(days=1))
    with pytest.raises(ValueError, match="grid_ms"):
        SyntheticConfig(grid_ms=300)
    with pytest.raises(ValueError, match="signal_strength"):
        SyntheticConfig(signal_strength=2.0)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        source.load_day(SYMBOL, "March 1st")
    assert SyntheticSource.name == "synthetic"


@pytest.mark.slow
def test_full_day_at_100ms_chains_like_a_single_day(tmp_path):
    cfg = SyntheticConfig(epoch=DAY, seed=9)
    direct = SyntheticSource(cfg, state_dir=tmp_path / "a").load_day(SYMBOL, DAY + dt.timedelta(days=1))
    seq = SyntheticSource(cfg, state_dir=tmp_path / "b")
    seq.load_day(SYMBOL, DAY)
    again = seq.load_day(SYMBOL, DAY + dt.timedelta(days=1))
    assert direct["book_snapshots"].num_rows == 864_000
    for name in direct:
        assert direct[name].equals(again[name]), name
