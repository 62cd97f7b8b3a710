"""The two plans of the rolling features agree: on a regular grid with two symbols in one run (the streaming plan's
running sums cross the symbols and subtract each symbol's base), `feature_plan: streaming` and `feature_plan: range`
give the same trade flow, book features and labels; an irregular grid refuses `streaming` by name.  The on-chain
values of both symbols become available at the same time inside their books, so the streaming plan's stream carries
the first symbol's event into the second symbol's earlier books, where it must find nothing (no look-ahead).

Tolerance: as tests/test_features_reference.py (1e-9 relative and 1e-9 x the column's scale; 1e-6 for skewness and
kurtosis, whose power sums lose digits to cancellation at the running sums' magnitude).  Also: staging dedupes
when (and only when) the staged raw range holds duplicates.
"""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from feature_lake import (
    MarketParams,
    assert_close,
    build_raw_lake,
    day_start_us,
    onchain,
    warehouse_table,
    write_raw,
)

from feature_store.feature_build import BuildWindow, FeatureBuildError, run_dbt

DAY = "2024-01-01"
VARS = {"warmup_s": 900, "regime_window_s": 900, "grid_ms": 1000}
WINDOW = BuildWindow(DAY, DAY, train_start=DAY, train_end=DAY)
SYMBOLS = ("BTCUSDT", "ETHUSDT")
ONCHAIN_LAG_HOURS = 20.0  # the books span 18:00-24:00 of DAY


@pytest.fixture(scope="module")
def lakes(tmp_path_factory):
    streaming = tmp_path_factory.mktemp("plan_streaming")
    raw = build_raw_lake(
        streaming,
        symbols=SYMBOLS,
        days=(DAY,),
        params=MarketParams(grid_ms=1000),
        day_seconds=21_600,
    )
    write_raw(streaming, "trades", _trades_at_book_instants(raw))
    rng = np.random.default_rng(3)
    late = pa.concat_tables([onchain(rng, s, DAY, lag_hours=ONCHAIN_LAG_HOURS) for s in SYMBOLS])
    write_raw(streaming, "onchain_metrics", late, mode="overwrite")
    ranged = tmp_path_factory.mktemp("plan_range")
    shutil.copytree(streaming / "raw", ranged / "raw")
    run_dbt(streaming, "build", WINDOW, extra_vars={**VARS, "feature_plan": "streaming"})
    run_dbt(ranged, "build", WINDOW, extra_vars={**VARS, "feature_plan": "range"})
    return streaming, ranged


def _trades_at_book_instants(raw: dict[str, pa.Table]) -> pa.Table:
    """Trades stamped exactly at a symbol's first, 11th, 101st and last book (the synthetic trades fall strictly
    between books): the grid plan of int_trade_flow rounds a trade up to the next grid point, the as-of plan looks
    for the last book strictly before it."""
    out = []
    for k, symbol in enumerate(SYMBOLS):
        books = raw["book_snapshots"].filter(pc.equal(raw["book_snapshots"]["symbol"], symbol))
        trades = raw["trades"].filter(pc.equal(raw["trades"]["symbol"], symbol)).slice(0, 4)
        ts = books["ts"].take(pa.array([0, 10, 100, books.num_rows - 1]))
        for name, values in (
            ("ts", ts),
            ("recv_ts", pc.add(ts, pa.scalar(2_000, pa.duration("us")))),
            ("trade_id", pa.array([10**15 + 4 * k + i for i in range(4)], pa.int64())),
        ):
            i = trades.schema.get_field_index(name)
            trades = trades.set_column(i, trades.schema.field(i), values.cast(trades.schema.field(i).type))
        out.append(trades)
    return pa.concat_tables(out)


@pytest.mark.parametrize(
    ("table", "key", "min_rows"),
    [
        # 43,200 books; trade flow has a row only for the books with trades before them.
        ("int_trade_flow", "symbol, ts_us", 30_000),
        # the book features of the train days, here the whole day (the train split is DAY)
        ("int_book_features_train", "symbol, ts_us", 40_000),
        ("fct_labels", "symbol, ts_us", 40_000),
        ("fct_trade_markouts", "symbol, trade_id", 40_000),
    ],
)
def test_streaming_plan_equals_range_plan(lakes, table, key, min_rows):
    streaming, ranged = (warehouse_table(root, f"SELECT * FROM {table} ORDER BY {key}") for root in lakes)
    assert streaming.num_rows == ranged.num_rows > min_rows
    assert set(streaming["symbol"].to_pylist()) == set(SYMBOLS)
    for name in ranged.column_names:
        got = streaming[name].to_numpy(zero_copy_only=False)
        want = ranged[name].to_numpy(zero_copy_only=False)
        if (
            want.dtype.kind == "f"
            or want.dtype == object
            and name.startswith(("markout", "funding", "onchain"))
        ):
            tol = 1e-6 if name.startswith(("skew_", "kurt_")) else 1e-9
            assert_close(f"{table}.{name}", got, want, tol)
        else:
            assert (got == want).all(), f"{table}.{name}"


def test_onchain_values_appear_at_their_availability_time_in_both_plans(lakes):
    available_us = day_start_us(DAY) + int(ONCHAIN_LAG_HOURS * 3_600_000_000)
    for root in lakes:
        rows = warehouse_table(
            root,
            f"SELECT symbol, ts_us >= {available_us} AS available, count(onchain_tx_count) AS known, "
            "count(*) AS n FROM int_book_features_train GROUP BY ALL ORDER BY ALL",
        ).to_pylist()
        assert [(r["symbol"], r["available"]) for r in rows] == [
            (s, a) for s in SYMBOLS for a in (False, True)
        ]
        for r in rows:
            assert r["known"] == (r["n"] if r["available"] else 0), (root.name, r)


def test_streaming_plan_refuses_an_irregular_grid(tmp_path):
    build_raw_lake(
        tmp_path,
        days=(DAY,),
        params=MarketParams(grid_ms=1000),
        day_seconds=3_600,
        drop_seconds={DAY: (84_000, 84_030)},
    )
    with pytest.raises(FeatureBuildError, match="not a regular"):
        run_dbt(
            tmp_path,
            "run",
            WINDOW,
            select="+int_book_features_train",
            extra_vars={**VARS, "feature_plan": "streaming"},
        )


def test_staging_dedupes_when_the_raw_range_holds_duplicates(tmp_path):
    """Staging sorts for its dedupe only when a run-time check finds natural-key duplicates in the staged range;
    when it does, the last received copy wins."""
    raw = build_raw_lake(tmp_path, days=(DAY,), params=MarketParams(grid_ms=1000), day_seconds=600)
    books = raw["book_snapshots"]
    stale = books.slice(100, 3)  # an older receipt of three snapshots, with other sizes
    sizes = pa.array([[9.0] * len(v) for v in stale["bid_sz"].to_pylist()], books.schema.field("bid_sz").type)
    stale = stale.set_column(stale.schema.get_field_index("bid_sz"), "bid_sz", sizes)
    stale = stale.set_column(
        stale.schema.get_field_index("recv_ts"),
        "recv_ts",
        pc.subtract(stale["recv_ts"], pa.scalar(1, pa.duration("s"))),
    )
    write_raw(tmp_path, "book_snapshots", stale)
    run_dbt(tmp_path, "run", WINDOW, select="stg_book_snapshots", extra_vars=VARS)
    staged = warehouse_table(tmp_path, "SELECT ts_us, bid_sz_1 FROM stg_book_snapshots ORDER BY ts_us")
    assert staged.num_rows == books.num_rows
    want = [row[0] for row in books["bid_sz"].to_pylist()]
    assert staged["bid_sz_1"].to_pylist() == want
