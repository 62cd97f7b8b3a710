"""Assembles the Dagster code location: assets, checks and resources (no logic here)."""

import dagster as dg

from dagster_project.assets.agent import agent_evaluation, agent_export, agent_model, drift_report
from dagster_project.assets.features import feature_models, feature_snapshot
from dagster_project.assets.ingest import raw_market
from dagster_project.checks import RAW_CHECKS
from dagster_project.resources import default_resources

defs = dg.Definitions(
    assets=[
        raw_market,
        feature_models,
        feature_snapshot,
        drift_report,
        agent_model,
        agent_evaluation,
        agent_export,
    ],
    asset_checks=RAW_CHECKS,
    resources=default_resources(),
)
