"""Ingest QC for one landed (symbol, day): counters and pass/fail checks, written as JSON under lake/metrics/.

Counters (what a researcher looks at before trusting a day): tick volumes, exchange→receive lags, depth averages,
spread regimes, p99 spread and depth change, book-grid gap rate and max gap, trade gaps. Checks (what fails a
partition): rows present, timestamps ordered, no crossed or locked books, no non-positive sizes. Both read the
landed tables back from the lake, so they see what later stages will see.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from feature_store.lake import Lake
from feature_store.records import BOOK_LEVELS


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    detail: str
    value: float | None = None


def _us(table: pa.Table, col: str) -> np.ndarray:
    return table[col].cast(pa.int64()).to_numpy()


def _levels(table: pa.Table, col: str, k: int = BOOK_LEVELS) -> np.ndarray:
    flat = pc.list_flatten(table[col]).to_numpy(zero_copy_only=False)
    return flat.reshape(table.num_rows, BOOK_LEVELS)[:, :k]


def _pct(x: np.ndarray, q: float) -> float | None:
    x = x[np.isfinite(x)]
    return float(np.percentile(x, q)) if len(x) else None


def _lag_stats(table: pa.Table) -> dict[str, float | None]:
    if table.num_rows == 0:
        return {"lag_ms_p50": None, "lag_ms_p99": None, "lag_ms_max": None}
    lag = (_us(table, "recv_ts") - _us(table, "ts")) / 1000.0
    return {"lag_ms_p50": _pct(lag, 50), "lag_ms_p99": _pct(lag, 99), "lag_ms_max": float(lag.max())}


def book_counters(books: pa.Table, tick_size: float, grid_ms: int) -> dict[str, float | int | None]:
    n = books.num_rows
    out: dict[str, float | int | None] = {"book_rows": n}
    if n == 0:
        return out
    out.update({f"book_{k}": v for k, v in _lag_stats(books).items()})
    bid_px, ask_px = _levels(books, "bid_px", 1)[:, 0], _levels(books, "ask_px", 1)[:, 0]
    bid_sz, ask_sz = _levels(books, "bid_sz"), _levels(books, "ask_sz")
    mid = (bid_px + ask_px) / 2
    spread = ask_px - bid_px
    ticks = np.rint(spread / tick_size)
    spread_bps = spread / mid * 1e4
    out.update(
        {
            "spread_ticks_mean": float(ticks.mean()),
            "spread_one_tick_share": float((ticks <= 1).mean()),
            "spread_2_ticks_share": float((ticks == 2).mean()),
            "spread_3_5_ticks_share": float(((ticks >= 3) & (ticks <= 5)).mean()),
            "spread_over_5_ticks_share": float((ticks > 5).mean()),
            "spread_bps_p50": _pct(spread_bps, 50),
            "spread_bps_p99": _pct(spread_bps, 99),
            "crossed_books": int((spread < 0).sum()),
            "locked_books": int((spread == 0).sum()),
        }
    )
    for k in (1, 5, 20):
        out[f"depth_bid_l{k}_mean"] = float(bid_sz[:, :k].sum(axis=1).mean())
        out[f"depth_ask_l{k}_mean"] = float(ask_sz[:, :k].sum(axis=1).mean())
    depth1 = bid_sz[:, 0] + ask_sz[:, 0]
    if n > 1:
        change = np.abs(np.diff(depth1)) / np.maximum(depth1[:-1], 1e-12)
        out["depth_l1_change_p99"] = _pct(change, 99)
        dt_ms = np.diff(_us(books, "ts")) / 1000.0
        gaps = dt_ms > 1.5 * grid_ms
        out["book_gap_rate"] = float(gaps.mean())
        out["book_max_gap_s"] = float(dt_ms.max() / 1000.0)
        out["book_gaps"] = int(gaps.sum())
    return out


def trade_counters(trades: pa.Table) -> dict[str, float | int | None]:
    n = trades.num_rows
    out: dict[str, float | int | None] = {"trade_rows": n}
    if n == 0:
        return out
    ts = _us(trades, "ts")
    qty = trades["qty"].to_numpy()
    side = trades["side"].to_numpy()
    seconds = np.bincount((ts - ts.min()) // 1_000_000)
    out.update({f"trade_{k}": v for k, v in _lag_stats(trades).items()})
    out.update(
        {
            "trade_volume": float(qty.sum()),
            "trade_buy_share": float(qty[side > 0].sum() / max(qty.sum(), 1e-12)),
            "trades_per_s_mean": float(seconds.mean()),
            "trades_per_s_p99": _pct(seconds.astype(float), 99),
            "trade_max_gap_s": float(np.diff(ts).max() / 1e6) if n > 1 else 0.0,
        }
    )
    return out


def day_counters(tables: dict[str, pa.Table], tick_size: float, grid_ms: int = 100) -> dict[str, object]:
    """All QC counters for one (symbol, day) from its landed tables."""
    out: dict[str, object] = {f"rows_{name}": t.num_rows for name, t in tables.items()}
    if "book_snapshots" in tables:
        out.update(book_counters(tables["book_snapshots"], tick_size, grid_ms))
    if "trades" in tables:
        out.update(trade_counters(tables["trades"]))
    return out


def partition_checks(table_name: str, table: pa.Table) -> list[CheckOutcome]:
    """Pass/fail checks for one landed partition of a raw table."""
    out = [CheckOutcome("row_count", table.num_rows > 0, f"{table.num_rows:,} rows", float(table.num_rows))]
    if table.num_rows == 0:
        return out
    ts = _us(table, "ts")
    backwards = int((np.diff(ts) < 0).sum())
    out.append(
        CheckOutcome("ts_ordered", backwards == 0, f"{backwards} timestamps go backwards", float(backwards))
    )
    if table_name == "book_snapshots":
        bid, ask = _levels(table, "bid_px", 1)[:, 0], _levels(table, "ask_px", 1)[:, 0]
        crossed = int((bid >= ask).sum())
        out.append(
            CheckOutcome("no_crossed_books", crossed == 0, f"{crossed} crossed or locked books", crossed)
        )
        sizes = np.concatenate([_levels(table, "bid_sz")[:, 0], _levels(table, "ask_sz")[:, 0]])
        bad = int((sizes <= 0).sum())
        out.append(
            CheckOutcome("positive_touch_sizes", bad == 0, f"{bad} non-positive touch sizes", float(bad))
        )
    if table_name == "book_tickers":
        crossed = int((table["bid_px"].to_numpy() >= table["ask_px"].to_numpy()).sum())
        out.append(
            CheckOutcome("no_crossed_books", crossed == 0, f"{crossed} crossed or locked tickers", crossed)
        )
    if table_name == "trades":
        bad = int((table["qty"].to_numpy() <= 0).sum() + (table["price"].to_numpy() <= 0).sum())
        out.append(
            CheckOutcome("positive_price_qty", bad == 0, f"{bad} non-positive prices or sizes", float(bad))
        )
    return out


def check_landed_partition(lake: Lake, table_name: str, symbol: str, date: str) -> list[CheckOutcome]:
    return partition_checks(table_name, lake.read(table_name, symbol=symbol, start=date, end=date))


def read_metrics(lake: Lake, symbol: str, date: str) -> dict[str, object] | None:
    """The day's counters as written by write_metrics (None when that day has none, or the lake is remote)."""
    if not lake.is_local:
        return None
    path = Path(lake.root.removeprefix("file://"), "metrics", "ingest", symbol, f"{date}.json")
    return json.loads(path.read_text()) if path.exists() else None


def write_metrics(lake: Lake, symbol: str, date: str, counters: dict[str, object]) -> str:
    """Write the day's counters to <lake>/metrics/ingest/<symbol>/<date>.json; returns its location."""
    payload = json.dumps(
        {"symbol": symbol, "date": date, **counters}, indent=2, sort_keys=True, default=_json
    )
    if lake.is_local:
        path: Path = lake.local_path("metrics", "ingest", symbol) / f"{date}.json"
        path.write_text(payload)
        return str(path)
    import fsspec  # remote lakes: fsspec resolves s3://, gs://, az:// with the same credentials

    uri = lake.uri("metrics", "ingest", symbol, f"{date}.json")
    with fsspec.open(uri, "w", **(lake.storage_options or {})) as fh:
        fh.write(payload)
    return uri


def outcomes_as_dict(outcomes: list[CheckOutcome]) -> list[dict[str, object]]:
    return [asdict(o) for o in outcomes]


def _json(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value)}")
