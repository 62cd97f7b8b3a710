"""Publish the rebuilt days of fct_labels as Parquet under <lake>/features/fct_labels/ (feature_store.day_export).
Returns the rows exported per symbol and day."""

import os

from feature_store.day_export import export_days
from feature_store.feature_build import BuildWindow


def model(dbt, session):
    dbt.config(materialized="table")
    dbt.ref("fct_labels")
    # for scheduling only (the export reads no features): dbt starts ready nodes by graph depth, so this shallow node
    # took a thread ahead of the deeper chain int_book_features -> norm fits -> fct_features -> export_features on
    # the longest path of a build; after fct_features it runs beside export_features instead (and a build whose
    # fct_features fails skips it)
    dbt.ref("fct_features")
    # the build window (dbt/macros/partitions.sql: build_window)
    return export_days(session, "fct_labels", BuildWindow.from_env(), os.environ.get("SCALPER_LAKE", "lake"))
