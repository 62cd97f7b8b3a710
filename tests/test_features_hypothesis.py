"""The SQL of the feature models equals the numpy reference on random books drawn by hypothesis.

The models are compiled once by dbt (`dbt compile`, the exact SQL `dbt build` runs); each example then executes
that compiled SQL in dependency order on an in-memory DuckDB holding the example's raw tables (a dbt invocation
per example would cost seconds).  Random: grid, tick moves, trade rates, thin books (absent levels), size
dispersion, duplicated snapshots.  Tolerances as in test_features_reference.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from feature_lake import MarketParams, funding_and_marks, onchain, random_books, random_trades, shared_lake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_store import features_ref as ref
from feature_store.feature_build import DBT_PROJECT_DIR, BuildWindow, run_dbt
from feature_store.instruments import instrument

DAY = "2024-05-01"
VARS = {"warmup_s": 300, "regime_window_s": 300, "fit_sample_rows": 10_000_000}
PARAMS = ref.RefParams(warmup_s=300, regime_window_s=300)
ORDER = [
    "staging/stg_book_snapshots",
    "staging/stg_trades",
    "staging/stg_funding_rates",
    "staging/stg_mark_prices",
    "staging/stg_onchain_metrics",
    "intermediate/int_trade_flow",
    "intermediate/int_book_features_train",
    "norm/norm_clip_bounds",
    "norm/norm_microprice_g",
    "norm/norm_ofi_weights",
    "regimes/regime_thresholds",
    "features/fct_features",
    "labels/fct_labels",
    "norm/norm_feature_stats",
]


@pytest.fixture(scope="module")
def compiled():
    # any lake with the raw tables: compiling resolves the Delta sources.  DAY holds no data there, so the run-time
    # choices compile to the general SQL (RANGE frames, staging dedupe) that the random books below need
    lake = shared_lake()
    target = Path(tempfile.mkdtemp(prefix="dbt_compiled_"))
    window = BuildWindow(DAY, DAY, train_start=DAY, train_end=DAY)
    run_dbt(
        lake.root,
        "compile",
        window,
        extra_vars=VARS,
        target_path=target,
        select="staging intermediate norm regimes fct_features fct_labels",
    )
    base = target / "compiled" / "scalper_features" / "models"
    sql = {name.split("/")[1]: (base / f"{name}.sql").read_text() for name in ORDER}
    yield sql
    shutil.rmtree(target, ignore_errors=True)


def _plain(table: pa.Table) -> pa.Table:
    fields = [
        pa.field(f.name, pa.list_(pa.float64())) if pa.types.is_fixed_size_list(f.type) else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


def _run_models(sql: dict[str, str], raw: dict[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("ATTACH ':memory:' AS warehouse; USE warehouse; CREATE SCHEMA raw")
    for name, table in raw.items():
        con.register(f"_{name}", _plain(table))
        con.execute(f"CREATE TABLE raw.{name} AS SELECT * FROM _{name}")
    con.execute(
        f"CREATE TABLE main.instruments AS SELECT * FROM read_csv('{DBT_PROJECT_DIR / 'seeds' / 'instruments.csv'}', "
        "types={'tick_size': 'DOUBLE', 'lot_size': 'DOUBLE', 'contract_size': 'DOUBLE'})"
    )
    for name in ORDER:
        model = name.split("/")[1]
        con.execute(f"CREATE TABLE main.{model} AS {sql[model]}")
    return con


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**31),
    rows=st.integers(1500, 2500),  # past the 300 s warm-up even on a 250 ms grid
    grid_ms=st.sampled_from([250, 500, 1000]),
    move_prob=st.floats(0.0, 0.9),
    trade_rate=st.floats(0.0, 4.0),
    thin_prob=st.floats(0.0, 0.5),
    size_sigma=st.floats(0.1, 2.0),
    duplicates=st.integers(0, 5),
)
def test_sql_features_equal_numpy_on_random_books(
    compiled, seed, rows, grid_ms, move_prob, trade_rate, thin_prob, size_sigma, duplicates
):
    rng = np.random.default_rng(seed)
    p = MarketParams(
        grid_ms=grid_ms,
        move_prob=move_prob,
        trade_rate=trade_rate,
        thin_prob=thin_prob,
        size_sigma=size_sigma,
    )
    start = int(np.datetime64(DAY, "us").astype(np.int64)) + 3_600_000_000
    ts = start + np.arange(rows, dtype=np.int64) * grid_ms * 1000
    sign = rng.choice([-1, 1], rows)
    books = random_books(rng, "BTCUSDT", ts, p, sign)
    trades = random_trades(rng, "BTCUSDT", books, p, sign)
    if duplicates:  # re-sent snapshots: an older copy of some rows (the later receive time wins in both)
        idx = rng.choice(rows, duplicates, replace=False)
        old = books.take(pa.array(idx))
        old = old.set_column(
            old.schema.get_field_index("recv_ts"),
            old.schema.field("recv_ts"),
            pa.array(old["recv_ts"].cast(pa.int64()).to_numpy() - 1000).cast(
                old.schema.field("recv_ts").type
            ),
        )
        books = pa.concat_tables([books, _scramble(old, rng)])
    funding, marks = funding_and_marks(rng, "BTCUSDT", DAY)
    con = _run_models(
        compiled,
        {
            "book_snapshots": books,
            "trades": trades,
            "funding_rates": funding,
            "mark_prices": marks,
            "onchain_metrics": onchain(rng, "BTCUSDT", DAY),
        },
    )
    got = con.sql("SELECT * FROM fct_features ORDER BY ts_us").arrow().read_all()
    labels = con.sql("SELECT * FROM fct_labels ORDER BY ts_us").arrow().read_all()

    tick = instrument("BTCUSDT").tick_size
    book = ref.book_from_records(books, tick)
    f = ref.book_features(book, trades, PARAMS)
    fit = ref.fit_train(f, np.ones(len(book.ts_us), bool), tick, PARAMS)
    want = ref.published_features(f, fit, tick, PARAMS)
    np.testing.assert_array_equal(got["ts_us"].to_numpy(), f["ts_us"])
    for name in [
        "mid",
        "weighted_mid",
        "micro_price",
        "imbalance_l1",
        "imbalance_l10",
        *ref.clipped_features(),
        "ofi_integrated_10s",
        "tfi_1s",
        "tfi_60s",
        "regime_score",
        "log_ret",
    ]:
        loose = name.startswith(("skew", "kurt", "ofi_integrated"))
        _close(name, got[name].to_numpy(zero_copy_only=False), want[name], 1e-6 if loose else 1e-9)
    for name, values in ref.mid_markouts(f["ts_us"], f["mid"]).items():
        _close(name, labels[name].to_numpy(zero_copy_only=False), values, 1e-9)


def _scramble(old: pa.Table, rng) -> pa.Table:
    """An older copy differs in its sizes, so keeping the wrong copy would show."""
    i = old.schema.get_field_index("bid_sz")
    flat = old["bid_sz"].combine_chunks().flatten().to_numpy().reshape(old.num_rows, -1) * 7.0
    return old.set_column(
        i, old.schema.field(i), pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])
    )


def _close(name, got, want, tol):
    got, want = np.asarray(got, float), np.asarray(want, float)
    scale = np.nanmax(np.abs(want)) if np.isfinite(want).any() else 1.0
    bad = ~np.isclose(got, want, rtol=tol, atol=tol * max(scale, 1e-300), equal_nan=True)
    assert not bad.any(), (
        f"{name}: {bad.sum()} rows differ, first {np.flatnonzero(bad)[0]}: SQL {got[bad][0]!r} numpy {want[bad][0]!r}"
    )
