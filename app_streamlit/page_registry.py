"""Registry page: the exported models' registry (a Delta table at <lake>/registry/models), newest first."""

from __future__ import annotations

import streamlit as st

from app_streamlit import readers
from app_streamlit.common import show_problems

HOW_TO_FILL = (
    "Export a trained model (TorchScript + ONNX bundle); the export step appends a registry entry with its data "
    "ranges, metrics and parameters to the Delta table `<lake>/registry/models`."
)
NEWEST_FIRST = ("registered_at", "created_at", "created_utc", "exported_at", "timestamp", "ts")


def render(lake_root: str) -> None:
    st.subheader("Model registry")
    frame, version, problems = readers.registry(lake_root)
    show_problems(problems)
    if frame is None:
        if not problems:
            st.info(f"No model registry at `{lake_root}/registry/models` yet. {HOW_TO_FILL}")
        return
    for col in NEWEST_FIRST:
        if col in frame.columns:
            frame = frame.sort_values(col, ascending=False, ignore_index=True)
            break
    st.caption(f"{len(frame)} entries, Delta table version {version}")
    st.dataframe(frame, hide_index=True, width="stretch", key="registry_table")
