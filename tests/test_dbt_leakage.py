"""Leakage: one dbt run over two symbols whose raw data are identical until time t (inside the validation day)
and different after it.  No feature at or before t may differ, no train-fit statistic may differ (the change is
all in validation data), and mid labels may differ only within their horizon before t."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from feature_lake import (
    MarketParams,
    funding_and_marks,
    onchain,
    random_books,
    random_trades,
    warehouse_table,
    write_raw,
)

from feature_store.feature_build import BuildWindow, run_dbt

TRAIN_DAY, VAL_DAY = "2024-02-01", "2024-02-02"
DAY_US = 86_400_000_000
SECONDS = 1800  # the last half hour of each day


def _day_us(day: str) -> int:
    return int(np.datetime64(day, "us").astype(np.int64))


T_US = _day_us(VAL_DAY) + DAY_US - 900 * 1_000_000  # t = 23:45 on the validation day


def _as(table: pa.Table, symbol: str, market: str) -> pa.Table:
    for name, value in (("symbol", symbol), ("market", market)):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pa.array([value] * table.num_rows, pa.string()))
    return table


def _perturb_after_t(table: pa.Table, columns: dict[str, float]) -> pa.Table:
    after = pc.greater(table["ts"].cast(pa.int64()), T_US)
    for name, factor in columns.items():
        i = table.schema.get_field_index(name)
        col = table[name]
        if pa.types.is_fixed_size_list(col.type):
            flat = col.combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1).copy()
            flat[after.to_numpy(zero_copy_only=False)] *= factor
            new = pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])
        else:
            x = col.to_numpy().copy()
            x[after.to_numpy(zero_copy_only=False)] *= factor
            new = pa.array(x)
        table = table.set_column(i, table.schema.field(i), new)
    return table


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("leak_lake")
    rng = np.random.default_rng(11)
    p = MarketParams(grid_ms=1000)
    for day in (TRAIN_DAY, VAL_DAY):
        ts = np.arange(_day_us(day) + DAY_US - SECONDS * 1_000_000, _day_us(day) + DAY_US, 1_000_000)
        sign = rng.choice([-1, 1], len(ts))
        books = random_books(rng, "BTCUSDT", ts, p, sign)
        trades = random_trades(rng, "BTCUSDT", books, p, sign)
        funding, marks = funding_and_marks(rng, "BTCUSDT", day)
        chain = onchain(rng, "BTCUSDT", day)
        twin = {
            "book_snapshots": _perturb_after_t(books, {"bid_sz": 3.0, "ask_sz": 0.5, "ask_px": 1.0002}),
            "trades": _perturb_after_t(trades, {"qty": 5.0}),
            "funding_rates": funding,
            "mark_prices": marks,
            "onchain_metrics": chain,
        }
        for name, table in (
            ("book_snapshots", books),
            ("trades", trades),
            ("funding_rates", funding),
            ("mark_prices", marks),
            ("onchain_metrics", chain),
        ):
            write_raw(root, name, table)
            write_raw(root, name, _as(twin[name], "BTCUSD_PERP", "coinm"))
    window = BuildWindow(TRAIN_DAY, VAL_DAY, train_start=TRAIN_DAY, train_end=TRAIN_DAY)
    # the two days are 23.5 h apart: the continuity QC (a singular test) would rightly fail, so it is left out
    run_dbt(
        root,
        "build",
        window,
        extra_vars={"warmup_s": 120, "regime_window_s": 120},
        exclude="test_type:singular",
    )
    return root


def _by_symbol(root, sql_table: str, where: str = "TRUE"):
    out = {}
    for symbol in ("BTCUSDT", "BTCUSD_PERP"):
        out[symbol] = warehouse_table(
            root, f"SELECT * FROM {sql_table} WHERE symbol = '{symbol}' AND {where} ORDER BY ALL"
        )
    return out["BTCUSDT"], out["BTCUSD_PERP"]


def _differing(a: pa.Table, b: pa.Table, skip=("symbol", "market")) -> list[str]:
    diff = []
    for name in a.column_names:
        if name in skip:
            continue
        x, y = a[name].to_numpy(zero_copy_only=False), b[name].to_numpy(zero_copy_only=False)
        if x.dtype.kind == "f":
            if not np.allclose(x, y, rtol=1e-12, atol=0, equal_nan=True):
                diff.append(name)
        elif not (x == y).all():
            diff.append(name)
    return diff


def test_perturbing_data_after_t_changes_no_feature_at_or_before_t(lake):
    a, b = _by_symbol(lake, "fct_features", f"ts_us <= {T_US}")
    assert a.num_rows == b.num_rows > 2000
    assert _differing(a, b) == []
    after_a, after_b = _by_symbol(lake, "fct_features", f"ts_us > {T_US}")
    assert {"queue_bid_l1", "imbalance_l1", "mid", "trade_qty_10s"} <= set(_differing(after_a, after_b))


def test_changing_validation_data_changes_no_train_fit_statistic(lake):
    for table in (
        "norm_clip_bounds",
        "norm_microprice_g",
        "norm_ofi_weights",
        "regime_thresholds",
        "norm_feature_stats",
    ):
        a, b = _by_symbol(lake, table)
        assert a.num_rows == b.num_rows > 0, table
        assert _differing(a, b) == [], table


def test_labels_look_ahead_only_within_their_horizon(lake):
    a, b = _by_symbol(lake, "fct_labels", f"ts_us <= {T_US - 60_000_000}")
    assert _differing(a, b) == []
    a, b = _by_symbol(lake, "fct_labels", f"ts_us <= {T_US} AND ts_us > {T_US - 1_000_000}")
    assert "markout_mid_1s_bps" in _differing(a, b)
