"""Synthetic generation + landing throughput for whole days, against a plain Delta write of the same tables.

Prints, per day: generation seconds, landing seconds (validation, quarantine, dedupe, partition replace, QC
read-back and metrics JSON), rows/s, and peak RSS after each day (memory must stay bounded by one day, i.e. flat
in the number of days). The baseline is `write_deltalake` of the same tables with no validation, in this process.
Usage: python benchmarks/bench_landing.py [days]
"""

from __future__ import annotations

import datetime as dt
import resource
import statistics
import sys
import tempfile
import time

from deltalake import write_deltalake
from loguru import logger

from feature_store.ingest import land_day
from feature_store.lake import Lake
from feature_store.sources.synthetic import SyntheticConfig, SyntheticSource


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Prebuilt:
    """The day already generated, so landing is timed alone."""

    def __init__(self, source, tables):
        self.name, self.market, self._source, self._tables = source.name, "usdm", source, tables

    def tables(self):
        return self._source.tables()

    def load_day(self, symbol, day):
        return self._tables


def main(days: int = 2) -> None:
    logger.remove()
    root = tempfile.mkdtemp(prefix="bench-landing-")
    lake = Lake(root + "/lake")
    source = SyntheticSource(SyntheticConfig(seed=1, epoch=dt.date(2024, 8, 7)), state_dir=root + "/state")
    first = dt.date(2024, 8, 7)
    gen_s, land_s, base_s, rows = [], [], [], []
    for i in range(days):
        day = first + dt.timedelta(days=i)
        t0 = time.perf_counter()
        tables = source.load_day("BTCUSDT", day)
        gen_s.append(time.perf_counter() - t0)
        n = sum(t.num_rows for t in tables.values())
        rows.append(n)
        t0 = time.perf_counter()
        land_day(lake, _Prebuilt(source, tables), "BTCUSDT", day.isoformat())
        land_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for name, table in tables.items():
            write_deltalake(f"{root}/baseline/{name}", table, partition_by=["symbol", "date"], mode="append")
        base_s.append(time.perf_counter() - t0)
        books = tables["book_snapshots"].num_rows
        print(
            f"day {day}: {n:,} rows ({books:,} books, {tables['trades'].num_rows:,} trades) "
            f"generate {gen_s[-1]:.1f}s, land {land_s[-1]:.1f}s, plain delta write {base_s[-1]:.1f}s, "
            f"peak RSS {peak_rss_mb():,.0f} MB"
        )
        del tables
    total = [g + w for g, w in zip(gen_s, land_s, strict=True)]
    print(
        f"median per day: generate+land {statistics.median(total):.1f}s "
        f"({statistics.median(rows) / statistics.median(total):,.0f} rows/s; target <= 60 s), "
        f"landing {statistics.median(rows) / statistics.median(land_s):,.0f} rows/s vs plain write "
        f"{statistics.median(rows) / statistics.median(base_s):,.0f} rows/s "
        f"(ratio landing/plain time {statistics.median(land_s) / statistics.median(base_s):.2f}x); "
        f"peak RSS {peak_rss_mb():,.0f} MB"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
