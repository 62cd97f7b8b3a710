"""Publish the rebuilt days of fct_features as Parquet under <lake>/features/fct_features/ (feature_store.day_export).
Returns the rows exported per symbol and day."""

import os

from feature_store.day_export import export_days
from feature_store.feature_build import BuildWindow


def model(dbt, session):
    dbt.config(materialized="table")
    dbt.ref("fct_features")
    # the build window (dbt/macros/partitions.sql: build_window)
    return export_days(
        session, "fct_features", BuildWindow.from_env(), os.environ.get("SCALPER_LAKE", "lake")
    )
