"""Binance WebSocket captures (feature_store.sources.binance_capture) on real recorded data.

Uses the project's sample (data/binance_sample, always present) and, where it exists, every capture in
../shared/data/binance. Checks that are computed independently here: trade events counted from the raw lines, a
plain-dict rebuild of the book following Binance's documented procedure, and gaps made by deleting real lines.
"""

from __future__ import annotations

import functools
import gzip
import heapq
import json
import math
from pathlib import Path

import numpy as np
import pytest

from feature_store.book import REASON_AWAITING_SNAPSHOT, REASON_SEQUENCE_GAP, OrderBook
from feature_store.lake import Lake
from feature_store.records import RECORD_TYPES, conform
from feature_store.sources.binance_capture import CaptureFormatError, load_capture

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "binance_sample"
USDM_SAMPLE = SAMPLE / "usdm_btcusdt_20240808_first60s.gz"
SPOT_SAMPLE = SAMPLE / "spot_ethusdt_20240808_first60s.gz"
SHARED = ROOT.parent / "shared" / "data" / "binance"
SHARED_CAPTURES = {
    "spot_btcusdt": ("spot", ["spot/btcusdt_20240808.gz", "spot/btcusdt_20240809.gz"]),
    "spot_ethusdt": ("spot", ["spot/ethusdt_20240808.gz", "spot/ethusdt_20240809.gz"]),
    "usdm_btcusdt": ("usdm", ["usdm/btcusdt_20240808.gz"]),
    "usdm_ethusdt": ("usdm", ["usdm/ethusdt_20240808.gz"]),
}
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/binance is not on this machine")


@functools.cache
def _sample(path: Path, market: str):
    """The intact sample loaded once per test session (results are only read)."""
    return load_capture([path], market)


def _lines(path: Path) -> list[bytes]:
    return gzip.open(path, "rb").read().splitlines(keepends=True)


def _write(path: Path, lines: list[bytes]) -> Path:
    with gzip.open(path, "wb") as fh:
        fh.writelines(lines)
    return path


def _ts_us(table, column="ts") -> np.ndarray:
    return table[column].cast("int64").to_numpy()


def _levels(table, column) -> np.ndarray:
    return np.array(table[column].to_pylist(), dtype=np.float64)


def _is_depth(line: bytes) -> bool:
    return b'"e":"depthUpdate"' in line


# ---------------------------------------------------------------------------------------------------------------
# An independent plain-dict rebuild: Binance's procedure written out for a capture with one snapshot.


def _reference_grid(lines: list[bytes], market: str, grid_us: int = 100_000):
    diffs, snapshot = [], None
    for line in lines:
        msg = json.loads(line.split(b" ", 1)[1])
        if "lastUpdateId" in msg:
            snapshot = msg
        elif msg["data"].get("e") == "depthUpdate":
            diffs.append(msg["data"])
    bids = {float(p): float(q) for p, q in snapshot["bids"] if float(q)}
    asks = {float(p): float(q) for p, q in snapshot["asks"] if float(q)}
    last_id = snapshot["lastUpdateId"]
    applied = []
    for d in diffs:
        if not applied:
            if (d["u"] <= last_id) if market == "spot" else (d["u"] < last_id):
                continue
            assert d["U"] <= (last_id + 1 if market == "spot" else last_id)
        else:
            assert (d["U"] == applied[-1]["u"] + 1) if market == "spot" else (d["pu"] == applied[-1]["u"])
        applied.append(d)
    rows = []
    time_of = (lambda d: d["E"] * 1000) if market == "spot" else (lambda d: d["T"] * 1000)
    tick = -(-time_of(applied[0]) // grid_us) * grid_us
    for k, d in enumerate(applied):
        for side, book in ((d["b"], bids), (d["a"], asks)):
            for p, q in side:
                if float(q) == 0.0:
                    book.pop(float(p), None)
                else:
                    book[float(p)] = float(q)
        next_time = time_of(applied[k + 1]) if k + 1 < len(applied) else time_of(d) + 1
        while tick < next_time:
            top_b = heapq.nlargest(20, bids)
            top_a = heapq.nsmallest(20, asks)
            rows.append(
                (
                    tick,
                    top_b + [math.nan] * (20 - len(top_b)),
                    [bids[p] for p in top_b] + [0.0] * (20 - len(top_b)),
                    top_a + [math.nan] * (20 - len(top_a)),
                    [asks[p] for p in top_a] + [0.0] * (20 - len(top_a)),
                )
            )
            tick += grid_us
    return rows


@pytest.mark.parametrize(("path", "market"), [(USDM_SAMPLE, "usdm"), (SPOT_SAMPLE, "spot")])
def test_grid_books_equal_an_independent_dict_rebuild(path, market):
    result = _sample(path, market)
    snaps = result.tables["book_snapshots"]
    expected = _reference_grid(_lines(path), market)
    assert snaps.num_rows == len(expected) > 500
    np.testing.assert_array_equal(_ts_us(snaps), [r[0] for r in expected])
    for k, column in enumerate(("bid_px", "bid_sz", "ask_px", "ask_sz"), start=1):
        np.testing.assert_array_equal(_levels(snaps, column), [r[k] for r in expected])


@pytest.mark.parametrize(("path", "market"), [(USDM_SAMPLE, "usdm"), (SPOT_SAMPLE, "spot")])
def test_book_updates_hold_every_level_of_every_diff_and_snapshot(path, market):
    want = []
    for line in _lines(path):
        msg = json.loads(line.split(b" ", 1)[1])
        if "lastUpdateId" in msg:
            ids, levels, snap = (msg["lastUpdateId"],) * 2 + (-1,), (msg["bids"], msg["asks"]), True
        elif msg["data"].get("e") == "depthUpdate":
            d = msg["data"]
            ids, levels, snap = (d["U"], d["u"], d.get("pu", -1)), (d["b"], d["a"]), False
        else:
            continue
        for side, side_levels in zip((1, -1), levels, strict=True):
            want += [(*ids, side, float(p), float(q), snap) for p, q in side_levels]
    updates = _sample(path, market).tables["book_updates"]
    columns = ["first_update_id", "last_update_id", "prev_update_id", "side", "price", "qty", "is_snapshot"]
    got = list(zip(*(updates[c].to_pylist() for c in columns), strict=True))
    assert sorted(got) == sorted(want)
    assert (np.diff(_ts_us(updates)) >= 0).all()


# ---------------------------------------------------------------------------------------------------------------
# Every real capture: gapless, never crossed, all trades landed, top of book equal to bookTicker.


@pytest.fixture(scope="module", params=list(SHARED_CAPTURES))
def shared_capture(request):
    if not SHARED.is_dir():
        pytest.skip("../shared/data/binance is not on this machine")
    market, names = SHARED_CAPTURES[request.param]
    paths = [SHARED / n for n in names]
    return market, paths, load_capture(paths, market)


@needs_shared
def test_real_captures_rebuild_without_gaps_or_crossed_books(shared_capture):
    market, paths, result = shared_capture
    qc = result.qc
    json.dumps(qc.to_dict())  # the QC report is plain JSON
    assert qc.malformed_count == 0 and qc.unsupported == {}
    assert set(qc.recv_ts_unit.values()) == {"ns"}
    (sym_qc,) = qc.symbols.values()
    book = sym_qc.book
    assert (book.gaps, book.crossed_events, book.syncs, book.resyncs) == (0, 0, 1, 0)
    assert book.unapplied_at_end == 0
    assert book.applied + book.stale_dropped == book.diff_events
    # Only the moments before the recorder's snapshot are invalid.
    assert [iv.reason for iv in book.invalid_intervals] == [REASON_AWAITING_SNAPSHOT]
    assert book.invalid_intervals[0].end_us - book.invalid_intervals[0].start_us < 1_000_000
    depth_lines = sum(_is_depth(line) for p in paths for line in _lines(p))
    assert book.diff_events == depth_lines

    snaps = result.tables["book_snapshots"]
    ts = _ts_us(snaps)
    assert (np.diff(ts) == 100_000).all() and (ts % 100_000 == 0).all()  # a gapless grid
    bid_px, ask_px = _levels(snaps, "bid_px"), _levels(snaps, "ask_px")
    assert (np.diff(bid_px, axis=1) < 0).all() and (np.diff(ask_px, axis=1) > 0).all()
    assert (bid_px[:, 0] < ask_px[:, 0]).all()


@needs_shared
def test_real_captures_land_every_trade(shared_capture):
    market, paths, result = shared_capture
    trade_lines = sum(b'@trade"' in line for p in paths for line in _lines(p))
    trades = result.tables["trades"]
    (sym_qc,) = result.qc.symbols.values()
    assert trades.num_rows == trade_lines == sym_qc.trades_landed
    assert sym_qc.trade_id_gaps == 0 and sym_qc.trade_id_duplicates == 0
    assert set(trades["side"].to_pylist()) == {1, -1}
    tickers = sum(b'@bookTicker"' in line for p in paths for line in _lines(p))
    assert result.tables["book_tickers"].num_rows == tickers


@needs_shared
def test_real_captures_top_of_book_equals_book_ticker(shared_capture):
    market, paths, result = shared_capture
    (sym_qc,) = result.qc.symbols.values()
    match = sym_qc.ticker_match
    assert match.exact_candidates > 400 and match.exact_rate == 1.0
    assert match.as_of_candidates > 6000
    # Spot BTCUSDT has 2 of 6,492 as-of mismatches: a bid shown by bookTicker that the 100 ms diff omitted and
    # the next diff deletes (see the report); every other capture agrees everywhere.
    assert match.as_of_rate >= 0.9995
    for example in match.mismatch_examples:
        assert example["kind"] == "as_of" and market == "spot"


@needs_shared
def test_spot_day_two_alone_has_no_snapshot_and_lands_no_books():
    result = load_capture([SHARED / "spot/btcusdt_20240809.gz"], "spot")
    book = result.qc.symbols["BTCUSDT"].book
    assert book.syncs == 0 and book.gaps == 0 and book.grid_rows == 0
    assert book.unapplied_at_end == book.diff_events > 3000
    (interval,) = book.invalid_intervals
    assert interval.reason == REASON_AWAITING_SNAPSHOT and not interval.resynced
    assert "book_snapshots" not in result.tables
    assert result.tables["trades"].num_rows > 10_000


@needs_shared
def test_files_out_of_time_order_are_refused():
    with pytest.raises(CaptureFormatError, match="time order"):
        load_capture([SHARED / "spot/ethusdt_20240809.gz", SHARED / "spot/ethusdt_20240808.gz"], "spot")


def test_a_capture_split_into_two_files_reads_as_one_stream(tmp_path):
    lines = _lines(SPOT_SAMPLE)
    half = len(lines) // 2
    first = _write(tmp_path / "ethusdt_a.gz", lines[:half])
    second = _write(tmp_path / "ethusdt_b.gz", lines[half:])
    whole = _sample(SPOT_SAMPLE, "spot")
    split = load_capture([first, second], "spot")
    assert split.qc.symbols["ETHUSDT"].book.gaps == 0
    for name, table in whole.tables.items():
        assert split.tables[name].equals(table), name


# ---------------------------------------------------------------------------------------------------------------
# Sequence gaps made by deleting a real diff line.


def _delete_diff(lines: list[bytes], after_snapshot: int) -> tuple[list[bytes], int]:
    """Drop the `after_snapshot`-th depth line after the snapshot; returns the lines and the dropped index."""
    snap_at = next(i for i, line in enumerate(lines) if b"lastUpdateId" in line)
    depth_after = [i for i, line in enumerate(lines) if i > snap_at and _is_depth(line)]
    drop = depth_after[after_snapshot]
    return lines[:drop] + lines[drop + 1 :], drop


def _diff_time_us(line: bytes, market: str) -> int:
    data = json.loads(line.split(b" ", 1)[1])["data"]
    return (data["E"] if market == "spot" else data["T"]) * 1000


@pytest.mark.parametrize(("path", "market"), [(USDM_SAMPLE, "usdm"), (SPOT_SAMPLE, "spot")])
def test_a_deleted_diff_is_a_gap_and_without_a_later_snapshot_the_rest_is_invalid(tmp_path, path, market):
    lines = _lines(path)
    cut, dropped = _delete_diff(lines, after_snapshot=100)
    broken = load_capture([_write(tmp_path / path.name, cut)], market)
    whole = _sample(path, market)
    book = broken.qc.symbols[next(iter(broken.qc.symbols))].book
    assert book.gaps == 1 and book.resyncs == 0
    previous_diff = max(i for i in range(dropped) if _is_depth(lines[i]))
    gap = book.invalid_intervals[-1]
    assert gap.reason == REASON_SEQUENCE_GAP and not gap.resynced
    assert gap.start_us == _diff_time_us(lines[previous_diff], market)
    next_diff = min(i for i in range(dropped + 1, len(lines)) if _is_depth(lines[i]))
    assert book.gap_details[0].ts_us == _diff_time_us(lines[next_diff], market)
    depth_after_gap = sum(_is_depth(line) for line in lines[dropped + 1 :])
    assert book.unapplied_at_end == depth_after_gap
    # Books before the gap are unchanged; none is landed from the gap on.
    snaps, good = broken.tables["book_snapshots"], whole.tables["book_snapshots"]
    assert _ts_us(snaps).max() < gap.start_us
    assert snaps.equals(good.slice(0, snaps.num_rows))
    assert broken.tables["trades"].equals(whole.tables["trades"])


def _full_book_line(lines: list[bytes], market: str, upto: int) -> bytes:
    """A REST-style depth snapshot (1000 levels a side) of the true book after the depth line `upto`."""
    book = OrderBook(market)
    last = None
    for line in lines[: upto + 1]:
        msg = json.loads(line.split(b" ", 1)[1])
        if "lastUpdateId" in msg:
            book.apply_snapshot(msg["lastUpdateId"], msg["bids"], msg["asks"])
        elif msg["data"].get("e") == "depthUpdate":
            d = msg["data"]
            book.apply_diff(d["U"], d["u"], d["b"], d["a"], prev_id=d.get("pu", -1))
            last = d
    assert book.synced and book.last_update_id == last["u"]
    bid_px, bid_sz, ask_px, ask_sz = book.top(1000)
    snap = {"lastUpdateId": last["u"]}
    if market != "spot":
        snap |= {"E": last["E"] + 5, "T": last["T"] + 5}
    snap["bids"] = [
        [f"{p:.2f}", f"{q:.8f}"] for p, q in zip(bid_px, bid_sz, strict=True) if not math.isnan(p)
    ]
    snap["asks"] = [
        [f"{p:.2f}", f"{q:.8f}"] for p, q in zip(ask_px, ask_sz, strict=True) if not math.isnan(p)
    ]
    recv = lines[upto].split(b" ", 1)[0]
    return recv + b" " + json.dumps(snap, separators=(",", ":")).encode() + b"\n"


@pytest.mark.parametrize(("path", "market"), [(USDM_SAMPLE, "usdm"), (SPOT_SAMPLE, "spot")])
def test_a_gap_resyncs_from_the_next_snapshot(tmp_path, path, market):
    lines = _lines(path)
    depth_at = [i for i, line in enumerate(lines) if _is_depth(line)]
    # Snapshot of the true book after the depth line 200 diffs after the one we delete, arriving 3 diffs late
    # (the recorder's REST call returns while newer diffs are already buffered).
    snap_pos = next(i for i, line in enumerate(lines) if b"lastUpdateId" in line)
    drop = next(i for i in depth_at if i > snap_pos + 5)
    resync_at = depth_at[depth_at.index(drop) + 200]
    snapshot_line = _full_book_line(lines, market, resync_at)
    arrive = depth_at[depth_at.index(resync_at) + 3]
    cut = lines[:drop] + lines[drop + 1 : arrive + 1] + [snapshot_line] + lines[arrive + 1 :]
    broken = load_capture([_write(tmp_path / path.name, cut)], market)
    whole = _sample(path, market)
    book = broken.qc.symbols[next(iter(broken.qc.symbols))].book
    assert (book.gaps, book.resyncs, book.syncs, book.crossed_events) == (1, 1, 2, 0)
    gap = book.invalid_intervals[-1]
    assert gap.reason == REASON_SEQUENCE_GAP and gap.resynced
    # Spot drops the diff whose u equals lastUpdateId; futures re-applies it (U <= lastUpdateId <= u).
    first_after = resync_at if market != "spot" else depth_at[depth_at.index(resync_at) + 1]
    assert gap.end_us == _diff_time_us(lines[first_after], market)
    # After the resync the grid books equal those rebuilt from the intact capture.
    snaps, good = broken.tables["book_snapshots"], whole.tables["book_snapshots"]
    ts, good_ts = _ts_us(snaps), _ts_us(good)
    assert not ((ts >= gap.start_us) & (ts < gap.end_us)).any()
    assert (ts >= gap.end_us).sum() > 100
    keep = np.isin(good_ts, ts)
    assert keep.sum() == snaps.num_rows
    for column in ("bid_px", "bid_sz", "ask_px", "ask_sz", "update_id"):
        assert snaps[column].equals(good.filter(keep)[column]), column


# ---------------------------------------------------------------------------------------------------------------
# Format handling.


def test_receive_timestamps_in_microseconds_or_milliseconds_are_detected(tmp_path):
    lines = _lines(USDM_SAMPLE)[:3000]
    ns = load_capture([_write(tmp_path / "ns.gz", lines)], "usdm")

    def rescale(line: bytes, div: int) -> bytes:
        ts, rest = line.split(b" ", 1)
        return str(int(ts) // div).encode() + b" " + rest

    us = load_capture([_write(tmp_path / "us.gz", [rescale(x, 1000) for x in lines])], "usdm")
    ms = load_capture([_write(tmp_path / "ms.gz", [rescale(x, 1_000_000) for x in lines])], "usdm")
    assert list(us.qc.recv_ts_unit.values()) == ["us"] and list(ms.qc.recv_ts_unit.values()) == ["ms"]
    for name, table in ns.tables.items():
        assert us.tables[name].equals(table), name
        np.testing.assert_array_equal(
            _ts_us(ms.tables[name], "recv_ts") // 1000, _ts_us(table, "recv_ts") // 1000
        )


def test_malformed_lines_are_counted_with_file_and_line_and_strict_mode_raises(tmp_path):
    lines = _lines(SPOT_SAMPLE)[:2000]
    bad = [
        (10, b"garbage-without-a-timestamp\n"),
        (20, b"1723161254206652067 {not json\n"),
        (30, b'1723161254206652067 {"stream":"ethusdt@trade","data":{"e":"trade","s":"ETHUSDT","t":1}}\n'),
        (40, b"1723161254206652067\n"),
        (50, b'1723161254206652067 {"stream":"ethusdt@trade","data":[1,2]}\n'),
        (60, b'1723161254206652067 {"u":1} trailing\n'),
    ]
    mixed = list(lines)
    for offset, (at, line) in enumerate(bad):
        mixed.insert(at + offset, line)
    path = _write(tmp_path / "ethusdt_bad.gz", mixed)
    result = load_capture([path], "spot")
    assert result.qc.malformed_count == 6
    assert [m.line for m in result.qc.malformed] == [11, 22, 33, 44, 55, 66]
    assert all(m.file == str(path) for m in result.qc.malformed)
    assert "invalid JSON" in result.qc.malformed[1].reason
    assert "missing field" in result.qc.malformed[2].reason
    assert "after the JSON" in result.qc.malformed[5].reason
    clean = load_capture([_write(tmp_path / "ethusdt_clean.gz", lines)], "spot")
    for name, table in clean.tables.items():
        assert result.tables[name].equals(table), name  # the real events around them are all landed
    with pytest.raises(CaptureFormatError, match=rf"{path.name}:11: "):
        load_capture([path], "spot", strict=True)


def test_a_cut_gzip_is_reported_not_silently_truncated(tmp_path):
    data = USDM_SAMPLE.read_bytes()
    path = tmp_path / "btcusdt_cut.gz"
    path.write_bytes(data[: len(data) // 2])
    result = load_capture([path], "usdm")
    assert result.qc.malformed_count == 1
    assert "cut or corrupt" in result.qc.malformed[0].reason
    assert result.qc.symbols["BTCUSDT"].book.grid_rows > 100
    with pytest.raises(CaptureFormatError, match="cut or corrupt"):
        load_capture([path], "usdm", strict=True)


def test_a_capture_of_the_wrong_market_is_refused():
    with pytest.raises(CaptureFormatError, match="'pu'.*market is 'spot'"):
        load_capture([USDM_SAMPLE], "spot")
    with pytest.raises(CaptureFormatError, match="no 'pu'.*'usdm'"):
        load_capture([SPOT_SAMPLE], "usdm")


def test_symbol_filter_and_ambiguous_snapshots_in_a_multi_symbol_file(tmp_path):
    btc = _lines(USDM_SAMPLE)[:4000]
    eth = [line.replace(b"BTCUSDT", b"ETHUSDT").replace(b"btcusdt@", b"ethusdt@") for line in btc]
    path = _write(tmp_path / "btcusdt_ethusdt.gz", sorted(btc + eth, key=lambda x: int(x.split(b" ")[0])))
    both = load_capture([path], "usdm")
    assert set(both.qc.symbols) == {"BTCUSDT", "ETHUSDT"}
    # Each bare snapshot could belong to either book: reported, not guessed, so no book is landed.
    assert both.qc.malformed_count == 2
    assert all("carries no symbol" in m.reason for m in both.qc.malformed)
    assert "book_snapshots" not in both.tables
    assert both.tables["trades"].num_rows == 2 * sum(b'@trade"' in line for line in btc)
    only_btc = load_capture([path], "usdm", symbol="btcusdt")
    assert set(only_btc.qc.symbols) == {"BTCUSDT"} and only_btc.qc.other_symbols["ETHUSDT"] > 1000
    assert set(only_btc.tables["trades"]["symbol"].to_pylist()) == {"BTCUSDT"}


def test_coin_m_capture_keeps_contracts_and_reports_contract_size(tmp_path):
    # No real COIN-M capture is on hand: the real USD-M lines are relabelled in COIN-M's shape (symbol
    # BTCUSD_PERP, pair field "ps"); sizes are then read as contracts, as COIN-M sends them.
    lines = [
        line.replace(b'"s":"BTCUSDT"', b'"s":"BTCUSD_PERP","ps":"BTCUSD"').replace(
            b"btcusdt@", b"btcusd_perp@"
        )
        for line in _lines(USDM_SAMPLE)[:5000]
    ]
    path = _write(tmp_path / "btcusd_perp_20240808.gz", lines)
    coinm = load_capture([path], "coinm")
    usdm = load_capture([_write(tmp_path / "btcusdt.gz", _lines(USDM_SAMPLE)[:5000])], "usdm")
    sym = coinm.qc.symbols["BTCUSD_PERP"]
    assert sym.contract_size == 100.0 and sym.book.gaps == 0 and sym.book.grid_rows > 100
    assert set(coinm.tables["trades"]["market"].to_pylist()) == {"coinm"}
    assert coinm.tables["trades"]["qty"].equals(usdm.tables["trades"]["qty"])  # contracts kept as sent
    assert coinm.tables["book_snapshots"]["bid_sz"].equals(usdm.tables["book_snapshots"]["bid_sz"])
    with pytest.raises(CaptureFormatError, match="'ps'"):
        load_capture([path], "usdm")


def test_mark_price_stream_lands_mark_prices_and_the_funding_it_crosses(tmp_path):
    # The documented markPrice@1s payload (reference/binance_api.md), around the funding time 1680652800000.
    funding_ms = 1680652800000
    events = [
        (funding_ms - 2000, "28150.00000000", "0.00002700", funding_ms),
        (funding_ms - 1000, "28155.10000000", "0.00002760", funding_ms),
        (funding_ms + 10, "28155.20000000", "0.00002760", funding_ms),  # still announces the passed time
        (funding_ms + 1000, "28156.00000000", "0.00001000", funding_ms + 8 * 3_600_000),
    ]
    lines = []
    for e_ms, mark, rate, next_ms in events:
        data = {
            "e": "markPriceUpdate",
            "E": e_ms,
            "s": "BTCUSDT",
            "p": mark,
            "P": "28141.47600845",
            "i": "28165.04857143",
            "r": rate,
            "T": next_ms,
        }
        payload = json.dumps({"stream": "btcusdt@markPrice@1s", "data": data}, separators=(",", ":"))
        lines.append(f"{(e_ms + 3) * 1_000_000} {payload}\n".encode())
    result = load_capture([_write(tmp_path / "btcusdt_mark.gz", lines)], "usdm")
    marks = conform(RECORD_TYPES["mark_prices"], result.tables["mark_prices"])
    assert marks.num_rows == 4
    assert marks["mark_price"].to_pylist() == [28150.0, 28155.1, 28155.2, 28156.0]
    assert marks["index_price"].to_pylist() == [28165.04857143] * 4
    assert _ts_us(marks).tolist() == [e[0] * 1000 for e in events]
    assert _ts_us(marks, "next_funding_ts").tolist() == [e[3] * 1000 for e in events]
    funding = result.tables["funding_rates"]
    assert funding.num_rows == 1
    row = funding.to_pylist()[0]
    assert _ts_us(funding).tolist() == [funding_ms * 1000]
    assert (row["rate"], row["mark_price"], row["interval_hours"]) == (0.0000276, 28155.1, 8.0)


@pytest.mark.parametrize(("path", "market"), [(USDM_SAMPLE, "usdm"), (SPOT_SAMPLE, "spot")])
def test_every_table_lands_in_a_real_lake_without_quarantine(tmp_path, path, market):
    lake = Lake(tmp_path / "lake")
    result = _sample(path, market)
    assert set(result.tables) == {"book_updates", "book_snapshots", "trades", "book_tickers"}
    for name, table in result.tables.items():
        report = lake.write(name, table)
        assert (report.rows_written, report.rows_quarantined, report.duplicates_dropped) == (
            table.num_rows,
            0,
            0,
        )
        assert lake.read(name).num_rows == table.num_rows
    snapshot_rows = result.tables["book_updates"].filter(result.tables["book_updates"]["is_snapshot"])
    assert snapshot_rows.num_rows == 2000  # the recorder's REST snapshot: 1000 levels a side


def _event_line(recv_ns: int, stream: str, data: dict) -> bytes:
    return f"{recv_ns} {json.dumps({'stream': stream, 'data': data}, separators=(',', ':'))}\n".encode()


def test_agg_trades_non_market_prints_and_unsupported_streams_are_counted(tmp_path):
    # Payload shapes from reference/binance_api.md (aggTrade, futures trade with "X").
    t0 = 1672515782136
    agg = [
        {"e": "aggTrade", "E": t0 + k, "s": "BNBBTC", "a": 12345 + k, "p": "0.001", "q": "100", "f": 100 + 2 * k,
         "l": 101 + 2 * k, "T": t0 + k, "m": k % 2 == 0, "M": True}
        for k in range(3)
    ]  # fmt: skip
    lines = [_event_line((t0 + k) * 1_000_000, "bnbbtc@aggTrade", d) for k, d in enumerate(agg)]
    lines.append(
        _event_line((t0 + 5) * 1_000_000, "bnbbtc@kline_1m", {"e": "kline", "E": t0 + 5, "s": "BNBBTC"})
    )
    partial = {"lastUpdateId": 160, "bids": [["0.0024", "10"]], "asks": [["0.0026", "100"]]}
    lines.append(_event_line((t0 + 6) * 1_000_000, "bnbbtc@depth5@100ms", partial))
    only_agg = load_capture([_write(tmp_path / "bnbbtc_agg.gz", lines)], "spot")
    trades = only_agg.tables["trades"]
    assert trades["trade_id"].to_pylist() == [12345, 12346, 12347]
    assert trades["side"].to_pylist() == [-1, 1, -1]  # m true: the buyer was the maker, a taker sell
    assert only_agg.qc.symbols["BNBBTC"].trades_source == "aggTrade"
    assert only_agg.qc.unsupported == {"kline": 1, "partial depth (depth5@100ms)": 1}
    assert only_agg.qc.malformed_count == 0

    trade = {"e": "trade", "E": t0, "T": t0, "s": "BNBBTC", "t": 7, "p": "0.001", "q": "1", "m": False}
    fund = dict(trade, t=8, X="INSURANCE_FUND")
    lines = [
        _event_line(t0 * 1_000_000, "bnbbtc@trade", dict(trade, X="MARKET")),
        _event_line(t0 * 1_000_000 + 1, "bnbbtc@trade", fund),
        *lines[:1],
    ]
    both = load_capture([_write(tmp_path / "bnbbtc_both.gz", lines)], "usdm")
    sym = both.qc.symbols["BNBBTC"]
    assert both.tables["trades"]["trade_id"].to_pylist() == [7]
    assert sym.trades_source == "trade" and sym.trades_landed == 1
    assert sym.trades_not_landed == {
        "trade X=INSURANCE_FUND": 1,
        "aggTrade (the @trade stream of this symbol is landed)": 1,
    }
    assert sym.contract_size is None  # BNBBTC is not in instruments.py: reported, the lake quarantines it
