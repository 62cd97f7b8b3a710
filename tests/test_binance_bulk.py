"""Binance bulk archives served by the fake data.binance.vision: checksums, header/no-header, ms/µs, re-sorting."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from fake_binance import FakeBinance

from feature_store.lake import Lake
from feature_store.sources.binance_bulk import (
    BinanceBulkSource,
    BulkFileMissingError,
    ChecksumMismatchError,
    bulk_path,
    load_bulk,
    parse_bulk_csv,
    periods,
)

rng = np.random.default_rng(3)


def _ms(day: str, seconds: float = 0.0) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000 + seconds * 1000)


def make_zip(name: str, csv_text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name.replace(".zip", ".csv"), csv_text)
    return buf.getvalue()


def publish(files: dict[str, bytes], path: str, csv_text: str, bad_checksum: bool = False) -> None:
    body = make_zip(path.rsplit("/", 1)[1], csv_text)
    digest = hashlib.sha256(body + (b"x" if bad_checksum else b"")).hexdigest()
    files[path] = body
    files[path + ".CHECKSUM"] = f"{digest}  {path.rsplit('/', 1)[1]}\n".encode()


def agg_rows(day: str, n: int, first_id: int, micros: bool) -> list[tuple]:
    """(id, price, qty, first, last, time, maker) truth rows of one day, in time order."""
    t = np.sort(rng.integers(0, 86_400_000, n)) + _ms(day)
    return [
        (
            first_id + i,
            round(60000 + rng.normal(0, 50), 1),
            round(float(rng.uniform(0.001, 3)), 3),
            7 * i,
            7 * i + 3,
            int(t[i]) * (1000 if micros else 1),
            bool(rng.random() < 0.5),
        )  # fmt: skip
        for i in range(n)
    ]


def csv_of(rows: list[tuple], header: str | None, shuffle: bool, extra: str | None = None) -> str:
    rows = list(rows)
    if shuffle:
        order = rng.permutation(len(rows))
        rows = [rows[i] for i in order]
    lines = [header] if header else []
    for r in rows:
        fields = [("true" if v else "false") if isinstance(v, bool) else str(v) for v in r]
        lines.append(",".join(fields + ([extra] if extra else [])))
    return "\n".join(lines) + "\n"


UM_AGG_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"


@pytest.fixture(scope="module")
def archive():
    files: dict[str, bytes] = {}
    truth: dict[str, list] = {}
    # USD-M aggTrades: two days with a header row, ms times, rows shuffled; one old day without a header.
    truth["um_agg"] = []
    for k, day in enumerate(["2024-08-08", "2024-08-09"]):
        rows = agg_rows(day, 400, 1_000_000 + 400 * k, micros=False)
        truth["um_agg"] += rows
        publish(
            files, bulk_path("usdm", "aggTrades", "BTCUSDT", day), csv_of(rows, UM_AGG_HEADER, shuffle=True)
        )
    rows = agg_rows("2022-01-05", 300, 10, micros=False)
    truth["um_agg_old"] = rows
    publish(files, bulk_path("usdm", "aggTrades", "BTCUSDT", "2022-01-05"), csv_of(rows, None, shuffle=False))
    # Spot aggTrades in 2025: no header, µs times, the extra isBestMatch column.
    rows = agg_rows("2025-01-02", 300, 5_000, micros=True)
    truth["spot_agg"] = rows
    publish(files, bulk_path("spot", "aggTrades", "BTCUSDT", "2025-01-02"), csv_of(rows, None, False, "True"))
    # Spot trades, monthly, no header, ms.
    t = np.sort(rng.integers(0, 20 * 86_400_000, 200)) + _ms("2024-07-01")
    rows = [
        (900 + i, 60000.5 + i % 7, 0.01 * (1 + i % 5), 1.0, int(t[i]), bool(i % 3 == 0)) for i in range(200)
    ]
    truth["spot_trades"] = rows
    publish(files, bulk_path("spot", "trades", "BTCUSDT", "2024-07"), csv_of(rows, None, True, "True"))
    # bookTicker with interleaved rows.
    base = _ms("2024-01-15")
    rows = [(3_831_603_310_013 + i, 2474.30 + i % 3 * 0.01, 6.009 + i, 2474.31 + i % 3 * 0.01, 44.757, base + 10 * i,
             base + 10 * i + 5) for i in range(120)]  # fmt: skip
    truth["ticker"] = rows
    header = "update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time"
    publish(files, bulk_path("usdm", "bookTicker", "ETHUSDT", "2024-01-15"), csv_of(rows, header, True))
    # bookDepth: text timestamps, bands -5..5.
    lines = ["timestamp,percentage,depth,notional"]
    truth["depth"] = []
    for s in range(3):
        stamp = f"2025-05-19 11:0{7 + s}:31"
        for pct in (-5, -4, -3, -2, -1, 1, 2, 3, 4, 5):
            depth = 1000.0 * abs(pct) + s
            lines.append(f"{stamp},{pct},{depth:.8f},{depth * 82000:.8f}")
            truth["depth"].append((stamp, pct, depth))
    publish(files, bulk_path("usdm", "bookDepth", "BTCUSDT", "2025-05-19"), "\n".join(lines) + "\n")
    # fundingRate (monthly) and metrics (daily).
    rows = [
        (_ms("2024-03-01") + 8 * 3_600_000 * k + 2, 8, round(float(rng.normal(1e-4, 1e-4)), 8))
        for k in range(93)
    ]
    truth["funding"] = rows
    publish(files, bulk_path("usdm", "fundingRate", "BTCUSDT", "2024-03"),
            csv_of(rows, "calc_time,funding_interval_hours,last_funding_rate", False))  # fmt: skip
    lines = ["create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
             "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio"]  # fmt: skip
    truth["metrics"] = []
    for k in range(288):
        hh, mm = divmod(5 * k, 60)
        oi = 80000 + k
        lines.append(f"2024-08-08 {hh:02d}:{mm:02d}:00,BTCUSDT,{oi}.5,{oi * 60000}.25,1.1,1.2,1.3,0.9")
        truth["metrics"].append((_ms("2024-08-08", 300 * k), oi + 0.5))
    publish(files, bulk_path("usdm", "metrics", "BTCUSDT", "2024-08-08"), "\n".join(lines) + "\n")
    # A file whose published checksum does not match.
    publish(files, bulk_path("usdm", "aggTrades", "BTCUSDT", "2024-08-10"),
            csv_of(agg_rows("2024-08-10", 50, 2_000_000, False), UM_AGG_HEADER, False), bad_checksum=True)  # fmt: skip
    with FakeBinance(files=files, bulk_fault_rate=0.3, seed=2) as server:
        yield server, truth


def trades_of(rows: list[tuple], time_index: int = 5, micros: bool = False) -> dict[str, list]:
    rows = sorted(rows, key=lambda r: (r[time_index], r[0]))
    return {
        "trade_id": [r[0] for r in rows],
        "ts": [r[time_index] if micros else r[time_index] * 1000 for r in rows],
        "price": [r[1] for r in rows],
        "qty": [r[2] for r in rows],
        "side": [-1 if r[-1] else 1 for r in rows],
    }


def cols(table: pa.Table, names) -> dict[str, list]:
    return {n: (table[n].cast(pa.int64()) if pa.types.is_timestamp(table[n].type) else table[n]).to_pylist()
            for n in names}  # fmt: skip


def test_daily_files_with_header_shuffled_rows_and_transient_faults(archive, tmp_path: Path) -> None:
    server, truth = archive
    out = load_bulk("usdm", "aggTrades", "BTCUSDT", "2024-08-08", "2024-08-09", base_url=server.base_url, retry_backoff_s=0.01,
                    cache_dir=tmp_path / "cache")  # fmt: skip
    expected = trades_of(truth["um_agg"])
    assert cols(out, expected) == expected
    # Lands cleanly: sorted, valid, no duplicates.
    report = Lake(tmp_path / "lake").write("trades", out)
    assert report.rows_written == 800 and report.rows_quarantined == 0
    assert server.stats.faults_total > 0  # 5xx and truncated downloads were retried
    # The verified cache is reused: a second load downloads no zip again.
    downloads = server.stats.bulk_downloads
    load_bulk("usdm", "aggTrades", "BTCUSDT", "2024-08-08", "2024-08-09", base_url=server.base_url, retry_backoff_s=0.01,
              cache_dir=tmp_path / "cache")  # fmt: skip
    assert server.stats.bulk_downloads - downloads == 2  # only the two small CHECKSUM files


def test_old_futures_file_without_header(archive) -> None:
    server, truth = archive
    out = load_bulk(
        "usdm",
        "aggTrades",
        "BTCUSDT",
        "2022-01-05",
        "2022-01-05",
        base_url=server.base_url,
        retry_backoff_s=0.01,
    )
    expected = trades_of(truth["um_agg_old"])
    assert cols(out, expected) == expected


def test_spot_microsecond_file_with_extra_column(archive) -> None:
    server, truth = archive
    out = load_bulk(
        "spot",
        "aggTrades",
        "BTCUSDT",
        "2025-01-02",
        "2025-01-02",
        base_url=server.base_url,
        retry_backoff_s=0.01,
    )
    expected = trades_of(truth["spot_agg"], micros=True)
    assert cols(out, expected) == expected
    assert out["market"].unique().to_pylist() == ["spot"]


def test_monthly_file_is_trimmed_to_the_requested_days(archive) -> None:
    server, truth = archive
    out = load_bulk("spot", "trades", "BTCUSDT", "2024-07-03", "2024-07-05", frequency="monthly",
                    base_url=server.base_url, retry_backoff_s=0.01)  # fmt: skip
    lo, hi = _ms("2024-07-03"), _ms("2024-07-06")
    expected = trades_of([r for r in truth["spot_trades"] if lo <= r[4] < hi], time_index=4)
    assert len(expected["trade_id"]) > 0
    assert cols(out, expected) == expected


def test_book_ticker_depth_funding_and_metrics(archive, tmp_path: Path) -> None:
    server, truth = archive
    ticker = load_bulk(
        "usdm",
        "bookTicker",
        "ETHUSDT",
        "2024-01-15",
        "2024-01-15",
        base_url=server.base_url,
        retry_backoff_s=0.01,
    )
    rows = sorted(truth["ticker"], key=lambda r: r[5])
    assert cols(ticker, ["update_id", "ts", "recv_ts", "bid_px", "ask_sz"]) == {
        "update_id": [r[0] for r in rows],
        "ts": [r[5] * 1000 for r in rows],
        "recv_ts": [r[6] * 1000 for r in rows],
        "bid_px": [r[1] for r in rows],
        "ask_sz": [r[4] for r in rows],
    }
    depth = load_bulk(
        "usdm",
        "bookDepth",
        "BTCUSDT",
        "2025-05-19",
        "2025-05-19",
        base_url=server.base_url,
        retry_backoff_s=0.01,
    )
    assert cols(depth, ["percentage", "depth"]) == {
        "percentage": [float(r[1]) for r in truth["depth"]],
        "depth": [r[2] for r in truth["depth"]],
    }
    assert depth["ts"][0].as_py() == datetime(2025, 5, 19, 11, 7, 31, tzinfo=UTC)
    funding = load_bulk(
        "usdm",
        "fundingRate",
        "BTCUSDT",
        "2024-03-01",
        "2024-03-31",
        base_url=server.base_url,
        retry_backoff_s=0.01,
    )
    assert cols(funding, ["ts", "rate", "interval_hours"]) == {
        "ts": [r[0] * 1000 for r in truth["funding"]],
        "rate": [r[2] for r in truth["funding"]],
        "interval_hours": [8.0] * 93,
    }
    metrics = load_bulk(
        "usdm",
        "metrics",
        "BTCUSDT",
        "2024-08-08",
        "2024-08-08",
        base_url=server.base_url,
        retry_backoff_s=0.01,
    )
    assert cols(metrics, ["ts", "open_interest"]) == {
        "ts": [t * 1000 for t, _ in truth["metrics"]],
        "open_interest": [oi for _, oi in truth["metrics"]],
    }
    lake = Lake(tmp_path / "lake")
    for table, data in [("book_tickers", ticker), ("book_depth", depth), ("funding_rates", funding),
                        ("open_interest", metrics)]:  # fmt: skip
        report = lake.write(table, data)
        assert report.rows_quarantined == 0 and report.rows_written == data.num_rows


def test_bad_checksum_is_refused_naming_the_file(archive, tmp_path: Path) -> None:
    server, _ = archive
    name = "BTCUSDT-aggTrades-2024-08-10.zip"
    with pytest.raises(ChecksumMismatchError, match=rf"{name}: sha256 [0-9a-f]{{64}} does not match"):
        load_bulk("usdm", "aggTrades", "BTCUSDT", "2024-08-10", "2024-08-10", base_url=server.base_url, retry_backoff_s=0.01,
                  cache_dir=tmp_path)  # fmt: skip
    assert not list(tmp_path.glob("*.zip*"))  # nothing refused is kept


def test_missing_files_raise_or_are_skipped(archive) -> None:
    server, truth = archive
    with pytest.raises(BulkFileMissingError, match="2024-08-07.zip.*not in the archive"):
        load_bulk(
            "usdm",
            "aggTrades",
            "BTCUSDT",
            "2024-08-07",
            "2024-08-08",
            base_url=server.base_url,
            retry_backoff_s=0.01,
        )
    out = load_bulk("usdm", "aggTrades", "BTCUSDT", "2024-08-07", "2024-08-08", base_url=server.base_url, retry_backoff_s=0.01,
                    skip_missing=True)  # fmt: skip
    assert out.num_rows == 400


def test_paths_periods_and_argument_errors() -> None:
    assert bulk_path("spot", "aggTrades", "btcusdt", "2024-08-08") == (
        "data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-08-08.zip"
    )
    assert bulk_path("usdm", "klines", "BTCUSDT", "2020-08", "1h") == (
        "data/futures/um/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2020-08.zip"
    )
    assert periods("2023-11-30", "2024-02-01", "monthly") == ["2023-11", "2023-12", "2024-01", "2024-02"]
    assert periods("2024-02-28", "2024-03-01", "daily") == ["2024-02-28", "2024-02-29", "2024-03-01"]
    with pytest.raises(ValueError, match="no bookTicker archive for spot"):
        bulk_path("spot", "bookTicker", "BTCUSDT", "2024-01-01")
    with pytest.raises(ValueError, match="monthly only"):
        bulk_path("usdm", "fundingRate", "BTCUSDT", "2024-01-01")


def test_klines_csv_parses() -> None:
    open_ms = _ms("2024-08-08")
    text = (
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
        "taker_buy_quote_volume,ignore\n"
        f"{open_ms},60000.1,60010.0,59990.0,60005.5,12.5,{open_ms + 59_999},750000.0,321,6.0,360000.0,0\n"
    )
    out = parse_bulk_csv(text.encode(), "klines", "usdm", "BTCUSDT", interval="1m")
    assert cols(out, ["ts", "close_ts", "close", "trade_count"]) == {
        "ts": [open_ms * 1000],
        "close_ts": [(open_ms + 59_999) * 1000],
        "close": [60005.5],
        "trade_count": [321],
    }


def test_bulk_source_loads_one_day(archive) -> None:
    server, truth = archive
    source = BinanceBulkSource(kinds=("aggTrades", "metrics"), base_url=server.base_url)
    assert source.tables() == ("trades", "open_interest")
    out = source.load_day("BTCUSDT", date(2024, 8, 8))
    assert out["trades"].num_rows == 400 and out["open_interest"].num_rows == 288
    with pytest.raises(ValueError, match="same table.*trades.*pick one"):
        BinanceBulkSource(kinds=("aggTrades", "trades"))
