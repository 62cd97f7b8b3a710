"""Export: TorchScript and ONNX files reproduce the torch network, the bundle carries what the observation builder
and the risk rules need, and the registry (a real Delta table) holds the entry."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from deltalake import DeltaTable

from agent.export import DecisionNetwork
from agent.pipeline import run_pipeline_demo
from agent.registry import latest, read_registry, registry_uri
from agent.train import _synthetic_tables, load_model
from feature_store.lake import Lake


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The demo pipeline end to end on 20 landed synthetic minutes: train -> evaluate -> export -> registry."""
    root = tmp_path_factory.mktemp("export")
    lake = Lake(root / "lake")
    for name, table in _synthetic_tables(3, 1.0, 20, "BTCUSDT").items():
        if table.num_rows:
            lake.write(name, table)
    out = run_pipeline_demo(
        root / "lake",
        minutes=20,
        total_steps=150,
        episode_s=60.0,
        runs_root=root / "runs",
        reports_root=root / "reports",
        progress=False,
    )
    return root, out["export"], out["train"]["model_id"], out


def test_demo_prints_the_comparison(exported):
    _, _, model_id, out = exported
    assert out["train"]["steps"] == 150
    assert out["report"]["windows"] >= 2 and "symmetric_mm" in out["table"]
    assert (exported[0] / "reports" / model_id / "report.json").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_exported_files_match_torch(exported):
    root, result, model_id, _ = exported
    assert result.max_abs_diff_onnx <= 1e-5 and result.max_abs_diff_torchscript <= 1e-5
    net, _, saved = load_model(root / "runs" / model_id)
    decision = DecisionNetwork(net).eval()
    obs_space = saved["spaces"][0]
    g = torch.Generator().manual_seed(11)
    state_width = int(np.prod(obs_space["book"].shape)) + obs_space["state"].shape[0]
    # a window length other than the one the export traced with (dynamic axis)
    inputs = (
        torch.randn(3, 5, obs_space["micro"].shape[-1], generator=g),
        torch.randn(3, obs_space["macro"].shape[0], generator=g),
        torch.randn(3, state_width, generator=g),
    )
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, dict(zip(("micro", "macro", "state"), (t.numpy() for t in inputs), strict=True)))
    scripted = torch.jit.load(str(result.torchscript_path))
    with torch.no_grad():
        want = decision(*inputs)
        got_ts = scripted(*inputs)
    for w, o, s in zip(want, got, got_ts, strict=True):
        np.testing.assert_allclose(o, w.numpy(), atol=1e-5, rtol=0)
        np.testing.assert_allclose(s.numpy(), w.numpy(), atol=1e-5, rtol=0)
    assert (want[2] > 0).all()  # the DQN's third output is the risk head's variance


def test_bundle_carries_observation_and_risk_settings(exported):
    _, result, _, _ = exported
    bundle = json.loads((result.bundle_dir / "bundle.json").read_text())
    assert bundle["outputs"] == ["q_price", "q_size", "variance"]
    assert bundle["normalization"]["view_config"]["micro_window"] == 30
    assert (
        bundle["normalization"]["snapshot_id"] is None
        and "no fitted statistics" in bundle["normalization"]["note"]
    )
    assert "max_leverage" in bundle["risk_config"]
    assert bundle["action"]["price_actions"][0] == "none" and bundle["action"]["size_buckets"] == 5
    for runtime in ("torch_eager", "torchscript", "onnxruntime"):
        lat = bundle["latency_us_cpu_batch1"][runtime]
        assert 0 < lat["p50"] <= lat["p99"]


def test_registry_entry_in_a_delta_table(exported):
    root, result, model_id, _ = exported
    lake = root / "lake"
    table = DeltaTable(registry_uri(lake))
    assert table.version() == result.registry_version == 0
    row = latest(lake, model_id)
    assert row["algo"] == "dqn" and row["snapshot_id"] is None and row["data_source"].startswith("lake")
    assert row["train_start_us"] < row["train_end_us"] <= row["eval_start_us"] < row["eval_end_us"]
    assert row["metrics"]["evaluation"]["episodes"] >= 2
    assert "symmetric_mm" in row["metrics"]["agent_minus_baseline"]
    assert row["params"]["total_steps"] == 150
    assert len(row["onnx_sha256"]) == 64 and row["latency_p50_us"] > 0
    assert read_registry(lake).num_rows == 1
    with pytest.raises(KeyError, match="not in the registry"):
        latest(lake, "other")
