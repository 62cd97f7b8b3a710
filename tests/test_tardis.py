"""Tardis CSV loading, checked against a plain-dict reference book and brute-force as-of sampling."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from feature_store.lake import Lake
from feature_store.sources.tardis import TardisFormatError, TardisSource, kind_of, load_tardis

T0 = 1_722_470_400_000_000  # 2024-08-01 00:00:00 UTC in µs
TICK = 0.1
GRID_MS = 100


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    def cell(v) -> str:
        if v is None:
            return ""
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)

    text = ",".join(header) + "\n" + "".join(",".join(cell(v) for v in r) + "\n" for r in rows)
    with gzip.open(path, "wt") as fh:
        fh.write(text)
    return path


def random_book_stream(seed: int = 0):
    """Snapshot, diffs, a reconnect snapshot (the book jumps), more diffs: as Tardis messages."""
    rng = np.random.default_rng(seed)
    messages = []  # (ts, local, is_snapshot, [(side, price, qty)])

    def snapshot(ts, local, zero_entry: bool):
        levels = [
            ("bid", round(60000 - TICK * k, 1), round(float(rng.uniform(0.1, 5)), 3)) for k in range(1, 31)
        ]
        levels += [
            ("ask", round(60000 + TICK * k, 1), round(float(rng.uniform(0.1, 5)), 3)) for k in range(1, 31)
        ]
        if zero_entry:
            levels.append(
                ("bid", round(60000 - TICK * 45, 1), 0.0)
            )  # Tardis: a zero entry is an absent level
        return (ts, local, True, levels)

    ts, local = T0 + 3_000, T0 + 5_000
    messages.append(snapshot(ts, local, zero_entry=True))
    for m in range(420):
        ts += int(rng.choice([0, rng.integers(1_000, 80_000)]))  # equal exchange times happen
        local = max(local + 1, ts + int(rng.integers(500, 4_000)))
        if m == 260:
            messages.append(snapshot(ts, local, zero_entry=False))
            local += 1
        changes = []
        for _ in range(int(rng.integers(1, 5))):
            side = "bid" if rng.random() < 0.5 else "ask"
            k = int(rng.integers(1, 36))
            price = round(60000 - TICK * k if side == "bid" else 60000 + TICK * k, 1)
            qty = 0.0 if rng.random() < 0.3 else round(float(rng.uniform(0.1, 5)), 3)
            changes.append((side, price, qty))
        messages.append((ts, local, False, changes))
    return messages


def reference_grid(messages, grid_ms: int):
    """Top-20 books on the grid, the plain way: per segment (a snapshot and its diffs), each grid time from the
    first diff to before the last diff gets the book after every diff with exchange time <= the grid time."""
    grid = grid_ms * 1000
    rows = []
    segments, current = [], None
    for msg in messages:
        if msg[2]:
            current = [msg, []]
            segments.append(current)
        else:
            current[1].append(msg)
    for snap, diffs in segments:
        book = {"bid": {}, "ask": {}}
        for side, price, qty in snap[3]:
            if qty > 0:
                book[side][price] = qty
        if not diffs:
            continue
        first_t, last_t = diffs[0][0], diffs[-1][0]
        g = -(-first_t // grid) * grid
        i = 0
        while g < last_t:
            while i < len(diffs) and diffs[i][0] <= g:
                for side, price, qty in diffs[i][3]:
                    if qty > 0:
                        book[side][price] = qty
                    else:
                        book[side].pop(price, None)
                i += 1
            bids = sorted(book["bid"].items(), reverse=True)[:20]
            asks = sorted(book["ask"].items())[:20]

            def pad(levels):
                px = [p for p, _ in levels] + [None] * (20 - len(levels))
                sz = [q for _, q in levels] + [0.0] * (20 - len(levels))
                return px, sz

            rows.append((g, *pad(bids), *pad(asks)))
            g += grid
    return rows


L2_HEADER = ["exchange", "symbol", "timestamp", "local_timestamp", "is_snapshot", "side", "price", "amount"]


@pytest.fixture
def l2_file(tmp_path: Path):
    messages = random_book_stream()
    rows = [["binance-futures", "BTCUSDT", ts, local, snap, side, price, qty]
            for ts, local, snap, levels in messages for side, price, qty in levels]  # fmt: skip
    path = write_csv(
        tmp_path / "binance-futures_incremental_book_L2_2024-08-01_BTCUSDT.csv.gz", L2_HEADER, rows
    )
    return path, messages


def nan_to_none(values):
    return [None if (isinstance(v, float) and np.isnan(v)) else v for v in values]


def test_incremental_book_rebuilds_exactly_like_a_reference_book(l2_file, tmp_path: Path) -> None:
    path, messages = l2_file
    out = load_tardis([path], grid_ms=GRID_MS)
    expected = reference_grid(messages, GRID_MS)
    books = out["book_snapshots"]
    assert books.num_rows == len(expected) > 50
    assert books["ts"].cast(pa.int64()).to_pylist() == [r[0] for r in expected]
    for name, k in (("bid_px", 1), ("bid_sz", 2), ("ask_px", 3), ("ask_sz", 4)):
        got = [nan_to_none(v) for v in books[name].to_pylist()]
        assert got == [r[k] for r in expected], name
    assert set(books["market"].to_pylist()) == {"usdm"} and set(books["symbol"].to_pylist()) == {"BTCUSDT"}

    updates = out["book_updates"]
    assert updates.num_rows == sum(len(m[3]) for m in messages)
    assert updates["is_snapshot"].to_pylist() == [m[2] for m in messages for _ in m[3]]
    ids = np.unique(updates["last_update_id"].to_numpy())
    assert len(ids) == len(messages) and np.all(np.diff(ids) == 1)  # one synthetic id per message, contiguous
    diffs = updates.filter(pa.compute.invert(updates["is_snapshot"]))
    assert np.all(diffs["prev_update_id"].to_numpy() == diffs["last_update_id"].to_numpy() - 1)

    lake = Lake(tmp_path / "lake")
    for table in ("book_snapshots", "book_updates"):
        report = lake.write(table, out[table])
        assert report.rows_quarantined == 0, report.reasons


def test_book_snapshot_25_is_sampled_as_of_on_the_grid(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    header = ["exchange", "symbol", "timestamp", "local_timestamp"]
    for i in range(25):
        header += [f"asks[{i}].price", f"asks[{i}].amount"]
    for i in range(25):
        header += [f"bids[{i}].price", f"bids[{i}].amount"]
    times = T0 + np.cumsum(rng.integers(10_000, 300_000, 60))
    rows, books = [], []
    for t in times:
        depth = int(rng.integers(15, 26))  # some books are thinner than 20 levels: blank cells
        asks = [(round(60000.1 + TICK * k, 1), round(float(rng.uniform(0.1, 3)), 3)) for k in range(depth)]
        bids = [(round(60000.0 - TICK * k, 1), round(float(rng.uniform(0.1, 3)), 3)) for k in range(depth)]
        cells = []
        for levels in (asks, bids):
            for i in range(25):
                cells += list(levels[i]) if i < depth else [None, None]
        rows.append(["binance-futures", "BTCUSDT", int(t), int(t) + 900, *cells])
        books.append((int(t), bids[:20], asks[:20]))
    path = write_csv(tmp_path / "binance-futures_book_snapshot_25_2024-08-01_BTCUSDT.csv.gz", header, rows)
    out = load_tardis(path, grid_ms=GRID_MS)["book_snapshots"]
    grid = GRID_MS * 1000
    g = -(-books[0][0] // grid) * grid
    expected = []
    while g <= books[-1][0]:
        t, bids, asks = [b for b in books if b[0] <= g][-1]  # brute force as-of
        expected.append(
            (
                g,
                [p for p, _ in bids] + [None] * (20 - len(bids)),
                [q for _, q in asks] + [0.0] * (20 - len(asks)),
            )
        )
        g += grid
    assert out["ts"].cast(pa.int64()).to_pylist() == [e[0] for e in expected]
    assert [nan_to_none(v) for v in out["bid_px"].to_pylist()] == [e[1] for e in expected]
    assert out["ask_sz"].to_pylist() == [e[2] for e in expected]
    assert Lake(tmp_path / "lake").write("book_snapshots", out).rows_quarantined == 0


def test_trades_and_derivative_ticker(tmp_path: Path) -> None:
    trades = write_csv(
        tmp_path / "binance-futures_trades_2024-08-01_BTCUSDT.csv.gz",
        ["exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount"],
        [
            ["binance-futures", "BTCUSDT", T0 + 20, T0 + 900, 102, "sell", 60000.1, 0.5],
            ["binance-futures", "BTCUSDT", T0 + 10, T0 + 800, 101, "buy", 60000.2, 0.25],
            ["binance-futures", "BTCUSDT", T0 + 30, T0 + 950, 103, "unknown", 60000.0, 1.0],
        ],  # fmt: skip
    )
    out = load_tardis([trades])["trades"]
    assert out["trade_id"].to_pylist() == [101, 102, 103]
    assert out["side"].to_pylist() == [1, -1, 0]
    assert out["recv_ts"].cast(pa.int64()).to_pylist() == [T0 + 800, T0 + 900, T0 + 950]
    report = Lake(tmp_path / "lake").write("trades", out)
    assert report.rows_quarantined == 1 and report.reasons == {"bad_side": 1}  # 'unknown' side is not guessed

    header = ["exchange", "symbol", "timestamp", "local_timestamp", "funding_timestamp", "funding_rate",
              "predicted_funding_rate", "open_interest", "last_price", "index_price", "mark_price"]  # fmt: skip
    f8 = 1_722_499_200_000_000
    ticker = write_csv(
        tmp_path / "binance-futures_derivative_ticker_2024-08-01_BTCUSDT.csv.gz",
        header,
        [
            [
                "binance-futures",
                "BTCUSDT",
                T0 + 1_000_000,
                T0 + 1_000_500,
                f8,
                0.0001,
                None,
                80000.5,
                60000,
                59990.1,
                60001.2,
            ],
            [
                "binance-futures",
                "BTCUSDT",
                T0 + 2_000_000,
                T0 + 2_000_400,
                f8,
                0.00012,
                None,
                80000.5,
                60001,
                59991.0,
                60002.0,
            ],
            [
                "binance-futures",
                "BTCUSDT",
                T0 + 3_000_000,
                T0 + 3_000_300,
                f8,
                0.00012,
                None,
                80100.0,
                60001,
                None,
                None,
            ],
        ],  # fmt: skip
    )
    out = load_tardis([ticker])
    marks = out["mark_prices"]
    assert marks["mark_price"].to_pylist() == [60001.2, 60002.0]
    assert marks["est_funding_rate"].to_pylist() == [0.0001, 0.00012]
    assert marks["next_funding_ts"].cast(pa.int64()).to_pylist() == [f8, f8]
    oi = out["open_interest"]
    assert oi["open_interest"].to_pylist() == [80000.5, 80100.0]  # only changes of open interest
    assert oi["ts"].cast(pa.int64()).to_pylist() == [T0 + 1_000_000, T0 + 3_000_000]


def test_format_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(TardisFormatError, match="cannot tell the Tardis data type"):
        kind_of(tmp_path / "mystery.csv.gz")
    bad = write_csv(
        tmp_path / "binance-futures_trades_2024-08-01_BTCUSDT.csv.gz",
        ["exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount"],
        [["binance-futures", "BTCUSDT", T0, T0, "a1b2", "buy", 1.0, 1.0]],
    )
    with pytest.raises(TardisFormatError, match=r"trades_2024-08-01_BTCUSDT.csv.gz: trade id 'a1b2'"):
        load_tardis(bad)
    with pytest.raises(TardisFormatError, match="not a readable Tardis CSV"):
        load_tardis(bad, kind="incremental_book_L2")


def test_tardis_source_finds_the_day_files(l2_file) -> None:
    path, _ = l2_file
    source = TardisSource(path.parent, kinds=("incremental_book_L2", "trades"))
    assert source.tables() == ("book_updates", "book_snapshots", "trades")
    out = source.load_day("btcusdt", date(2024, 8, 1))
    assert set(out) == {"book_updates", "book_snapshots"}  # no trades file that day: no trades table
    assert source.load_day("BTCUSDT", date(2024, 8, 2)) == {}
