"""Daily (UTC) x symbol partitions shared by every raw and feature asset."""

from __future__ import annotations

import dagster as dg

from feature_store.instruments import known_symbols

FIRST_DAY = "2024-01-01"

daily = dg.DailyPartitionsDefinition(start_date=FIRST_DAY, timezone="UTC")
symbols = dg.StaticPartitionsDefinition(known_symbols())
daily_by_symbol = dg.MultiPartitionsDefinition({"date": daily, "symbol": symbols})


def partition_key(symbol: str, date: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": date, "symbol": symbol})
