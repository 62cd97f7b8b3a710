"""The file-list read of raw Delta tables (feature_store.raw_scan, and the dbt plugin that uses it) returns exactly
what deltalake reads: same rows, columns, order and types, after partition overwrites, for several symbols and
dates; it prunes files by a partition filter, and refuses tables it cannot honour."""

from __future__ import annotations

import importlib.util
import re

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from feature_lake import MarketParams, day_start_us, random_books

from feature_store.feature_build import DBT_PROJECT_DIR
from feature_store.lake import Lake
from feature_store.raw_scan import UnsupportedDeltaTable, delta_file_scan

SYMBOLS = ("BTCUSDT", "ETHUSDT")
DAYS = ("2024-01-01", "2024-01-02")


def _books(seed: int, symbol: str, day: str, rows: int = 300) -> pa.Table:
    ts = day_start_us(day) + np.arange(rows, dtype=np.int64) * 1_000_000 + 7
    return random_books(np.random.default_rng(seed), symbol, ts, MarketParams())


def _assert_same(sql: str, uri: str, where: str = "") -> int:
    """The scan and deltalake's own read (its pyarrow dataset, as DuckDB sees it: the read the scan replaces) hold
    the same columns, types and rows; returns the row count."""
    con = duckdb.connect()
    con.register("expected", DeltaTable(uri).to_pyarrow_dataset())
    con.execute(f"CREATE VIEW ours AS SELECT * FROM ({sql}) {where}")
    con.execute(f"CREATE VIEW theirs AS SELECT * FROM expected {where}")
    describe = "SELECT column_name, column_type FROM (DESCRIBE {})"
    assert (
        con.execute(describe.format("ours")).fetchall() == con.execute(describe.format("theirs")).fetchall()
    )
    rows = con.execute("SELECT count(*) FROM theirs").fetchall()[0][0]
    assert con.execute("SELECT count(*) FROM ours").fetchall()[0][0] == rows
    # multiset equality (EXCEPT ALL keeps duplicates; DuckDB compares NaN levels as equal)
    for a, b in (("ours", "theirs"), ("theirs", "ours")):
        assert con.execute(f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})").fetchall()[0][0] == 0
    # and independently of DuckDB's comparisons: the level lists of each row, as Python values
    key = "ORDER BY symbol, ts"
    ours = con.execute(
        f"SELECT symbol, date, ts, to_json(bid_px)::VARCHAR, ask_sz FROM ours {key}"
    ).fetchall()
    theirs = con.execute(
        f"SELECT symbol, date, ts, to_json(bid_px)::VARCHAR, ask_sz FROM theirs {key}"
    ).fetchall()
    assert ours == theirs
    return rows


def _partitions(sql: str) -> dict[tuple[str, str], int]:
    con = duckdb.connect()
    return {
        (s, d): n
        for s, d, n in con.execute(f"SELECT symbol, date, count(*) FROM ({sql}) GROUP BY ALL").fetchall()
    }


@pytest.fixture()
def lake(tmp_path):
    lake = Lake(tmp_path / "lake")
    seed = 0
    for symbol in SYMBOLS:
        for day in DAYS:
            seed += 1
            lake.write("book_snapshots", _books(seed, symbol, day))
    # re-land one partition with other rows: its first file stays on disk but leaves the table's current version
    lake.write("book_snapshots", _books(99, "ETHUSDT", DAYS[0], rows=120))
    return lake


def test_file_scan_reads_what_deltalake_reads_after_an_overwrite(lake):
    uri = lake.table_uri("book_snapshots")
    scan = delta_file_scan(uri)
    on_disk = list(lake.local_path("raw", "book_snapshots").rglob("*.parquet"))
    assert len(on_disk) == len(scan.files) + 1  # the overwritten file is on disk, not in the scan
    assert _assert_same(scan.sql(), uri) == 3 * 300 + 120
    expected = {(s, d): 300 for s in SYMBOLS for d in DAYS} | {("ETHUSDT", DAYS[0]): 120}
    assert _partitions(scan.sql()) == expected


def test_a_date_filter_reads_only_that_partition_files(lake):
    uri = lake.table_uri("book_snapshots")
    scan = delta_file_scan(uri)
    assert _assert_same(scan.sql(), uri, f"WHERE date = '{DAYS[1]}'") == 2 * 300
    plan = duckdb.connect().execute(
        f"EXPLAIN ANALYZE SELECT count(*) FROM ({scan.sql()}) WHERE date = '{DAYS[1]}'"
    )
    read = re.search(r"Total Files Read:\s*(\d+)", plan.fetchall()[0][1])
    assert read is not None and int(read.group(1)) == 2  # of the scan's 4 files


def test_scan_is_resolved_from_the_current_version(lake):
    uri = lake.table_uri("book_snapshots")
    before = delta_file_scan(uri)
    lake.write("book_snapshots", _books(7, "BTCUSDT", DAYS[1], rows=50))
    after = delta_file_scan(uri)
    assert after.version > before.version
    assert _partitions(after.sql())[("BTCUSDT", DAYS[1])] == 50
    assert _partitions(before.sql())[("BTCUSDT", DAYS[1])] == 300  # a scan is one version, not a live view
    _assert_same(after.sql(), uri)


def test_empty_table_reads_as_no_rows_with_the_table_columns(tmp_path):
    uri = str(tmp_path / "empty")
    write_deltalake(uri, _books(1, "BTCUSDT", DAYS[0]).slice(0, 0), partition_by=["symbol", "date"])
    scan = delta_file_scan(uri)
    assert scan.files == ()
    assert _assert_same(scan.sql(), uri) == 0


def _small(symbol: str = "A") -> pa.Table:
    return pa.table({"symbol": [symbol], "date": ["2024-01-01"], "v": [1]})


@pytest.mark.parametrize(
    ("configuration", "reason"),
    [
        ({"delta.enableDeletionVectors": "true"}, "deletionVectors"),
        ({"delta.columnMapping.mode": "name"}, "column mapping"),
    ],
)
def test_tables_with_features_the_scan_cannot_honour_are_refused(tmp_path, configuration, reason):
    uri = str(tmp_path / "t")
    write_deltalake(uri, _small(), partition_by=["symbol", "date"], configuration=configuration)
    with pytest.raises(UnsupportedDeltaTable, match=reason) as err:
        delta_file_scan(uri)
    assert uri in str(err.value)


def test_partition_values_that_need_escaping_are_refused(tmp_path):
    uri = str(tmp_path / "t")
    write_deltalake(uri, _small("A B"), partition_by=["symbol", "date"])
    with pytest.raises(UnsupportedDeltaTable, match="needs escaping") as err:
        delta_file_scan(uri)
    assert uri in str(err.value)


def _plugin_module():
    spec = importlib.util.spec_from_file_location(
        "delta_files", DBT_PROJECT_DIR / "plugins" / "delta_files.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _source(path: str):
    from dbt.adapters.duckdb.utils import SourceConfig

    return SourceConfig(
        name="raw", identifier="t", schema="raw", database=None, meta={"delta_table_path": path}, tags=[]
    )


def test_dbt_plugin_registers_the_file_scan_and_falls_back_for_unsupported_tables(lake, tmp_path):
    plugin = _plugin_module().Plugin(name="delta_files", plugin_config={"schemas": ["raw"]})
    con = duckdb.connect()
    plugin.configure_connection(con)  # outside a dbt run: no dbt-duckdb environment to guard
    assert con.execute("SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 'raw'").fetchall() == [(1,)]
    uri = lake.table_uri("book_snapshots")
    relation = plugin.load(_source(uri))
    con.register("books", relation)
    assert con.execute("SELECT count(*) FROM books").fetchall() == [(3 * 300 + 120,)]
    _assert_same(relation.sql_query(), uri)

    escaped = str(tmp_path / "escaped")
    write_deltalake(escaped, _small("A B"), partition_by=["symbol", "date"])
    fallback = plugin.load(_source(escaped))  # the pyarrow dataset read, with a warning
    con.register("escaped", fallback)
    assert con.execute("SELECT symbol, v FROM escaped").fetchall() == [("A B", 1)]


def test_dbt_plugin_keeps_its_scans_as_views_that_no_cursor_has_to_register(lake, tmp_path):
    """dbt-duckdb files each loaded source relation under a name and registers it on every new cursor; the relations
    of the file scan become persistent views under that name instead (a new cursor reads them as they are, and so
    does a later connection to the warehouse), while any other relation is filed and registered as before."""
    module = _plugin_module()
    plugin = module.Plugin(name="delta_files", plugin_config={"schemas": ["raw"]})
    warehouse = str(tmp_path / "warehouse.duckdb")
    con = duckdb.connect(warehouse)
    plugin.configure_connection(con)
    registered = module._SourceViews({}, plugin)
    uri = lake.table_uri("book_snapshots")
    registered["warehouse_raw_book_snapshots_df"] = plugin.load(_source(uri))
    fallback = pa.table({"v": [1]})
    registered["other_df"] = fallback
    assert registered.items() == [("other_df", fallback)]
    # the view dbt-duckdb creates over the name, read from a cursor that registered nothing
    con.execute("CREATE VIEW raw.t AS SELECT * FROM warehouse_raw_book_snapshots_df")
    assert con.cursor().execute("SELECT count(*) FROM raw.t").fetchall() == [(3 * 300 + 120,)]
    con.close()
    with duckdb.connect(warehouse, read_only=True) as later:
        assert later.execute("SELECT count(*) FROM raw.t").fetchall() == [(3 * 300 + 120,)]
