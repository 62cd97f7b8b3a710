"""The model registry: one Delta table, <lake>/registry/models, one row per exported model version.

A row records what a model is and where it came from: id, algorithm, creation time, the feature snapshot id (or a
description of the data source when it was trained without one), the time ranges of its train and evaluation
data, its evaluation metrics and training parameters (JSON text), the export folder, the ONNX file's hash and the
measured CPU inference latency. Rows are appended; `latest(lake, model_id)` reads the newest row of a model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

REGISTRY_TABLE = "registry/models"

SCHEMA = pa.schema(
    [
        ("model_id", pa.string()),
        ("algo", pa.string()),
        ("created_at_us", pa.int64()),
        ("snapshot_id", pa.string()),
        ("data_source", pa.string()),
        ("train_start_us", pa.int64()),
        ("train_end_us", pa.int64()),
        ("eval_start_us", pa.int64()),
        ("eval_end_us", pa.int64()),
        ("metrics_json", pa.string()),
        ("params_json", pa.string()),
        ("export_path", pa.string()),
        ("onnx_sha256", pa.string()),
        ("latency_p50_us", pa.float64()),
        ("latency_p99_us", pa.float64()),
    ]
)


@dataclass(frozen=True)
class RegistryEntry:
    model_id: str
    algo: str
    created_at_us: int
    snapshot_id: str | None
    data_source: str
    train_start_us: int
    train_end_us: int
    eval_start_us: int | None
    eval_end_us: int | None
    metrics: dict
    params: dict
    export_path: str
    onnx_sha256: str
    latency_p50_us: float
    latency_p99_us: float

    def row(self) -> dict:
        from agent.evaluate import jsonable

        d = asdict(self)
        d["metrics_json"] = json.dumps(
            jsonable(d.pop("metrics")), sort_keys=True, default=str, allow_nan=False
        )
        d["params_json"] = json.dumps(jsonable(d.pop("params")), sort_keys=True, default=str, allow_nan=False)
        return d


def registry_uri(lake_root: str | Path) -> str:
    return f"{str(lake_root).rstrip('/')}/{REGISTRY_TABLE}"


def register(lake_root: str | Path, entry: RegistryEntry) -> int:
    """Append the entry to the registry table (created on first use); returns the new table version."""
    uri = registry_uri(lake_root)
    if "://" not in uri:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    write_deltalake(uri, pa.Table.from_pylist([entry.row()], schema=SCHEMA), mode="append")
    return DeltaTable(uri).version()


def read_registry(lake_root: str | Path) -> pa.Table:
    """Every registry row (an empty table with the registry schema when nothing was registered yet)."""
    try:
        return DeltaTable(registry_uri(lake_root)).to_pyarrow_table()
    except TableNotFoundError:
        return SCHEMA.empty_table()


def latest(lake_root: str | Path, model_id: str) -> dict:
    """The newest registry row of `model_id`, metrics and params parsed back from JSON."""
    rows = [r for r in read_registry(lake_root).to_pylist() if r["model_id"] == model_id]
    if not rows:
        raise KeyError(
            f"model {model_id!r} is not in the registry at {registry_uri(lake_root)}; export it first"
        )
    row = max(rows, key=lambda r: r["created_at_us"])
    row["metrics"] = json.loads(row.pop("metrics_json"))
    row["params"] = json.loads(row.pop("params_json"))
    return row
