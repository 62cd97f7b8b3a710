"""Daily metrics JSON for the dashboards: one file per day at <lake>/features/metrics/<day>.json holding the
metrics_daily rows of every symbol that day, each with two summaries of that day's published features:
rvol_60s_mean (the mean 60 s realized volatility, as clipped in fct_features) and warmup_rate (the share of warm-up
rows).  Rebuilt days are rewritten."""

import json
import os

from feature_store.feature_build import BuildWindow
from feature_store.sql_text import literal


def model(dbt, session):
    dbt.config(materialized="table")
    window = BuildWindow.from_env()  # the build window (dbt/macros/partitions.sql: build_window)
    start, end = window.start_date, window.end_date
    lake = os.environ.get("SCALPER_LAKE", "lake")
    dbt.ref("metrics_daily")
    dbt.ref("fct_features")
    days = f"date BETWEEN {literal(start)} AND {literal(end)}"
    # fetched as Python rows, not Arrow: .arrow() would import pyarrow and numpy into the build (~0.25 CPU-s)
    result = session.sql(
        f"""
        SELECT m.*, f.rvol_60s_mean, f.warmup_rate
        FROM metrics_daily AS m
        LEFT JOIN (
            SELECT symbol, date, avg(rvol_60s) AS rvol_60s_mean, avg(is_warmup::INTEGER) AS warmup_rate
            FROM fct_features
            WHERE {days}
            GROUP BY ALL
        ) AS f USING (symbol, date)
        WHERE m.{days}
        ORDER BY date, symbol
        """
    )
    columns = result.columns
    rows = [dict(zip(columns, row, strict=True)) for row in result.fetchall()]
    folder = os.path.join(lake, "features", "metrics")
    os.makedirs(folder, exist_ok=True)
    written = []
    for day in sorted({r["date"] for r in rows}):
        path = os.path.join(folder, f"{day}.json")
        with open(path, "w") as fh:
            json.dump(
                {"date": day, "symbols": [r for r in rows if r["date"] == day]}, fh, indent=1, default=str
            )
        written.append((day, path))
    # a DuckDB relation rather than a pyarrow table: building one from Python lists imports pandas (0.2 s a build)
    values = ", ".join(f"({literal(day)}, {literal(path)})" for day, path in written)
    return session.sql(
        f"SELECT * FROM (VALUES {values}) AS t(date, path)"
        if written
        else "SELECT NULL::VARCHAR AS date, NULL::VARCHAR AS path WHERE false"
    )
