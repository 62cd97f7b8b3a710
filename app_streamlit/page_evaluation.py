"""Agent evaluation page: one out-of-sample report of agent/evaluate.py — the agent against every baseline with
95 % intervals, the paired differences, the breakdown by regime and fold, markouts, and the equity, drawdown and
inventory plots written beside the report."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from app_streamlit import charts, readers
from app_streamlit.common import show_problems

HOW_TO_FILL = (
    "Train a model and evaluate it out of sample: `agent.train.train(config)` then `agent.evaluate.evaluate(model_id)` "
    "(CLI: `scalper train` / `scalper evaluate --model ID`). Each evaluation writes "
    "`<reports>/<model id>/report.json` and its equity, drawdown and inventory plots."
)
INTERVAL_METRICS = {
    "mean_pnl": "mean PnL per episode",
    "sharpe_daily": "Sharpe (daily)",
    "sortino_daily": "Sortino (daily)",
}


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    titles = dict(readers.METRICS)
    out = pd.DataFrame({"policy": table["policy"], "episodes": table["episodes"]})
    for key, title in readers.METRICS:
        out[title] = table[key]
        if key in readers.WITH_INTERVAL:
            out[f"{titles[key]} 95% low"] = table[f"{key}_lo"]
            out[f"{titles[key]} 95% high"] = table[f"{key}_hi"]
    return out


def _utc(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S")


def render(reports_root: str) -> None:
    st.subheader("Out-of-sample evaluation")
    evaluations, problems = readers.evaluations(reports_root)
    show_problems(problems)
    if not evaluations:
        st.info(f"No evaluation report under `{reports_root}`. {HOW_TO_FILL}")
        return
    ids = [e.model_id for e in evaluations]
    chosen = st.selectbox("Model", ids, key="model_id")
    ev = evaluations[ids.index(chosen)]
    report = ev.report
    info = [
        f"model `{ev.model_id}`",
        f"algorithm {report.get('algo', '?')}",
        f"split **{report.get('split', '?')}**",
    ]
    if report.get("data"):
        info.append(f"data: {report['data']}")
    if isinstance(report.get("data_range_us"), list) and len(report["data_range_us"]) == 2:
        a, b = report["data_range_us"]
        info.append(f"{_utc(a)} .. {_utc(b)} UTC")
    if report.get("windows") is not None:
        info.append(f"{report['windows']} back-to-back windows of {report.get('episode_steps', '?')} steps")
    st.markdown(" · ".join(info))
    selection = report.get("selection") or {}
    if selection.get("stand_aside"):
        st.warning(
            "The training run's validation kept no network: no network's lower 95 % bound of mean PnL per window "
            f"(best {selection.get('network_val_lower')}) beat standing aside "
            f"({selection.get('stand_aside_val_lower')}) on {selection.get('val_windows')} validation windows, so "
            "the agent places no orders. `agent_network` is the best network, played anyway."
        )

    table = readers.metrics_table(ev.policies)
    if "agent" in set(table["policy"]):
        table = pd.concat(
            [table[table["policy"] == "agent"], table[table["policy"] != "agent"]], ignore_index=True
        )
        agent = table.iloc[0]
        kpis = st.columns(4)
        kpis[0].metric(
            "agent mean PnL / episode", f"{agent['mean_pnl']:,.2f}", help="95% interval below the table"
        )
        kpis[1].metric("agent Sharpe (daily)", f"{agent['sharpe_daily']:,.2f}")
        kpis[2].metric("agent max drawdown", f"{agent['max_drawdown']:,.2f}")
        kpis[3].metric(
            "agent fill rate", f"{agent['fill_rate']:.1%}" if pd.notna(agent["fill_rate"]) else "n/a"
        )
    st.markdown("**Agent and baselines on the same windows** (intervals: bootstrap over episodes, 95 %)")
    st.dataframe(display_table(table), hide_index=True, width="stretch", key="evaluation_table")

    left, right = st.columns(2)
    with left:
        st.altair_chart(
            charts.interval_chart(
                table, "policy", "mean_pnl", "mean_pnl_lo", "mean_pnl_hi", "mean PnL per episode"
            ),
            width="stretch",
        )
    with right:
        st.altair_chart(
            charts.interval_chart(
                table, "policy", "sharpe_daily", "sharpe_daily_lo", "sharpe_daily_hi", "Sharpe (daily)"
            ),
            width="stretch",
        )

    diffs = readers.paired_differences(report)
    if not diffs.empty:
        st.markdown("**Agent minus baseline**: paired per-episode PnL difference with its 95 % interval")
        left, right = st.columns(2)
        with left:
            st.altair_chart(
                charts.interval_chart(
                    diffs, "baseline", "mean", "lo", "hi", "agent - baseline, PnL per episode", None
                ),
                width="stretch",
            )
        with right:
            st.dataframe(diffs, hide_index=True, width="stretch")

    st.markdown("**By regime and by walk-forward fold**")
    metric = st.radio(
        "Metric",
        list(INTERVAL_METRICS),
        format_func=INTERVAL_METRICS.get,
        horizontal=True,
        key="breakdown_metric",
    )
    left, right = st.columns(2)
    for column, by, label in (
        (left, "by_regime", "regime of the window's first step"),
        (right, "by_fold", "fold"),
    ):
        with column:
            frame = readers.breakdown(ev.policies, by, metric)
            st.caption(label)
            if frame.empty:
                st.info(f"The report has no `{by}` breakdown.")
            else:
                st.altair_chart(charts.grouped_intervals(frame, INTERVAL_METRICS[metric]), width="stretch")

    marks = readers.markout_table(ev.policies)
    if marks.shape[1] > 1:
        st.markdown("**Markouts of own fills** (mean signed mid move after the fill, bp; + is favourable)")
        st.dataframe(marks, hide_index=True, width="stretch")

    st.markdown("**Equity, drawdown and inventory** (plots written by the evaluation)")
    if not ev.plots:
        st.info(f"No plots in `{ev.folder}`: re-run the evaluation with plots on (EvalConfig.plots=True).")
    # the equity curve full width, the rest two per row
    if ev.plots:
        st.image(str(ev.plots[0]), caption=ev.plots[0].name, width="stretch")
    rest = ev.plots[1:]
    for i in range(0, len(rest), 2):
        for column, plot in zip(st.columns(2), rest[i : i + 2], strict=False):
            column.image(str(plot), caption=plot.name, width="stretch")
    with st.expander("Evaluation settings"):
        st.json(report.get("eval_config", {}), expanded=False)
