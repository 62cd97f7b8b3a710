"""The evaluation dashboard (`make dashboard`): data QC, feature snapshots and drift, agent evaluation, registry.

Read-only: it lists and reads files the pipeline wrote (app_streamlit/readers.py says which) and never writes.
The lake root comes from SCALPER_LAKE (default ./lake) and the reports root from SCALPER_REPORTS (default
./reports); both can be changed in the sidebar.
"""

from __future__ import annotations

import os

import streamlit as st

from app_streamlit import page_evaluation, page_features, page_qc, page_registry

st.set_page_config(page_title="Scalper dashboard", layout="wide", initial_sidebar_state="expanded")

with st.sidebar:
    st.header("Scalper")
    lake_root = st.text_input(
        "Lake root", value=os.environ.get("SCALPER_LAKE", "lake"), key="lake_root"
    ).strip()
    reports_root = st.text_input(
        "Reports root", value=os.environ.get("SCALPER_REPORTS", "reports"), key="reports_root"
    ).strip()
    st.caption(
        "Read-only view of the lake and the evaluation reports. Relative paths are taken from the folder the "
        f"dashboard was started in ({os.getcwd()})."
    )
    st.button("Reload files")

st.title("Risk-aware RL scalper")
qc_tab, features_tab, evaluation_tab, registry_tab = st.tabs(
    ["Data QC", "Features & drift", "Agent evaluation", "Registry"]
)
with qc_tab:
    page_qc.render(lake_root)
with features_tab:
    page_features.render(lake_root)
with evaluation_tab:
    page_evaluation.render(reports_root)
with registry_tab:
    page_registry.render(lake_root)
