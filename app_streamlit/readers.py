"""Read-only loaders behind the dashboard: everything it shows comes through here, and nothing here writes.

Each loader returns what it could read plus a list of `Problem`s (file and reason) for what it could not, so that
one corrupt file shows as a warning next to the rest instead of a blank page.

Where the files come from:
  QC metrics      <lake>/metrics/ingest/<symbol>/<date>.json       feature_store.qc.write_metrics (via land_day)
  snapshots       <lake>/snapshots/<id>/metadata.json              feature_store.snapshots.create
  drift           <lake>/reports/drift/<id>/<split>.json (+ .html) feature_store.drift.snapshot_drift
  evaluations     <reports>/<model id>/report.json (+ *.png)       agent.evaluate.evaluate (+ agent.reports)
  registry        <lake>/registry/models (Delta table)             the export step's registry entry
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from feature_store import drift

PLOT_ORDER = ("equity", "drawdown", "inventory")


@dataclass(frozen=True)
class Problem:
    path: str
    reason: str


def is_local(root: str) -> bool:
    return "://" not in root or root.startswith("file://")


def local_path(root: str) -> Path:
    return Path(root.removeprefix("file://")).expanduser()


# -- ingest QC -----------------------------------------------------------------------------------------------
def qc_metrics(lake_root: str) -> tuple[pd.DataFrame, list[Problem]]:
    """One row per landed (symbol, date): every counter of its QC JSON; `quarantined` is spread into
    quarantined_<table> columns plus quarantined_total."""
    root = local_path(lake_root) / "metrics" / "ingest"
    rows, problems = [], []
    for path in sorted(root.glob("*/*.json")) if root.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            quarantined = data.pop("quarantined", {}) or {}
            row = {"symbol": data.pop("symbol", path.parent.name), "date": data.pop("date", path.stem)}
            row.update({k: v for k, v in data.items() if not isinstance(v, dict | list)})
            row.update({f"quarantined_{k}": v for k, v in quarantined.items()})
            row["quarantined_total"] = int(sum(v for v in quarantined.values() if v))
            rows.append(row)
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            problems.append(Problem(str(path), f"unreadable QC JSON ({exc})"))
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["date"] = pd.to_datetime(frame["date"]).dt.date
        frame = frame.sort_values(["date", "symbol"], ignore_index=True)
    return frame, problems


# -- feature snapshots and drift -----------------------------------------------------------------------------
def snapshots(lake_root: str) -> tuple[list[dict], list[Problem]]:
    """The metadata of every snapshot under <lake>/snapshots, newest folder first."""
    root = local_path(lake_root) / "snapshots"
    out, problems = [], []
    folders = (
        [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")] if root.is_dir() else []
    )
    for folder in sorted(folders, key=lambda p: p.stat().st_mtime, reverse=True):
        path = folder / "metadata.json"
        try:
            meta = json.loads(path.read_text())
            meta.setdefault("id", folder.name)
            out.append(meta)
        except (OSError, ValueError) as exc:
            problems.append(Problem(str(path), f"unreadable snapshot manifest ({exc})"))
    return out, problems


def drift_summaries(lake_root: str) -> tuple[dict[str, dict[str, drift.DriftSummary]], list[Problem]]:
    """{snapshot id (folder): {name: summary}} for every drift summary under <lake>/reports/drift."""
    out: dict[str, dict[str, drift.DriftSummary]] = {}
    problems = []
    for path in drift.summary_files(local_path(lake_root)):
        try:
            out.setdefault(path.parent.name, {})[path.stem] = drift.read_summary(path)
        except drift.DriftError as exc:
            problems.append(Problem(str(path), str(exc)))
    return out, problems


# -- evaluation reports ----------------------------------------------------------------------------------------
@dataclass
class Evaluation:
    model_id: str
    folder: Path
    report: dict
    plots: list[Path] = field(default_factory=list)

    @property
    def policies(self) -> dict[str, dict]:
        return self.report.get("policies", {}) or {}


def evaluations(reports_root: str) -> tuple[list[Evaluation], list[Problem]]:
    """Every <reports>/<model id>/report.json (newest first) with the PNG plots beside it."""
    root = Path(reports_root).expanduser()
    out, problems = [], []
    files = (
        sorted(root.glob("*/report.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        if root.is_dir()
        else []
    )
    for path in files:
        try:
            report = json.loads(path.read_text())
            if not isinstance(report.get("policies"), dict):
                raise ValueError("no 'policies' mapping")
        except (OSError, ValueError) as exc:
            problems.append(Problem(str(path), f"not an evaluation report of agent/evaluate.py ({exc})"))
            continue
        plots = sorted(
            path.parent.glob("*.png"),
            key=lambda p: (PLOT_ORDER.index(p.stem) if p.stem in PLOT_ORDER else len(PLOT_ORDER), p.name),
        )
        out.append(Evaluation(report.get("model_id", path.parent.name), path.parent, report, plots))
    return out, problems


def _interval(value) -> tuple[float, float]:
    if isinstance(value, list | tuple) and len(value) == 2:
        return _num(value[0]), _num(value[1])
    return math.nan, math.nan


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


METRICS = (  # (key in the report's summary, column title)
    ("mean_pnl", "mean PnL / episode"),
    ("sharpe_daily", "Sharpe (daily)"),
    ("sortino_daily", "Sortino (daily)"),
    ("max_drawdown", "max drawdown"),
    ("win_rate", "win rate"),
    ("fills_per_episode", "fills / episode"),
    ("fill_rate", "fill rate"),
    ("maker_share", "maker share"),
    ("fees_per_episode", "fees / episode"),
    ("funding_per_episode", "funding / episode"),
    ("traded_notional_per_episode", "notional / episode"),
    ("liquidations", "liquidations"),
    ("kill_switch_trips", "kill-switch trips"),
)
WITH_INTERVAL = ("mean_pnl", "sharpe_daily", "sortino_daily")


def metrics_table(policies: dict[str, dict], scope: str = "all") -> pd.DataFrame:
    """One row per policy: the summary metrics of `scope` ("all") with their 95 % interval bounds."""
    rows = []
    for name, entry in policies.items():
        summary = entry.get(scope, {}) if isinstance(entry, dict) else {}
        row: dict = {"policy": name, "episodes": summary.get("episodes")}
        for key, _ in METRICS:
            row[key] = _num(summary.get(key))
            if key in WITH_INTERVAL:
                row[f"{key}_lo"], row[f"{key}_hi"] = _interval(summary.get(f"{key}_ci95"))
        rows.append(row)
    return pd.DataFrame(rows)


def breakdown(policies: dict[str, dict], by: str, metric: str) -> pd.DataFrame:
    """Long table (policy, group, value, lo, hi) of one metric per regime (by="by_regime") or fold ("by_fold")."""
    rows = []
    for name, entry in policies.items():
        groups = entry.get(by, {}) if isinstance(entry, dict) else {}
        items = (
            groups.items()
            if isinstance(groups, dict)
            else ((f"fold {i + 1}", g) for i, g in enumerate(groups))
        )
        for group, summary in items:
            if not summary or not summary.get("episodes"):
                continue
            lo, hi = _interval(summary.get(f"{metric}_ci95"))
            rows.append(
                {
                    "policy": name,
                    "group": group,
                    "episodes": summary.get("episodes"),
                    "value": _num(summary.get(metric)),
                    "lo": lo,
                    "hi": hi,
                }
            )
    return pd.DataFrame(rows, columns=["policy", "group", "episodes", "value", "lo", "hi"])


def paired_differences(report: dict) -> pd.DataFrame:
    rows = []
    for name, d in (report.get("agent_minus_baseline") or {}).items():
        lo, hi = _interval(d.get("ci95"))
        verdict = (
            "agent better"
            if d.get("above_zero")
            else "agent worse"
            if d.get("below_zero")
            else "no significant difference"
        )
        rows.append({"baseline": name, "mean": _num(d.get("mean")), "lo": lo, "hi": hi, "verdict": verdict})
    return pd.DataFrame(rows, columns=["baseline", "mean", "lo", "hi", "verdict"])


def markout_table(policies: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for name, entry in policies.items():
        marks = (entry.get("all", {}) or {}).get("markout_bp") or {}
        rows.append({"policy": name, **{f"{h} steps": _num(v) for h, v in marks.items()}})
    return pd.DataFrame(rows)


# -- model registry ----------------------------------------------------------------------------------------------
TIME_SUFFIXES = ("_at_us", "_start_us", "_end_us")  # epoch-microsecond columns of agent/registry.py


def registry(lake_root: str) -> tuple[pd.DataFrame | None, int | None, list[Problem]]:
    """The model registry Delta table at <lake>/registry/models (agent/registry.py) as a frame, newest first, and
    its version; None when there is none. Epoch-microsecond times become UTC timestamps (suffix dropped); the
    agent's headline evaluation figures are lifted out of metrics_json; other nested values show as JSON text."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    uri = f"{lake_root.rstrip('/')}/registry/models"
    if is_local(lake_root):
        uri = str(local_path(lake_root).resolve() / "registry" / "models")
    try:
        table = DeltaTable(uri)
    except TableNotFoundError:
        return None, None, []
    except Exception as exc:  # delta-rs raises several types for unreachable stores and bad logs
        return (
            None,
            None,
            [Problem(uri, f"cannot open the registry Delta table ({str(exc).splitlines()[0]})")],
        )
    frame = table.to_pandas()
    for col in list(frame.columns):
        if col.endswith(TIME_SUFFIXES) and pd.api.types.is_integer_dtype(frame[col].dropna()):
            frame[col.removesuffix("_us")] = pd.to_datetime(frame.pop(col), unit="us", utc=True)
        elif frame[col].map(lambda v: isinstance(v, dict | list | np.ndarray)).any():
            frame[col] = frame[col].map(_as_json_text)
    if "metrics_json" in frame.columns:
        evaluation = frame["metrics_json"].map(_agent_evaluation)
        frame["agent mean PnL"] = evaluation.map(lambda e: _num(e.get("mean_pnl")))
        frame["agent PnL 95% low"] = evaluation.map(lambda e: _interval(e.get("mean_pnl_ci95"))[0])
        frame["agent PnL 95% high"] = evaluation.map(lambda e: _interval(e.get("mean_pnl_ci95"))[1])
        frame["agent Sharpe (daily)"] = evaluation.map(lambda e: _num(e.get("sharpe_daily")))
    if "created_at" in frame.columns:
        frame = frame.sort_values("created_at", ascending=False, ignore_index=True)
    return frame, table.version(), []


def parse_json_text(text) -> object:
    try:
        return json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return text


def _agent_evaluation(text) -> dict:
    metrics = parse_json_text(text)
    evaluation = metrics.get("evaluation") if isinstance(metrics, dict) else None
    return evaluation if isinstance(evaluation, dict) else {}


def _as_json_text(value) -> str:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return json.dumps(value, default=lambda v: v.tolist() if isinstance(v, np.ndarray) else str(v))
