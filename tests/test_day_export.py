"""Publishing a query's rows as Parquet day files (feature_store.day_export.publish_days) and the warehouse view of
them (dbt/plugins/published_parquet.py): real files in a tmp folder, a real DuckDB warehouse, read back with DuckDB
and pyarrow."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from feature_store.day_export import PublishError, publish_days, published_partitions, published_view_sql
from feature_store.feature_build import BuildWindow

COLUMNS = [
    ("symbol", "VARCHAR"),
    ("date", "VARCHAR"),
    ("ts_us", "BIGINT"),
    ("x", "DOUBLE"),
    ("regime", "VARCHAR"),
]


def _window(start: str, end: str | None = None) -> BuildWindow:
    return BuildWindow(start, end or start, "2000-01-01", "2000-01-01")


def _rows(symbols: list[str], days: list[str], n: int = 5, shift: float = 0.0) -> str:
    """A query of n rows per symbol-day (x = a value that tells the run apart)."""
    values = [
        f"('{s}', '{d}', {i}::BIGINT, {i + shift}::DOUBLE, 'range')"
        for s in symbols
        for d in days
        for i in range(n)
    ]
    return f"SELECT * FROM (VALUES {', '.join(values)}) AS t(symbol, date, ts_us, x, regime)"


def _read(folder: Path, con=None) -> list[tuple]:
    con = con or duckdb.connect()
    return con.sql(f"{published_view_sql(str(folder), COLUMNS)} ORDER BY ALL").fetchall()


def test_one_expected_partition_is_copied_straight_to_its_file(tmp_path):
    con = duckdb.connect()
    written = publish_days(
        con,
        _rows(["BTCUSDT"], ["2024-03-02"]),
        str(tmp_path),
        _window("2024-03-02"),
        expected=[("BTCUSDT", "2024-03-02")],
        not_null=["ts_us"],
    )
    assert written == {("BTCUSDT", "2024-03-02"): 5}
    path = tmp_path / "symbol=BTCUSDT" / "date=2024-03-02" / "part_0.parquet"
    # the partition columns live in the folder names, as DuckDB's PARTITION_BY writes them
    assert pq.read_schema(path).names == ["ts_us", "x", "regime"]
    assert _read(tmp_path) == [("BTCUSDT", "2024-03-02", i, float(i), "range") for i in range(5)]
    assert not list(tmp_path.rglob("*.tmp"))


def test_several_partitions_are_split_and_equal_a_straight_copy(tmp_path):
    con = duckdb.connect()
    sql = _rows(["BTCUSDT", "ETHUSDT"], ["2024-03-02", "2024-03-03"])
    written = publish_days(con, sql, str(tmp_path / "many"), _window("2024-03-02", "2024-03-03"))
    assert written == {(s, d): 5 for s in ("BTCUSDT", "ETHUSDT") for d in ("2024-03-02", "2024-03-03")}
    assert sorted(published_partitions(str(tmp_path / "many"))) == sorted(written)
    one = _rows(["ETHUSDT"], ["2024-03-03"])
    publish_days(con, one, str(tmp_path / "one"), _window("2024-03-03"), expected=[("ETHUSDT", "2024-03-03")])
    part = "symbol=ETHUSDT/date=2024-03-03/part_0.parquet"
    many, one = (pq.read_table(tmp_path / run / part) for run in ("many", "one"))
    # the same columns and types (nullability follows what DuckDB knows of the rows: a table's statistics)
    assert [(f.name, f.type) for f in many.schema] == [(f.name, f.type) for f in one.schema]
    assert many.sort_by("ts_us").to_pylist() == one.sort_by("ts_us").to_pylist()
    # the staging table is dropped
    assert not con.sql("SELECT * FROM duckdb_tables() WHERE temporary").fetchall()


def test_a_rebuild_replaces_the_window_days_only_and_a_full_refresh_all(tmp_path):
    con = duckdb.connect()
    publish_days(
        con,
        _rows(["BTCUSDT", "ETHUSDT"], ["2024-03-01", "2024-03-02"]),
        str(tmp_path),
        _window("2024-03-01", "2024-03-02"),
    )
    # 2024-03-02 rebuilt with BTCUSDT only: ETHUSDT's partition of that day goes, 2024-03-01 stays
    publish_days(
        con,
        _rows(["BTCUSDT"], ["2024-03-02"], shift=0.5),
        str(tmp_path),
        _window("2024-03-02"),
        expected=[("BTCUSDT", "2024-03-02")],
    )
    assert sorted(published_partitions(str(tmp_path))) == [
        ("BTCUSDT", "2024-03-01"),
        ("BTCUSDT", "2024-03-02"),
        ("ETHUSDT", "2024-03-01"),
    ]
    assert {r[3] for r in _read(tmp_path) if r[1] == "2024-03-02"} == {i + 0.5 for i in range(5)}
    publish_days(
        con, _rows(["BTCUSDT"], ["2024-03-03"]), str(tmp_path), _window("2024-03-03"), full_refresh=True
    )
    assert published_partitions(str(tmp_path)) == [("BTCUSDT", "2024-03-03")]


@pytest.mark.parametrize("expected", [None, [("BTCUSDT", "2024-03-02")]])
def test_a_null_in_a_not_null_column_fails_and_leaves_the_published_day(tmp_path, expected):
    con = duckdb.connect()
    publish_days(con, _rows(["BTCUSDT"], ["2024-03-02"]), str(tmp_path), _window("2024-03-02"))
    before = _read(tmp_path)
    bad = f"SELECT * REPLACE (nullif(ts_us, 3) AS ts_us) FROM ({_rows(['BTCUSDT'], ['2024-03-02'])})"
    with pytest.raises(duckdb.Error, match="ts_us is NULL, and the contract says not_null"):
        publish_days(con, bad, str(tmp_path), _window("2024-03-02"), expected=expected, not_null=["ts_us"])
    assert _read(tmp_path) == before
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_row_outside_the_expected_partition_fails(tmp_path):
    con = duckdb.connect()
    with pytest.raises(
        duckdb.Error, match="a row outside the expected partition symbol=BTCUSDT/date=2024-03-02"
    ):
        publish_days(
            con,
            _rows(["BTCUSDT", "ETHUSDT"], ["2024-03-02"]),
            str(tmp_path),
            _window("2024-03-02"),
            expected=[("BTCUSDT", "2024-03-02")],
        )
    assert published_partitions(str(tmp_path)) == []


def test_rows_outside_several_expected_partitions_fail(tmp_path):
    expected = [("BTCUSDT", "2024-03-02"), ("BTCUSDT", "2024-03-03")]
    sql = _rows(["BTCUSDT", "ETHUSDT"], ["2024-03-02", "2024-03-03"])
    with pytest.raises(
        PublishError, match="rows outside the expected partitions: symbol=ETHUSDT/date=2024-03-02"
    ):
        publish_days(
            duckdb.connect(), sql, str(tmp_path), _window("2024-03-02", "2024-03-03"), expected=expected
        )
    assert published_partitions(str(tmp_path)) == [] and not list(tmp_path.rglob("*.tmp"))


def test_changed_columns_fail_an_incremental_run_until_a_full_refresh(tmp_path):
    con = duckdb.connect()
    publish_days(con, _rows(["BTCUSDT"], ["2024-03-01"]), str(tmp_path), _window("2024-03-01"))
    changed = f"SELECT * REPLACE (x::FLOAT AS x) FROM ({_rows(['BTCUSDT'], ['2024-03-02'])})"
    with pytest.raises(PublishError, match=r"columns changed \(x\).*--full-refresh"):
        publish_days(con, changed, str(tmp_path), _window("2024-03-02"), expected=[("BTCUSDT", "2024-03-02")])
    assert published_partitions(str(tmp_path)) == [("BTCUSDT", "2024-03-01")]
    publish_days(con, changed, str(tmp_path), _window("2024-03-02"), full_refresh=True)
    assert published_partitions(str(tmp_path)) == [("BTCUSDT", "2024-03-02")]


def test_a_partition_value_that_cannot_name_a_folder_is_refused(tmp_path):
    with pytest.raises(PublishError, match="symbol '../x' cannot name a partition folder"):
        publish_days(duckdb.connect(), _rows(["../x"], ["2024-03-02"]), str(tmp_path), _window("2024-03-02"))


def test_the_view_has_the_contract_columns_before_and_after_the_first_day(tmp_path):
    con = duckdb.connect()
    empty = con.sql(published_view_sql(str(tmp_path), COLUMNS))
    assert list(zip(empty.columns, map(str, empty.types), strict=True)) == COLUMNS and not empty.fetchall()
    publish_days(con, _rows(["BTCUSDT"], ["2024-03-02"]), str(tmp_path), _window("2024-03-02"))
    full = con.sql(published_view_sql(str(tmp_path), COLUMNS))
    assert list(zip(full.columns, map(str, full.types), strict=True)) == COLUMNS
    # the date filter prunes by folder: only that day's file is read
    assert con.sql(
        f"SELECT count(*) FROM ({published_view_sql(str(tmp_path), COLUMNS)}) WHERE date = '2024-03-02'"
    ).fetchall() == [(5,)]


def test_the_plugin_replaces_a_warehouse_table_of_the_older_layout_with_the_view(tmp_path, monkeypatch):
    """A warehouse built before holds fct_features as a table, its days exported to the same files: the first run
    drops the table, and the view shows the exported days with the new one."""
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "dbt" / "plugins"))
    sys.modules.pop("published_parquet", None)
    import published_parquet
    from dbt.adapters.duckdb.relation import DuckDBRelation
    from dbt.adapters.duckdb.utils import TargetConfig, TargetLocation

    warehouse = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    folder = tmp_path / "features" / "fct_features"
    publish_days(warehouse, _rows(["BTCUSDT"], ["2024-03-01"]), str(folder), _window("2024-03-01"))
    warehouse.execute("CREATE TABLE fct_features AS SELECT 1 AS old")
    plugin = published_parquet.Plugin("published_parquet", {})
    plugin.configure_connection(warehouse)
    relation = DuckDBRelation.create(database="warehouse", schema="main", identifier="fct_features")
    config = {
        "sql": _rows(["BTCUSDT"], ["2024-03-02"]),
        "columns": [list(c) for c in COLUMNS],
        "not_null": ["ts_us"],
        "expected": [["BTCUSDT", "2024-03-02"]],
        "full_refresh": False,
        "window": _window("2024-03-02").vars(),
    }
    plugin.store(TargetConfig(relation, [], config, TargetLocation(str(folder), "parquet")))
    kind = warehouse.sql("SELECT table_type FROM information_schema.tables WHERE table_name = 'fct_features'")
    assert kind.fetchall() == [("VIEW",)]
    assert warehouse.sql("SELECT date, count(*) FROM fct_features GROUP BY ALL ORDER BY ALL").fetchall() == [
        ("2024-03-01", 5),
        ("2024-03-02", 5),
    ]
