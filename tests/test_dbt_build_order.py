"""Every incremental model holds the same rows whatever order its days were built in: days built one per run in
order, all in one run, and the in-order lake with its middle day rebuilt afterwards (a backfill after the next day
was built) agree row for row.  And an incremental run writes a model's new rows once: dbt-duckdb's temporary
relation is the temporary view of dbt/macros/incremental_views.sql, not a temporary table copied into the target.

The lake is the last half hour of three days (so the warm-up of day 2 is day 1's last 15 minutes and the next day
starts 23.5 h after midnight): a day's run rebuilds the previous day's tail (labels) or reads it (trade flow,
rolling features), which is where the boundary of what a run deletes and what it re-inserts shows.  Day 2's books
stop 1400 s before midnight, longer than the warm-up, with a trade in that hole: day 3's first book and its trades
then reach back past the warm-up, to the last book of day 2.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pyarrow as pa
import pytest
from feature_lake import (
    MarketParams,
    assert_close,
    build_raw_lake,
    day_start_us,
    warehouse_table,
    write_raw,
)

from feature_store.feature_build import WINDOW_ENV, BuildWindow, FeatureBuildError, run_dbt

DAYS = ("2024-03-01", "2024-03-02", "2024-03-03")
VARS = {"warmup_s": 900, "regime_window_s": 900, "grid_ms": 1000}
# natural key of each incremental model
MODELS = {
    "stg_book_snapshots": "symbol, ts_us",
    "stg_trades": "symbol, trade_id",
    "int_trade_flow": "symbol, ts_us",
    "int_book_features_train": "symbol, ts_us",
    "fct_features": "symbol, ts_us",
    "fct_labels": "symbol, ts_us",
    "fct_trade_markouts": "symbol, trade_id",
}


def _trade_at(trades: pa.Table, ts_us: int) -> pa.Table:
    """A copy of the first trade at `ts_us` (and in that day's partition), with a trade id of its own."""
    one = trades.slice(0, 1)
    i = one.schema.get_field_index("date")
    day = str(np.datetime64(ts_us, "us").astype("datetime64[D]"))
    one = one.set_column(i, one.schema.field(i), pa.array([day]).cast(one.schema.field(i).type))
    for name, value in (("ts", ts_us), ("recv_ts", ts_us + 2_000)):
        i = one.schema.get_field_index(name)
        one = one.set_column(
            i, one.schema.field(i), pa.array([value], pa.int64()).cast(one.schema.field(i).type)
        )
    i = one.schema.get_field_index("trade_id")
    return one.set_column(i, one.schema.field(i), pa.array([10**12], one.schema.field(i).type))


def _build(root, first: str, last: str) -> None:
    window = BuildWindow(first, last, train_start=DAYS[0], train_end=DAYS[0])
    run_dbt(root, "build", window, exclude="resource_type:test", extra_vars=VARS)


@pytest.fixture(scope="module")
def lakes(tmp_path_factory):
    in_order = tmp_path_factory.mktemp("in_order")
    raw = build_raw_lake(
        in_order,
        days=DAYS,
        params=MarketParams(grid_ms=1000),
        day_seconds=1_800,
        drop_seconds={DAYS[1]: (85_000, 86_400)},
    )
    write_raw(in_order, "trades", _trade_at(raw["trades"], day_start_us(DAYS[1]) + 85_500_000_000))
    at_once = tmp_path_factory.mktemp("at_once")
    shutil.copytree(in_order / "raw", at_once / "raw")
    for day in DAYS:
        _build(in_order, day, day)
    _build(at_once, DAYS[0], DAYS[-1])
    backfilled = tmp_path_factory.mktemp("backfilled")
    shutil.copytree(in_order, backfilled, dirs_exist_ok=True)
    _build(backfilled, DAYS[1], DAYS[1])
    return {"in order": in_order, "at once": at_once, "day 2 rebuilt after day 3": backfilled}


@pytest.mark.parametrize("other", ["at once", "day 2 rebuilt after day 3"])
@pytest.mark.parametrize("model", list(MODELS))
def test_rows_do_not_depend_on_the_build_order(lakes, model, other):
    query = f"SELECT * FROM {model} ORDER BY {MODELS[model]}"
    want = warehouse_table(lakes["in order"], query)
    got = warehouse_table(lakes[other], query)
    keys = MODELS[model].split(", ")
    want_keys = set(zip(*(want[k].to_pylist() for k in keys), strict=True))
    got_keys = set(zip(*(got[k].to_pylist() for k in keys), strict=True))
    assert got_keys == want_keys, (
        f"{model} built {other}: rows only there {sorted(got_keys - want_keys)[:3]}, "
        f"rows only in the in-order build {sorted(want_keys - got_keys)[:3]}"
    )
    assert want.num_rows == got.num_rows > 0
    for name in want.column_names:
        a = want[name].to_numpy(zero_copy_only=False)
        b = got[name].to_numpy(zero_copy_only=False)
        if a.dtype.kind == "f" or name.startswith(("markout", "funding", "onchain")):
            assert_close(f"{model}.{name} built {other}", b, a)
        else:
            assert (a == b).all(), f"{model}.{name} built {other}"


@pytest.mark.parametrize("model", [m for m in MODELS if m not in ("int_book_features_train", "fct_features")])
def test_incremental_runs_insert_through_a_temporary_view(lakes, model):
    """The in-order lake's second and third runs are incremental: each model's rows go from a temporary view
    straight into the target (a temporary table would write the day twice, ~30 % more CPU in stg_book_snapshots).
    int_book_features_train adds nothing on those days, which lie outside the train split (the test below);
    fct_features is no table but Parquet days, each copied straight to its file (tests/test_day_export.py)."""
    log = (lakes["in order"] / ".dbt_target" / "logs" / "dbt.log").read_text()
    views = re.findall(rf'create temporary view "{model}__dbt_tmp', log)
    tables = re.findall(rf'create\s+temporary\s+table\s+"?{model}__dbt_tmp', log)
    assert len(views) == len(DAYS) - 1 and not tables, (model, len(views), len(tables))


FITS = (
    "norm_clip_bounds",
    "norm_microprice_g",
    "norm_ofi_weights",
    "norm_feature_stats",
    "regime_thresholds",
)


def _kept_in(run_log: str, model: str) -> bool:
    """Whether `model` ran with nothing to add in this run's log: the incremental materialization ran no statement
    for it (dbt/macros/incremental_kept.sql), and dbt reported it KEPT."""
    return (
        re.search(rf"OK created sql incremental model main\.{model} \.+ \[\S*KEPT", run_log) is not None
        and f'"{model}__dbt_tmp' not in run_log
        and not re.search(rf'insert into "warehouse"\."main"\."{model}"', run_log)
    )


@pytest.mark.parametrize("fit", FITS)
def test_train_fits_are_kept_until_their_input_changes(lakes, fit):
    """The train split is day 1: the in-order lake fits once (day 1's run) and keeps the fit on days 2 and 3
    (dbt/macros/train_fit.sql) without a statement, and holds the same fit as the lake built in one run."""
    log = (lakes["in order"] / ".dbt_target" / "logs" / "dbt.log").read_text()
    runs = re.split(r"Running with dbt=", log)[1:]
    assert (
        not _kept_in(runs[0], fit)
        and "train_window" in warehouse_table(lakes["in order"], f"SELECT * FROM {fit}").column_names
    )
    for day, run in zip(DAYS[1:], runs[1:], strict=True):
        assert _kept_in(run, fit), (fit, day)
    # the last run's compiled SQL says why: a fit of the current split, and no train day rebuilt
    kept = f"the stored fit is of train split {DAYS[0]}..{DAYS[0]} and no train day is rebuilt: keep it"
    (compiled,) = (lakes["in order"] / ".dbt_target" / "compiled").rglob(f"{fit}.sql")
    assert kept in compiled.read_text(), fit
    query = f"SELECT * FROM {fit} ORDER BY ALL"
    want = warehouse_table(lakes["at once"], query)
    got = warehouse_table(lakes["in order"], query)
    assert got.num_rows == want.num_rows > 0
    assert set(got["train_window"].to_pylist()) == {f"{DAYS[0]}..{DAYS[0]}"}
    for name in want.column_names:
        a, b = want[name].to_numpy(zero_copy_only=False), got[name].to_numpy(zero_copy_only=False)
        if a.dtype.kind == "f":
            assert_close(f"{fit}.{name}", b, a)
        else:
            assert (a == b).all(), f"{fit}.{name}"


def test_train_features_are_only_written_on_train_days(lakes):
    """int_book_features_train holds day 1 (the train split) and adds nothing, without a statement, on days 2 and 3."""
    log = (lakes["in order"] / ".dbt_target" / "logs" / "dbt.log").read_text()
    runs = re.split(r"Running with dbt=", log)[1:]
    assert [_kept_in(run, "int_book_features_train") for run in runs] == [False, True, True]
    days = warehouse_table(lakes["in order"], "SELECT DISTINCT date FROM int_book_features_train")
    assert days["date"].to_pylist() == [DAYS[0]]


def test_a_new_train_split_refits(lakes, tmp_path):
    """A run under another train split refits every fit: the split grows to days 1..2, and the run rebuilds day 2,
    its new day (int_book_features_train keeps the features of train days as they were built)."""
    shutil.copytree(lakes["in order"], tmp_path, dirs_exist_ok=True)
    before = warehouse_table(tmp_path, "SELECT n_train FROM regime_thresholds")["n_train"].to_pylist()
    window = BuildWindow(DAYS[1], DAYS[1], train_start=DAYS[0], train_end=DAYS[1])
    run_dbt(tmp_path, "build", window, exclude="resource_type:test", extra_vars=VARS)
    for fit in FITS:
        windows = warehouse_table(tmp_path, f"SELECT DISTINCT train_window FROM {fit}")[
            "train_window"
        ].to_pylist()
        assert windows == [f"{DAYS[0]}..{DAYS[1]}"], fit
    after = warehouse_table(tmp_path, "SELECT n_train FROM regime_thresholds")["n_train"].to_pylist()
    assert after[0] > before[0]  # day 2's rows joined the split


def test_a_refit_over_a_split_with_unbuilt_features_is_refused(lakes, tmp_path):
    """A fit over a train split whose days were not all built under it (day 2 was built while the split was day 1,
    so int_book_features_train lacks it) fails and names the days to build, instead of silently fitting day 1
    alone."""
    shutil.copytree(lakes["in order"], tmp_path, dirs_exist_ok=True)
    window = BuildWindow(DAYS[2], DAYS[2], train_start=DAYS[0], train_end=DAYS[1])
    with pytest.raises(FeatureBuildError, match=rf"--start {DAYS[0]} --end {DAYS[1]}"):
        run_dbt(tmp_path, "build", window, exclude="resource_type:test", extra_vars=VARS)


def test_a_new_partition_does_not_reparse_the_project(lakes):
    """The window travels in SCALPER_BUILD_WINDOW, read at execution time only (dbt/macros/partitions.sql:
    build_window): the in-order lake's first run parses the project, its next two days reuse dbt's partial-parse
    state (a window in --vars would change dbt's vars hash and force a full re-parse every partition)."""
    log = (lakes["in order"] / ".dbt_target" / "logs" / "dbt.log").read_text()
    runs = re.split(r"Running with dbt=", log)[1:]
    assert len(runs) == len(DAYS)
    assert "Unable to do partial parsing" in runs[0]
    for day, run in zip(DAYS[1:], runs[1:], strict=True):
        assert "Unable to do partial parsing" not in run, day
        assert "Partial parsing enabled" in run, day


def test_a_window_in_vars_is_refused(tmp_path):
    """--vars start_date (the former way of passing the window) fails with a pointer to SCALPER_BUILD_WINDOW instead
    of being silently ignored."""
    window = BuildWindow(DAYS[0], DAYS[0], train_start=DAYS[0], train_end=DAYS[0])
    with pytest.raises(FeatureBuildError, match="SCALPER_BUILD_WINDOW"):
        run_dbt(tmp_path, "compile", window, select="qc_daily", extra_vars={"start_date": DAYS[1]})


def test_the_window_round_trips_through_the_environment():
    window = BuildWindow(DAYS[1], DAYS[2], train_start=DAYS[0], train_end=DAYS[0])
    assert BuildWindow.from_env(window.env()) == window
    assert BuildWindow.from_env({}) == BuildWindow("2000-01-01", "2099-12-31", "2000-01-01", "2099-12-31")
    with pytest.raises(ValueError, match="unknown"):
        BuildWindow.from_env({WINDOW_ENV: '{"start": "2024-03-01"}'})
