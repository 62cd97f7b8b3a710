"""Agent assets: drift report, training, out-of-sample evaluation and export, each a thin call into the library.

Each takes its input from config, or else from the latest materialization of the asset before it (the newest
snapshot, the newest model), so materializing the whole graph in the UI runs the chain end to end.
"""

import dagster as dg

from agent.evaluate import EvalConfig, evaluate
from agent.export import export
from agent.train import load_config, train
from dagster_project.resources import LakeResource
from feature_store.drift import snapshot_drift

SNAPSHOT_KEY = dg.AssetKey(["features", "snapshot"])
MODEL_KEY = dg.AssetKey(["agent", "model"])


def latest_metadata(context: dg.AssetExecutionContext, key: dg.AssetKey, field: str, what: str) -> str:
    event = context.instance.get_latest_materialization_event(key)
    mat = event.asset_materialization if event is not None else None
    if mat is None or field not in mat.metadata:
        raise ValueError(
            f"no {what} yet: materialize {key.to_user_string()} first, or set {field} in the config"
        )
    return str(mat.metadata[field].value)


class DriftConfig(dg.Config):
    snapshot_id: str = ""
    sample_rows: int = 5000


@dg.asset(key=["features", "drift_report"], deps=[SNAPSHOT_KEY], group_name="features", kinds={"evidently"})
def drift_report(context: dg.AssetExecutionContext, lake: LakeResource, config: DriftConfig):
    """Evidently data drift of the snapshot's val and test splits against its train split."""
    snapshot_id = config.snapshot_id or latest_metadata(
        context, SNAPSHOT_KEY, "snapshot_id", "feature snapshot"
    )
    summaries = snapshot_drift(lake.get().root, snapshot_id, sample_rows=config.sample_rows)
    metadata = {"snapshot_id": snapshot_id}
    for split, summary in summaries.items():
        metadata[f"{split}_share_drifted"] = summary.share_drifted
        metadata[f"{split}_report"] = dg.MetadataValue.path(summary.html_path or "")
    return dg.MaterializeResult(metadata=metadata)


class TrainAssetConfig(dg.Config):
    snapshot_id: str = ""
    config_file: str = ""  # a TrainConfig .toml/.json; the snapshot and runs folder below override its data
    total_steps: int = 0  # 0: the config's
    runs_root: str = "runs"
    seed: int = 0


@dg.asset(key=["agent", "model"], deps=[SNAPSHOT_KEY], group_name="agent", kinds={"pytorch"})
def agent_model(context: dg.AssetExecutionContext, lake: LakeResource, config: TrainAssetConfig):
    """Train the risk-aware branching DQN (or PPO) on a feature snapshot; checkpoints under runs/<model id>."""
    snapshot_id = config.snapshot_id or latest_metadata(
        context, SNAPSHOT_KEY, "snapshot_id", "feature snapshot"
    )
    overrides: dict = {
        "data": {"source": "snapshot", "snapshot_id": snapshot_id, "lake_root": lake.get().root},
        "runs_root": config.runs_root,
        "seed": config.seed,
    }
    if config.total_steps:
        overrides["total_steps"] = config.total_steps
    result = train(load_config(config.config_file or None, **overrides))
    return dg.MaterializeResult(
        metadata={"model_id": result.model_id, "snapshot_id": snapshot_id, **_flat(result.as_dict())}
    )


class EvaluateAssetConfig(dg.Config):
    model_id: str = ""
    runs_root: str = "runs"
    reports_root: str = "reports"
    max_episodes: int = 0  # 0: every non-overlapping window of the test split


@dg.asset(key=["agent", "evaluation"], deps=[MODEL_KEY], group_name="agent")
def agent_evaluation(context: dg.AssetExecutionContext, config: EvaluateAssetConfig):
    """Walk-forward out-of-sample evaluation against the baselines, with bootstrap intervals and plots."""
    model_id = config.model_id or latest_metadata(context, MODEL_KEY, "model_id", "trained model")
    report = evaluate(
        model_id,
        EvalConfig(
            runs_root=config.runs_root,
            reports_root=config.reports_root,
            max_episodes=config.max_episodes or None,
        ),
    )
    return dg.MaterializeResult(
        metadata={"model_id": model_id, "report": dg.MetadataValue.json(_summary(report))}
    )


class ExportAssetConfig(dg.Config):
    model_id: str = ""
    runs_root: str = "runs"
    reports_root: str = "reports"


@dg.asset(
    key=["agent", "export"], deps=[dg.AssetKey(["agent", "evaluation"])], group_name="agent", kinds={"onnx"}
)
def agent_export(context: dg.AssetExecutionContext, lake: LakeResource, config: ExportAssetConfig):
    """TorchScript + ONNX bundle with normalization and risk config, checked against torch, and a registry row."""
    model_id = config.model_id or latest_metadata(context, MODEL_KEY, "model_id", "trained model")
    result = export(
        model_id, runs_root=config.runs_root, lake_root=lake.get().root, reports_root=config.reports_root
    )
    return dg.MaterializeResult(
        metadata={
            "model_id": model_id,
            "bundle": dg.MetadataValue.path(str(result.bundle_dir)),
            "onnx_max_abs_diff": result.max_abs_diff_onnx,
            "latency_us": dg.MetadataValue.json(result.latency_us),
            "registry_version": result.registry_version,
        }
    )


def _flat(values: dict) -> dict:
    return {k: v for k, v in values.items() if isinstance(v, int | float | str)}


def _summary(report: dict) -> dict:
    keep = ("model_id", "split", "data", "windows", "episode_steps", "selection")
    return {k: report[k] for k in keep if k in report}
