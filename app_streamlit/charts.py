"""Altair (Vega-Lite) chart builders for the dashboard: data frames in, chart specs out, no network.

Days are UTC calendar days, so date axes use Vega-Lite's utc time units (a browser west of Greenwich would
otherwise draw each day at the previous evening).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

AGENT_COLOR = "#d62728"
OTHER_COLOR = "#4c78a8"


def daily_lines(
    frame: pd.DataFrame,
    columns: dict[str, str],
    y_title: str,
    count_axis: bool = False,
    percent: bool = False,
) -> alt.Chart:
    """One line per (counter, symbol) over the landed days; `columns` maps counter -> legend label.
    count_axis: integer counters, the axis starts at 0 and shows at least 0..1 (all-zero days stay readable)."""
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
            y=alt.Y(
                "value:Q",
                title=y_title,
                scale=alt.Scale(domain=[0, max(1.0, float(long["value"].max()))])
                if count_axis
                else alt.Undefined,
                axis=alt.Axis(format="d", tickMinStep=1)
                if count_axis
                else alt.Axis(format="%")
                if percent
                else alt.Undefined,
            ),
            color=alt.Color("counter:N", title=None),
            strokeDash=alt.StrokeDash("symbol:N"),
            tooltip=[
                "symbol",
                alt.Tooltip("utcyearmonthdate(date):T", title="day"),
                "counter",
                alt.Tooltip("value:Q", format=".2%" if percent else ",.4~f"),
            ],
        )
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
    base = alt.Chart(data).encode(
        y=alt.Y(f"{category}:N", title=None, sort=None, axis=alt.Axis(labelOverlap=False, labelLimit=220))
    )
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
    return (zero + bars + points).properties(height=90 + 34 * len(data))  # height includes the axes


BASELINE_PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#9d755d", "#72b7b2", "#eeca3b", "#bab0ac")


def policy_colors(policies: list[str]) -> alt.Color:
    """The agent always red, each baseline its own non-red colour (the same in every chart of a report)."""
    baselines = [p for p in policies if p != "agent"]
    colors = {p: BASELINE_PALETTE[i % len(BASELINE_PALETTE)] for i, p in enumerate(baselines)}
    colors["agent"] = AGENT_COLOR
    domain = [p for p in policies if p == "agent"] + baselines
    return alt.Color("policy:N", scale=alt.Scale(domain=domain, range=[colors[p] for p in domain]))


def grouped_intervals(frame: pd.DataFrame, title: str) -> alt.LayerChart:
    """Per group (regime or fold): each policy's value with its interval, side by side."""
    base = alt.Chart(frame).encode(
        x=alt.X("group:N", title=None, axis=alt.Axis(labelAngle=0)),
        xOffset="policy:N",
        color=policy_colors(list(dict.fromkeys(frame["policy"]))),
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
    base = alt.Chart(frame).encode(
        y=alt.Y("column:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False, labelLimit=240))
    )
    bars = base.mark_bar().encode(
        x=alt.X("score:Q", title="drift score (test of the column, see method)"),
        color=alt.condition("datum.drifted", alt.value(AGENT_COLOR), alt.value(OTHER_COLOR)),
        tooltip=["column", "method", alt.Tooltip("score:Q", format=".4f"), "threshold", "drifted"],
    )
    ticks = base.mark_tick(color="black", thickness=2, size=14).encode(x="threshold:Q")
    return (bars + ticks).properties(height=90 + 20 * len(frame))  # height includes the axes


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
