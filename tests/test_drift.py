"""Drift reports: a planted shift is found and a stable column is not (real Evidently runs on generated data),
sampling caps the rows, files are written and read back, bad inputs are refused by name, and a real feature
snapshot gets val/test reports against train under lake/reports/drift/<id>/."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from feature_lake import TEST_DAYS, shared_lake

from feature_store import drift, snapshots


def _table(rng: np.random.Generator, n: int, shift: float, regime_p: list[float]) -> pa.Table:
    return pa.table(
        {
            "spread_bps": rng.normal(
                1.0 + shift, 0.3, n
            ),  # the planted shift (in reference std units: shift/0.3)
            "imbalance_l1": rng.uniform(-1, 1, n),  # same distribution on both sides
            "regime": rng.choice(["bull", "bear", "range"], n, p=regime_p),
            "ts": pa.array(np.arange(n, dtype=np.int64), pa.timestamp("us", tz="UTC")),
        }
    )


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    rng = np.random.default_rng(7)
    reference = _table(rng, 20_000, 0.0, [0.3, 0.3, 0.4])
    current = _table(rng, 12_000, 0.15, [0.1, 0.1, 0.8])
    out = tmp_path_factory.mktemp("drift")
    summary = drift.drift_report(
        reference, current, out_dir=out, name="test", reference_name="train", sample_rows=3_000
    )
    return summary, out


def test_planted_shift_is_detected_and_stable_column_is_not(shifted):
    summary, _ = shifted
    assert summary.column("spread_bps").drifted
    assert summary.column("spread_bps").method.startswith("Wasserstein")  # > 1,000 sampled rows
    assert summary.column("spread_bps").score > 0.3  # shift 0.15 / std 0.3 = 0.5 reference std
    assert not summary.column("imbalance_l1").drifted
    assert summary.column("imbalance_l1").score < 0.1
    assert summary.column("regime").kind == "categorical" and summary.column("regime").drifted
    assert summary.share_drifted == pytest.approx(2 / 3) and summary.dataset_drift
    assert "ts" in summary.skipped  # a timestamp is neither numerical nor categorical: listed, not dropped


def test_rows_are_sampled_and_files_written(shifted):
    summary, out = shifted
    assert (summary.reference_rows, summary.current_rows) == (20_000, 12_000)
    assert (summary.sampled_reference_rows, summary.sampled_current_rows) == (3_000, 3_000)
    html = (out / "test.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html[:2000].lower()
    assert "spread_bps" in html
    data = json.loads((out / "test.json").read_text())
    assert data["share_drifted"] == pytest.approx(2 / 3)
    assert data["drifted_columns"] == ["spread_bps", "regime"]
    assert data["html_file"] == "test.html"  # relative: the lake folder can move
    back = drift.read_summary(out / "test.json")
    assert back.columns == summary.columns and back.reference_name == "train"
    assert back.html_path == str(out / "test.html") and back.json_path == str(out / "test.json")
    assert not list(out.glob(".*.tmp"))


def test_small_samples_use_a_p_value_test_and_still_find_the_shift():
    rng = np.random.default_rng(3)
    summary = drift.drift_report(
        _table(rng, 5_000, 0.0, [0.3, 0.3, 0.4]),
        _table(rng, 5_000, 0.3, [0.3, 0.3, 0.4]),
        columns=["spread_bps", "imbalance_l1"],
        sample_rows=400,
    )
    assert summary.sampled_current_rows == 400
    assert summary.column("spread_bps").method.startswith("K-S") and summary.column("spread_bps").drifted
    assert not summary.column("imbalance_l1").drifted
    assert summary.html_path is None  # no out_dir: nothing written


def test_bad_inputs_are_refused_by_name():
    t = pa.table({"a": [1.0, 2.0, 3.0], "empty": pa.array([None, None, None], pa.float64())})
    with pytest.raises(drift.DriftError, match=r"\['nope'\] are not in the reference table"):
        drift.drift_report(t, t, columns=["a", "nope"])
    with pytest.raises(drift.DriftError, match="current table .* has no rows"):
        drift.drift_report(t, t.slice(0, 0))
    with pytest.raises(drift.DriftError, match="no column .* can be tested.*all null"):
        drift.drift_report(t, t, columns=["empty"])


def test_snapshot_drift_writes_val_and_test_reports(tmp_path):
    lake = shared_lake()
    sid = snapshots.create(
        lake.root,
        train=(TEST_DAYS[0], TEST_DAYS[0]),
        val=(TEST_DAYS[1], TEST_DAYS[1]),
        test=(TEST_DAYS[2], TEST_DAYS[2]),
    )
    meta = snapshots.metadata(lake.root, sid)
    result = drift.snapshot_drift(lake.root, sid, out_dir=tmp_path / sid, sample_rows=2_000)
    assert set(result) == {"val", "test"}
    for split, summary in result.items():
        assert summary.snapshot_id == sid and summary.reference_name == "train"
        assert summary.current_rows == meta["rows"][split]
        assert summary.reference_rows == meta["rows"]["train"]
        tested = [c.column for c in summary.columns] + list(summary.skipped)
        assert sorted(tested) == sorted(drift.snapshot_columns(meta))
        assert (tmp_path / sid / f"{split}.html").stat().st_size > 10_000
    assert [p.name for p in sorted((tmp_path / sid).glob("*.json"))] == ["test.json", "val.json"]
