"""Feature-build throughput: N synthetic symbol-days of 100 ms books (864k rows, 20 levels each) through the full
dbt build (staging -> published tables, exports and QC tests), one day partition per dbt invocation as a daily
schedule would run it, then the middle day again (--rebuilds, as a repair would: it ran out of DuckDB memory where
first builds did not), against the numpy reference (feature_store.features_ref) on the same days in this run.

Prints per-day seconds, book rows/s, peak RSS of the dbt process, the CPU time other guests of the machine took
meanwhile (steal), the slowest models, and the ratio dbt / numpy with the numpy reference timed right after each
day's build (the machine is shared: neighbours slow its cores without any steal showing, so only runs of the same
minute compare).  Target: <= 10 s per symbol-day on 2 cores, peak RSS <= 1 GB, flat in days.

    .venv/bin/python benchmarks/bench_features.py --days 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from deltalake import DeltaTable

from feature_store.feature_build import BuildWindow, dbt_args, dbt_env, dbt_executable, run_dbt

SYMBOL = "BTCUSDT"  # the bench lake's one symbol


def _dbt_build_measured(
    root: Path, window: BuildWindow, extra: dict, threads: int
) -> tuple[float, float, float]:
    """One `dbt build` like feature_build.run_dbt, measured by wait4 on that child alone: (wall s, CPU s, peak RSS MB).
    This process stays small until then (the lake is generated in a subprocess), so the child's RSS high-water
    mark is dbt's own and not pages inherited at fork."""
    env = dbt_env(root.resolve(), window, threads=threads)  # as run_dbt does
    target = root / ".dbt_target"
    args = dbt_args("build", exclude="instruments", extra_vars=extra, target_path=target)
    t = time.perf_counter()
    proc = subprocess.Popen(
        [dbt_executable(), *args, "--log-path", str(target / "logs")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"dbt build failed for {window}:\n{out.decode()[-3000:]}")
    return time.perf_counter() - t, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


# One day of raw books staged the way stg_book_snapshots reads them (the 10 levels the features use), in a child
# with the DuckDB settings of dbt/profiles.yml: through the pyarrow dataset of the Delta table (dbt-duckdb's `delta`
# plugin, the former read) or through DuckDB's Parquet reader over the table's active files (dbt/plugins/delta_files.py).
_RAW_READ = """
import os, sys
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
import duckdb
from deltalake import DeltaTable
from feature_store.raw_scan import delta_file_scan
path, day, read, threads = sys.argv[1:5]
con = duckdb.connect()
con.execute(f"SET threads = {threads}; SET memory_limit = '650MB'; SET preserve_insertion_order = false; "
          "SET enable_progress_bar = false")
if read == "dataset":
    con.register("books", DeltaTable(path).to_pyarrow_dataset())
else:
    con.register("books", con.sql(delta_file_scan(path).sql()))
levels = ", ".join(f"{c}[1:10] AS {c}" for c in ("bid_px", "bid_sz", "ask_px", "ask_sz"))
con.execute(
    f"CREATE TABLE staged AS SELECT symbol, date, epoch_us(ts) AS ts_us, epoch_us(recv_ts) AS recv_ts_us, "
    f"update_id, {levels} FROM books WHERE date = '{day}'"
)
"""


def _steal_seconds() -> float | None:
    """CPU time the hypervisor gave to other guests so far (the 8th field of /proc/stat's cpu line, in USER_HZ
    ticks); None where there is no /proc/stat.  Only part of what neighbours cost shows here: their cache and memory
    traffic slows the cores without any steal."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _raw_read_measured(root: Path, day: str, read: str, threads: int) -> tuple[float, float]:
    """(CPU s, peak RSS MB) of a child that stages one day of raw books with `read` (dataset / files)."""
    books = str(root / "raw" / "book_snapshots")
    proc = subprocess.Popen([sys.executable, "-c", _RAW_READ, books, day, read, str(threads)])
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"raw read ({read}) of {day} failed")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


# The numpy reference over all the bench days (book features, train fit on the first day, published features,
# markouts), in a child so that this process stays small for the dbt children's RSS: prints its wall and CPU
# seconds, the data load excluded.
_NUMPY_REFERENCE = """
import json, sys, time
from deltalake import DeltaTable
from feature_store import features_ref as ref
from feature_store.instruments import instrument
root, symbol = sys.argv[1:3]
tick = instrument(symbol).tick_size
books = DeltaTable(f"{root}/raw/book_snapshots").to_pyarrow_dataset().to_table().sort_by("ts")
trades = DeltaTable(f"{root}/raw/trades").to_pyarrow_dataset().to_table().sort_by("ts")
t, c = time.perf_counter(), time.process_time()
book = ref.book_from_records(books, tick)
f = ref.book_features(book, trades, ref.RefParams(), fast_moments=True)
fit = ref.fit_train(f, f["ts_us"] < book.ts_us[0] + 86_400_000_000, tick)
ref.published_features(f, fit, tick)
ref.mid_markouts(f["ts_us"], f["mid"])
print(json.dumps({"wall": time.perf_counter() - t, "cpu": time.process_time() - c}))
"""


def _numpy_reference_measured(root: Path, days: int) -> tuple[float, float, float]:
    """(wall s, CPU s) per symbol-day of the numpy reference over the bench lake, and the child's peak RSS MB."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _NUMPY_REFERENCE, str(root), SYMBOL],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("numpy reference failed")
    timing = json.loads(out.decode().strip().splitlines()[-1])
    return timing["wall"] / days, timing["cpu"] / days, usage.ru_maxrss / 1024


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--grid-ms", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lake", default=None, help="folder for the bench lake (default: a temp folder)")
    ap.add_argument(
        "--rebuilds",
        type=int,
        default=2,
        help="builds of the middle day again after all days are built (a repair or backfill: its labels then look "
        "into the next day, and the warehouse holds the rows it replaces)",
    )
    args = ap.parse_args()
    root = Path(args.lake or tempfile.mkdtemp(prefix="bench_features_"))
    days = tuple((date(2024, 3, 1) + timedelta(days=i)).isoformat() for i in range(args.days))
    t0 = time.perf_counter()
    gen = (
        "import sys; sys.path.insert(0, 'tests'); from feature_lake import MarketParams, build_raw_lake; "
        f"build_raw_lake({str(root)!r}, symbols=({SYMBOL!r},), days={days!r}, "
        f"params=MarketParams(grid_ms={args.grid_ms}))"
    )
    subprocess.run([sys.executable, "-c", gen], check=True, cwd=Path(__file__).resolve().parent.parent)
    print(
        f"lake {root}: {args.days} synthetic day(s) written in {time.perf_counter() - t0:.1f} s (subprocess)"
    )

    extra = {"grid_ms": args.grid_ms}
    run_dbt(root, "seed", BuildWindow(days[0], days[0], days[0], days[0]), extra_vars=extra)
    rows_per_day = (
        DeltaTable(str(root / "raw" / "book_snapshots")).to_pyarrow_dataset().count_rows() // args.days
    )
    per_day, peaks, cpu, nodes_s, staging_books_s = [], [], [], [], []
    numpy_s, numpy_cpu, numpy_peaks = [], [], []
    builds = list(days) + [days[len(days) // 2]] * args.rebuilds
    for i, day in enumerate(builds):
        window = BuildWindow(day, day, train_start=days[0], train_end=days[0])
        steal_before = _steal_seconds()
        wall, cpu_s, rss = _dbt_build_measured(root, window, extra, args.threads)
        steal_after = _steal_seconds()
        steal = (
            "" if steal_before is None else f", CPU stolen by other guests {steal_after - steal_before:.1f} s"
        )
        # the numpy reference right after each build: the machine's speed drifts (neighbours' load), so each
        # day's ratio compares two runs of the same minute
        numpy_wall, numpy_cpu_s, numpy_rss = _numpy_reference_measured(root, args.days)
        numpy_s.append(numpy_wall)
        numpy_cpu.append(numpy_cpu_s)
        numpy_peaks.append(numpy_rss)
        per_day.append(wall)
        cpu.append(cpu_s)
        peaks.append(rss)
        run = json.loads((root / ".dbt_target" / "run_results.json").read_text())
        nodes_s.append(run["elapsed_time"])
        slow = sorted(run["results"], key=lambda r: -r["execution_time"])[:5]
        # the raw read of a day of 20-level books (dbt/plugins/delta_files.py) happens in this model
        staging_books_s += [
            r["execution_time"] for r in run["results"] if r["unique_id"].endswith(".stg_book_snapshots")
        ]
        print(
            f"{day}{' (rebuild)' if i >= len(days) else ''}: dbt build {per_day[-1]:.2f} s wall, {cpu[-1]:.1f} CPU-s "
            f"({rows_per_day / per_day[-1]:,.0f} book rows/s), "
            f"peak RSS {peaks[-1]:.0f} MB{steal}; models + tests {nodes_s[-1]:.2f} s, dbt start-up and project parse "
            f"{per_day[-1] - nodes_s[-1]:.2f} s; numpy reference just after: {numpy_s[-1]:.2f} s "
            f"({wall / numpy_wall:.2f}x); slowest: "
            + ", ".join(f"{r['unique_id'].split('.')[-1]} {r['execution_time']:.2f}s" for r in slow)
        )

    raw_reads: dict[str, list[tuple[float, float]]] = {"dataset": [], "files": []}
    for day in days:  # alternating, so that load on the shared machine hits both alike
        for read in raw_reads:
            raw_reads[read].append(_raw_read_measured(root, day, read, args.threads))
    raw_cpu = {read: statistics.median(c for c, _ in runs) for read, runs in raw_reads.items()}
    raw_rss = {read: statistics.median(r for _, r in runs) for read, runs in raw_reads.items()}

    med = statistics.median(per_day)
    print(
        f"\nmedian dbt build per symbol-day over {len(builds)} builds ({args.rebuilds} of them rebuilds): {med:.2f} s "
        f"= {rows_per_day / med:,.0f} book rows/s "
        f"(first day {per_day[0]:.2f} s, last {per_day[-1]:.2f} s); of which models + tests "
        f"{statistics.median(nodes_s):.2f} s and dbt start-up + parse {med - statistics.median(nodes_s):.2f} s "
        "(the window travels in the environment, so from the second day dbt reuses its partial-parse state); "
        f"stg_book_snapshots (raw read) {statistics.median(staging_books_s):.2f} s"
    )
    ratios = [w / n for w, n in zip(per_day, numpy_s, strict=True)]
    cpu_ratios = [w / n for w, n in zip(cpu, numpy_cpu, strict=True)]
    print(
        f"numpy reference per symbol-day (same rows, a child process after each build): median "
        f"{statistics.median(numpy_s):.2f} s wall, {statistics.median(numpy_cpu):.1f} CPU-s "
        f"= {rows_per_day / statistics.median(numpy_s):,.0f} rows/s"
    )
    print(
        f"ratio dbt / numpy (median of the days' ratios, each build against the reference run just after it): "
        f"{statistics.median(ratios):.2f}x wall, {statistics.median(cpu_ratios):.2f}x CPU "
        f"(median dbt CPU-s per day {statistics.median(cpu):.1f}); load average now {os.getloadavg()[0]:.1f}"
    )
    print(
        "raw read of a day of books, staged as stg_book_snapshots reads it (child process, median of "
        f"{args.days}): pyarrow dataset {raw_cpu['dataset']:.2f} CPU-s, peak RSS {raw_rss['dataset']:.0f} MB; "
        f"Parquet file scan {raw_cpu['files']:.2f} CPU-s, peak RSS {raw_rss['files']:.0f} MB; ratio files / dataset "
        f"{raw_cpu['files'] / raw_cpu['dataset']:.2f}x CPU, {raw_rss['files'] / raw_rss['dataset']:.2f}x RSS"
    )
    print(
        f"peak RSS of the dbt processes: {max(peaks):.0f} MB; of the numpy reference (all {args.days} days in "
        f"memory): {max(numpy_peaks):.0f} MB"
    )


if __name__ == "__main__":
    main()
