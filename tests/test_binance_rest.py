"""Binance REST history against a fake Binance that enforces weight limits and injects faults, plus parsing of
recorded real REST responses (tests/data/rest, from cryptofeed's sample data)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from fake_binance import HOUR_MS, FakeBinance, FaultPlan, Market, make_market

from feature_store.lake import Lake, validate
from feature_store.records import BookSnapshot, BookUpdate
from feature_store.sources.binance_rest import (
    MARKETS,
    BinanceBannedError,
    BinanceRestError,
    BinanceRestSource,
    FetchStats,
    HistoryFetcher,
    RestConfig,
    clear_checkpoints,
    depth_to_book_snapshot,
    fetch_history,
    parse_depth_snapshot,
    weight_rule_from_exchange_info,
)

REPO = Path(__file__).resolve().parents[1]
REST_DATA = Path(__file__).parent / "data" / "rest"
WHAT = ["aggTrades", "klines", "fundingRate", "markPrice"]


def fast_config(**overrides) -> RestConfig:
    base = dict(
        page_limit=100,
        request_timeout_s=0.3,
        backoff_base_s=0.02,
        backoff_cap_s=0.2,
        checkpoint_every_pages=2,
        progress=False,
    )
    return RestConfig(**{**base, **overrides})


# -- the ground truth, computed straight from the fake market's JSON -----------------------------------------
def truth_trades(m: Market, start_ms: int, end_ms: int) -> dict[str, list]:
    rows = [r for r in m.agg_trades if start_ms <= r["T"] < end_ms]
    return {
        "trade_id": [r["a"] for r in rows],
        "ts": [r["T"] * 1000 for r in rows],
        "price": [float(r["p"]) for r in rows],
        "qty": [float(r["q"]) for r in rows],
        "side": [-1 if r["m"] else 1 for r in rows],
    }


def truth_klines(rows: list[list], start_ms: int, end_ms: int) -> dict[str, list]:
    rows = [r for r in rows if start_ms <= r[0] < end_ms]
    return {
        "ts": [r[0] * 1000 for r in rows],
        "close_ts": [r[6] * 1000 for r in rows],
        "open": [float(r[1]) for r in rows],
        "close": [float(r[4]) for r in rows],
        "volume": [float(r[5]) for r in rows],
        "trade_count": [r[8] for r in rows],
    }


def truth_funding(m: Market, start_ms: int, end_ms: int) -> dict[str, list]:
    rows = [r for r in m.funding if start_ms <= r["fundingTime"] < end_ms]
    return {
        "ts": [r["fundingTime"] * 1000 for r in rows],
        "rate": [float(r["fundingRate"]) for r in rows],
        "mark_price": [float(r["markPrice"]) if r["markPrice"] else None for r in rows],
        "interval_hours": [8.0] * len(rows),
    }


def columns(table: pa.Table, names) -> dict[str, list]:
    out = {}
    for name in names:
        col = table[name]
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.int64())
        values = col.to_pylist()
        out[name] = [None if isinstance(v, float) and np.isnan(v) else v for v in values]
    return out


def assert_equals_truth(out: dict[str, pa.Table], m: Market, start_ms: int, end_ms: int) -> None:
    expected = truth_trades(m, start_ms, end_ms)
    assert columns(out["trades"], expected) == expected
    expected = truth_klines(m.klines, start_ms, end_ms)
    assert columns(out["klines"], expected) == expected
    expected = truth_funding(m, start_ms, end_ms)
    assert columns(out["funding_rates"], expected) == expected
    marks = [r for r in m.mark_klines if start_ms <= r[0] < end_ms]
    index = {r[0]: float(r[4]) for r in m.index_klines}
    assert columns(out["mark_prices"], ["ts", "mark_price", "index_price"]) == {
        "ts": [r[6] * 1000 for r in marks],
        "mark_price": [float(r[4]) for r in marks],
        "index_price": [index[r[0]] for r in marks],
    }


@pytest.fixture(scope="module")
def market() -> Market:
    return make_market()


def test_faulty_throttled_server_lands_the_ground_truth(market: Market) -> None:
    """>= 20 % injected faults, a weight limit shared with another process on the 'same IP', and the landed
    data still equals the ground truth exactly; the weight limit is never exceeded and no 418 is provoked."""
    plan = FaultPlan(rate=0.3, retry_after_s=0.2, timeout_delay_s=0.6)
    limit = 600
    with FakeBinance({"BTCUSDT": market}, weight_limit=limit, window_s=1, faults=plan,
                     background_weight=200, seed=11) as server:  # fmt: skip
        # Start two quiet hours before the first trade: the client must step over empty aggTrades windows.
        start_ms = market.agg_trades[0]["T"] - 2 * HOUR_MS
        end_ms = market.funding[-1]["fundingTime"] - 5 * 24 * HOUR_MS
        stats = FetchStats()
        out = fetch_history("usdm", "btcusdt", start_ms, end_ms, WHAT, base_url=server.base_url,
                            config=fast_config(), stats=stats)  # fmt: skip
        assert_equals_truth(out, market, start_ms, end_ms)

        now = int(time.time() * 1000)
        recent = fetch_history("usdm", "BTCUSDT", now - 3 * 24 * HOUR_MS, now - 24 * HOUR_MS,
                               ["openInterest", "premiumIndex"], base_url=server.base_url,
                               config=fast_config(), stats=stats)  # fmt: skip
        oi = [
            r for r in market.open_interest if now - 3 * 24 * HOUR_MS <= r["timestamp"] < now - 24 * HOUR_MS
        ]
        assert columns(recent["open_interest"], ["ts", "open_interest"]) == {
            "ts": [r["timestamp"] * 1000 for r in oi],
            "open_interest": [float(r["sumOpenInterest"]) for r in oi],
        }
        assert recent["mark_prices"]["mark_price"].to_pylist() == [float(market.premium["markPrice"])]

        s = server.stats
        fault_rate = s.faults_total / s.requests
        print(
            f"\nfault injection: {s.requests} requests, {s.faults_total} faults ({fault_rate:.0%}) "
            f"{dict(s.faults)}; client retries={stats.retries}, 429 waits={stats.rate_limited_429}, "
            f"throttle waits={stats.throttle_waits} ({stats.throttle_wait_s:.1f}s), "
            f"overlap rows dropped={stats.overlap_rows_dropped}, stale pages={s.stale_pages}; max window weight={s.max_window_weight}/{limit}"
        )
        assert fault_rate >= 0.2
        assert set(s.faults) == {"429", "5xx", "timeout", "truncated", "overlap"}
        assert s.stale_pages > 0  # some overlapping pages held nothing new: the client asked again
        assert s.bans_418 == 0
        assert s.limit_429 == 0  # the client never went over the weight limit on its own
        assert s.max_window_weight <= limit
        assert stats.throttle_waits > 0  # the limit did bind: the client waited for windows to reset
        assert stats.retries >= s.faults["5xx"] + s.faults["timeout"] + s.faults["truncated"]


_CHILD = """
import json, sys
from feature_store.sources.binance_rest import RestConfig, fetch_history
args = json.loads(sys.argv[1])
fetch_history("usdm", "BTCUSDT", args["start"], args["end"], args["what"], base_url=args["url"],
              lake_root=args["lake"], config=RestConfig(**args["config"]))
"""


def _checkpoints(lake_root: Path) -> int:
    """How many aggTrades checkpoints the child has committed so far."""
    try:
        dt = DeltaTable(str(lake_root / "state" / "rest_cursors"))
    except TableNotFoundError:
        return 0
    job_ids = dt.to_pyarrow_dataset().to_table(columns=["job_id"])["job_id"].to_pylist()
    return sum("aggTrades" in job_id for job_id in job_ids)


def test_killed_run_resumes_without_duplicates_or_holes(market: Market, tmp_path: Path) -> None:
    lake_root = tmp_path / "lake"
    start_ms = market.agg_trades[0]["T"] - 1
    end_ms = market.agg_trades[-1]["T"] + 1
    config = dict(page_limit=100, request_timeout_s=0.3, backoff_base_s=0.02, backoff_cap_s=0.2,
                  checkpoint_every_pages=2, progress=False)  # fmt: skip
    plan = FaultPlan(rate=0.2, retry_after_s=0.2, timeout_delay_s=0.6)
    with FakeBinance({"BTCUSDT": market}, weight_limit=200, window_s=1, faults=plan, seed=5) as server:
        args = dict(start=start_ms, end=end_ms, what=["aggTrades", "fundingRate"], url=server.base_url,
                    lake=str(lake_root), config=config)  # fmt: skip
        child = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(args)], cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.time() + 60
        while _checkpoints(lake_root) < 3 and child.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert child.poll() is None, (
            f"the fetch ended before it could be killed: {child.stderr.read()[-800:]}"
        )
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        first_run_requests = len(server.stats.log)

        stats = FetchStats()
        out = fetch_history("usdm", "BTCUSDT", start_ms, end_ms, ["aggTrades", "fundingRate"],
                            base_url=server.base_url, lake_root=str(lake_root),
                            config=RestConfig(**config), stats=stats)  # fmt: skip
        resumed = [q for path, q in server.stats.log[first_run_requests:] if path == "/fapi/v1/aggTrades"]
        assert server.stats.bans_418 == 0

    expected = truth_trades(market, start_ms, end_ms)
    assert columns(out["trades"], expected) == expected
    assert stats.resumed_jobs >= 1
    # It went on from the checkpoint (a fromId well past the first trade), not from the start.
    assert "startTime" not in resumed[0]
    assert int(resumed[0]["fromId"]) >= expected["trade_id"][0] + 2 * 100

    lake = Lake(lake_root)
    report = lake.write("trades", out["trades"])
    assert report.rows_quarantined == 0 and report.duplicates_dropped == 0
    landed = lake.read("trades", symbol="BTCUSDT")
    assert landed["trade_id"].to_pylist() == expected["trade_id"]

    # Everything is checkpointed as done: a third run asks the exchange for nothing but exchangeInfo.
    with FakeBinance({"BTCUSDT": market}, weight_limit=200, window_s=1) as server:
        again = fetch_history("usdm", "BTCUSDT", start_ms, end_ms, ["aggTrades", "fundingRate"],
                              base_url=server.base_url, lake_root=str(lake_root), config=RestConfig(**config))  # fmt: skip
        assert dict(server.stats.by_path) == {"/fapi/v1/exchangeInfo": 1}
        assert again["trades"].equals(out["trades"])
        # Forgetting the checkpoints makes the next fetch ask the exchange again, from the start.
        assert clear_checkpoints(str(lake_root), "usdm", "BTCUSDT") == 2
        fetch_history("usdm", "BTCUSDT", start_ms, end_ms, ["fundingRate"], base_url=server.base_url,
                      lake_root=str(lake_root), config=RestConfig(**config))  # fmt: skip
        assert server.stats.by_path["/fapi/v1/fundingRate"] >= 1


def test_ban_stops_the_fetch_with_a_clear_error(market: Market) -> None:
    with FakeBinance({"BTCUSDT": market}) as server:
        server._banned_until = time.time() + 60  # the IP is already banned (by someone else's run)
        with pytest.raises(BinanceBannedError, match="418.*banned.*rerun after the ban"):
            fetch_history("usdm", "BTCUSDT", 0, 1000, ["aggTrades"], base_url=server.base_url,
                          config=fast_config())  # fmt: skip
        assert server.stats.requests == 1  # it stopped at once


def test_unknown_symbol_error_names_the_request(market: Market) -> None:
    with (
        FakeBinance({"BTCUSDT": market}) as server,
        pytest.raises(BinanceRestError, match="ETHUSDT.*HTTP 400.*-1121"),
    ):
        fetch_history("usdm", "ETHUSDT", market.funding[0]["fundingTime"], market.funding[3]["fundingTime"],
                          ["fundingRate"], base_url=server.base_url, config=fast_config())  # fmt: skip


def test_bad_arguments_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="unknown dataset.*choose from"):
        fetch_history("usdm", "BTCUSDT", 0, 1, ["trades"])
    with pytest.raises(ValueError, match="empty time range"):
        fetch_history("usdm", "BTCUSDT", "2024-08-02", "2024-08-01", ["aggTrades"])


# -- recorded real responses ---------------------------------------------------------------------------
def recorded(name: str) -> list[tuple[str, float, dict]]:
    """cryptofeed's recording format: `<url> -> <unix ts>: <JSON body>` per line."""
    path = REST_DATA / name
    if name.endswith(".gz"):
        with gzip.open(path, "rt") as fh:
            text = fh.read()
    else:
        text = path.read_text()
    out = []
    for line in text.splitlines():
        if " -> " not in line.split(": ", 1)[0]:
            continue  # blank lines and the recorder's own `configuration: {...}` line
        head, body = line.split(": ", 1)
        url, ts = head.split(" -> ")
        out.append((url, float(ts), json.loads(body)))
    return out


@pytest.mark.parametrize(
    ("name", "market"), [("BINANCE.http.0.0", "spot"), ("BINANCE_FUTURES.http.0.0", "usdm")]
)
def test_recorded_depth_snapshots_parse_into_valid_records(name: str, market: str) -> None:
    responses = recorded(name)
    assert len(responses) == 4
    for url, recv_s, payload in responses:
        symbol = url.split("symbol=")[1].split("&")[0]
        recv_us = int(recv_s * 1e6)
        updates = parse_depth_snapshot(payload, market, symbol, recv_us)
        assert updates.schema == BookUpdate.schema
        assert updates.num_rows == len(payload["bids"]) + len(payload["asks"])
        assert set(updates["last_update_id"].to_pylist()) == {payload["lastUpdateId"]}
        bids = updates.filter(pa.compute.equal(updates["side"], 1))
        assert bids["price"].to_pylist() == [float(p) for p, _ in payload["bids"]]
        assert bids["qty"].to_pylist() == [float(q) for _, q in payload["bids"]]
        if market == "usdm":
            assert updates["ts"].cast(pa.int64())[0].as_py() == payload["T"] * 1000
        assert validate(BookUpdate, updates, {symbol}).null_count == updates.num_rows  # every row valid

        book = depth_to_book_snapshot(payload, market, symbol, recv_us)
        assert book.schema == BookSnapshot.schema
        assert validate(BookSnapshot, book, {symbol}).null_count == 1
        bid_px = np.asarray(book["bid_px"][0].as_py())
        ask_px = np.asarray(book["ask_px"][0].as_py())
        assert bid_px[0] == max(float(p) for p, _ in payload["bids"])
        assert ask_px[0] == min(float(p) for p, _ in payload["asks"])
        assert np.all(np.diff(bid_px) < 0) and np.all(np.diff(ask_px) > 0)


def test_recorded_exchange_info_gives_the_weight_rule() -> None:
    (_, _, futures), *_ = recorded("BINANCE_FUTURES.0")
    rule = weight_rule_from_exchange_info(futures)
    assert (rule.limit, rule.window_s, rule.header) == (2400, 60, "x-mbx-used-weight-1m")
    (_, _, spot), *_ = recorded("BINANCE.0.gz")
    rule = weight_rule_from_exchange_info(spot)
    assert (rule.limit, rule.window_s) == (1200, 60)


def test_only_finished_bars_are_fetched() -> None:
    """The bar in progress is cut off: minute, hour, Monday-aligned week and calendar month boundaries."""
    now = datetime(2024, 8, 8, 13, 45, 10, 123_000, tzinfo=UTC)  # a Thursday
    client = SimpleNamespace(server_now_ms=lambda: int(now.timestamp() * 1000), stats=FetchStats(),
                             config=RestConfig(), api=MARKETS["usdm"])  # fmt: skip
    fetcher = HistoryFetcher(client, "usdm", "BTCUSDT", None)
    expected = {
        "1m": datetime(2024, 8, 8, 13, 45, tzinfo=UTC),
        "1h": datetime(2024, 8, 8, 13, tzinfo=UTC),
        "1d": datetime(2024, 8, 8, tzinfo=UTC),
        "1w": datetime(2024, 8, 5, tzinfo=UTC),
        "1M": datetime(2024, 8, 1, tzinfo=UTC),
    }
    for interval, boundary in expected.items():
        assert fetcher._finished_bar_end(interval) == int(boundary.timestamp() * 1000), interval


def test_rest_source_loads_one_day(market: Market) -> None:
    day = datetime.fromtimestamp(market.funding[10]["fundingTime"] / 1000, UTC).date()
    with FakeBinance({"BTCUSDT": market}) as server:
        source = BinanceRestSource(what=("fundingRate",), base_url=server.base_url, config=fast_config())
        assert source.tables() == ("funding_rates",)
        out = source.load_day("BTCUSDT", day)
    assert [d for d in out["funding_rates"]["date"].to_pylist()] == [day.isoformat()] * 3


def test_real_limit_429_is_waited_out_without_a_ban(market: Market) -> None:
    """The server charges 1.5x the documented weights and the client uses the whole budget: it overshoots,
    gets 429s for real, waits out each Retry-After, and never sends inside one (no 418); the data is exact."""
    with FakeBinance({"BTCUSDT": market}, weight_limit=200, window_s=1, weight_factor=1.5) as server:
        start_ms, end_ms = market.agg_trades[0]["T"], market.agg_trades[1200]["T"]
        stats = FetchStats()
        out = fetch_history("usdm", "BTCUSDT", start_ms, end_ms, ["aggTrades"], base_url=server.base_url,
                            config=fast_config(weight_safety=1.0), stats=stats)  # fmt: skip
        assert server.stats.limit_429 > 0 and stats.rate_limited_429 == server.stats.limit_429
        assert server.stats.bans_418 == 0
    expected = truth_trades(market, start_ms, end_ms)
    assert columns(out["trades"], expected) == expected


def test_coin_m_uses_the_dapi_paths() -> None:
    coin = make_market(symbol="BTCUSD_PERP", n_trades=400, seed=3)
    with FakeBinance({"BTCUSD_PERP": coin}, weight_limit=600, window_s=1) as server:
        start_ms, end_ms = coin.agg_trades[0]["T"], coin.agg_trades[-1]["T"] + 1
        out = fetch_history("coinm", "BTCUSD_PERP", start_ms, end_ms, ["aggTrades", "klines"],
                            base_url=server.base_url, config=fast_config())  # fmt: skip
        assert set(server.stats.by_path) == {"/dapi/v1/exchangeInfo", "/dapi/v1/aggTrades", "/dapi/v1/klines"}
    expected = truth_trades(coin, start_ms, end_ms)
    assert columns(out["trades"], expected) == expected
    assert set(out["trades"]["market"].to_pylist()) == {"coinm"}
    assert out["klines"].num_rows == len([r for r in coin.klines if start_ms <= r[0] < end_ms])


def test_checkpoints_from_concurrent_processes_all_land(tmp_path: Path) -> None:
    """Two fetches (say two Dagster partitions) checkpointing into one lake at once lose nothing."""
    import threading

    from feature_store.sources.binance_rest import CheckpointStore, agg_trades_table

    rows = [{"a": 1, "p": "1.0", "q": "1.0", "T": 1_722_470_400_000, "m": True}]
    errors = []

    def run(job: str) -> None:
        store = CheckpointStore(str(tmp_path / "lake"))
        try:
            for seq in range(1, 16):
                store.save(
                    job,
                    "trades",
                    seq,
                    agg_trades_table(rows, "usdm", "BTCUSDT"),
                    {"from_id": seq},
                    seq,
                    False,
                )
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"job{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    store = CheckpointStore(str(tmp_path / "lake"))
    for job in ("job0", "job1"):
        seq, cursor, done, staged = store.load(job, "trades")
        assert (seq, cursor, done) == (15, {"from_id": 15}, False)
        assert sum(t.num_rows for t in staged) == 15
