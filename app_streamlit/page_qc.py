"""Data QC page: the ingest QC counters of every landed (symbol, day), as a table and charts."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_streamlit import charts, readers
from app_streamlit.common import needs_local_lake, show_problems

HOW_TO_FILL = (
    "Land market data first: `make demo` (synthetic days), or `scalper ingest synthetic|binance-bulk|...`. "
    "Each landed day writes its QC counters to `<lake>/metrics/ingest/<symbol>/<date>.json`."
)

TABLE_COLUMNS = {  # counter -> column title, in display order
    "symbol": "symbol",
    "date": "day",
    "issues": "issues",
    "book_rows": "book rows",
    "trade_rows": "trades",
    "trades_per_s_mean": "trades/s",
    "spread_ticks_mean": "spread (ticks)",
    "spread_bps_p50": "spread p50 (bp)",
    "spread_bps_p99": "spread p99 (bp)",
    "spread_one_tick_share": "1-tick share",
    "depth_bid_l1_mean": "bid L1 depth",
    "depth_ask_l1_mean": "ask L1 depth",
    "depth_l1_change_p99": "L1 depth change p99",
    "book_lag_ms_p50": "book lag p50 (ms)",
    "book_lag_ms_p99": "book lag p99 (ms)",
    "trade_lag_ms_p99": "trade lag p99 (ms)",
    "book_gaps": "book gaps",
    "book_gap_rate": "book gap rate",
    "book_max_gap_s": "max book gap (s)",
    "trade_max_gap_s": "max trade gap (s)",
    "crossed_books": "crossed",
    "locked_books": "locked",
    "quarantined_total": "quarantined",
}


def issues(row: pd.Series) -> str:
    """What a researcher should look at before trusting the day (empty when nothing stands out)."""
    found = []
    for col, label in (
        ("crossed_books", "crossed"),
        ("locked_books", "locked"),
        ("quarantined_total", "quarantined"),
    ):
        if row.get(col, 0) and row.get(col, 0) > 0:
            found.append(f"{int(row[col])} {label}")
    if row.get("book_gaps", 0) and row.get("book_gaps", 0) > 0:
        found.append(f"{int(row['book_gaps'])} book gaps")
    for table in ("book_snapshots", "trades"):
        if f"rows_{table}" in row and not row.get(f"rows_{table}"):
            found.append(f"no {table}")
    return ", ".join(found) or "ok"


def render(lake_root: str) -> None:
    st.subheader("Ingest QC per landed day")
    if needs_local_lake(lake_root, "QC metrics"):
        return
    frame, problems = readers.qc_metrics(lake_root)
    show_problems(problems)
    if frame.empty:
        st.info(f"No ingest QC metrics under `{lake_root}/metrics/ingest`. {HOW_TO_FILL}")
        return
    symbols = sorted(frame["symbol"].unique())
    chosen = st.multiselect("Symbols", symbols, default=symbols, key="qc_symbols")
    frame = frame[frame["symbol"].isin(chosen)].reset_index(drop=True)
    if frame.empty:
        st.info("No symbol selected.")
        return
    frame["issues"] = frame.apply(issues, axis=1)

    kpis = st.columns(6)
    kpis[0].metric("symbol-days", len(frame))
    kpis[1].metric(
        "book snapshots", f"{int(frame.get('book_rows', pd.Series(dtype=float)).fillna(0).sum()):,}"
    )
    kpis[2].metric("trades", f"{int(frame.get('trade_rows', pd.Series(dtype=float)).fillna(0).sum()):,}")
    kpis[3].metric("quarantined rows", f"{int(frame['quarantined_total'].sum()):,}")
    crossed = frame.get("crossed_books", pd.Series(0, index=frame.index)).fillna(0)
    kpis[4].metric("crossed books", int(crossed.sum()))
    kpis[5].metric("days with issues", int((frame["issues"] != "ok").sum()))

    shown = [c for c in TABLE_COLUMNS if c in frame.columns]
    st.dataframe(
        frame[shown].rename(columns=TABLE_COLUMNS),
        hide_index=True,
        width="stretch",
        column_config={
            "1-tick share": st.column_config.NumberColumn(format="percent"),
            "book gap rate": st.column_config.NumberColumn(format="percent"),
        },
        key="qc_table",
    )
    with st.expander("All counters (raw QC JSON, one row per day)"):
        st.dataframe(frame, hide_index=True, width="stretch")

    left, right = st.columns(2)
    with left:
        st.markdown("**Spread (bp)**")
        st.altair_chart(
            charts.daily_lines(frame, {"spread_bps_p50": "p50", "spread_bps_p99": "p99"}, "spread (bp)"),
            width="stretch",
        )
        st.markdown("**Depth (base units, mean over snapshots)**")
        st.altair_chart(
            charts.daily_lines(
                frame,
                {
                    "depth_bid_l1_mean": "bid L1",
                    "depth_ask_l1_mean": "ask L1",
                    "depth_bid_l5_mean": "bid L1-5",
                    "depth_ask_l5_mean": "ask L1-5",
                },
                "depth",
            ),
            width="stretch",
        )
        st.markdown("**Integrity counters per day** (book gaps: grid steps > 1.5x the grid)")
        st.altair_chart(
            charts.daily_lines(
                frame,
                {
                    "book_gaps": "book gaps",
                    "crossed_books": "crossed",
                    "locked_books": "locked",
                    "quarantined_total": "quarantined",
                },
                "count",
                count_axis=True,
            ),
            width="stretch",
        )
    with right:
        st.markdown("**Wide spreads** (share of book snapshots; the rest are at one tick)")
        st.altair_chart(
            charts.daily_lines(
                frame,
                {
                    "spread_2_ticks_share": "2 ticks",
                    "spread_3_5_ticks_share": "3-5 ticks",
                    "spread_over_5_ticks_share": "> 5 ticks",
                },
                "share of snapshots",
                percent=True,
            ),
            width="stretch",
        )
        st.markdown("**Exchange → receive lag (ms)**")
        st.altair_chart(
            charts.daily_lines(
                frame,
                {
                    "book_lag_ms_p50": "book p50",
                    "book_lag_ms_p99": "book p99",
                    "trade_lag_ms_p50": "trade p50",
                    "trade_lag_ms_p99": "trade p99",
                },
                "lag (ms)",
            ),
            width="stretch",
        )
        st.markdown("**Longest gaps (s)**")
        st.altair_chart(
            charts.daily_lines(
                frame, {"book_max_gap_s": "book grid", "trade_max_gap_s": "between trades"}, "seconds"
            ),
            width="stretch",
        )
