"""Publish the rebuilt days of fct_features and fct_labels as Parquet (zstd) under <lake>/features/<model>/,
one hive folder per symbol and day (files of a rebuilt day are replaced).  Returns the rows exported per day."""

import os


def model(dbt, session):
    dbt.config(materialized="table")
    start, end = dbt.config.get("start_date"), dbt.config.get("end_date")
    lake = os.environ.get("SCALPER_LAKE", "lake")
    dbt.ref("fct_features")
    dbt.ref("fct_labels")
    for name in ("fct_features", "fct_labels"):
        folder = os.path.join(lake, "features", name)
        os.makedirs(folder, exist_ok=True)
        session.execute(
            f"COPY (SELECT * FROM {name} WHERE date BETWEEN '{start}' AND '{end}') "
            f"TO '{folder}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (symbol, date), "
            "OVERWRITE_OR_IGNORE true, FILENAME_PATTERN 'part_{i}')"
        )
    return session.sql(
        f"SELECT symbol, date, count(*) AS feature_rows FROM fct_features "
        f"WHERE date BETWEEN '{start}' AND '{end}' GROUP BY ALL ORDER BY ALL"
    )
