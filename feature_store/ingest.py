"""Landing one (symbol, day) from a source into the lake: write each raw table, then QC it.

This is the whole job of the raw Dagster assets; they only call `land_day`. The CLI and the Dagster UI both
reach it through those assets.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pyarrow.compute as pc
from loguru import logger

from feature_store.instruments import instrument
from feature_store.lake import Lake, WriteReport
from feature_store.qc import CheckOutcome, day_counters, partition_checks, write_metrics
from feature_store.sources import Source


@dataclass
class DayLanding:
    symbol: str
    date: str
    reports: dict[str, WriteReport] = field(default_factory=dict)
    checks: dict[str, list[CheckOutcome]] = field(default_factory=dict)
    counters: dict[str, object] = field(default_factory=dict)
    metrics_uri: str | None = None


def land_day(
    lake: Lake,
    source: Source,
    symbol: str,
    date: str,
    tables: set[str] | None = None,
    grid_ms: int = 100,
) -> DayLanding:
    day = dt.date.fromisoformat(date)
    market = getattr(source, "market", "usdm")
    inst = instrument(symbol, market)
    wanted = set(source.tables()) if tables is None else set(tables) & set(source.tables())
    logger.info(f"landing {symbol} {date} from {source.name}: {', '.join(sorted(wanted))}")
    produced = source.load_day(symbol, day)
    landing = DayLanding(symbol, date)
    landed = {}
    for name in sorted(wanted):
        table = produced.get(name)
        if table is None:
            continue
        # A source may return neighbouring rows (e.g. a capture crossing midnight); land only this day's.
        table = table.filter(pc.and_(pc.equal(table["date"], date), pc.equal(table["symbol"], symbol)))
        report = lake.write(name, table)
        landing.reports[name] = report
        landed[name] = report.landed
        landing.checks[name] = partition_checks(name, report.landed)
    landing.counters = day_counters(landed, inst.tick_size, grid_ms)
    landing.counters["quarantined"] = {n: r.rows_quarantined for n, r in landing.reports.items()}
    landing.metrics_uri = write_metrics(lake, symbol, date, landing.counters)
    return landing
