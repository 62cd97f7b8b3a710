"""Per-regime shards for stratified sampling: for the rebuilt days, the (symbol, ts) index of every non-warm-up
row of fct_features, written as Parquet under <lake>/features/regimes/regime=<bull|bear|range>/date=<day>/.
Returns the row count per regime and day (the coverage the snapshot manifest reports)."""

import os

from feature_store.feature_build import BuildWindow


def model(dbt, session):
    dbt.config(materialized="table")
    window = BuildWindow.from_env()  # the build window (dbt/macros/partitions.sql: build_window)
    start, end = window.start_date, window.end_date
    lake = os.environ.get("SCALPER_LAKE", "lake")
    dbt.ref("fct_features")
    folder = os.path.join(lake, "features", "regimes")
    os.makedirs(folder, exist_ok=True)
    rows = (
        f"SELECT regime, date, symbol, ts_us, vol_regime FROM fct_features "
        f"WHERE date BETWEEN '{start}' AND '{end}' AND NOT is_warmup"
    )
    session.execute(
        f"COPY ({rows}) TO '{folder}' (FORMAT parquet, COMPRESSION zstd, "
        "PARTITION_BY (regime, date), OVERWRITE_OR_IGNORE true, FILENAME_PATTERN 'part_{i}')"
    )
    return session.sql(
        f"SELECT regime, date, symbol, count(*) AS n_rows FROM ({rows}) GROUP BY ALL ORDER BY ALL"
    )
