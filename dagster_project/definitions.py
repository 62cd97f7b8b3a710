"""Assembles the Dagster code location: assets, checks and resources (no logic here)."""

from __future__ import annotations

import dagster as dg

from dagster_project.assets.ingest import raw_market
from dagster_project.checks import RAW_CHECKS
from dagster_project.resources import LakeResource, MarketSourceResource

defs = dg.Definitions(
    assets=[raw_market],
    asset_checks=RAW_CHECKS,
    resources={"lake": LakeResource(), "market_source": MarketSourceResource()},
)
