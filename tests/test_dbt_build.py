"""dbt build over synthetic days: good days pass every test, the planted bad day fails exactly the right QC
tests, rebuilding one day alone equals the day built inside the range (warm-up from the previous day), and the
metrics JSON, Parquet exports and regime shards land in the lake."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from feature_lake import BAD_DAY, TEST_DAYS, shared_lake, warehouse_table

from feature_store.feature_build import BuildWindow, dbt_args, dbt_env, dbt_executable, run_dbt


@pytest.fixture(scope="module")
def lake():
    return shared_lake()


def _day_window(day):
    """A build of one day under the shared lake's train split (its first day)."""
    return BuildWindow(day, day, train_start=TEST_DAYS[0], train_end=TEST_DAYS[0])


def _results(root):
    run = json.loads((root / ".dbt_target" / "run_results.json").read_text())
    return {r["unique_id"].split(".")[2]: r["status"] for r in run["results"]}


def test_builds_end_with_the_warehouse_closed(lake, tmp_path):
    """The builds run through scalper-dbt (dagster_project/dbt_cli.py), which ends with os._exit: it must have closed
    DuckDB itself, or the last checkpoint would be missing and a write-ahead log left beside the warehouse (the
    shared lake's last build, of the planted bad day, failed tests: the failing path closes it too), and run the
    exit handlers a normal exit runs (multiprocessing would report the semaphores of dbt's run as leaked)."""
    assert dbt_executable().endswith("scalper-dbt")
    assert (lake.root / "warehouse.duckdb").exists()
    assert not (lake.root / "warehouse.duckdb.wal").exists()
    window = _day_window(TEST_DAYS[0])
    proc = run_dbt(lake.root, "run", window, select="stg_funding_rates", target_path=tmp_path / "target")
    assert "1 of 1 OK" in proc.stdout
    assert proc.stderr == "", proc.stderr
    assert not (lake.root / "warehouse.duckdb.wal").exists()


def test_a_run_writes_its_manifest_once_when_done(lake, tmp_path):
    """scalper-dbt (dagster_project/dbt_cli.py): dbt writes manifest.json after parsing and, for a `run` or `build`,
    again when its nodes are done; the run writes it once, the second time (with the run's compiled code).  A
    `parse`, which writes it only after parsing, still does."""
    window = _day_window(TEST_DAYS[0])
    target = tmp_path / "run"
    model = "stg_funding_rates"
    node_id = f"model.scalper_features.{model}"

    def manifest_nodes(folder):
        return json.loads((folder / "manifest.json").read_text())["nodes"]

    run_dbt(lake.root, "run", window, select=model, extra_vars=lake.extra_vars, target_path=target)
    log = (target / "logs" / "dbt.log").read_text()
    assert log.count("Wrote artifact WritableManifest") == 1
    # written after the run compiled the node
    assert "funding_rates" in manifest_nodes(target)[node_id].get("compiled_code", "")

    parsed = tmp_path / "parse"
    run_dbt(lake.root, "parse", window, extra_vars=lake.extra_vars, target_path=parsed)
    assert node_id in manifest_nodes(parsed)


def test_a_run_collects_garbage_once_its_manifest_is_loaded(lake, tmp_path):
    """scalper-dbt turns Python's garbage collector off until the manifest is loaded, then freezes what is alive
    and turns it on for the run's nodes: at the end of a run it is on, with the start's objects frozen."""
    window = _day_window(TEST_DAYS[0])
    target = tmp_path / "target"
    args = dbt_args("run", select="stg_funding_rates", extra_vars=lake.extra_vars, target_path=target)
    args += ["--log-path", str(target / "logs")]
    # the exit handlers run before scalper-dbt's os._exit
    probe = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('collector', gc.isenabled(), gc.get_freeze_count(), file=sys.stderr))\n"
        f"sys.argv = ['scalper-dbt', *{args!r}]\n"
        "from dagster_project.dbt_cli import main\n"
        "main()\n"
    )
    env = dbt_env(lake.root.resolve(), window)
    proc = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    (probed,) = [line for line in proc.stderr.splitlines() if line.startswith("collector ")]
    _, enabled, frozen = probed.split()
    assert enabled == "True" and int(frozen) > 100_000


def test_planted_bad_day_fails_the_right_tests(lake):
    assert lake.build_returncode == 1, lake.build_stdout[-2000:]
    status = {k: v for k, v in _results(lake.root).items()}
    failed = sorted(k for k, v in status.items() if v in ("fail", "error"))
    assert failed == ["qc_crossed_books", "qc_timestamp_continuity"], failed
    others = {k: v for k, v in status.items() if k not in failed and v not in ("success", "pass")}
    assert not others, others  # nothing skipped: the metrics JSON of the bad day is written too
    metrics = warehouse_table(lake.root, "SELECT * FROM metrics_daily ORDER BY date").to_pylist()
    bad = {m["date"]: m for m in metrics}[BAD_DAY]
    assert bad["max_gap_s"] == pytest.approx(61.0)
    assert bad["crossed_rate"] == pytest.approx(5 / bad["book_rows"])
    for m in metrics:
        if m["date"] != BAD_DAY:
            assert m["max_gap_s"] == pytest.approx(1.0) and m["crossed_rate"] == 0
            assert m["sync_best_lag_s"] == 0 and m["sync_best_corr"] > 0.05


@pytest.mark.parametrize("plan", ["auto", "range"])
def test_good_days_pass_every_test_and_rebuilding_a_day_alone_changes_nothing(lake, plan):
    """Day 2 was built by the daily run after day 1 (the streaming plan: a regular grid); rebuilt alone with the
    plan chosen automatically (streaming again) or forced to RANGE frames, its features are unchanged."""
    before = warehouse_table(
        lake.root, f"SELECT * FROM fct_features WHERE date = '{TEST_DAYS[1]}' ORDER BY ts_us"
    )
    labels_before = warehouse_table(lake.root, "SELECT * FROM fct_labels ORDER BY ts_us")
    day = _day_window(TEST_DAYS[1])
    # raises when any model or test fails
    run_dbt(lake.root, "build", day, extra_vars={**lake.extra_vars, "feature_plan": plan})
    after = warehouse_table(
        lake.root, f"SELECT * FROM fct_features WHERE date = '{TEST_DAYS[1]}' ORDER BY ts_us"
    )
    labels_after = warehouse_table(lake.root, "SELECT * FROM fct_labels ORDER BY ts_us")
    assert after.num_rows == before.num_rows > 80_000
    for name in before.column_names:
        a, b = before[name].to_numpy(zero_copy_only=False), after[name].to_numpy(zero_copy_only=False)
        if a.dtype.kind == "f":
            # window sums of the streaming plan are differences of running sums that start at the first staged
            # row: the plans, and a day built alone or after the previous one, agree to rounding (~1e-12 relative)
            scale = float(np.nanmax(np.abs(a))) if np.isfinite(a).any() else 1.0
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-10 * scale, err_msg=name)
        else:
            assert (a == b).all(), name
    assert labels_after.num_rows == labels_before.num_rows  # no duplicated rows after the rebuild
    assert not before["is_warmup"].to_numpy().any()  # the previous day's tail served as warm-up


def test_outputs_land_in_the_lake(lake):
    metrics_dir = lake.root / "features" / "metrics"
    for day in TEST_DAYS:
        doc = json.loads((metrics_dir / f"{day}.json").read_text())
        assert doc["date"] == day and doc["symbols"][0]["symbol"] == "BTCUSDT"
        # the two summaries of the published features that the JSON adds to metrics_daily's row
        (want,) = warehouse_table(
            lake.root,
            "SELECT avg(rvol_60s) AS rvol, avg(is_warmup::INTEGER) AS warmup FROM fct_features "
            f"WHERE date = '{day}'",
        ).to_pylist()
        got = doc["symbols"][0]
        assert got["rvol_60s_mean"] == pytest.approx(want["rvol"], rel=1e-12) and want["rvol"] > 0
        assert got["warmup_rate"] == pytest.approx(want["warmup"], rel=1e-12)
    # the published features are these Parquet days, which the warehouse shows as a view
    published = pq.read_table(
        lake.root / "features" / "fct_features" / "symbol=BTCUSDT" / f"date={TEST_DAYS[0]}"
    )
    assert published.num_rows == 86_400
    viewed = warehouse_table(
        lake.root,
        f"SELECT * EXCLUDE (symbol, date) FROM fct_features WHERE date = '{TEST_DAYS[0]}' ORDER BY ts_us",
    )
    assert viewed.equals(published.sort_by("ts_us").cast(viewed.schema))
    kinds = warehouse_table(
        lake.root, "SELECT table_type FROM information_schema.tables WHERE table_name = 'fct_features'"
    )
    assert kinds["table_type"].to_pylist() == ["VIEW"]
    shards = sorted(p.name for p in (lake.root / "features" / "regimes").iterdir())
    assert shards == ["regime=bear", "regime=bull", "regime=range"]


def test_the_reads_of_the_published_days_open_only_the_days_they_need(lake, tmp_path):
    """fct_features is a view of one Parquet file per published day: its uniqueness check and the train-fit
    statistics over it name their days (date), so that DuckDB opens those days' files only, not the footer of every
    day published (a year of days made each such read ~0.1 s slower).  The shared lake has three published days;
    the first, a train day, is compiled and each query profiled on the warehouse."""
    day = TEST_DAYS[0]
    window = _day_window(day)
    target = tmp_path / "target"
    test_name = "unique_combination_fct_features_symbol__ts_us__True__range"
    run_dbt(
        lake.root,
        "compile",
        window,
        select=f"{test_name} norm_feature_stats",
        extra_vars=lake.extra_vars,
        target_path=target,
    )
    compiled = target / "compiled" / "scalper_features" / "models"
    queries = {
        "uniqueness check": (compiled / "features" / "_features.yml" / f"{test_name}.sql").read_text(),
        "norm_feature_stats": (compiled / "norm" / "norm_feature_stats.sql").read_text(),
    }
    assert len(list((lake.root / "features" / "fct_features").glob("symbol=*/date=*/*.parquet"))) == 3
    con = duckdb.connect(str(lake.root / "warehouse.duckdb"), read_only=True)
    try:
        for name, sql in queries.items():
            profile = con.execute(f"EXPLAIN ANALYZE {sql}").fetchall()[0][1]
            assert re.findall(r"Total Files Read: *(\d+)", profile) == ["1"], name
    finally:
        con.close()


def test_the_python_models_run_without_loading_pyarrow(lake, tmp_path, monkeypatch):
    """The Python models return DuckDB relations, written by dbt/macros/py_write_table.sql, and the metrics JSON
    fetches its rows as Python values: neither loads pyarrow (nor numpy), which cost a build ~0.25 CPU-s and ~70 MB
    of RSS (dbt-duckdb's own py_write_table imports pyarrow in every Python model).  The run rewrites the first
    day's JSON, shards and labels export with what the build wrote."""
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    day = TEST_DAYS[0]
    window = _day_window(day)
    before = json.loads((lake.root / "features" / "metrics" / f"{day}.json").read_text())
    proc = run_dbt(
        lake.root,
        "run",
        window,
        select="metrics_daily_json regime_shards export_labels",
        extra_vars=lake.extra_vars,
        target_path=tmp_path / "target",
    )
    assert "3 of 3 OK" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "dbt.cli" in imported and "duckdb" in imported  # the import log is there
    assert not {"pyarrow", "numpy", "pandas"} & imported
    after = json.loads((lake.root / "features" / "metrics" / f"{day}.json").read_text())
    assert after["date"] == before["date"] == day
    (got,), (want,) = after["symbols"], before["symbols"]
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key


def test_the_labels_export_equals_the_warehouse_after_the_next_day_filled_the_last_horizon(lake):
    """A day's labels of its last horizon look into the next day: NULL when the day is built, filled by the next
    day's run, which exports that earlier day again, so the Parquet labels equal the warehouse's."""
    for day in TEST_DAYS:
        want = warehouse_table(
            lake.root, f"SELECT * EXCLUDE (symbol, date) FROM fct_labels WHERE date = '{day}' ORDER BY ts_us"
        )
        got = pq.read_table(lake.root / "features" / "fct_labels" / "symbol=BTCUSDT" / f"date={day}")
        assert got.sort_by("ts_us").cast(want.schema).equals(want), day
    last_minute = warehouse_table(
        lake.root,
        f"SELECT count(markout_mid_60s_bps) AS n FROM fct_labels WHERE date = '{TEST_DAYS[0]}' "
        f"AND ts >= TIMESTAMPTZ '{TEST_DAYS[0]} 23:59:00+00'",
    )
    assert last_minute["n"][0].as_py() > 0


def test_the_schedule_keeps_labels_and_markouts_away_from_fct_features(lake):
    """fct_features holds more than DuckDB's memory limit at its peak (it spills): the labels run before it, the
    markouts after it and the daily metrics after the labels export, as edges of dbt's graph (dbt_project.yml, the
    schedule of a build), whatever the timing."""
    manifest = json.loads((lake.root / ".dbt_target" / "manifest.json").read_text())
    parents = {k: set(v) for k, v in manifest["parent_map"].items()}

    def ancestors(node: str) -> set[str]:
        seen, todo = set(), [node]
        while todo:
            for parent in parents.get(todo.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return seen

    model = "model.scalper_features.{}".format
    assert model("fct_labels") in ancestors(model("fct_features"))
    assert model("fct_features") in ancestors(model("fct_trade_markouts"))
    assert model("regime_thresholds") in ancestors(model("metrics_daily"))
    # metrics_daily starts after fct_features has sorted its books: beside that sort, both spill (dbt_project.yml)
    assert model("export_labels") in ancestors(model("metrics_daily"))


def test_a_feature_past_its_train_fit_bound_fails_qc_outliers_clipped(lake, tmp_path):
    """qc_outliers_clipped compares with the bounds as literals (so that DuckDB skips the row groups whose statistics
    lie inside them): a bound narrowed to the day's median spread fails it with every row above, and restored, it
    passes again."""
    day = _day_window(TEST_DAYS[1])

    def scalar(sql: str):
        return warehouse_table(lake.root, sql).column(0)[0].as_py()

    spread = f"FROM fct_features WHERE date = '{TEST_DAYS[1]}'"
    median = scalar(f"SELECT median(spread_bps) {spread}")
    above = scalar(f"SELECT count(*) {spread} AND spread_bps > {median!r}")
    assert above > 0
    (hi,) = warehouse_table(lake.root, "SELECT spread_bps__hi FROM norm_clip_bounds")[0].to_pylist()

    def qc(bound: float) -> subprocess.CompletedProcess:
        with duckdb.connect(str(lake.root / "warehouse.duckdb")) as con:
            con.execute("UPDATE norm_clip_bounds SET spread_bps__hi = ?", [bound])
        return run_dbt(
            lake.root,
            "test",
            day,
            select="qc_outliers_clipped",
            extra_vars=lake.extra_vars,
            check=False,
            target_path=tmp_path,
        )

    try:
        failed = qc(median)
        assert failed.returncode == 1
        assert f"Got {above} results" in failed.stdout, failed.stdout[-2000:]
    finally:
        passed = qc(hi)
    assert passed.returncode == 0, passed.stdout[-2000:]


def test_a_book_staged_in_the_former_layout_loses_the_columns_no_feature_reads(lake, tmp_path):
    """stg_book_snapshots once kept the prices of levels 6-10 and the receive time; a lake staged then rebuilds its
    next day without a full refresh: the first run drops those columns (dbt/macros/staged_book.sql) instead of
    failing the schema check, and restages the day as before."""

    staged = f"SELECT * FROM stg_book_snapshots WHERE date = '{TEST_DAYS[1]}' ORDER BY ts_us"
    before = warehouse_table(lake.root, staged)
    former = ["recv_ts_us"] + [f"{side}_px_{i}" for side in ("bid", "ask") for i in range(6, 11)]
    with duckdb.connect(str(lake.root / "warehouse.duckdb")) as con:
        for column in former:
            con.execute(f"ALTER TABLE stg_book_snapshots ADD COLUMN {column} DOUBLE")
    day = _day_window(TEST_DAYS[1])
    run_dbt(
        lake.root, "run", day, select="stg_book_snapshots", extra_vars=lake.extra_vars, target_path=tmp_path
    )
    after = warehouse_table(lake.root, staged)
    assert not set(former) & set(after.column_names)
    assert after.equals(before)
