"""Snapshots: content-addressed ids, manifest contents, split embargo, loading for torch, and refusal of schema
drift with a message naming the drifted columns."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml
from feature_lake import TEST_DAYS, shared_lake

from feature_store import snapshots
from feature_store.feature_build import DBT_PROJECT_DIR

SPLITS = dict(
    train=(TEST_DAYS[0], TEST_DAYS[0]), val=(TEST_DAYS[1], TEST_DAYS[1]), test=(TEST_DAYS[2], TEST_DAYS[2])
)
DAY_US = 86_400_000_000


@pytest.fixture(scope="module")
def snap():
    lake = shared_lake()
    sid = snapshots.create(lake.root, **SPLITS)
    return lake, sid


def test_create_is_content_addressed_and_writes_the_manifest(snap):
    lake, sid = snap
    assert snapshots.create(lake.root, **SPLITS) == sid
    meta = snapshots.metadata(lake.root, sid)
    assert meta["id"] == sid
    assert set(meta["delta_versions"]) >= {"book_snapshots", "trades"}
    assert meta["delta_versions"]["book_snapshots"] is not None
    assert meta["splits"]["train"] == {"start": TEST_DAYS[0], "end": TEST_DAYS[0]}
    assert "models/features/fct_features.sql" in meta["dbt_model_checksums"]
    assert meta["schema_hash"] == snapshots.schema_hash(snapshots.published_contract())
    fit = meta["train_fit"]
    assert {"normalization", "clip_bounds", "ofi_weights", "regime_thresholds", "microprice_g"} <= set(fit)
    assert fit["normalization"]["BTCUSDT"]["spread_bps"]["std"] > 0
    assert sum(meta["regime_coverage"]["train"].values()) == meta["rows"]["train"]


def test_splits_drop_warmup_and_embargo_label_horizons(snap):
    lake, sid = snap
    meta = snapshots.metadata(lake.root, sid)
    for name, (start, end) in SPLITS.items():
        t = snapshots.load(lake.root, sid, name)
        ts = t["ts_us"].to_numpy()
        end_us = int(np.datetime64(end, "us").astype(np.int64)) + DAY_US
        assert ts.min() >= int(np.datetime64(start, "us").astype(np.int64))
        # every label horizon ends inside its own split
        assert ts.max() + meta["embargo_s"] * 1_000_000 < end_us
        assert not t["is_warmup"].to_numpy().any()
    train = snapshots.load(lake.root, sid, "train")
    assert train["markout_mid_60s_bps"].null_count == 0


def test_load_for_torch_normalizes_with_train_statistics(snap):
    lake, sid = snap
    meta = snapshots.metadata(lake.root, sid)
    cols = snapshots.feature_columns(meta)
    assert "ofi_integrated_10s" in cols and "markout_mid_1s_bps" not in cols
    train = snapshots.load(lake.root, sid, "train", normalize=True)
    x = snapshots.as_numpy(train, cols)
    assert x.dtype == np.float32 and x.shape == (train.num_rows, len(cols))
    assert np.isfinite(x).all()
    # the statistics cover the whole train day, the split drops its embargoed last minute: close to 0 / 1
    spread = train["spread_bps"].to_numpy()
    assert abs(spread.mean()) < 0.01 and abs(spread.std() - 1) < 0.01


def test_schema_change_in_a_model_refuses_older_snapshot(snap, tmp_path):
    lake, sid = snap
    project = tmp_path / "dbt"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    yml = project / "models" / "features" / "_features.yml"
    doc = yaml.safe_load(yml.read_text())
    cols = doc["models"][0]["columns"]
    cols[:] = [c for c in cols if c["name"] != "tfi_60s"]  # a model drops a column ...
    next(c for c in cols if c["name"] == "spread_bps")["data_type"] = "float"  # ... and retypes another
    yml.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(snapshots.SchemaDriftError) as err:
        snapshots.load(lake.root, sid, "train", project_dir=project)
    message = str(err.value)
    assert "removed tfi_60s" in message and "spread_bps double -> float" in message and sid in message


def test_expected_hash_mismatch_and_unknown_snapshot_are_refused(snap):
    lake, sid = snap
    with pytest.raises(snapshots.SchemaDriftError, match="the model expects"):
        snapshots.load(lake.root, sid, "val", expected_schema_hash="0" * 64)
    with pytest.raises(snapshots.SnapshotError, match="no snapshot"):
        snapshots.load(lake.root, "feedfacefeedface", "val")


def test_snapshot_refuses_a_train_window_the_features_were_not_fit_on(snap):
    lake, _ = snap
    with pytest.raises(snapshots.SnapshotError, match="rebuild them with"):
        snapshots.create(
            lake.root,
            train=(TEST_DAYS[0], TEST_DAYS[1]),
            val=(TEST_DAYS[2], TEST_DAYS[2]),
            test=("2024-01-04", "2024-01-04"),
        )
