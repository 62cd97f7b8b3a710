"""Order-book rebuild (feature_store.book) against ground truth on generated Binance-style depth streams.

The generator evolves a true book, then builds what a recorder would see: diffs with spot (U/u) or futures
(U/u/pu) ids, a REST snapshot taken at some update id (possibly mid-event) arriving a few diffs late, optionally
a lost diff and a later resync snapshot. Expected grid rows come from the true book and the known validity
windows, computed here without the library's sequencer.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_store.book import (
    REASON_AWAITING_SNAPSHOT,
    REASON_SEQUENCE_GAP,
    DepthEvents,
    OrderBook,
    Sequencer,
    _set_level,
    _write_top,
    rebuild_book,
)

GRID_US = 100_000
DEPTH = 20
BID_PRICES = [round(0.5 * k, 1) for k in range(1, 51)]  # 0.5 .. 25.0
ASK_PRICES = [round(25.0 + 0.5 * k, 1) for k in range(1, 51)]  # 25.5 .. 50.0


def _top(book: dict[float, float], side: int, depth: int = DEPTH) -> tuple[list[float], list[float]]:
    prices = sorted(book, reverse=side > 0)[:depth]
    px = prices + [math.nan] * (depth - len(prices))
    sz = [book[p] for p in prices] + [0.0] * (depth - len(prices))
    return px, sz


def _apply(bids: dict, asks: dict, changes) -> None:
    for side, price, qty in changes:
        book = bids if side > 0 else asks
        if qty == 0.0:
            book.pop(price, None)
        else:
            book[price] = qty


@st.composite
def scenarios(draw):
    rule = draw(st.sampled_from(["spot", "futures"]))
    n = draw(st.integers(6, 40))
    level = st.tuples(
        st.sampled_from([1, -1]), st.integers(0, 49), st.sampled_from([0.0, 0.5, 1.0, 2.25, 7.0])
    )
    initial = draw(st.lists(level, min_size=0, max_size=40))
    events = []
    last_u, ts = 1000, 1_700_000_000_000_000
    for _ in range(n):
        skip = draw(st.integers(0, 5)) if rule == "futures" else 0
        first = last_u + 1 + skip
        last = first + draw(st.integers(0, 3))
        ts += draw(st.integers(1, 250)) * 1000
        raw = draw(st.lists(level, min_size=1, max_size=6))
        changes = [(s, (BID_PRICES if s > 0 else ASK_PRICES)[i], q) for s, i, q in raw]
        # one event reports each price once, with its final size
        final = {(s, p): q for s, p, q in changes}
        events.append(
            {
                "U": first,
                "u": last,
                "pu": last_u,
                "ts": ts,
                "levels": [(s, p, q) for (s, p), q in final.items()],
            }
        )
        last_u = last
    s1 = draw(st.integers(0, n // 3))
    mid1 = draw(st.booleans())
    lag1 = draw(st.integers(0, 3))
    gap = draw(st.booleans())
    g = draw(st.integers(s1 + 2, n - 2)) if gap and s1 + 2 <= n - 2 else None
    s2 = draw(st.integers(g + 1, n - 1)) if g is not None and draw(st.booleans()) else None
    mid2 = draw(st.booleans())
    lag2 = draw(st.integers(0, 3))
    subsets = [
        draw(st.lists(st.booleans(), min_size=len(e["levels"]), max_size=len(e["levels"]))) for e in events
    ]
    init_changes = [(s, (BID_PRICES if s > 0 else ASK_PRICES)[i], q) for s, i, q in initial]
    return rule, init_changes, events, s1, mid1, lag1, g, s2, mid2, lag2, subsets


def _truth(init_changes, events):
    """The true book after each event (index -1: before the first)."""
    bids, asks = {}, {}
    _apply(bids, asks, init_changes)
    states = {-1: (dict(bids), dict(asks))}
    for k, e in enumerate(events):
        _apply(bids, asks, e["levels"])
        states[k] = (dict(bids), dict(asks))
    return states


def _snapshot(states, events, s, mid, subset):
    """A REST snapshot taken at an update id inside (mid) or at the end of event s: (lastUpdateId, bids, asks)."""
    e = events[s]
    if mid and e["u"] > e["U"]:
        bids, asks = (dict(d) for d in states[s - 1])
        _apply(bids, asks, [lv for lv, keep in zip(e["levels"], subset, strict=True) if keep])
        return e["u"] - 1, bids, asks
    bids, asks = states[s]
    return e["u"], dict(bids), dict(asks)


def _first_applied(rule, events, s, last_update_id):
    """Index of the first diff the book applies after a snapshot at event s (Binance's rules, written out)."""
    if rule == "spot" and last_update_id == events[s]["u"]:
        return s + 1
    return s


def _build(scn):
    rule, init_changes, events, s1, mid1, lag1, g, s2, mid2, lag2, subsets = scn
    states = _truth(init_changes, events)
    stream = []  # (kind, payload) in arrival order
    snap1 = _snapshot(states, events, s1, mid1, subsets[s1])
    snap2 = _snapshot(states, events, s2, mid2, subsets[s2]) if s2 is not None else None
    arrive1 = min(s1 + lag1, len(events) - 1)
    arrive2 = min(s2 + lag2, len(events) - 1) if s2 is not None else None
    for k in range(len(events)):
        if k != g:
            stream.append(("diff", k))
        if k == arrive1:
            stream.append(("snap", snap1))
        if k == arrive2:
            stream.append(("snap", snap2))
    return rule, states, events, stream, (s1, snap1), (s2, snap2), g


def _depth_events(rule, events, stream) -> DepthEvents:
    cols = {k: [] for k in ("is_snapshot", "ts", "recv", "first", "last", "prev", "side", "price", "qty")}
    offsets = [0]
    for kind, payload in stream:
        if kind == "diff":
            e = events[payload]
            cols["is_snapshot"].append(False)
            cols["ts"].append(e["ts"])
            cols["first"].append(e["U"])
            cols["last"].append(e["u"])
            cols["prev"].append(e["pu"] if rule == "futures" else -1)
            levels = e["levels"]
        else:
            last_update_id, bids, asks = payload
            cols["is_snapshot"].append(True)
            cols["ts"].append(cols["ts"][-1] if cols["ts"] else 0)
            cols["first"].append(last_update_id)
            cols["last"].append(last_update_id)
            cols["prev"].append(-1)
            levels = [(1, p, q) for p, q in bids.items()] + [(-1, p, q) for p, q in asks.items()]
        cols["recv"].append(len(cols["recv"]))
        for s, p, q in levels:
            cols["side"].append(s)
            cols["price"].append(p)
            cols["qty"].append(q)
        offsets.append(len(cols["side"]))
    return DepthEvents(
        is_snapshot=np.array(cols["is_snapshot"], dtype=bool),
        ts_us=np.array(cols["ts"], dtype=np.int64),
        recv_us=np.array(cols["recv"], dtype=np.int64),
        first_id=np.array(cols["first"], dtype=np.int64),
        last_id=np.array(cols["last"], dtype=np.int64),
        prev_id=np.array(cols["prev"], dtype=np.int64),
        level_offsets=np.array(offsets, dtype=np.int64),
        level_side=np.array(cols["side"], dtype=np.int8),
        level_price=np.array(cols["price"], dtype=np.float64),
        level_qty=np.array(cols["qty"], dtype=np.float64),
    )


def _expected_rows(states, events, windows):
    """Grid rows from the true book: ticks in each [first applied ts, end) window; end inclusive at the close."""
    ts = [e["ts"] for e in events]
    rows = []
    for start, end, inclusive in windows:
        tick = -(-start // GRID_US) * GRID_US
        while tick < end or (inclusive and tick == end):
            k = max(i for i, t in enumerate(ts) if t <= tick)
            bids, asks = states[k]
            rows.append((tick, *_top(bids, 1), *_top(asks, -1)))
            tick += GRID_US
    return rows


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_rebuild_matches_true_book_with_gaps_and_resyncs(scn):
    rule, states, events, stream, (s1, snap1), (s2, snap2), g = _build(scn)
    depth_events = _depth_events(rule, events, stream)
    result = rebuild_book(depth_events, rule, grid_ms=100, depth=DEPTH)

    a1 = _first_applied(rule, events, s1, snap1[0])
    windows = []
    if a1 < len(events) and (g is None or a1 < g):
        if g is None:
            windows.append((events[a1]["ts"], events[-1]["ts"], True))
        else:
            windows.append((events[a1]["ts"], events[g - 1]["ts"], False))
            if s2 is not None:
                a2 = _first_applied(rule, events, s2, snap2[0])
                if a2 < len(events):
                    windows.append((events[a2]["ts"], events[-1]["ts"], True))
    expected = _expected_rows(states, events, windows)
    samples = result.samples
    assert len(samples) == len(expected)
    for r, row in enumerate(expected):
        assert samples.ts_us[r] == row[0]
        np.testing.assert_array_equal(samples.bid_px[r], row[1])
        np.testing.assert_array_equal(samples.bid_sz[r], row[2])
        np.testing.assert_array_equal(samples.ask_px[r], row[3])
        np.testing.assert_array_equal(samples.ask_sz[r], row[4])

    qc = result.qc
    assert qc.gaps == (1 if g is not None and a1 < g else 0)
    assert qc.crossed_events == 0
    reasons = [iv.reason for iv in qc.invalid_intervals]
    assert reasons[0] == REASON_AWAITING_SNAPSHOT
    assert qc.invalid_intervals[0].start_us == events[0]["ts"]
    if qc.gaps:
        assert reasons[1] == REASON_SEQUENCE_GAP
        gap_interval = qc.invalid_intervals[1]
        assert gap_interval.start_us == events[g - 1]["ts"]
        resynced = s2 is not None and _first_applied(rule, events, s2, snap2[0]) < len(events)
        assert gap_interval.resynced == resynced
        assert qc.resyncs == int(resynced)
        if resynced:
            assert gap_interval.end_us == events[_first_applied(rule, events, s2, snap2[0])]["ts"]
        assert qc.gap_details[0].ts_us == events[g + 1]["ts"]

    # The best level after each applied diff equals the true book's.
    for row, (kind, k) in enumerate(stream):
        if kind == "diff" and result.applied[row]:
            bids, asks = states[k]
            want = [max(bids) if bids else math.nan, bids[max(bids)] if bids else math.nan]
            want += [min(asks) if asks else math.nan, asks[min(asks)] if asks else math.nan]
            np.testing.assert_array_equal(result.best[row], want)


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_incremental_order_book_follows_the_true_book(scn):
    rule, states, events, stream, *_ = _build(scn)
    book = OrderBook(rule)
    for kind, payload in stream:
        if kind == "snap":
            last_update_id, bids, asks = payload
            book.apply_snapshot(last_update_id, list(bids.items()), list(asks.items()))
            continue
        e = events[payload]
        bids = [(p, q) for s, p, q in e["levels"] if s > 0]
        asks = [(p, q) for s, p, q in e["levels"] if s < 0]
        outcome = book.apply_diff(e["U"], e["u"], bids, asks, prev_id=e["pu"] if rule == "futures" else -1)
        assert outcome in ("applied", "buffered", "stale", "gap", "sync_failure")
        if book.synced:
            bid_px, bid_sz, ask_px, ask_sz = book.top()
            true_bids, true_asks = states[payload]
            np.testing.assert_array_equal([bid_px, bid_sz], _top(true_bids, 1))
            np.testing.assert_array_equal([ask_px, ask_sz], _top(true_asks, -1))
        else:
            with pytest.raises(RuntimeError, match="not in sync"):
                book.top()


def test_spot_rules_drop_stale_then_require_contiguous_ids():
    seq = Sequencer("spot")
    assert seq.on_diff(0, 100, 105, -1) == []  # buffered
    assert seq.on_diff(1, 106, 110, -1) == []
    ops = seq.on_snapshot(2, 105)  # diff 0 has u <= 105: stale; diff 1 bridges (U <= 106 <= u)
    assert ops == [(0, 2), (1, 1)]
    assert seq.qc.stale_dropped == 1
    assert seq.on_diff(3, 111, 112, -1) == [(1, 3)]
    assert seq.on_diff(4, 114, 115, -1) == [(2, 4)]  # 113 missing: gap
    assert seq.qc.gaps == 1
    assert (seq.qc.gap_details[0].expected, seq.qc.gap_details[0].got) == (113, 114)


def test_futures_rules_use_pu_and_straddling_first_event():
    seq = Sequencer("futures")
    seq.on_diff(0, 100, 120, 90)
    seq.on_diff(1, 125, 130, 120)
    ops = seq.on_snapshot(2, 120)  # futures keeps u == lastUpdateId: diff 0 straddles (100 <= 120 <= 120)
    assert ops == [(0, 2), (1, 0), (1, 1)]
    assert seq.on_diff(3, 140, 150, 131) == [(2, 3)]  # pu 131 != 130
    assert seq.qc.gaps == 1


def test_snapshot_older_than_buffered_diffs_is_a_sync_failure_and_waits_for_the_next():
    seq = Sequencer("spot")
    seq.on_diff(0, 200, 210, -1)
    assert seq.on_snapshot(1, 150) == []  # too old: nothing bridges 151
    assert seq.qc.sync_failures == 1 and not seq.synced
    assert seq.on_snapshot(2, 205) == [(0, 2), (1, 0)]
    assert seq.synced and seq.qc.syncs == 1 and seq.qc.resyncs == 0


def test_rebuild_refuses_a_nonpositive_grid():
    empty = _depth_events("spot", [], [])
    with pytest.raises(ValueError, match="grid_ms"):
        rebuild_book(empty, "spot", grid_ms=0)
    assert len(rebuild_book(empty, "spot").samples) == 0


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(200, 5000))
def test_level_storage_with_tombstones_matches_a_dict(seed, n_changes):
    _check_storage_against_dict(seed, n_changes)


def test_level_storage_compacts_a_thinning_deep_book():
    assert _check_storage_against_dict(seed=7, n_changes=5000)


def _check_storage_against_dict(seed: int, n_changes: int) -> bool:
    """Deep books (up to 400 levels) so that tombstone reuse, trimming and compaction all happen.

    Returns whether a compaction happened."""
    keys, sizes, count = np.empty(4), np.empty(4), np.zeros(2, dtype=np.int64)
    ref: dict[float, float] = {}
    out_px, out_sz = np.empty((1, 400)), np.empty((1, 400))
    rng = np.random.default_rng(seed)
    # A drifting touch, changes spread below it; the book fills in the first half and thins in the second.
    touch = np.cumsum(rng.integers(-2, 3, n_changes)) + 200
    ticks = np.clip(touch - np.abs(rng.normal(0, 40, n_changes)).astype(int), 0, 399)
    delete_share = np.where(np.arange(n_changes) < n_changes // 2, 0.1, 0.9)
    sizes_in = np.where(rng.random(n_changes) < delete_share, 0.0, rng.choice([1.0, 2.5, 4.0], n_changes))
    compacted = False
    for step, (tick, size) in enumerate(zip(ticks.tolist(), sizes_in.tolist(), strict=True)):
        key = float(tick) - 200.0  # negative keys too, as the ask side stores -price
        before = count[1]
        keys, sizes = _set_level(keys, sizes, count, key, size)
        compacted |= before > 64 and count[1] == 0
        if size == 0.0:
            ref.pop(key, None)
        else:
            ref[key] = size
        if step % 97 == 0 or step == n_changes - 1:
            live = keys[: count[0]][sizes[: count[0]] != 0.0]
            assert (np.diff(keys[: count[0]]) > 0).all()
            assert count[0] == 0 or sizes[count[0] - 1] != 0.0  # the best level is live
            assert count[1] == count[0] - len(live)
            _write_top(keys, sizes, count, 1.0, out_px, out_sz, 0, 400)
            want = sorted(ref, reverse=True)
            np.testing.assert_array_equal(out_px[0, : len(want)], want)
            np.testing.assert_array_equal(out_sz[0, : len(want)], [ref[k] for k in want])
            assert np.isnan(out_px[0, len(want) :]).all()
    return compacted
