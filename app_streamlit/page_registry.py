"""Registry page: the exported models (agent/registry.py's Delta table at <lake>/registry/models), newest first,
with each entry's data ranges, headline evaluation, latency, and its full metrics and training parameters."""

from __future__ import annotations

import streamlit as st

from app_streamlit import readers
from app_streamlit.common import show_problems

HOW_TO_FILL = (
    "Export a trained model: `agent.export.export(model_id, lake_root=...)` writes the TorchScript + ONNX bundle "
    "and appends a row with its data ranges, metrics and parameters to the Delta table `<lake>/registry/models`."
)
SUMMARY_COLUMNS = (
    "model_id",
    "algo",
    "created_at",
    "snapshot_id",
    "data_source",
    "train_start",
    "train_end",
    "eval_start",
    "eval_end",
    "agent mean PnL",
    "agent PnL 95% low",
    "agent PnL 95% high",
    "agent Sharpe (daily)",
    "latency_p50_us",
    "latency_p99_us",
    "onnx_sha256",
    "export_path",
)


def render(lake_root: str) -> None:
    st.subheader("Model registry")
    frame, version, problems = readers.registry(lake_root)
    show_problems(problems)
    if frame is None:
        if not problems:
            st.info(f"No model registry at `{lake_root}/registry/models` yet. {HOW_TO_FILL}")
        return
    st.caption(
        f"{len(frame)} entries, Delta table version {version}; times in UTC; latencies: CPU, batch 1, onnxruntime (µs)"
    )
    shown = [c for c in SUMMARY_COLUMNS if c in frame.columns]
    shown += [c for c in frame.columns if c not in shown and c not in ("metrics_json", "params_json")]
    times = {
        c: st.column_config.DatetimeColumn(c, format="YYYY-MM-DD HH:mm:ss", timezone="UTC")
        for c in shown
        if str(frame[c].dtype).startswith("datetime64")
    }
    st.dataframe(frame[shown], hide_index=True, width="stretch", column_config=times, key="registry_table")
    if frame.empty:
        return
    labels = [
        f"{row.get('model_id', i)} · {row['created_at']:%Y-%m-%d %H:%M:%S} UTC"
        if "created_at" in row
        else str(i)
        for i, row in frame.iterrows()
    ]
    chosen = st.selectbox("Entry", range(len(labels)), format_func=labels.__getitem__, key="registry_entry")
    entry = frame.iloc[chosen]
    left, right = st.columns(2)
    with left:
        st.markdown("**Metrics** (evaluation of the agent, paired differences, training)")
        st.json(readers.parse_json_text(entry.get("metrics_json", "{}")), expanded=2)
    with right:
        st.markdown("**Training parameters**")
        st.json(readers.parse_json_text(entry.get("params_json", "{}")), expanded=False)
