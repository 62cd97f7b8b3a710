"""Publish the rebuilt days of a dbt table as Parquet (zstd) under <lake>/features/<table>/, one hive folder per
symbol and day (symbol=<s>/date=<d>/part_0.parquet, without the two partition columns, as DuckDB's PARTITION_BY
writes them; the files of a rebuilt day are replaced).  Used by the dbt Python models export_features and
export_labels (dbt/models/features/, dbt/models/labels/), which run in the dbt process on its DuckDB session.

One COPY per symbol-day: COPY ... PARTITION_BY costs 4x the time of plain COPYs of the same rows
(benchmarks/bench_features.py)."""

from __future__ import annotations

import os
import shutil

from feature_store.feature_build import BuildWindow
from feature_store.sql_text import literal

# zstd level 1 with Parquet 2.x data pages (DELTA_BINARY_PACKED integers, dictionaries kept where they pay): a day of
# fct_features (864k rows) takes 2.1 CPU-s instead of 3.1 with the defaults (level 3, Parquet 1.0 pages) and the
# file is 3 % smaller, with the same rows; pyarrow, polars and DuckDB read it (measured: this COPY over one day of the
# benchmark lake, benchmarks/bench_features.py, median of 4 runs).  A dictionary is given up past 16 KB: most
# feature columns are distinct doubles, and building a larger dictionary first cost 1.52 instead of 1.35 CPU-s a day
# for a file of the same size (190 MB; with no dictionary at all it is 210 MB).
PARQUET_OPTIONS = (
    "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, PARQUET_VERSION v2, DICTIONARY_SIZE_LIMIT 16384)"
)


def export_days(session, table: str, window: BuildWindow, lake: str):
    """Write every (symbol, date) of `table` inside the window's days; returns a relation of the rows written per
    symbol and day (the model's own table)."""
    start, end = window.start_date, window.end_date
    days = session.execute(
        f"SELECT DISTINCT symbol, date FROM {table} WHERE date BETWEEN ? AND ? ORDER BY ALL", [start, end]
    ).fetchall()
    for symbol, day in days:
        folder = os.path.join(lake, "features", table, f"symbol={symbol}", f"date={day}")
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        session.execute(
            f"COPY (SELECT * EXCLUDE (symbol, date) FROM {table} "
            f"WHERE symbol = {literal(symbol)} AND date = {literal(day)}) "
            f"TO {literal(os.path.join(folder, 'part_0.parquet'))} {PARQUET_OPTIONS}"
        )
    return session.sql(
        f"SELECT symbol, date, count(*) AS exported_rows FROM {table} "
        f"WHERE date BETWEEN '{start}' AND '{end}' GROUP BY ALL ORDER BY ALL"
    )
