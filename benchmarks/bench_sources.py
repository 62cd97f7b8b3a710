"""Throughput of the history sources, each against a plain baseline run in this process (medians of N runs).

1. Binance bulk CSV -> trades records (parse_bulk_csv) vs pandas.read_csv + sort + records.table_from_columns.
2. Tardis incremental_book_L2 -> exact book sampled on a 100 ms grid (load_tardis, numba book) vs a plain-dict
   book in Python doing the same sampling.
3. REST aggTrades paging through the client (weight limiter, retries, parsing, checks) against the fake Binance
   on 127.0.0.1 with no faults and no binding limit, vs bare aiohttp GETs of the same pages with json.loads.
Usage: python benchmarks/bench_sources.py [runs]
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
import pandas as pd
from loguru import logger

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fake_binance import FakeBinance, make_market  # noqa: E402

from feature_store.records import TradeTick, table_from_columns  # noqa: E402
from feature_store.sources.binance_bulk import parse_bulk_csv  # noqa: E402
from feature_store.sources.binance_rest import RestConfig, fetch_history  # noqa: E402
from feature_store.sources.tardis import load_tardis  # noqa: E402


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_bulk(runs: int) -> None:
    n = 1_000_000
    rng = np.random.default_rng(0)
    t = 1_722_470_400_000 + np.sort(rng.integers(0, 86_400_000, n))
    ids = np.arange(n) + 10**9
    frame = pd.DataFrame({"a": ids, "p": np.round(60000 + rng.normal(0, 50, n), 1), "q": np.round(rng.uniform(0.001, 3, n), 3),
                          "f": ids * 3, "l": ids * 3 + 2, "T": t, "m": rng.random(n) < 0.5})  # fmt: skip
    buf = io.StringIO()
    frame.to_csv(buf, index=False, header=False)
    data = (
        b"agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
        + buf.getvalue().encode()
    )

    def baseline():
        df = pd.read_csv(io.BytesIO(data)).sort_values(["transact_time", "agg_trade_id"], kind="stable")
        ts = df["transact_time"].to_numpy() * 1000
        table_from_columns(TradeTick, {"exchange": "binance", "market": "usdm", "symbol": "BTCUSDT", "ts": ts,
                                       "recv_ts": ts, "trade_id": df["agg_trade_id"].to_numpy(),
                                       "price": df["price"].to_numpy(), "qty": df["quantity"].to_numpy(),
                                       "side": np.where(df["is_buyer_maker"].to_numpy(), -1, 1).astype(np.int8)})  # fmt: skip

    ours = median_time(lambda: parse_bulk_csv(data, "aggTrades", "usdm", "BTCUSDT"), runs)
    base = median_time(baseline, runs)
    print(f"bulk aggTrades CSV ({len(data) / 1e6:.0f} MB, {n:,} rows): parse_bulk_csv {ours:.2f}s "
          f"({n / ours / 1e6:.2f} M rows/s) | pandas baseline {base:.2f}s | ratio {base / ours:.2f}x")  # fmt: skip


def bench_tardis(runs: int, folder: Path) -> None:
    rng = np.random.default_rng(1)
    t0 = 1_722_470_400_000_000
    lines = ["exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"]
    for k in range(1, 501):
        for side, sign in (("bid", -1), ("ask", 1)):
            lines.append(
                f"binance-futures,BTCUSDT,{t0},{t0 + 10},true,{side},{60000 + sign * 0.1 * k:.1f},1.5"
            )
    messages = 60_000
    ts = t0 + np.cumsum(rng.integers(0, 20_000, messages))
    rows = 0
    for m in range(messages):
        for _ in range(int(rng.integers(1, 5))):
            side = "bid" if rng.random() < 0.5 else "ask"
            k = int(rng.integers(1, 60))
            price = 60000 - 0.1 * k if side == "bid" else 60000 + 0.1 * k
            qty = 0 if rng.random() < 0.3 else round(float(rng.uniform(0.1, 5)), 3)
            lines.append(f"binance-futures,BTCUSDT,{ts[m]},{ts[m] + 20 + m},false,{side},{price:.1f},{qty}")
            rows += 1
    path = folder / "binance-futures_incremental_book_L2_2024-08-01_BTCUSDT.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")

    def baseline():
        import csv

        book = {"bid": {}, "ask": {}}
        samples, next_tick, grid = 0, None, 100_000
        with gzip.open(path, "rt") as fh:
            reader = csv.reader(fh)
            next(reader)
            for _, _, ts_s, _, snap, side, price, amount in reader:
                t, qty = int(ts_s), float(amount)
                if snap == "false":
                    if next_tick is None:
                        next_tick = -(-t // grid) * grid
                    while next_tick < t:
                        sorted(book["bid"].items(), reverse=True)[:20]
                        sorted(book["ask"].items())[:20]
                        samples += 1
                        next_tick += grid
                if qty > 0:
                    book[side][float(price)] = qty
                else:
                    book[side].pop(float(price), None)

    ours = median_time(lambda: load_tardis(path, progress=False), runs)
    base = median_time(baseline, max(1, runs // 2))
    print(f"tardis incremental_book_L2 ({messages:,} messages, {rows:,} diff rows): load_tardis {ours:.2f}s "
          f"({rows / ours / 1e6:.2f} M rows/s) | plain-dict baseline {base:.2f}s | ratio {base / ours:.2f}x")  # fmt: skip


def bench_rest(runs: int) -> None:
    market = make_market(n_trades=20_000, trade_span_ms=6 * 3_600_000)
    start, end = market.agg_trades[0]["T"], market.agg_trades[-1]["T"] + 1
    with FakeBinance({"BTCUSDT": market}, weight_limit=10**9, window_s=1) as server:
        config = RestConfig(page_limit=1000, progress=False)

        def ours():
            out = fetch_history(
                "usdm", "BTCUSDT", start, end, ["aggTrades"], base_url=server.base_url, config=config
            )
            assert out["trades"].num_rows == 20_000

        async def bare():
            async with aiohttp.ClientSession() as session:
                from_id, rows = market.agg_trades[0]["a"], 0
                while True:
                    async with session.get(f"{server.base_url}/fapi/v1/aggTrades",
                                           params={"symbol": "BTCUSDT", "fromId": from_id, "limit": 1000}) as resp:  # fmt: skip
                        page = json.loads(await resp.read())
                    if not page:
                        break
                    rows += len(page)
                    from_id = page[-1]["a"] + 1
                assert rows == 20_000

        t_ours = median_time(ours, runs)
        t_bare = median_time(lambda: asyncio.run(bare()), runs)
    print(f"REST aggTrades (20,000 rows, 20 pages, loopback): fetch_history {t_ours:.2f}s | bare aiohttp+json "
          f"{t_bare:.2f}s | overhead ratio {t_ours / t_bare:.2f}x")  # fmt: skip


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    bench_bulk(runs)
    with tempfile.TemporaryDirectory() as folder:
        bench_tardis(runs, Path(folder))
    bench_rest(runs)


if __name__ == "__main__":
    main()
