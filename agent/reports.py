"""Plots of an evaluation report: walk-forward equity, drawdown and inventory of the agent against the baselines.

matplotlib with the Agg backend (files only, no display). Each function takes the traces agent/evaluate.py
collected ({policy name: [EpisodeTrace, ...]} in window order) and writes one PNG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _chained(traces) -> np.ndarray:
    from agent.evaluate import chained_equity

    return chained_equity(traces)


def _finish(fig, ax, path: Path, xlabel: str, ylabel: str, title: str) -> Path:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_equity(traces: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for name, ts in traces.items():
        ax.plot(_chained(ts), label=name, linewidth=2.0 if name == "agent" else 1.0)
    return _finish(
        fig,
        ax,
        path,
        "decision step (held-out windows back to back)",
        "cumulative PnL (quote)",
        "Walk-forward equity, out of sample",
    )


def plot_drawdown(traces: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for name, ts in traces.items():
        eq = _chained(ts)
        ax.plot(eq - np.maximum.accumulate(eq), label=name, linewidth=2.0 if name == "agent" else 1.0)
    return _finish(fig, ax, path, "decision step", "drawdown (quote)", "Drawdown from the running peak")


def plot_inventory(traces: dict, path: Path, policies: tuple[str, ...] = ("agent", "symmetric_mm")) -> Path:
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for name in policies:
        if name in traces:
            ax.plot(np.concatenate([t.position for t in traces[name]]), label=name, linewidth=1.0)
    return _finish(fig, ax, path, "decision step", "position (base units)", "Inventory")


def plot_report(traces: dict, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    return [
        plot_equity(traces, out_dir / "equity.png"),
        plot_drawdown(traces, out_dir / "drawdown.png"),
        plot_inventory(traces, out_dir / "inventory.png"),
    ]
