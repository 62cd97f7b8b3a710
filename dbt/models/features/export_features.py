"""Publish the rebuilt days of fct_features and fct_labels as Parquet (zstd) under <lake>/features/<model>/,
one hive folder per symbol and day (symbol=<s>/date=<d>/part_0.parquet, without the two partition columns, as
DuckDB's PARTITION_BY writes them; the files of a rebuilt day are replaced).  One COPY per symbol-day: COPY ...
PARTITION_BY costs 4x the time of plain COPYs of the same rows (benchmarks/bench_features.py).  Returns the rows
exported per symbol and day."""

import os
import shutil

from feature_store.feature_build import BuildWindow

# zstd level 1 with Parquet 2.x data pages (DELTA_BINARY_PACKED integers, dictionaries kept where they pay): a day of
# fct_features (864k rows) takes 2.1 CPU-s instead of 3.1 with the defaults (level 3, Parquet 1.0 pages) and the
# file is 3 % smaller, with the same rows; pyarrow, polars and DuckDB read it (measured: this COPY over one day of the
# benchmark lake, benchmarks/bench_features.py, median of 4 runs).
_PARQUET_OPTIONS = "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, PARQUET_VERSION v2)"


def _literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def model(dbt, session):
    dbt.config(materialized="table")
    window = BuildWindow.from_env()  # the build window (dbt/macros/partitions.sql: build_window)
    start, end = window.start_date, window.end_date
    lake = os.environ.get("SCALPER_LAKE", "lake")
    dbt.ref("fct_features")
    dbt.ref("fct_labels")
    days = session.execute(
        "SELECT DISTINCT symbol, date FROM fct_features WHERE date BETWEEN ? AND ? ORDER BY ALL", [start, end]
    ).fetchall()
    for name in ("fct_features", "fct_labels"):
        for symbol, day in days:
            folder = os.path.join(lake, "features", name, f"symbol={symbol}", f"date={day}")
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
            session.execute(
                f"COPY (SELECT * EXCLUDE (symbol, date) FROM {name} "
                f"WHERE symbol = {_literal(symbol)} AND date = {_literal(day)}) "
                f"TO {_literal(os.path.join(folder, 'part_0.parquet'))} {_PARQUET_OPTIONS}"
            )
    return session.sql(
        f"SELECT symbol, date, count(*) AS feature_rows FROM fct_features "
        f"WHERE date BETWEEN '{start}' AND '{end}' GROUP BY ALL ORDER BY ALL"
    )
