"""Mirror augmentation (agent/mirror.py) against a market actually reflected up <-> down.

The reference is independent of the rule table: reflect the raw synthetic tables (prices p -> R - p, bids <-> asks,
buy <-> sell, funding rate and premium negated), build a second MarketView and env from them, and check that the
mirrored env shows what ObservationMirror says it should, step by step, under mirrored actions, with equal rewards.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from agent.env import EnvConfig, ScalperEnv
from agent.market_view import REGIMES, MarketView, ViewConfig
from agent.mirror import ObservationMirror
from agent.sim.engine import SimConfig
from agent.sim.fees import fee_tier
from agent.train import _synthetic_tables

VIEW = ViewConfig(micro_window=6, macro_horizons_s=(60.0, 300.0))


def _reflect_levels(column: pa.ChunkedArray, pivot: float) -> pa.Array:
    values = column.combine_chunks()  # fixed-size lists of the 20 levels, best first
    flat = pc.subtract(pa.scalar(pivot), values.flatten())
    return pa.FixedSizeListArray.from_arrays(flat, values.type.list_size)


def reflected_tables(tables: dict[str, pa.Table], pivot: float) -> dict[str, pa.Table]:
    """The same market reflected about pivot / 2: every price p becomes pivot - p."""
    out = dict(tables)
    book = tables["book_snapshots"]
    bid_px, ask_px = book["bid_px"], book["ask_px"]
    bid_sz, ask_sz = book["bid_sz"], book["ask_sz"]
    book = book.set_column(book.schema.get_field_index("bid_px"), "bid_px", _reflect_levels(ask_px, pivot))
    book = book.set_column(book.schema.get_field_index("ask_px"), "ask_px", _reflect_levels(bid_px, pivot))
    book = book.set_column(book.schema.get_field_index("bid_sz"), "bid_sz", ask_sz)
    out["book_snapshots"] = book.set_column(book.schema.get_field_index("ask_sz"), "ask_sz", bid_sz)
    trades = tables["trades"]
    trades = trades.set_column(
        trades.schema.get_field_index("price"), "price", pc.subtract(pa.scalar(pivot), trades["price"])
    )
    out["trades"] = trades.set_column(
        trades.schema.get_field_index("side"), "side", pc.negate(trades["side"]).cast(pa.int8())
    )
    funding = tables["funding_rates"]
    funding = funding.set_column(funding.schema.get_field_index("rate"), "rate", pc.negate(funding["rate"]))
    out["funding_rates"] = funding.set_column(
        funding.schema.get_field_index("mark_price"),
        "mark_price",
        pc.subtract(pa.scalar(pivot), funding["mark_price"]),
    )
    marks = tables["mark_prices"]
    for name in ("mark_price", "index_price"):
        marks = marks.set_column(
            marks.schema.get_field_index(name), name, pc.subtract(pa.scalar(pivot), marks[name])
        )
    out["mark_prices"] = marks.set_column(
        marks.schema.get_field_index("est_funding_rate"),
        "est_funding_rate",
        pc.negate(marks["est_funding_rate"]),
    )
    return out


@pytest.fixture(scope="module")
def market_pair():
    tables = _synthetic_tables(5, 1.0, 8, "BTCUSDT")
    mid0 = float(tables["book_snapshots"]["bid_px"][0][0].as_py())
    pivot = 2 * round(mid0)  # a whole number of ticks: the reflected book stays on the tick grid
    return MarketView.from_tables(tables, VIEW), MarketView.from_tables(reflected_tables(tables, pivot), VIEW)


def test_mirror_is_an_involution_and_maps_regimes_and_sizes():
    mirror = ObservationMirror(
        ("ret_bp", "buy_volume", "sell_volume"), ("regime_bull", "regime_bear"), ("inventory",), 5
    )
    obs = {
        "micro": np.array([[1.0, 2.0, 3.0]], np.float32),
        "macro": np.array([1.0, 0.0], np.float32),
        "state": np.array([0.5], np.float32),
        "book": np.array([[-0.5, 1.0, 0.5, 2.0]], np.float32),
    }
    mirrored = mirror.observation(obs)
    np.testing.assert_array_equal(mirrored["micro"], [[-1.0, 3.0, 2.0]])
    np.testing.assert_array_equal(mirrored["macro"], [0.0, 1.0])
    np.testing.assert_array_equal(mirrored["state"], [-0.5])
    np.testing.assert_array_equal(mirrored["book"], [[-0.5, 2.0, 0.5, 1.0]])
    for key, value in mirror.observation(mirrored).items():
        np.testing.assert_array_equal(value, obs[key])
    np.testing.assert_array_equal(mirror.action(np.array([[3, 0], [5, 4], [0, 2]])), [[3, 4], [5, 0], [0, 2]])
    assert [REGIMES[mirror.regime(REGIMES.index(r))] for r in ("range", "bull", "bear")] == [
        "range",
        "bear",
        "bull",
    ]


def test_unknown_columns_are_refused_by_name():
    with pytest.raises(ValueError, match="spread_bps"):
        ObservationMirror(("ret_bp", "spread_bps"), (), (), 5)


def test_reflected_market_features_equal_the_mirrored_features(market_pair):
    view, reflected = market_pair
    mirror = ObservationMirror(view.micro_names, (), (), 5)
    source, sign = mirror.maps["micro"]
    # log returns of reflected prices differ from negated ones by ~|p - pivot / 2| / p (a few 1e-4 here)
    np.testing.assert_allclose(reflected.micro, view.micro[:, source] * sign, rtol=2e-3, atol=1e-3)
    np.testing.assert_array_equal(reflected.regime, [mirror.regime(r) for r in view.regime])


def test_reflected_env_shows_the_mirrored_observation_and_the_same_reward(market_pair):
    """Compared step by step until the two accounts part: the position cap in lots is rounded from mids that are
    not exact mirrors (pivot - mid != mid), so after a while one env's target is a lot off the other's."""
    view, reflected = market_pair
    config = EnvConfig(episode_s=60.0, sim=SimConfig(fees=fee_tier("none")))
    env, env_m = ScalperEnv(view, config), ScalperEnv(reflected, config)
    mirror = ObservationMirror.for_env(env)
    obs, _ = env.reset(seed=3, options={"start_step": 60})
    obs_m, _ = env_m.reset(seed=3, options={"start_step": 60})
    rng = np.random.default_rng(0)
    compared, fills = 0, 0
    for _ in range(60):
        for key, value in mirror.observation(obs).items():
            np.testing.assert_allclose(obs_m[key], value, rtol=2e-3, atol=2e-3, err_msg=key)
        action = np.array([rng.integers(6), rng.integers(5)])
        obs, reward, term, trunc, info = env.step(action)
        obs_m, reward_m, term_m, trunc_m, info_m = env_m.step(mirror.action(action))
        if abs(info_m["position"] + info["position"]) > 1.5 * env.lot:
            break
        assert reward_m == pytest.approx(reward, rel=1e-2, abs=1e-2)
        assert (term, trunc) == (term_m, trunc_m)
        compared, fills = compared + 1, fills + info["fills"]
        if term or trunc:
            break
    assert compared >= 10 and fills >= 2  # long enough, and the accounts traded
