"""Versioned, leak-free feature snapshots: what the agent trains and evaluates on.

`create(lake, train=(A, B), val=(C, D), test=(E, F))` reads the published dbt tables (fct_features joined with
fct_labels) from <lake>/warehouse.duckdb, cuts the three splits (warm-up rows dropped; an embargo of the
longest label horizon at the end of every split, so no label looks into the next split), and writes them with
a manifest under <lake>/snapshots/<id>/: metadata.json pins the raw Delta versions, the published columns and
types (schema hash), the dbt model checksums, the split windows, the train-fit statistics and the regime
coverage.  The id is the hash of that content, so the same inputs give the same id.

`load(lake, id, split)` returns an Arrow table (`as_numpy` turns feature columns into a float32 matrix for
torch).  It refuses a snapshot whose schema hash no longer matches the published contract (dbt yml) or the
hash the caller's model was trained on, naming the columns that were added, removed or retyped.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from feature_store.feature_build import DBT_PROJECT_DIR
from feature_store.sql_text import literal

SPLITS = ("train", "val", "test")
PUBLISHED = ("fct_features", "fct_labels")
RAW_INPUTS = ("book_snapshots", "trades", "funding_rates", "mark_prices", "onchain_metrics")
LABEL_HORIZON_S = 60  # the longest markout horizon (dbt/macros/labels.sql): the split embargo
KEY_COLUMNS = ("symbol", "date", "ts", "ts_us")
NON_FEATURES = {
    "market",
    "is_warmup",
    "train_window",
    "regime",
    "vol_regime",
    "mid",
    "weighted_mid",
    "micro_price",
}


class SnapshotError(RuntimeError):
    """A snapshot cannot be made or used as asked; the message says what and how to fix it."""


class SchemaDriftError(SnapshotError):
    """The snapshot's columns differ from what the feature models publish now (or what a model expects)."""


@dataclass(frozen=True)
class SplitWindow:
    start: str
    end: str

    def days(self) -> list[str]:
        a, b = date.fromisoformat(self.start), date.fromisoformat(self.end)
        return [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


# -- the published contract ----------------------------------------------------------------------------------
def published_contract(project_dir: Path = DBT_PROJECT_DIR) -> dict[str, dict[str, str]]:
    """Column name -> SQL type of every published model, read from the dbt yml contracts."""
    contract: dict[str, dict[str, str]] = {}
    for yml in sorted((project_dir / "models").rglob("*.yml")):
        for model in (yaml.safe_load(yml.read_text()) or {}).get("models", []):
            if model.get("name") in PUBLISHED:
                contract[model["name"]] = {c["name"]: c["data_type"] for c in model.get("columns", [])}
    missing = [m for m in PUBLISHED if m not in contract]
    if missing:
        raise SnapshotError(f"no yml contract for {missing} under {project_dir / 'models'}")
    return contract


def schema_hash(contract: dict[str, dict[str, str]]) -> str:
    text = json.dumps({m: sorted(cols.items()) for m, cols in sorted(contract.items())}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def describe_drift(old: dict[str, dict[str, str]], new: dict[str, dict[str, str]]) -> str:
    lines = []
    for model in sorted(set(old) | set(new)):
        a, b = old.get(model, {}), new.get(model, {})
        added = sorted(set(b) - set(a))
        removed = sorted(set(a) - set(b))
        retyped = sorted(f"{c} {a[c]} -> {b[c]}" for c in set(a) & set(b) if a[c] != b[c])
        for label, items in (("added", added), ("removed", removed), ("retyped", retyped)):
            if items:
                lines.append(f"{model}: {label} {', '.join(items)}")
    return "; ".join(lines) or "no column differences (hash inputs differ)"


def model_checksums(project_dir: Path = DBT_PROJECT_DIR) -> dict[str, str]:
    """sha256 of every model, macro and dbt_project file (what dbt's manifest checksums hash: the file text)."""
    out = {}
    for path in sorted(
        [
            project_dir / "dbt_project.yml",
            *(project_dir / "models").rglob("*"),
            *(project_dir / "macros").rglob("*"),
        ]
    ):
        if path.is_file():
            out[str(path.relative_to(project_dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# -- create ------------------------------------------------------------------------------------------------
def _window(w: tuple[str, str] | SplitWindow) -> SplitWindow:
    return w if isinstance(w, SplitWindow) else SplitWindow(str(w[0]), str(w[1]))


def _us(day: str) -> int:
    return int(np.datetime64(day, "us").astype(np.int64))


def create(
    lake_root: str | Path,
    train: tuple[str, str],
    val: tuple[str, str],
    test: tuple[str, str],
    symbols: list[str] | None = None,
    embargo_s: int = LABEL_HORIZON_S,
) -> str:
    """Write a snapshot of the built feature store for the three split windows (inclusive days); return its id."""
    lake = Path(lake_root)
    splits = {"train": _window(train), "val": _window(val), "test": _window(test)}
    order = [splits[s] for s in SPLITS]
    for a, b in zip(order, order[1:], strict=False):
        if not a.end < b.start:
            raise SnapshotError(
                f"split windows must be ordered and disjoint: {a.start}..{a.end} then {b.start}..{b.end}"
            )
    warehouse = lake / "warehouse.duckdb"
    if not warehouse.exists():
        raise SnapshotError(
            f"no warehouse at {warehouse}: build the features first (feature_store.feature_build.run_dbt)"
        )
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        _check_built(con, splits, symbols)
        tables = {name: _split_table(con, w, symbols, embargo_s) for name, w in splits.items()}
        stats = _train_fit_stats(con, symbols)
    finally:
        con.close()
    contract = published_contract()
    manifest = {
        "format": 1,
        "schema_hash": schema_hash(contract),
        "contract": contract,
        "columns": {c.name: str(c.type) for c in tables["train"].schema},
        "delta_versions": _delta_versions(lake),
        "dbt_model_checksums": model_checksums(),
        "splits": {name: {"start": w.start, "end": w.end} for name, w in splits.items()},
        "embargo_s": embargo_s,
        "symbols": sorted(symbols) if symbols else sorted(set(tables["train"]["symbol"].to_pylist())),
        "rows": {name: t.num_rows for name, t in tables.items()},
        "train_fit": stats,
        "regime_coverage": {name: _coverage(t) for name, t in tables.items()},
    }
    snapshot_id = hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()[:16]
    manifest["id"] = snapshot_id
    final = lake / "snapshots" / snapshot_id
    if final.exists():
        return snapshot_id  # same content, already written: snapshots are immutable
    staging = lake / "snapshots" / f".tmp-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    for name, t in tables.items():
        pq.write_table(t, staging / f"{name}.parquet", compression="zstd")
    (staging / "metadata.json").write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))
    try:
        staging.rename(final)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not final.exists():
            raise
    return snapshot_id


def _check_built(con, splits: dict[str, SplitWindow], symbols: list[str] | None) -> None:
    train = splits["train"]
    expected = f"{train.start}..{train.end}"
    windows = [r[0] for r in con.sql("SELECT DISTINCT train_window FROM fct_features").fetchall()]
    if windows != [expected]:
        raise SnapshotError(
            f"the features were fit on train window(s) {windows}, not {expected}: rebuild them with "
            f"`dbt build --full-refresh --vars '{{train_start: {train.start}, train_end: {train.end}, ...}}'`"
        )
    built = {(s, d) for s, d in con.sql("SELECT DISTINCT symbol, date FROM fct_features").fetchall()}
    wanted_symbols = symbols or sorted({s for s, _ in built})
    missing = [
        (s, d) for s in wanted_symbols for w in splits.values() for d in w.days() if (s, d) not in built
    ]
    if missing:
        shown = ", ".join(f"{s} {d}" for s, d in missing[:8])
        raise SnapshotError(
            f"{len(missing)} symbol-days of the splits are not built ({shown}...): run dbt for them"
        )


def _split_table(con, w: SplitWindow, symbols: list[str] | None, embargo_s: int) -> pa.Table:
    lo, hi = _us(w.start), _us(w.end) + 86_400_000_000 - embargo_s * 1_000_000
    # the days named too (date is the UTC day of ts_us): the view of the published days then opens their files only
    where = f"f.ts_us >= {lo} AND f.ts_us < {hi} AND f.date BETWEEN {literal(w.start)} AND {literal(w.end)}"
    where += " AND NOT f.is_warmup"
    if symbols:
        where += " AND f.symbol IN (" + ", ".join(literal(s) for s in symbols) + ")"
    sql = f"""
        SELECT f.*, l.* EXCLUDE (symbol, date, ts, ts_us)
        FROM fct_features AS f
        LEFT JOIN fct_labels AS l ON l.symbol = f.symbol AND l.ts_us = f.ts_us
        WHERE {where}
        ORDER BY f.symbol, f.ts_us
    """
    return con.sql(sql).arrow().read_all()


def _train_fit_stats(con, symbols: list[str] | None) -> dict:
    def rows(sql: str) -> list[dict]:
        t = con.sql(sql).arrow().read_all()
        out = t.to_pylist()
        return [r for r in out if not symbols or r.get("symbol") in symbols]

    stats: dict = {}
    for r in rows("SELECT * FROM norm_feature_stats"):
        stats.setdefault("normalization", {}).setdefault(r["symbol"], {})[r["feature"]] = {
            "mean": r["mean"],
            "std": r["std"],
            "n": r["n"],
        }
    stats["clip_bounds"] = {r.pop("symbol"): r for r in rows("SELECT * FROM norm_clip_bounds")}
    stats["ofi_weights"] = {r.pop("symbol"): r for r in rows("SELECT * FROM norm_ofi_weights")}
    stats["regime_thresholds"] = {r.pop("symbol"): r for r in rows("SELECT * FROM regime_thresholds")}
    g: dict = {}
    for r in rows("SELECT * FROM norm_microprice_g ORDER BY symbol, imb_bucket, spread_bucket"):
        g.setdefault(r["symbol"], []).append([r["imb_bucket"], r["spread_bucket"], r["g_ticks"], r["n_obs"]])
    stats["microprice_g"] = g
    return stats


def _coverage(t: pa.Table) -> dict[str, int]:
    regimes = t["regime"].to_pylist()
    return {r: regimes.count(r) for r in ("bull", "bear", "range")}


def _delta_versions(lake: Path) -> dict[str, int | None]:
    out = {}
    for name in RAW_INPUTS:
        try:
            out[name] = DeltaTable(str(lake / "raw" / name)).version()
        except TableNotFoundError:
            out[name] = None
    return out


# -- load --------------------------------------------------------------------------------------------------
def metadata(lake_root: str | Path, snapshot_id: str) -> dict:
    path = Path(lake_root) / "snapshots" / snapshot_id / "metadata.json"
    if not path.exists():
        known = sorted(
            p.name for p in (Path(lake_root) / "snapshots").glob("*") if not p.name.startswith(".")
        )
        raise SnapshotError(
            f"no snapshot {snapshot_id!r} under {path.parent.parent} (known: {', '.join(known) or 'none'})"
        )
    return json.loads(path.read_text())


def load(
    lake_root: str | Path,
    snapshot_id: str,
    split: str,
    expected_schema_hash: str | None = None,
    normalize: bool = False,
    columns: list[str] | None = None,
    project_dir: Path = DBT_PROJECT_DIR,
) -> pa.Table:
    """One split of a snapshot as Arrow.  Refuses schema drift: against the published contract of the current
    feature models, against `expected_schema_hash` (what a trained model used), and against the files."""
    if split not in SPLITS:
        raise SnapshotError(f"unknown split {split!r}: one of {', '.join(SPLITS)}")
    meta = metadata(lake_root, snapshot_id)
    current = published_contract(project_dir)
    if schema_hash(current) != meta["schema_hash"]:
        raise SchemaDriftError(
            f"snapshot {snapshot_id} was written with schema {meta['schema_hash'][:12]} but the feature models now "
            f"publish {schema_hash(current)[:12]}: {describe_drift(meta['contract'], current)}. Create a new snapshot "
            "(and retrain) with the current models, or check out the model version the snapshot was made with."
        )
    if expected_schema_hash and expected_schema_hash != meta["schema_hash"]:
        raise SchemaDriftError(
            f"snapshot {snapshot_id} has schema {meta['schema_hash'][:12]}, the model expects "
            f"{expected_schema_hash[:12]}: load a snapshot made with the model's feature schema"
        )
    path = Path(lake_root) / "snapshots" / snapshot_id / f"{split}.parquet"
    table = pq.read_table(path)
    found = {f.name: str(f.type) for f in table.schema}
    if found != meta["columns"]:
        raise SchemaDriftError(
            f"{path} does not hold the columns its manifest lists: "
            f"{describe_drift({'files': meta['columns']}, {'files': found})}"
        )
    if normalize:
        table = _normalize(table, meta["train_fit"].get("normalization", {}))
    if columns:
        table = table.select(columns)
    return table


def feature_columns(meta: dict) -> list[str]:
    """The model-input feature columns of a snapshot (labels, keys and raw price levels excluded)."""
    contract = meta["contract"]["fct_features"]
    return [
        c for c, t in contract.items() if c not in NON_FEATURES and c not in KEY_COLUMNS and t == "double"
    ]


def label_columns(meta: dict) -> list[str]:
    return [c for c in meta["contract"]["fct_labels"] if c.startswith("markout_")]


def _normalize(table: pa.Table, stats: dict) -> pa.Table:
    symbols = np.array(table["symbol"].to_pylist())
    for name in table.column_names:
        per_symbol = [stats.get(s, {}).get(name) for s in np.unique(symbols)]
        if not any(per_symbol):
            continue
        x = table[name].to_numpy(zero_copy_only=False).astype(float)
        for s in np.unique(symbols):
            st = stats.get(s, {}).get(name)
            if st is None:
                continue
            mask = symbols == s
            std = st["std"] if st["std"] and st["std"] > 0 else 1.0
            x[mask] = (x[mask] - st["mean"]) / std
        table = table.set_column(table.schema.get_field_index(name), name, pa.array(x))
    return table


def as_numpy(table: pa.Table, columns: list[str], dtype=np.float32, fill: float = 0.0) -> np.ndarray:
    """Feature columns as a (rows, columns) matrix ready for torch.from_numpy; NULLs become `fill`."""
    out = np.empty((table.num_rows, len(columns)), dtype=dtype)
    for j, c in enumerate(columns):
        x = table[c].to_numpy(zero_copy_only=False).astype(float)
        out[:, j] = np.where(np.isfinite(x), x, fill)
    return out
