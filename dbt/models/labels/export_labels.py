"""Publish the rebuilt days of fct_labels as Parquet under <lake>/features/fct_labels/ (feature_store.day_export).
Returns the rows exported per symbol and day."""

import os

from feature_store.day_export import export_days
from feature_store.feature_build import BuildWindow


def model(dbt, session):
    dbt.config(materialized="table")
    dbt.ref("fct_labels")
    # for scheduling only: after the fits (dbt_project.yml, the schedule of a build)
    dbt.ref("regime_thresholds")
    # the build window (dbt/macros/partitions.sql: build_window)
    return export_days(session, "fct_labels", BuildWindow.from_env(), os.environ.get("SCALPER_LAKE", "lake"))
