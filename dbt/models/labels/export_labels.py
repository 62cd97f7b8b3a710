"""Publish the rebuilt days of fct_labels as Parquet under <lake>/features/fct_labels/ (feature_store.day_export),
with the earlier day whose labels of the last horizon this run rewrote (macros/labels.sql: markouts_start_us, the
last staged book before the window minus the longest horizon): they were NULL when that day was built, before the
books they look at were staged.  Returns the rows exported per symbol and day."""

import os
import re

from feature_store.day_export import export_days
from feature_store.feature_build import BuildWindow


def model(dbt, session):
    dbt.config(materialized="table")
    labels = dbt.ref("fct_labels")
    dbt.ref("stg_book_snapshots")
    # for scheduling only: after the fits (dbt_project.yml, the schedule of a build)
    dbt.ref("regime_thresholds")
    window = BuildWindow.from_env()  # the build window (dbt/macros/partitions.sql: build_window)
    # the longest horizon, from the published label columns markout_mid_<h>s_bps
    horizon_s = max(
        int(m.group(1)) for c in labels.columns if (m := re.fullmatch(r"markout_mid_(\d+)s_bps", c))
    )
    window_start_us = f"epoch_us(TIMESTAMP '{window.start_date} 00:00:00')"
    rewritten_from_us = (
        f"SELECT max(ts_us) - {horizon_s * 1_000_000} FROM stg_book_snapshots WHERE ts_us < {window_start_us}"
    )
    return export_days(
        session,
        "fct_labels",
        window,
        os.environ.get("SCALPER_LAKE", "lake"),
        rewritten_from_us=rewritten_from_us,
    )
