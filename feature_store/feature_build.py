"""Run the dbt feature-store project (dbt/) over a lake: the one place that knows its command line.

A build covers a window (day partitions and the train split, BuildWindow); this module builds the argument list and
the environment (SCALPER_LAKE pointing at the lake, SCALPER_BUILD_WINDOW holding the window), runs the `dbt`
executable of the current environment in a subprocess (feature_store never imports dbt), and raises with dbt's own
error lines when a model or test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt"

# The environment variable that carries the build window to dbt, as JSON (BuildWindow.env / from_env).  Not --vars:
# dbt hashes the command-line vars into its partial-parse state, so a window there (new every partition) forces a
# full re-parse of the project on every run; the project reads this variable at execution time only
# (dbt/macros/partitions.sql: build_window; the Python models through BuildWindow.from_env).
WINDOW_ENV = "SCALPER_BUILD_WINDOW"
# The window of a build given none: every day (what the dbt macro assumes when WINDOW_ENV is unset).
_WHOLE_RANGE = ("2000-01-01", "2099-12-31")


class FeatureBuildError(RuntimeError):
    """dbt failed; the message carries the failing models/tests and the command to rerun."""


@dataclass(frozen=True)
class BuildWindow:
    """The days a build (re)writes, start_date..end_date, and the train split train_start..train_end that every
    train-fit statistic reads (inclusive days, 'YYYY-MM-DD', UTC)."""

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

    def env(self) -> dict[str, str]:
        """The environment entry that passes this window to a dbt run."""
        return {WINDOW_ENV: json.dumps(self.vars())}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BuildWindow:
        """The window of the running build (inside the dbt project's Python models); every day when unset."""
        whole = cls(*_WHOLE_RANGE, *_WHOLE_RANGE)
        raw = (os.environ if environ is None else environ).get(WINDOW_ENV)
        if raw is None:
            return whole
        given = json.loads(raw)
        unknown = set(given) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{WINDOW_ENV}={raw}: unknown key(s) {sorted(unknown)}")
        return cls(**{**whole.vars(), **given})


def dbt_executable() -> str:
    """`scalper-dbt` (dagster_project/dbt_cli.py: dbt without the interpreter's teardown), else `dbt`: next to this
    Python first, then on PATH."""
    for name in ("scalper-dbt", "dbt"):
        candidate = Path(sys.executable).with_name(name)
        if candidate.exists():
            return str(candidate)
    found = shutil.which("scalper-dbt") or shutil.which("dbt")
    if not found:
        raise FeatureBuildError(
            "no `scalper-dbt` or `dbt` executable next to this Python or on PATH: install this project "
            "(pip install -e .), which installs dbt-duckdb"
        )
    return found


def dbt_args(
    command: str,
    select: str | None = None,
    exclude: str | None = None,
    full_refresh: bool = False,
    extra_vars: dict | None = None,
    target_path: str | Path | None = None,
) -> list[str]:
    """The dbt argument list (without the executable) for `command` (build / run / test / parse); `extra_vars` are
    project vars (dbt/dbt_project.yml), the window goes in the environment (dbt_env)."""
    args = [command, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    if extra_vars:
        args += ["--vars", json.dumps(extra_vars)]
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
    env = dbt_env(lake, window, threads, memory_limit)
    target = Path(target_path) if target_path else dbt_target_path(lake)
    args = dbt_args(command, select, exclude, full_refresh, extra_vars, target_path=target)
    args += ["--log-path", str(target / "logs")]
    proc = subprocess.run([dbt_executable(), *args], env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        tail = _failure_summary(proc.stdout) or proc.stdout[-3000:] + proc.stderr[-2000:]
        raise FeatureBuildError(
            f"dbt {command} over lake {lake} for window {window.vars()} failed (exit {proc.returncode}):\n{tail}\n"
            f"rerun: SCALPER_LAKE={lake} {WINDOW_ENV}='{env[WINDOW_ENV]}' dbt {' '.join(args)}"
        )
    return proc


def dbt_target_path(lake: Path) -> Path:
    """dbt's target folder for builds of `lake`: per lake, so that builds of different lakes never share it, and
    kept between builds, so that dbt's partial-parse state (partial_parse.msgpack, which records the profile, hence
    the lake's warehouse path) carries from one partition's build to the next."""
    return lake / ".dbt_target"


def dbt_env_vars(
    lake: Path, window: BuildWindow, threads: int | None = None, memory_limit: str | None = None
) -> dict[str, str]:
    """The variables a dbt run over `lake` (resolved) for `window` needs on top of the caller's environment."""
    wanted = {
        "SCALPER_LAKE": str(lake),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        # pyarrow's default jemalloc pool keeps the memory of the Delta scans after DuckDB has consumed them: with
        # the system allocator a day's build peaks at 1.2 GB instead of 4 GB (measured, benchmarks/bench_features.py)
        "ARROW_DEFAULT_MEMORY_POOL": os.environ.get("ARROW_DEFAULT_MEMORY_POOL", "system"),
        **window.env(),
    }
    if threads:
        wanted["SCALPER_DUCKDB_THREADS"] = str(threads)
    if memory_limit:
        wanted["SCALPER_DUCKDB_MEMORY"] = memory_limit
    return wanted


def dbt_env(
    lake: Path, window: BuildWindow, threads: int | None = None, memory_limit: str | None = None
) -> dict[str, str]:
    """The whole environment of a dbt subprocess over `lake` (resolved) for `window`."""
    return dict(os.environ, **dbt_env_vars(lake, window, threads, memory_limit))


def _failure_summary(stdout: str) -> str:
    """dbt's own summary of what failed and why (from "Completed with N error(s)" to "Done."), at most 40 lines;
    else the lines that name an error or a failure."""
    lines = stdout.splitlines()
    start = next((i for i, ln in enumerate(lines) if "Completed with" in ln), None)
    if start is not None:
        block = [ln for ln in lines[start:] if ln.strip()]
        return "\n".join(block[:40])
    return "\n".join([ln for ln in lines if "ERROR" in ln or "FAIL" in ln or "Error" in ln][-30:])
