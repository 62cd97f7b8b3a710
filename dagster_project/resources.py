"""Dagster resources: where the lake is and which market source feeds the raw assets (config only)."""

import dagster as dg
from pydantic import Field

from feature_store.lake import Lake, default_root
from feature_store.sources import Source, make_source


class LakeResource(dg.ConfigurableResource):
    """The lake root: a path or any URI delta-rs accepts; credentials come from the environment."""

    root: str = Field(default_factory=default_root)

    def get(self) -> Lake:
        return Lake(self.root)


class MarketSourceResource(dg.ConfigurableResource):
    """Which source the raw assets land from, and its parameters (each source reads the ones it uses)."""

    kind: str = Field(default="synthetic", description="synthetic, binance-sample, binance-capture, binance-rest, "
                      "binance-bulk, tardis or onchain")  # fmt: skip
    market: str = "usdm"
    grid_ms: int = 100
    seed: int = 0
    signal_strength: float = 0.0
    epoch: str | None = Field(default=None, description="synthetic: first day of the simulated history")
    day_seconds: int | None = Field(
        default=None, description="synthetic: land only the first seconds of a day"
    )
    paths: list[str] = Field(default_factory=list, description="binance-capture: capture files, in order")
    what: list[str] = Field(
        default_factory=list, description="binance-rest: datasets, e.g. aggTrades, fundingRate"
    )
    kinds: list[str] = Field(default_factory=list, description="binance-bulk / tardis: file kinds")
    base_url: str | None = Field(
        default=None, description="binance-rest / binance-bulk / onchain: API base URL"
    )
    folder: str | None = Field(default=None, description="tardis: folder of CSV files")
    provider: str = Field(default="coinmetrics", description="onchain: coinmetrics or blockchain.info")
    metrics: list[str] = Field(default_factory=list, description="onchain: metric names")

    def get(self, lake: Lake) -> Source:
        params = self.model_dump(exclude={"kind"})
        if lake.is_local:
            params["state_dir"] = str(lake.local_path("state", "synthetic"))
            params["cache_dir"] = str(lake.local_path("state", "bulk_cache"))
        params["lake_root"] = lake.root
        return make_source(self.kind, **params)


def default_resources(lake_root: str | None = None) -> dict:
    """The resources every asset needs, for one lake (the CLI and the code location share them)."""
    from dagster_dbt import DbtCliResource

    from dagster_project.dbt_project import dbt_project
    from feature_store.feature_build import dbt_executable

    return {
        "lake": LakeResource(root=lake_root) if lake_root else LakeResource(),
        "market_source": MarketSourceResource(),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable()),
    }
