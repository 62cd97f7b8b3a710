"""Features & drift page: feature snapshots (split windows, rows, regime coverage, schema hash) and the drift of
their validation and test splits against train."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from app_streamlit import charts, readers
from app_streamlit.common import needs_local_lake, show_problems
from feature_store.drift import DriftSummary

SNAPSHOT_HOW_TO = (
    "Build the features and cut a snapshot: `scalper features build --start DAY --end DAY --train A:B`, then "
    "`scalper snapshot create --train A:B --val C:D --test E:F` (or the snapshot asset in `make ui`). "
    "It lands in `<lake>/snapshots/<id>/`."
)
DRIFT_HOW_TO = (
    "Write the drift reports with `feature_store.drift.snapshot_drift(lake, '{sid}')` (the drift-report asset in "
    "Dagster); they land in `<lake>/reports/drift/{sid}/`."
)


def snapshot_rows(metas: list[dict], drifts: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for m in metas:
        splits = m.get("splits", {})
        rows.append(
            {
                "snapshot": m.get("id"),
                "symbols": ", ".join(m.get("symbols", [])),
                **{
                    f"{s} window": f"{splits[s]['start']} .. {splits[s]['end']}" if s in splits else ""
                    for s in ("train", "val", "test")
                },
                **{f"{s} rows": (m.get("rows") or {}).get(s) for s in ("train", "val", "test")},
                "schema hash": str(m.get("schema_hash", ""))[:12],
                "drift report": ", ".join(sorted(drifts.get(m.get("id"), {}))) or "none",
            }
        )
    return pd.DataFrame(rows)


def split_table(meta: dict) -> pd.DataFrame:
    rows = []
    for split in ("train", "val", "test"):
        window = meta.get("splits", {}).get(split, {})
        coverage = meta.get("regime_coverage", {}).get(split, {}) or {}
        rows.append(
            {
                "split": split,
                "start": window.get("start"),
                "end": window.get("end"),
                "rows": (meta.get("rows") or {}).get(split),
                **{regime: coverage.get(regime) for regime in ("bull", "bear", "range")},
            }
        )
    return pd.DataFrame(rows)


def drift_frame(summary: DriftSummary) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "column": c.column,
                "drifted": c.drifted,
                "score": c.score,
                "threshold": c.threshold,
                "method": c.method,
                "kind": c.kind,
            }
            for c in summary.columns
        ]
    )


def render_drift(name: str, summary: DriftSummary) -> None:
    verdict = "dataset drift" if summary.dataset_drift else "no dataset drift"
    st.markdown(
        f"**{name} vs {summary.reference_name}**: {len(summary.drifted_columns)} of {len(summary.columns)} columns "
        f"drifted ({summary.share_drifted:.0%}; {verdict} at a share of {summary.drift_share_threshold:.0%}). "
        f"Samples: {summary.sampled_reference_rows:,} of {summary.reference_rows:,} reference rows, "
        f"{summary.sampled_current_rows:,} of {summary.current_rows:,} current rows (seed {summary.seed}); "
        f"Evidently {summary.evidently_version}, {summary.created_utc}."
    )
    frame = drift_frame(summary)
    left, right = st.columns([3, 2])
    with left:
        st.altair_chart(charts.drift_scores(frame), width="stretch")
    with right:
        st.dataframe(
            frame.sort_values(["drifted", "score"], ascending=False),
            hide_index=True,
            width="stretch",
            column_config={"score": st.column_config.NumberColumn(format="%.4f")},
        )
    if summary.skipped:
        st.caption("Not tested: " + "; ".join(f"`{c}`: {why}" for c, why in summary.skipped.items()))
    html = Path(summary.html_path) if summary.html_path else None
    if html is not None and html.exists():
        st.download_button(
            f"Full Evidently report ({name}, HTML)",
            data=html.read_bytes,  # deferred: the file (several MB) is read only when clicked
            file_name=f"drift_{summary.snapshot_id or 'tables'}_{name}.html",
            mime="text/html",
            key=f"drift_html_{summary.snapshot_id}_{name}",
        )
        st.caption(f"File: `{html}`")


def render(lake_root: str) -> None:
    st.subheader("Feature snapshots")
    if needs_local_lake(lake_root, "Feature snapshots and drift reports"):
        return
    metas, problems = readers.snapshots(lake_root)
    drifts, drift_problems = readers.drift_summaries(lake_root)
    show_problems(problems + drift_problems)
    if not metas:
        st.info(f"No feature snapshot under `{lake_root}/snapshots`. {SNAPSHOT_HOW_TO}")
    else:
        st.dataframe(snapshot_rows(metas, drifts), hide_index=True, width="stretch", key="snapshot_table")
        ids = [m["id"] for m in metas]
        sid = st.selectbox("Snapshot", ids, key="snapshot_id")
        meta = metas[ids.index(sid)]
        left, right = st.columns([3, 2])
        with left:
            st.markdown(
                "**Split windows, rows and regime coverage** (warm-up dropped, label-horizon embargo "
                f"of {meta.get('embargo_s', '?')} s at each split end)"
            )
            st.dataframe(split_table(meta), hide_index=True, width="stretch")
        with right:
            st.altair_chart(charts.regime_coverage(meta.get("regime_coverage", {})), width="stretch")
        with st.expander("Manifest: schema hash, pinned Delta versions, columns"):
            st.markdown(f"Schema hash `{meta.get('schema_hash')}`")
            st.json(
                {
                    "delta_versions": meta.get("delta_versions"),
                    "columns": meta.get("columns"),
                    "train_fit (keys)": sorted((meta.get("train_fit") or {}).keys()),
                },
                expanded=False,
            )
        st.subheader(f"Drift of snapshot {sid}")
        summaries = drifts.get(sid, {})
        if not summaries:
            st.info(f"No drift report for snapshot `{sid}`. {DRIFT_HOW_TO.format(sid=sid)}")
        for name in sorted(summaries, key=lambda n: {"val": 0, "test": 1}.get(n, 2)):
            render_drift(name, summaries[name])
    others = {k: v for k, v in drifts.items() if k not in {m["id"] for m in metas}}
    if others:
        st.subheader("Other drift reports")
        for folder, summaries in others.items():
            for name, summary in summaries.items():
                st.markdown(f"`{folder}/{name}`")
                render_drift(name, summary)
