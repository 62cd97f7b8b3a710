"""The Streamlit dashboard, run by AppTest against a real small lake: QC JSON written by land_day, a drift report
from a real Evidently run, an evaluation report written by agent.evaluate on a tiny trained model, and the
registry row agent.export writes for it. Checks what each page shows (row counts, values, charts and their data), the empty states, a corrupt
file shown as a warning, and that rendering writes nothing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from streamlit.testing.v1 import AppTest

from feature_store import drift
from feature_store.ingest import land_day
from feature_store.lake import Lake
from feature_store.sources.synthetic import SyntheticConfig, SyntheticSource

APP = str(Path(__file__).resolve().parents[1] / "app_streamlit" / "app.py")
LANDED = [("BTCUSDT", "2024-01-01"), ("ETHUSDT", "2024-01-01"), ("BTCUSDT", "2024-01-02")]


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A lake with three landed days, a drift report and a registry, and a reports folder with one evaluation."""
    root = tmp_path_factory.mktemp("dash")
    lake = Lake(root / "lake")
    source = SyntheticSource(SyntheticConfig(seed=1, epoch=dt.date(2024, 1, 1)), day_seconds=120)
    for symbol, day in LANDED:
        land_day(lake, source, symbol, day)

    rng = np.random.default_rng(0)
    reference = pa.table({"spread_bps": rng.normal(1, 0.3, 3000), "imbalance_l1": rng.uniform(-1, 1, 3000)})
    current = pa.table({"spread_bps": rng.normal(1.3, 0.3, 3000), "imbalance_l1": rng.uniform(-1, 1, 3000)})
    drift.drift_report(
        reference,
        current,
        out_dir=root / "lake" / "reports" / "drift" / "adhoc",
        name="test",
        reference_name="train",
    )

    from test_train import tiny_config

    from agent.evaluate import EvalConfig, evaluate
    from agent.export import export
    from agent.train import train

    train(tiny_config(root / "runs", run_name="m1", total_steps=90, learning_starts=30))
    report = evaluate(
        "m1", EvalConfig(runs_root=str(root / "runs"), reports_root=str(root / "reports"), n_boot=200)
    )

    # the real export registers the model in <lake>/registry/models (Delta)
    export(
        "m1",
        runs_root=str(root / "runs"),
        lake_root=str(root / "lake"),
        reports_root=str(root / "reports"),
        latency_runs=20,
    )
    return root, report


def run_app(monkeypatch, lake_root: Path, reports_root: Path) -> AppTest:
    monkeypatch.setenv("SCALPER_LAKE", str(lake_root))
    monkeypatch.setenv("SCALPER_REPORTS", str(reports_root))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def table_with(at: AppTest, *columns: str):
    for frame in at.dataframe:
        if set(columns) <= set(frame.value.columns):
            return frame.value
    raise AssertionError(f"no table with columns {columns}")


def chart_data(chart) -> tuple[dict, pa.Table]:
    spec = json.loads(chart.proto.spec)
    datasets = {d.name: ipc.open_stream(d.data.data).read_all() for d in chart.proto.datasets}
    return spec, datasets


def file_state(*roots: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns) for root in roots for p in sorted(root.rglob("*"))
    }


def test_qc_page_shows_one_row_per_landed_day_with_charts(filled, monkeypatch):
    root, _ = filled
    at = run_app(monkeypatch, root / "lake", root / "reports")
    qc = table_with(at, "symbol", "day", "spread p50 (bp)")
    assert len(qc) == len(LANDED)
    assert sorted(zip(qc["symbol"], qc["day"].astype(str), strict=True)) == sorted(LANDED)
    on_disk = json.loads((root / "lake" / "metrics" / "ingest" / "ETHUSDT" / "2024-01-01.json").read_text())
    eth = qc[qc["symbol"] == "ETHUSDT"].iloc[0]
    assert eth["book rows"] == on_disk["book_rows"] and eth["spread p99 (bp)"] == on_disk["spread_bps_p99"]
    assert any(m.label == "symbol-days" and m.value == "3" for m in at.metric)

    charts = at.get("vega_lite_chart")
    spread = [
        c
        for c in charts
        if json.loads(c.proto.spec).get("encoding", {}).get("y", {}).get("title") == "spread (bp)"
    ]
    assert len(spread) == 1
    _, data = chart_data(spread[0])
    points = next(iter(data.values())).to_pandas()
    assert len(points) == 2 * len(LANDED)  # p50 and p99 per landed day
    p99 = points[(points["symbol"] == "ETHUSDT") & (points["counter"] == "p99")]["value"]
    assert p99.tolist() == [pytest.approx(on_disk["spread_bps_p99"])]


def test_evaluation_page_matches_the_report(filled, monkeypatch):
    root, report = filled
    at = run_app(monkeypatch, root / "lake", root / "reports")
    table = table_with(at, "policy", "mean PnL / episode", "mean PnL / episode 95% low")
    assert list(table["policy"])[0] == "agent"
    assert set(table["policy"]) == set(report["policies"])
    for _, row in table.iterrows():
        summary = report["policies"][row["policy"]]["all"]
        assert row["mean PnL / episode"] == pytest.approx(summary["mean_pnl"])
        assert (row["mean PnL / episode 95% low"], row["mean PnL / episode 95% high"]) == pytest.approx(
            tuple(summary["mean_pnl_ci95"])
        )
    diffs = table_with(at, "baseline", "mean", "verdict")
    assert set(diffs["baseline"]) == set(report["agent_minus_baseline"])
    assert len(at.get("image")) == 3  # the equity, drawdown and inventory PNGs beside the report
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    titled = [s for s in specs if "layer" in s]
    assert any(
        layer.get("encoding", {}).get("x", {}).get("title") == "mean PnL per episode"
        for s in titled
        for layer in s["layer"]
    )


def test_drift_and_registry_are_shown(filled, monkeypatch):
    root, report = filled
    at = run_app(monkeypatch, root / "lake", root / "reports")
    scores = table_with(at, "column", "score", "threshold", "drifted")
    assert dict(zip(scores["column"], scores["drifted"], strict=True)) == {
        "spread_bps": True,
        "imbalance_l1": False,
    }
    assert any("No feature snapshot" in i.value and "scalper snapshot create" in i.value for i in at.info)
    registry = table_with(at, "model_id", "created_at", "agent mean PnL")
    assert list(registry["model_id"]) == ["m1"]
    agent = report["policies"]["agent"]["all"]
    assert registry["agent mean PnL"][0] == pytest.approx(agent["mean_pnl"])
    assert registry["agent PnL 95% low"][0] == pytest.approx(agent["mean_pnl_ci95"][0])
    assert str(registry["eval_start"][0].tz) == "UTC"
    assert registry["eval_start"][0].value // 1000 == report["data_range_us"][0]  # epoch us shown as UTC time


def test_rendering_writes_nothing(filled, monkeypatch):
    root, _ = filled
    before = file_state(root / "lake", root / "reports")
    run_app(monkeypatch, root / "lake", root / "reports")
    assert file_state(root / "lake", root / "reports") == before


def test_empty_lake_explains_what_fills_each_page(tmp_path, monkeypatch):
    at = run_app(monkeypatch, tmp_path / "no_lake", tmp_path / "no_reports")
    infos = " ".join(i.value for i in at.info)
    assert "make demo" in infos
    assert "agent.evaluate.evaluate" in infos
    assert "registry/models" in infos
    assert not at.get("vega_lite_chart") and not at.dataframe
    assert not (tmp_path / "no_lake").exists()


def test_corrupt_file_is_a_warning_and_the_sidebar_switches_lakes(filled, tmp_path, monkeypatch):
    root, _ = filled
    other = tmp_path / "lake"
    (other / "metrics" / "ingest" / "BTCUSDT").mkdir(parents=True)
    good = root / "lake" / "metrics" / "ingest" / "BTCUSDT" / "2024-01-01.json"
    (other / "metrics" / "ingest" / "BTCUSDT" / "2024-01-01.json").write_text(good.read_text())
    (other / "metrics" / "ingest" / "BTCUSDT" / "2024-01-02.json").write_text("{not json")
    at = run_app(monkeypatch, root / "lake", root / "reports")
    assert len(table_with(at, "symbol", "day", "spread p50 (bp)")) == len(LANDED)
    at.sidebar.text_input(key="lake_root").set_value(str(other)).run()
    assert not at.exception
    assert len(table_with(at, "symbol", "day", "spread p50 (bp)")) == 1
    assert any("2024-01-02.json" in w.value and "unreadable QC JSON" in w.value for w in at.warning)
