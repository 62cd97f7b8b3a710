"""Small pieces every dashboard page uses: read problems shown as warnings, and the remote-lake notice."""

from __future__ import annotations

import streamlit as st

from app_streamlit.readers import Problem, is_local


def show_problems(problems: list[Problem]) -> None:
    for p in problems:
        st.warning(f"Skipped `{p.path}`: {p.reason}")


def needs_local_lake(lake_root: str, what: str) -> bool:
    """True (after saying so) when the lake is remote: these files are read from a local folder only."""
    if is_local(lake_root):
        return False
    st.info(
        f"{what} are read from a local lake folder; `{lake_root}` is remote. Point the sidebar at a local copy."
    )
    return True
