"""Exact order-book reconstruction from Binance depth diffs: sequence checks, resync, and grid sampling.

Binance's documented local-book procedure (../shared/reference/binance_api.md) is implemented once, in
`Sequencer`, as a state machine over one symbol's depth events (diffs and REST snapshots, in arrival order):
- spot: after a snapshot with `lastUpdateId`, drop events with u <= lastUpdateId; the first kept event must have
  U <= lastUpdateId + 1; after that every event must have U == previous u + 1.
- futures (USD-M and COIN-M): drop events with u < lastUpdateId; the first kept event must have
  U <= lastUpdateId <= u; after that every event must have pu == previous u.
A broken chain is a sequence gap: it is counted, the book is marked invalid from the last good event until a later
snapshot resyncs it, and no book is sampled in between — a gap is never papered over. Diffs that arrive before a
usable snapshot are buffered (the recorder takes the snapshot after subscribing), exactly as the docs prescribe.

The book itself (price -> size per side) lives in sorted numpy arrays with the best level at the end and removed
levels left as tombstones (see "Level storage" below), so changes near the touch and deletions are cheap; level
updates, per-diff top of book, crossed-book checks and grid sampling run in one numba kernel.
`rebuild_book` is the batch path (a whole capture); `OrderBook` is the incremental one (same sequencer, same
level code) for callers that see events one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from numba import njit

from .records import BOOK_LEVELS

SPOT = "spot"
FUTURES = "futures"
RULES = (SPOT, FUTURES)

# Operations the sequencer hands to the book, each naming an event by its index in the depth stream.
OP_LOAD = 0  # clear the book and load this snapshot
OP_APPLY = 1  # apply this diff
OP_INVALIDATE = 2  # a gap was detected at this diff: the book is no longer known

_AWAITING_SNAPSHOT = "awaiting_snapshot"
_SNAPSHOT_LOADED = "snapshot_loaded"
_SYNCED = "synced"

REASON_AWAITING_SNAPSHOT = "awaiting_snapshot"
REASON_SEQUENCE_GAP = "sequence_gap"


def sequence_rule(market: str) -> str:
    """The Binance sequencing rule of a market: spot books chain U/u, futures books (usdm, coinm) chain pu."""
    if market == "spot":
        return SPOT
    if market in ("usdm", "coinm"):
        return FUTURES
    raise ValueError(f"unknown market {market!r}: use spot, usdm or coinm")


@dataclass
class DepthEvents:
    """One symbol's depth stream in arrival order: diffs and REST snapshots, their levels flattened.

    Event i owns levels level_offsets[i]:level_offsets[i+1]. For a snapshot, first_id = last_id = lastUpdateId
    and prev_id = -1; spot diffs have prev_id = -1 (Binance sends no `pu` there). `ts_us` is exchange time in µs
    (spot snapshots carry none: the caller puts the receive time there).
    """

    is_snapshot: np.ndarray  # bool
    ts_us: np.ndarray  # int64
    recv_us: np.ndarray  # int64
    first_id: np.ndarray  # int64
    last_id: np.ndarray  # int64
    prev_id: np.ndarray  # int64
    level_offsets: np.ndarray  # int64, len n + 1
    level_side: np.ndarray  # int8, +1 bid, -1 ask
    level_price: np.ndarray  # float64
    level_qty: np.ndarray  # float64

    def update_columns(self) -> dict[str, np.ndarray]:
        """The records.BookUpdate columns (one row per level) of these events, in their order."""
        counts = np.diff(self.level_offsets)
        return {
            "ts": np.repeat(self.ts_us, counts),
            "recv_ts": np.repeat(self.recv_us, counts),
            "first_update_id": np.repeat(self.first_id, counts),
            "last_update_id": np.repeat(self.last_id, counts),
            "prev_update_id": np.repeat(self.prev_id, counts),
            "side": self.level_side,
            "price": self.level_price,
            "qty": self.level_qty,
            "is_snapshot": np.repeat(self.is_snapshot, counts),
        }

    def __len__(self) -> int:
        return len(self.ts_us)

    def take(self, order: np.ndarray) -> DepthEvents:
        """The events reordered (or subset) by `order`, levels moved with their events."""
        counts = np.diff(self.level_offsets)[order]
        starts = self.level_offsets[:-1][order]
        offsets = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        level_index = (
            np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1], dtype=np.int64)
            if len(order)
            else np.zeros(0, dtype=np.int64)
        )
        return DepthEvents(
            is_snapshot=self.is_snapshot[order],
            ts_us=self.ts_us[order],
            recv_us=self.recv_us[order],
            first_id=self.first_id[order],
            last_id=self.last_id[order],
            prev_id=self.prev_id[order],
            level_offsets=offsets,
            level_side=self.level_side[level_index],
            level_price=self.level_price[level_index],
            level_qty=self.level_qty[level_index],
        )


@dataclass
class SequenceGap:
    event_index: int  # the diff at which the chain broke
    ts_us: int  # its exchange time
    expected: int  # spot: the U that should have come (prev u + 1); futures: the pu (= prev u)
    got: int  # the U (spot) or pu (futures) that came instead


@dataclass
class InvalidInterval:
    """Exchange-time span [start_us, end_us) in which the book is unknown; no snapshot row is sampled in it.

    end_us is None when no later snapshot resynced the book before the capture ended: the rest is invalid.
    """

    start_us: int
    end_us: int | None
    reason: str  # awaiting_snapshot (before the first sync) or sequence_gap

    @property
    def resynced(self) -> bool:
        return self.end_us is not None


@dataclass
class BookQC:
    """What happened while rebuilding one symbol's book."""

    rule: str
    diff_events: int = 0
    snapshots: int = 0
    applied: int = 0
    stale_dropped: int = 0  # diffs older than the snapshot they were checked against (normal at sync)
    unapplied_at_end: int = 0  # diffs still waiting for a snapshot when the capture ended
    gaps: int = 0
    gap_details: list[SequenceGap] = field(default_factory=list)
    syncs: int = 0  # successful snapshot syncs, the first included
    resyncs: int = 0  # syncs after a gap
    sync_failures: int = 0  # a snapshot that no buffered diff could bridge (too old or too new)
    snapshots_unused: int = 0  # snapshots that came while the book was in sync
    crossed_events: int = 0  # applied diffs after which best bid >= best ask
    grid_rows: int = 0
    invalid_intervals: list[InvalidInterval] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        for interval in out["invalid_intervals"]:
            interval["resynced"] = interval["end_us"] is not None
        return out


class Sequencer:
    """Binance's local-book procedure for one symbol, as a state machine.

    Feed it depth events in arrival order (`on_snapshot`, `on_diff`); each call returns the book operations to
    run now, as (OP_*, event index) pairs. It keeps the counters and gap details of a BookQC.
    """

    def __init__(self, rule: str):
        if rule not in RULES:
            raise ValueError(f"unknown sequencing rule {rule!r}: use one of {RULES}")
        self.rule = rule
        self.state = _AWAITING_SNAPSHOT
        self.qc = BookQC(rule=rule)
        self.last_id: int | None = None  # u of the last applied diff
        self.outcome = ""  # what the last on_diff did: applied / buffered / stale / gap / sync_failure
        self._snapshot: tuple[int, int] | None = None  # (event index, lastUpdateId) loaded, not yet bridged
        self._buffer: list[tuple[int, int, int, int]] = []  # diffs waiting for a snapshot
        self._after_gap = False

    @property
    def synced(self) -> bool:
        return self.state == _SYNCED

    def on_snapshot(self, index: int, last_update_id: int) -> list[tuple[int, int]]:
        self.qc.snapshots += 1
        if self.state == _SYNCED:
            self.qc.snapshots_unused += 1
            return []
        if self._snapshot is not None:
            if last_update_id < self._snapshot[1]:
                self.qc.snapshots_unused += 1
                return []
            self.qc.snapshots_unused += 1  # the older pending one is superseded
        self.state = _SNAPSHOT_LOADED
        self._snapshot = (index, last_update_id)
        buffered, self._buffer = self._buffer, []
        ops: list[tuple[int, int]] = []
        for diff in buffered:
            ops.extend(self.on_diff(*diff, _counted=True))
        return ops

    def on_diff(
        self, index: int, first_id: int, last_id: int, prev_id: int, _counted: bool = False
    ) -> list[tuple[int, int]]:
        if not _counted:
            self.qc.diff_events += 1
        if self.state == _AWAITING_SNAPSHOT:
            self._buffer.append((index, first_id, last_id, prev_id))
            self.outcome = "buffered"
            return []
        if self.state == _SNAPSHOT_LOADED:
            assert self._snapshot is not None
            snapshot_index, snapshot_id = self._snapshot
            stale = last_id <= snapshot_id if self.rule == SPOT else last_id < snapshot_id
            if stale:
                self.qc.stale_dropped += 1
                self.outcome = "stale"
                return []
            bridges = first_id <= snapshot_id + 1 if self.rule == SPOT else first_id <= snapshot_id
            if not bridges:
                # The snapshot is older than the first diff we still hold: wait for another one.
                self.qc.sync_failures += 1
                self.state = _AWAITING_SNAPSHOT
                self._snapshot = None
                self._buffer = [(index, first_id, last_id, prev_id)]
                self.outcome = "sync_failure"
                return []
            self.state = _SYNCED
            self._snapshot = None
            self.last_id = last_id
            self.qc.syncs += 1
            self.qc.resyncs += self._after_gap
            self.qc.applied += 1
            self.outcome = "applied"
            return [(OP_LOAD, snapshot_index), (OP_APPLY, index)]
        assert self.last_id is not None
        if self.rule == SPOT:
            expected, got = self.last_id + 1, first_id
        else:
            expected, got = self.last_id, prev_id
        if got == expected:
            self.last_id = last_id
            self.qc.applied += 1
            self.outcome = "applied"
            return [(OP_APPLY, index)]
        self.qc.gaps += 1
        self.qc.gap_details.append(SequenceGap(event_index=index, ts_us=-1, expected=expected, got=got))
        self.state = _AWAITING_SNAPSHOT
        self._after_gap = True
        self._buffer = [(index, first_id, last_id, prev_id)]
        self.outcome = "gap"
        return [(OP_INVALIDATE, index)]

    def pending_indices(self) -> set[int]:
        """Indices of the events the sequencer may still hand back: buffered diffs and the pending snapshot."""
        keep = {diff[0] for diff in self._buffer}
        if self._snapshot is not None:
            keep.add(self._snapshot[0])
        return keep

    def finish(self) -> None:
        self.qc.unapplied_at_end = len(self._buffer)


def plan_sequence(events: DepthEvents, rule: str) -> tuple[np.ndarray, np.ndarray, BookQC]:
    """Run the sequencer over a depth stream: the book operations (kinds, event indices) and the QC.

    The QC's invalid intervals are in exchange time: from the first event (or the last good diff before a
    gap) to the first diff applied after the next sync.
    """
    seq = Sequencer(rule)
    kinds: list[int] = []
    indices: list[int] = []
    ts = events.ts_us
    intervals = seq.qc.invalid_intervals
    open_interval: InvalidInterval | None = None
    last_applied_ts: int | None = None
    if len(events):
        # Spot snapshots carry receive time, not exchange time: start at the first diff's time.
        diff_ts = ts[~events.is_snapshot]
        start = int(diff_ts[0]) if len(diff_ts) else int(ts[0])
        open_interval = InvalidInterval(start_us=start, end_us=None, reason=REASON_AWAITING_SNAPSHOT)
        intervals.append(open_interval)
    first, last, prev, is_snap = (
        events.first_id.tolist(),
        events.last_id.tolist(),
        events.prev_id.tolist(),
        events.is_snapshot.tolist(),
    )
    for i in range(len(events)):
        ops = seq.on_snapshot(i, last[i]) if is_snap[i] else seq.on_diff(i, first[i], last[i], prev[i])
        for kind, index in ops:
            kinds.append(kind)
            indices.append(index)
            if kind == OP_APPLY:
                if open_interval is not None:
                    open_interval.end_us = int(ts[index])
                    open_interval = None
                last_applied_ts = int(ts[index])
            elif kind == OP_INVALIDATE:
                seq.qc.gap_details[-1].ts_us = int(ts[index])
                start = last_applied_ts if last_applied_ts is not None else int(ts[index])
                open_interval = InvalidInterval(start_us=start, end_us=None, reason=REASON_SEQUENCE_GAP)
                intervals.append(open_interval)
    seq.finish()
    return np.array(kinds, dtype=np.int8), np.array(indices, dtype=np.int64), seq.qc


@dataclass
class BookSamples:
    """Top-`depth` books on the time grid; level 1 first, thin books padded with NaN price and 0 size."""

    ts_us: np.ndarray  # grid times (exchange clock)
    recv_us: np.ndarray  # receive time of the last diff folded into each row
    update_id: np.ndarray  # u of the last diff folded into each row
    bid_px: np.ndarray  # (rows, depth)
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_us)

    def snapshot_columns(self) -> dict[str, np.ndarray]:
        """The records.BookSnapshot columns of these grid rows."""
        return {
            "ts": self.ts_us,
            "recv_ts": self.recv_us,
            "update_id": self.update_id,
            "bid_px": self.bid_px,
            "bid_sz": self.bid_sz,
            "ask_px": self.ask_px,
            "ask_sz": self.ask_sz,
        }


@dataclass
class RebuildResult:
    samples: BookSamples
    qc: BookQC
    # Per depth event, the top of book right after it was applied (NaN where it was not applied).
    applied: np.ndarray  # bool
    best: np.ndarray  # (events, 4): bid px, bid size, ask px, ask size
    crossed: np.ndarray  # bool


def rebuild_book(
    events: DepthEvents, rule: str, grid_ms: int = 100, depth: int = BOOK_LEVELS
) -> RebuildResult:
    """Rebuild one symbol's book from its depth stream and sample the top `depth` levels every `grid_ms`.

    A grid row at time t is the book after every applied diff with exchange time <= t. Rows are emitted only
    while the book is known: from the first diff applied after a sync to the last diff before a gap (or the last
    diff of the capture) — none inside an invalid interval.
    """
    if grid_ms <= 0:
        raise ValueError(f"grid_ms must be positive, got {grid_ms}")
    kinds, indices, qc = plan_sequence(events, rule)
    grid_us = int(grid_ms) * 1000
    n = len(events)
    if n:
        diff_ts = events.ts_us[~events.is_snapshot]
        span = int(diff_ts.max() - diff_ts.min()) if len(diff_ts) else 0
        max_rows = span // grid_us + 2
    else:
        max_rows = 0
    out = _replay(
        kinds,
        indices,
        events.ts_us.astype(np.int64),
        events.recv_us.astype(np.int64),
        events.last_id.astype(np.int64),
        events.level_offsets.astype(np.int64),
        events.level_side.astype(np.int8),
        events.level_price.astype(np.float64),
        events.level_qty.astype(np.float64),
        grid_us,
        depth,
        max_rows,
    )
    rows, out_ts, out_recv, out_id, bid_px, bid_sz, ask_px, ask_sz, applied, best, crossed = out
    samples = BookSamples(
        ts_us=out_ts[:rows],
        recv_us=out_recv[:rows],
        update_id=out_id[:rows],
        bid_px=bid_px[:rows],
        bid_sz=bid_sz[:rows],
        ask_px=ask_px[:rows],
        ask_sz=ask_sz[:rows],
    )
    qc.crossed_events = int(crossed.sum())
    qc.grid_rows = int(rows)
    return RebuildResult(samples=samples, qc=qc, applied=applied, best=best, crossed=crossed)


# ---------------------------------------------------------------------------------------------------------------
# Level storage. Each side is an ascending array of keys with the best level last: bids store the price, asks
# store minus the price, so one routine serves both and inserts near the touch shift few keys.
# A removed level stays as a tombstone (size 0, key kept, so the array stays sorted for binary search): a delete
# costs O(1), and an insert shifts keys only up to the nearest tombstone, which it reuses (never further than a
# plain insert would shift); tombstones are compacted away when they outnumber live levels. On the USD-M BTCUSDT
# capture, where diffs touch levels ~200 deep on median, this cut the rebuild from 131 to 80 ms CPU.
# Invariants: keys[:n] strictly ascending; keys[n-1] is a live level (trailing tombstones are trimmed);
# count = [n, tombstones].


@njit(cache=True)
def _compact(keys, sizes, count):
    n = count[0]
    w = 0
    for r in range(n):
        if sizes[r] != 0.0:
            keys[w] = keys[r]
            sizes[w] = sizes[r]
            w += 1
    count[0] = w
    count[1] = 0


@njit(cache=True)
def _set_level(keys, sizes, count, key, size):
    """Set the size at `key` (0 removes the level); returns the arrays (grown when full)."""
    n = count[0]
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    if lo < n and keys[lo] == key:
        if size == 0.0:
            if sizes[lo] != 0.0:
                sizes[lo] = 0.0
                count[1] += 1
                while n > 0 and sizes[n - 1] == 0.0:  # keep the best level live
                    n -= 1
                    count[1] -= 1
                count[0] = n
                if count[1] > 64 and 2 * count[1] > n:
                    _compact(keys, sizes, count)
        else:
            if sizes[lo] == 0.0:
                count[1] -= 1
            sizes[lo] = size
        return keys, sizes
    if size == 0.0:  # removing a level the book does not hold: Binance sends these, nothing to do
        return keys, sizes
    if lo < n and count[1] > 0:
        # Nearest tombstone above (at or after lo) or below (before lo): shift only the keys in between.
        # Searching below further than the distance to the top end would cost more than shifting to the end.
        up = lo
        down = lo - 1
        floor = max(0, lo - (n - lo))
        while up < n:
            if sizes[up] == 0.0:
                for j in range(up, lo, -1):
                    keys[j] = keys[j - 1]
                    sizes[j] = sizes[j - 1]
                keys[lo] = key
                sizes[lo] = size
                count[1] -= 1
                return keys, sizes
            up += 1
            if down >= floor:
                if sizes[down] == 0.0:
                    for j in range(down, lo - 1):
                        keys[j] = keys[j + 1]
                        sizes[j] = sizes[j + 1]
                    keys[lo - 1] = key
                    sizes[lo - 1] = size
                    count[1] -= 1
                    return keys, sizes
                down -= 1
    if n == keys.shape[0]:
        grown_keys = np.empty(2 * n + 16, dtype=np.float64)
        grown_sizes = np.empty(2 * n + 16, dtype=np.float64)
        grown_keys[:n] = keys[:n]
        grown_sizes[:n] = sizes[:n]
        keys, sizes = grown_keys, grown_sizes
    for j in range(n, lo, -1):
        keys[j] = keys[j - 1]
        sizes[j] = sizes[j - 1]
    keys[lo] = key
    sizes[lo] = size
    count[0] = n + 1
    return keys, sizes


@njit(cache=True)
def _apply_levels(
    bid_keys, bid_sizes, bid_count, ask_keys, ask_sizes, ask_count, side, price, qty, start, stop
):
    for j in range(start, stop):
        if side[j] > 0:
            bid_keys, bid_sizes = _set_level(bid_keys, bid_sizes, bid_count, price[j], qty[j])
        else:
            ask_keys, ask_sizes = _set_level(ask_keys, ask_sizes, ask_count, -price[j], qty[j])
    return bid_keys, bid_sizes, ask_keys, ask_sizes


@njit(cache=True)
def _write_top(keys, sizes, count, sign, out_px, out_sz, row, depth):
    r = count[0] - 1
    for k in range(depth):
        while r >= 0 and sizes[r] == 0.0:
            r -= 1
        if r >= 0:
            out_px[row, k] = sign * keys[r]
            out_sz[row, k] = sizes[r]
            r -= 1
        else:
            out_px[row, k] = np.nan
            out_sz[row, k] = 0.0


@njit(cache=True)
def _replay(kinds, indices, ts, recv, last_id, offsets, side, price, qty, grid_us, depth, max_rows):
    n_events = ts.shape[0]
    bid_keys = np.empty(1024, dtype=np.float64)
    bid_sizes = np.empty(1024, dtype=np.float64)
    ask_keys = np.empty(1024, dtype=np.float64)
    ask_sizes = np.empty(1024, dtype=np.float64)
    bid_count = np.zeros(2, dtype=np.int64)
    ask_count = np.zeros(2, dtype=np.int64)
    out_ts = np.empty(max_rows, dtype=np.int64)
    out_recv = np.empty(max_rows, dtype=np.int64)
    out_id = np.empty(max_rows, dtype=np.int64)
    bid_px = np.empty((max_rows, depth), dtype=np.float64)
    bid_sz = np.empty((max_rows, depth), dtype=np.float64)
    ask_px = np.empty((max_rows, depth), dtype=np.float64)
    ask_sz = np.empty((max_rows, depth), dtype=np.float64)
    applied = np.zeros(n_events, dtype=np.bool_)
    crossed = np.zeros(n_events, dtype=np.bool_)
    best = np.full((n_events, 4), np.nan)
    valid = False
    next_tick = 0
    cur_recv = 0
    cur_id = 0
    cur_ts = 0
    rows = 0
    for k in range(kinds.shape[0]):
        e = indices[k]
        kind = kinds[k]
        if kind == 0:  # OP_LOAD
            bid_count[:] = 0
            ask_count[:] = 0
            valid = False
            bid_keys, bid_sizes, ask_keys, ask_sizes = _apply_levels(
                bid_keys,
                bid_sizes,
                bid_count,
                ask_keys,
                ask_sizes,
                ask_count,
                side,
                price,
                qty,
                offsets[e],
                offsets[e + 1],
            )
        elif kind == 1:  # OP_APPLY
            t = ts[e]
            if valid:
                while next_tick < t and rows < max_rows:
                    out_ts[rows] = next_tick
                    out_recv[rows] = cur_recv
                    out_id[rows] = cur_id
                    _write_top(bid_keys, bid_sizes, bid_count, 1.0, bid_px, bid_sz, rows, depth)
                    _write_top(ask_keys, ask_sizes, ask_count, -1.0, ask_px, ask_sz, rows, depth)
                    rows += 1
                    next_tick += grid_us
            else:
                valid = True
                next_tick = -((-t) // grid_us) * grid_us  # first grid time >= t
            bid_keys, bid_sizes, ask_keys, ask_sizes = _apply_levels(
                bid_keys,
                bid_sizes,
                bid_count,
                ask_keys,
                ask_sizes,
                ask_count,
                side,
                price,
                qty,
                offsets[e],
                offsets[e + 1],
            )
            applied[e] = True
            nb = bid_count[0]
            na = ask_count[0]
            if nb > 0:
                best[e, 0] = bid_keys[nb - 1]
                best[e, 1] = bid_sizes[nb - 1]
            if na > 0:
                best[e, 2] = -ask_keys[na - 1]
                best[e, 3] = ask_sizes[na - 1]
            if nb > 0 and na > 0 and bid_keys[nb - 1] >= -ask_keys[na - 1]:
                crossed[e] = True
            cur_recv = recv[e]
            cur_id = last_id[e]
            cur_ts = t
        else:  # OP_INVALIDATE
            valid = False
    if valid:
        while next_tick <= cur_ts and rows < max_rows:
            out_ts[rows] = next_tick
            out_recv[rows] = cur_recv
            out_id[rows] = cur_id
            _write_top(bid_keys, bid_sizes, bid_count, 1.0, bid_px, bid_sz, rows, depth)
            _write_top(ask_keys, ask_sizes, ask_count, -1.0, ask_px, ask_sz, rows, depth)
            rows += 1
            next_tick += grid_us
    return rows, out_ts, out_recv, out_id, bid_px, bid_sz, ask_px, ask_sz, applied, best, crossed


# ---------------------------------------------------------------------------------------------------------------


class OrderBook:
    """An exact book fed one event at a time (e.g. from a live feed), with Binance's sequence validation.

    `apply_snapshot` and `apply_diff` return what happened: a snapshot is "pending" until a diff bridges it
    (or "unused" while the book is already in sync); a diff is "applied", "buffered" (no usable snapshot yet),
    "stale" (older than the snapshot), "gap" (chain broken: the book is invalid until the next snapshot) or
    "sync_failure" (the pending snapshot is older than this diff). Levels are (price, qty) pairs; qty 0 removes.
    """

    def __init__(self, market_or_rule: str):
        rule = market_or_rule if market_or_rule in RULES else sequence_rule(market_or_rule)
        self._seq = Sequencer(rule)
        self._payloads: dict[int, tuple[Sequence, Sequence]] = {}
        self._next_index = 0
        self._bid_keys = np.empty(1024)
        self._bid_sizes = np.empty(1024)
        self._ask_keys = np.empty(1024)
        self._ask_sizes = np.empty(1024)
        self._bid_count = np.zeros(2, dtype=np.int64)
        self._ask_count = np.zeros(2, dtype=np.int64)

    @property
    def synced(self) -> bool:
        return self._seq.synced

    @property
    def last_update_id(self) -> int | None:
        return self._seq.last_id if self._seq.synced else None

    @property
    def qc(self) -> BookQC:
        return self._seq.qc

    def apply_snapshot(self, last_update_id: int, bids: Sequence, asks: Sequence) -> str:
        index = self._remember(bids, asks)
        was_synced = self._seq.synced
        self._run(self._seq.on_snapshot(index, int(last_update_id)))
        self._prune()
        return "unused" if was_synced else ("applied" if self._seq.synced else "pending")

    def apply_diff(
        self, first_id: int, last_id: int, bids: Sequence, asks: Sequence, prev_id: int = -1
    ) -> str:
        index = self._remember(bids, asks)
        self._run(self._seq.on_diff(index, int(first_id), int(last_id), int(prev_id)))
        self._prune()
        return self._seq.outcome

    def top(self, depth: int = BOOK_LEVELS) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(bid_px, bid_sz, ask_px, ask_sz), best first, padded with NaN / 0; raises while the book is unknown."""
        if not self._seq.synced:
            raise RuntimeError(
                "the book is not in sync (no snapshot yet, or a sequence gap): wait for a snapshot"
            )
        out = [np.empty((1, depth)) for _ in range(4)]
        _write_top(self._bid_keys, self._bid_sizes, self._bid_count, 1.0, out[0], out[1], 0, depth)
        _write_top(self._ask_keys, self._ask_sizes, self._ask_count, -1.0, out[2], out[3], 0, depth)
        return out[0][0], out[1][0], out[2][0], out[3][0]

    def _prune(self) -> None:
        """Keep only the payloads a later snapshot may still need (buffered diffs, the pending snapshot)."""
        keep = self._seq.pending_indices()
        if len(keep) != len(self._payloads):
            self._payloads = {i: p for i, p in self._payloads.items() if i in keep}

    def _remember(self, bids: Sequence, asks: Sequence) -> int:
        index = self._next_index
        self._next_index += 1
        self._payloads[index] = (bids, asks)
        return index

    def _run(self, ops: list[tuple[int, int]]) -> None:
        for kind, index in ops:
            if kind == OP_INVALIDATE:
                continue
            if kind == OP_LOAD:
                self._bid_count[:] = 0
                self._ask_count[:] = 0
            bids, asks = self._payloads.pop(index)
            side, price, qty = _levels_to_arrays(bids, asks)
            self._bid_keys, self._bid_sizes, self._ask_keys, self._ask_sizes = _apply_levels(
                self._bid_keys,
                self._bid_sizes,
                self._bid_count,
                self._ask_keys,
                self._ask_sizes,
                self._ask_count,
                side,
                price,
                qty,
                0,
                len(side),
            )


def _levels_to_arrays(bids: Sequence, asks: Sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nb, na = len(bids), len(asks)
    side = np.empty(nb + na, dtype=np.int8)
    side[:nb] = 1
    side[nb:] = -1
    pairs = np.array([*bids, *asks], dtype=np.float64).reshape(nb + na, 2)
    return side, np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1])
