"""Assembles the Dagster code location: assets, checks and resources (no logic here)."""

import dagster as dg
from dagster_project.assets.features import feature_models, feature_snapshot
from dagster_project.assets.ingest import raw_market
from dagster_project.checks import RAW_CHECKS
from dagster_project.resources import default_resources

defs = dg.Definitions(
    assets=[raw_market, feature_models, feature_snapshot],
    asset_checks=RAW_CHECKS,
    resources=default_resources(),
)
