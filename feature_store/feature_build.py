"""Run the dbt feature-store project (dbt/) over a lake: the one place that knows its command line.

The dbt project is driven by vars (day partitions and the train split); this module builds the argument list,
runs the `dbt` executable of the current environment in a subprocess (feature_store never imports dbt) with
SCALPER_LAKE pointing at the lake, and raises with dbt's own error lines when a model or test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt"


class FeatureBuildError(RuntimeError):
    """dbt failed; the message carries the failing models/tests and the command to rerun."""


@dataclass(frozen=True)
class BuildWindow:
    start_date: str
    end_date: str
    train_start: str
    train_end: str

    def vars(self) -> dict[str, str]:
        return {
            "start_date": self.start_date,
            "end_date": self.end_date,
            "train_start": self.train_start,
            "train_end": self.train_end,
        }


def dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("dbt")
    if not found:
        raise FeatureBuildError(
            "no `dbt` executable next to this Python or on PATH: install dbt-duckdb (pyproject)"
        )
    return found


def dbt_args(
    command: str,
    window: BuildWindow,
    select: str | None = None,
    exclude: str | None = None,
    full_refresh: bool = False,
    extra_vars: dict | None = None,
    target_path: str | Path | None = None,
) -> list[str]:
    """The dbt argument list (without the executable) for `command` (build / run / test / parse)."""
    args = [command, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    if command != "parse":
        args += ["--vars", json.dumps({**window.vars(), **(extra_vars or {})})]
    if select:
        args += ["--select", select]
    if exclude:
        args += ["--exclude", exclude]
    if full_refresh:
        args.append("--full-refresh")
    if target_path:
        args += ["--target-path", str(target_path)]
    return args


def run_dbt(
    lake_root: str | Path,
    command: str,
    window: BuildWindow,
    select: str | None = None,
    exclude: str | None = None,
    full_refresh: bool = False,
    extra_vars: dict | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    check: bool = True,
    target_path: str | Path | None = None,
) -> subprocess.CompletedProcess:
    """Run dbt over the lake at `lake_root` (a local folder: the warehouse DuckDB file lives in it)."""
    lake = Path(lake_root).resolve()
    lake.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SCALPER_LAKE=str(lake), DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    # pyarrow's default jemalloc pool keeps the memory of the Delta scans after DuckDB has consumed them: with the
    # system allocator a day's build peaks at 1.2 GB instead of 4 GB (measured, benchmarks/bench_features.py)
    env.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    if threads:
        env["SCALPER_DUCKDB_THREADS"] = str(threads)
    if memory_limit:
        env["SCALPER_DUCKDB_MEMORY"] = memory_limit
    # per lake: concurrent builds of different lakes never share dbt/target
    target = Path(target_path) if target_path else lake / ".dbt_target"
    args = dbt_args(command, window, select, exclude, full_refresh, extra_vars, target_path=target)
    args += ["--log-path", str(target / "logs")]
    proc = subprocess.run([dbt_executable(), *args], env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        tail = _failure_summary(proc.stdout) or proc.stdout[-3000:] + proc.stderr[-2000:]
        raise FeatureBuildError(
            f"dbt {command} over lake {lake} with vars {window.vars()} failed (exit {proc.returncode}):\n{tail}\n"
            f"rerun: SCALPER_LAKE={lake} dbt {' '.join(args)}"
        )
    return proc


def _failure_summary(stdout: str) -> str:
    """dbt's own summary of what failed and why (from "Completed with N error(s)" to "Done."), at most 40 lines;
    else the lines that name an error or a failure."""
    lines = stdout.splitlines()
    start = next((i for i, ln in enumerate(lines) if "Completed with" in ln), None)
    if start is not None:
        block = [ln for ln in lines[start:] if ln.strip()]
        return "\n".join(block[:40])
    return "\n".join([ln for ln in lines if "ERROR" in ln or "FAIL" in ln or "Error" in ln][-30:])
