"""Altair (Vega-Lite) chart builders for the dashboard: data frames in, chart specs out, no network.

Days are UTC calendar days, so date axes use Vega-Lite's utc time units (a browser west of Greenwich would
otherwise draw each day at the previous evening).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

AGENT_COLOR = "#d62728"
OTHER_COLOR = "#4c78a8"


def daily_lines(frame: pd.DataFrame, columns: dict[str, str], y_title: str) -> alt.Chart:
    """One line per (counter, symbol) over the landed days; `columns` maps counter -> legend label."""
    present = {c: label for c, label in columns.items() if c in frame.columns}
    long = frame.melt(
        id_vars=["symbol", "date"], value_vars=list(present), var_name="counter", value_name="value"
    )
    long["counter"] = long["counter"].map(present)
    long["date"] = pd.to_datetime(long["date"])
    return (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X("utcyearmonthdate(date):T", title="day (UTC)"),
            y=alt.Y("value:Q", title=y_title),
            color=alt.Color("counter:N", title=None),
            strokeDash=alt.StrokeDash("symbol:N"),
            tooltip=["symbol", alt.Tooltip("utcyearmonthdate(date):T", title="day"), "counter", "value"],
        )
        .properties(height=240)
    )


def daily_bars(frame: pd.DataFrame, column: str, title: str) -> alt.Chart:
    data = frame[["symbol", "date", column]].copy()
    data["date"] = pd.to_datetime(data["date"])
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("utcyearmonthdate(date):O", title="day (UTC)"),
            xOffset="symbol:N",
            y=alt.Y(f"{column}:Q", title=title),
            color=alt.Color("symbol:N"),
            tooltip=["symbol", alt.Tooltip("utcyearmonthdate(date):T", title="day"), column],
        )
        .properties(height=240)
    )


SPREAD_BUCKETS = {
    "spread_one_tick_share": "1 tick",
    "spread_2_ticks_share": "2 ticks",
    "spread_3_5_ticks_share": "3-5 ticks",
    "spread_over_5_ticks_share": "> 5 ticks",
}


def spread_regimes(frame: pd.DataFrame) -> alt.Chart:
    """Share of book snapshots per spread bucket, one stacked bar per (symbol, day)."""
    present = [c for c in SPREAD_BUCKETS if c in frame.columns]
    long = frame.melt(id_vars=["symbol", "date"], value_vars=present, var_name="bucket", value_name="share")
    long["bucket"] = long["bucket"].map(SPREAD_BUCKETS)
    long["day"] = long["symbol"] + " " + long["date"].astype(str)
    order = list(SPREAD_BUCKETS.values())
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=alt.X("day:N", title=None, sort=None),
            y=alt.Y("share:Q", title="share of snapshots", stack="normalize", axis=alt.Axis(format="%")),
            color=alt.Color("bucket:N", sort=order, title="spread"),
            order=alt.Order("bucket_rank:Q"),
            tooltip=["day", "bucket", alt.Tooltip("share:Q", format=".2%")],
        )
        .transform_calculate(bucket_rank=f"indexof({order!r}, datum.bucket)")
        .properties(height=240)
    )


def interval_chart(
    frame: pd.DataFrame,
    category: str,
    value: str,
    lo: str,
    hi: str,
    title: str,
    highlight: str | None = "agent",
) -> alt.LayerChart:
    """Point estimate with its 95 % interval per category (horizontal), a rule at zero; `highlight` in red."""
    data = frame[[category, value, lo, hi]].copy()
    data["is_highlight"] = data[category] == highlight
    base = alt.Chart(data).encode(y=alt.Y(f"{category}:N", title=None, sort=None))
    color = alt.condition("datum.is_highlight", alt.value(AGENT_COLOR), alt.value(OTHER_COLOR))
    bars = base.mark_rule(strokeWidth=2).encode(x=alt.X(f"{lo}:Q", title=title), x2=f"{hi}:Q", color=color)
    points = base.mark_point(filled=True, size=70).encode(
        x=f"{value}:Q",
        color=color,
        tooltip=[
            category,
            alt.Tooltip(f"{value}:Q", format=",.3f"),
            alt.Tooltip(f"{lo}:Q", format=",.3f", title="95% low"),
            alt.Tooltip(f"{hi}:Q", format=",.3f", title="95% high"),
        ],
    )
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(color="gray", strokeDash=[4, 4]).encode(x="x:Q")
    return (zero + bars + points).properties(height=max(120, 32 * len(data)))


def grouped_intervals(frame: pd.DataFrame, title: str) -> alt.LayerChart:
    """Per group (regime or fold): each policy's value with its interval, side by side."""
    base = alt.Chart(frame).encode(
        x=alt.X("group:N", title=None),
        xOffset="policy:N",
        color=alt.Color("policy:N"),
    )
    points = base.mark_point(filled=True, size=60).encode(
        y=alt.Y("value:Q", title=title),
        tooltip=["policy", "group", "episodes", alt.Tooltip("value:Q", format=",.3f"), "lo", "hi"],
    )
    bars = base.mark_rule().encode(y="lo:Q", y2="hi:Q")
    return (bars + points).properties(height=260)


def drift_scores(frame: pd.DataFrame) -> alt.LayerChart:
    """Per column: drift score against its test's threshold; drifted columns in red. Frame columns: column,
    score, threshold, drifted, method."""
    base = alt.Chart(frame).encode(y=alt.Y("column:N", sort="-x", title=None))
    bars = base.mark_bar().encode(
        x=alt.X("score:Q", title="drift score (test of the column, see method)"),
        color=alt.condition("datum.drifted", alt.value(AGENT_COLOR), alt.value(OTHER_COLOR)),
        tooltip=["column", "method", alt.Tooltip("score:Q", format=".4f"), "threshold", "drifted"],
    )
    ticks = base.mark_tick(color="black", thickness=2, size=14).encode(x="threshold:Q")
    return (bars + ticks).properties(height=max(160, 16 * len(frame)))


def regime_coverage(coverage: dict[str, dict[str, int]]) -> alt.Chart:
    rows = [
        {"split": split, "regime": regime, "rows": n}
        for split, counts in coverage.items()
        for regime, n in (counts or {}).items()
    ]
    return (
        alt.Chart(pd.DataFrame(rows, columns=["split", "regime", "rows"]))
        .mark_bar()
        .encode(
            x=alt.X("split:N", sort=["train", "val", "test"], title=None),
            y=alt.Y("rows:Q", stack="normalize", axis=alt.Axis(format="%"), title="share of rows"),
            color=alt.Color(
                "regime:N",
                scale=alt.Scale(domain=["bull", "bear", "range"], range=["#2ca02c", "#d62728", "#7f7f7f"]),
            ),
            tooltip=["split", "regime", "rows"],
        )
        .properties(height=220)
    )
