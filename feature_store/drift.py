"""Data-drift reports: how far a later window's features have moved from the window a model was fit on.

`drift_report(reference, current, ...)` runs Evidently's DataDriftPreset on two tables (Arrow or pandas), after
drawing a seeded uniform sample of at most `sample_rows` rows from each (default 5,000: Evidently's cost grows
with rows and its per-column tests are decided well before that). It writes a self-contained HTML report and a
compact JSON summary (share of drifted columns, and per column the test Evidently chose, its score, threshold and
verdict). `snapshot_drift(lake, id)` does this for the validation and test splits of a feature snapshot against
its train split, under <lake>/reports/drift/<snapshot id>/{val,test}.{html,json}.

The tests are Evidently's defaults, kept so the report and the summary agree: with more than 1,000 rows a
numerical column is compared by the normed Wasserstein distance (drift when >= 0.1), a categorical one (or a
numerical one with at most 5 distinct values) by the Jensen-Shannon distance (drift when >= 0.1); with fewer
rows by the K-S / chi-square p-value (drift when < 0.05). The dataset counts as drifted when at least half of
the tested columns drifted. Columns that cannot be tested (all null on one side, unsupported types) are listed
under "skipped" with the reason, never silently dropped.
"""

from __future__ import annotations

import json
import os
import time
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.types as pat

from feature_store import snapshots

DEFAULT_SAMPLE_ROWS = 5_000
DEFAULT_DRIFT_SHARE = 0.5
SUMMARY_FORMAT = 1


class DriftError(ValueError):
    """Drift cannot be computed as asked; the message names the input and the fix."""


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str  # "numerical" or "categorical", from the column's Arrow type
    method: str  # the test Evidently applied, e.g. "Wasserstein distance (normed)"
    threshold: float
    score: float
    drifted: bool


@dataclass
class DriftSummary:
    name: str  # what the current table is, e.g. "test"
    reference_name: str
    reference_rows: int
    current_rows: int
    sampled_reference_rows: int
    sampled_current_rows: int
    sample_rows: int
    seed: int
    drift_share_threshold: float
    columns: list[ColumnDrift]
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    html_path: str | None = None
    json_path: str | None = None
    snapshot_id: str | None = None
    created_utc: str = ""
    evidently_version: str = ""

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def share_drifted(self) -> float:
        return len(self.drifted_columns) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.columns) and self.share_drifted >= self.drift_share_threshold

    def column(self, name: str) -> ColumnDrift:
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(
            f"column {name!r} was not tested (tested: {', '.join(c.column for c in self.columns)})"
        )

    def to_dict(self) -> dict:
        """The JSON summary. File locations are kept relative (the HTML's name beside the JSON), so a lake
        folder can be moved or copied and its reports still found."""
        out = asdict(self)
        out.pop("html_path")
        out.pop("json_path")
        out.update(
            html_file=Path(self.html_path).name if self.html_path else None,
            format=SUMMARY_FORMAT,
            share_drifted=self.share_drifted,
            drifted_columns=self.drifted_columns,
            dataset_drift=self.dataset_drift,
        )
        return out

    @classmethod
    def from_dict(cls, data: dict) -> DriftSummary:
        if data.get("format") != SUMMARY_FORMAT:
            raise DriftError(
                f"drift summary format {data.get('format')!r} is not {SUMMARY_FORMAT}: regenerate it with "
                "feature_store.drift.snapshot_drift"
            )
        known = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["columns"] = [ColumnDrift(**c) for c in data["columns"]]
        return cls(**kwargs)


# -- one pair of tables -------------------------------------------------------------------------------------
def _as_arrow(table: pa.Table | pd.DataFrame, what: str) -> pa.Table:
    if isinstance(table, pa.Table):
        return table
    if isinstance(table, pd.DataFrame):
        return pa.Table.from_pandas(table, preserve_index=False)
    raise DriftError(f"{what} must be a pyarrow.Table or a pandas.DataFrame, got {type(table).__name__}")


def _kind(dtype: pa.DataType) -> str | None:
    if pat.is_dictionary(dtype):
        dtype = dtype.value_type
    if pat.is_floating(dtype) or pat.is_integer(dtype) or pat.is_decimal(dtype):
        return "numerical"
    if pat.is_string(dtype) or pat.is_large_string(dtype) or pat.is_boolean(dtype):
        return "categorical"
    return None


def _sample(table: pa.Table, n: int, rng: np.random.Generator) -> pa.Table:
    if table.num_rows <= n:
        return table
    rows = np.sort(rng.choice(table.num_rows, size=n, replace=False))
    return table.take(pa.array(rows))


def _plan_columns(
    reference: pa.Table, current: pa.Table, columns: list[str] | None
) -> tuple[dict[str, str], dict[str, str]]:
    """(column -> kind to test, column -> reason skipped)."""
    if columns is None:
        columns = [c for c in reference.column_names if c in set(current.column_names)]
    missing = {
        side: [c for c in columns if c not in t.column_names]
        for side, t in (("reference", reference), ("current", current))
    }
    for side, cols in missing.items():
        if cols:
            have = reference if side == "reference" else current
            raise DriftError(
                f"columns {cols} are not in the {side} table (it has: {', '.join(have.column_names)}); "
                "pass columns present in both tables"
            )
    plan: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for c in columns:
        kinds = {_kind(reference.schema.field(c).type), _kind(current.schema.field(c).type)}
        if None in kinds:
            skipped[c] = f"type {reference.schema.field(c).type} is neither numerical nor categorical"
        elif len(kinds) > 1:
            skipped[c] = (
                f"type differs: reference {reference.schema.field(c).type}, "
                f"current {current.schema.field(c).type}"
            )
        elif reference[c].null_count == reference.num_rows:
            skipped[c] = "all null in the reference sample"
        elif current[c].null_count == current.num_rows:
            skipped[c] = "all null in the current sample"
        else:
            plan[c] = kinds.pop()
    return plan, skipped


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def drift_report(
    reference: pa.Table | pd.DataFrame,
    current: pa.Table | pd.DataFrame,
    columns: list[str] | None = None,
    out_dir: str | Path | None = None,
    name: str = "current",
    reference_name: str = "reference",
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
    drift_share: float = DEFAULT_DRIFT_SHARE,
    snapshot_id: str | None = None,
) -> DriftSummary:
    """Evidently data-drift report of `current` against `reference` on `columns` (default: all shared columns).

    Each side is sampled to at most `sample_rows` rows (seeded, uniform, without replacement). With `out_dir`,
    writes <out_dir>/<name>.html (self-contained) and <out_dir>/<name>.json (the summary) atomically."""
    if sample_rows < 2:
        raise DriftError(f"sample_rows={sample_rows} must be at least 2")
    reference = _as_arrow(reference, "reference")
    current = _as_arrow(current, "current")
    for side, t in (("reference", reference), ("current", current)):
        if t.num_rows == 0:
            raise DriftError(
                f"the {side} table ({name if side == 'current' else reference_name}) has no rows"
            )
    import evidently  # imported here: a few seconds, and only report writers need it
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    ref_sample = _sample(reference, sample_rows, rng)
    cur_sample = _sample(current, sample_rows, rng)
    plan, skipped = _plan_columns(ref_sample, cur_sample, columns)
    if not plan:
        raise DriftError(f"no column of {name} can be tested for drift: {skipped or 'no shared columns'}")

    cols = list(plan)
    definition = DataDefinition(
        numerical_columns=[c for c in cols if plan[c] == "numerical"],
        categorical_columns=[c for c in cols if plan[c] == "categorical"],
    )

    def dataset(t: pa.Table) -> Dataset:
        return Dataset.from_pandas(t.select(cols).to_pandas(), data_definition=definition)

    report = Report([DataDriftPreset(columns=cols, drift_share=drift_share)], include_tests=True)
    with warnings.catch_warnings():
        # constant columns make Evidently's histograms divide by zero; the verdict is still defined
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = report.run(current_data=dataset(cur_sample), reference_data=dataset(ref_sample))
    result = snapshot.dict()
    summary = DriftSummary(
        name=name,
        reference_name=reference_name,
        reference_rows=reference.num_rows,
        current_rows=current.num_rows,
        sampled_reference_rows=ref_sample.num_rows,
        sampled_current_rows=cur_sample.num_rows,
        sample_rows=sample_rows,
        seed=seed,
        drift_share_threshold=drift_share,
        columns=_column_results(result, plan),
        skipped=skipped,
        snapshot_id=snapshot_id,
        created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        evidently_version=evidently.__version__,
    )
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        html, js = out / f"{name}.html", out / f"{name}.json"
        _write_atomic(html, lambda p: snapshot.save_html(str(p)))
        summary.html_path, summary.json_path = str(html), str(js)
        summary.seconds = round(time.perf_counter() - started, 3)
        payload = json.dumps(summary.to_dict(), indent=1, default=_json_default)
        _write_atomic(js, lambda p: p.write_text(payload))
    else:
        summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _column_results(result: dict, plan: dict[str, str]) -> list[ColumnDrift]:
    """Pair each ValueDrift metric (score, method, threshold) with its test (Evidently's verdict)."""
    scores: dict[str, tuple[float, str, float]] = {}
    for m in result["metrics"]:
        cfg = m["config"]
        if cfg.get("type", "").endswith(":ValueDrift"):
            scores[cfg["column"]] = (float(m["value"]), cfg["method"], float(cfg["threshold"]))
    verdicts: dict[str, bool] = {}
    for t in result["tests"]:
        params = t["metric_config"]["params"]
        if params.get("type", "").endswith(":ValueDrift"):
            verdicts[params["column"]] = str(getattr(t["status"], "value", t["status"])) == "FAIL"
    missing = [c for c in plan if c not in scores or c not in verdicts]
    if missing:
        raise DriftError(
            f"Evidently returned no drift result for columns {missing}; is evidently==0.7.23 installed?"
        )
    return [ColumnDrift(c, plan[c], scores[c][1], scores[c][2], scores[c][0], verdicts[c]) for c in plan]


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value)}")


# -- feature snapshots --------------------------------------------------------------------------------------
def default_out_dir(lake_root: str | Path, snapshot_id: str) -> Path:
    return Path(lake_root) / "reports" / "drift" / snapshot_id


def snapshot_columns(meta: dict) -> list[str]:
    """What a snapshot's drift report covers by default: the model-input features and the regime label."""
    return [*snapshots.feature_columns(meta), "regime"]


def snapshot_drift(
    lake_root: str | Path,
    snapshot_id: str,
    out_dir: str | Path | None = None,
    columns: list[str] | None = None,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
) -> dict[str, DriftSummary]:
    """Drift of the snapshot's val and test splits against its train split; {split: summary}.

    Files: <out_dir or lake/reports/drift/<id>>/{val,test}.{html,json}."""
    meta = snapshots.metadata(lake_root, snapshot_id)
    cols = columns or snapshot_columns(meta)
    out = Path(out_dir) if out_dir is not None else default_out_dir(lake_root, snapshot_id)
    train = snapshots.load(lake_root, snapshot_id, "train", columns=cols)
    result = {}
    for split in ("val", "test"):
        current = snapshots.load(lake_root, snapshot_id, split, columns=cols)
        result[split] = drift_report(
            train,
            current,
            cols,
            out,
            name=split,
            reference_name="train",
            sample_rows=sample_rows,
            seed=seed,
            snapshot_id=snapshot_id,
        )
    return result


def summary_files(lake_root: str | Path) -> list[Path]:
    """Every drift summary JSON under <lake>/reports/drift/<snapshot id>/, sorted."""
    root = Path(lake_root) / "reports" / "drift"
    return sorted(root.glob("*/*.json")) if root.is_dir() else []


def read_summary(path: str | Path) -> DriftSummary:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        summary = DriftSummary.from_dict(data)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, DriftError) as exc:
        raise DriftError(
            f"cannot read drift summary {path} ({exc}); regenerate it with feature_store.drift.snapshot_drift"
        ) from None
    summary.json_path = str(path)
    if data.get("html_file"):
        summary.html_path = str(path.parent / data["html_file"])
    return summary
