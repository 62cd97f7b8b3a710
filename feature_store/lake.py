"""Delta Lake I/O for the raw zone: validated, idempotent, partitioned writes and filtered reads.

`Lake.write` validates every row against its record type (feature_store.records), sends invalid rows to
`<root>/quarantine/<table>` with a reason, drops natural-key duplicates (counted), and replaces each
(symbol, date) partition present in the input in one Delta commit per zone, so re-landing a day never
duplicates it. Concurrent writers of different partitions both land: commit conflicts are retried.
The root may be any URI delta-rs accepts (local path, s3://, gs://, az://, ...) with storage options.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from loguru import logger

from feature_store.instruments import known_symbols
from feature_store.records import BOOK_LEVELS, RECORD_TYPES, RecordType, conform, record_type
from feature_store.sql_text import literal

ZONES = ("raw", "quarantine", "features", "metrics", "state", "snapshots")
# Row groups of 128k rows: readers (dbt staging) decode a day's 20-level lists a group at a time, not all at once.
_WRITER = WriterProperties(compression="ZSTD", compression_level=3, max_row_group_size=131_072)
_COMMIT_ATTEMPTS = 12


class LakeError(RuntimeError):
    """The lake cannot be used as asked; the message names the URI and what to do."""


@dataclass
class WriteReport:
    table: str
    rows_in: int
    rows_written: int
    rows_quarantined: int
    duplicates_dropped: int
    reasons: dict[str, int] = field(default_factory=dict)
    partitions: list[tuple[str, str]] = field(default_factory=list)
    version: int | None = None
    # The rows as landed (valid, deduped, sorted): lets the caller QC them without reading them back.
    landed: pa.Table | None = field(default=None, repr=False)

    def summary(self) -> str:
        quarantined = ", ".join(f"{k}={v}" for k, v in sorted(self.reasons.items())) or "none"
        return (
            f"{self.table}: {self.rows_written:,} rows landed in {len(self.partitions)} partition(s), "
            f"{self.rows_quarantined:,} quarantined ({quarantined}), {self.duplicates_dropped:,} duplicates dropped"
        )


@dataclass
class TableInfo:
    zone: str
    table: str
    uri: str
    version: int
    partitions: dict[tuple[str, str], int]  # (symbol, date) -> rows

    @property
    def rows(self) -> int:
        return sum(self.partitions.values())


def default_root() -> str:
    return os.environ.get("SCALPER_LAKE", "lake")


def _storage_options_from_env() -> dict[str, str] | None:
    """Object-store credentials come from the usual environment variables (AWS_*, AZURE_*, GOOGLE_*)."""
    keys = [k for k in os.environ if k.startswith(("AWS_", "AZURE_", "GOOGLE_"))]
    return {k: os.environ[k] for k in keys} or None


class Lake:
    def __init__(self, root: str | Path | None = None, storage_options: dict[str, str] | None = None):
        root = str(root if root is not None else default_root())
        if "://" not in root:
            root = str(Path(root).expanduser().resolve())
        self.root = root.rstrip("/")
        self.is_local = "://" not in self.root or self.root.startswith("file://")
        self.storage_options = storage_options if storage_options is not None else _storage_options_from_env()

    def __repr__(self) -> str:
        return f"Lake({self.root!r})"

    # -- locations -------------------------------------------------------------------------------------
    def uri(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def table_uri(self, table: str, zone: str = "raw") -> str:
        if zone not in ZONES:
            raise ValueError(f"unknown lake zone {zone!r}; zones are {', '.join(ZONES)}")
        return self.uri(zone, table)

    def local_path(self, *parts: str) -> Path:
        """A local folder inside the lake (metrics JSON, state files); only for local lakes."""
        if not self.is_local:
            raise LakeError(f"{self.root} is not a local lake; this file output needs a local path")
        path = Path(self.root.removeprefix("file://"), *parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def ensure_usable(self) -> None:
        """Fail fast, with a one-line reason, when the root cannot be written."""
        if self.is_local:
            root = Path(self.root.removeprefix("file://"))
            try:
                root.mkdir(parents=True, exist_ok=True)
                probe = root / f".probe-{uuid.uuid4().hex}"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as exc:
                raise LakeError(
                    f"lake root {self.root!r} is not writable ({exc.strerror or exc}); "
                    "pass --lake with a writable folder or URI, or set SCALPER_LAKE"
                ) from None
            return
        scheme = self.root.split("://", 1)[0]
        if scheme not in {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "azure", "memory", "file"}:
            raise LakeError(
                f"lake URI {self.root!r} has an unsupported scheme {scheme!r}; use a local path or "
                "s3://, gs://, az:// (credentials from AWS_*/GOOGLE_*/AZURE_* variables)"
            )
        try:
            DeltaTable.is_deltatable(self.table_uri("trades"), storage_options=self.storage_options)
        except Exception as exc:  # delta-rs raises several error types for network and auth failures
            raise LakeError(
                f"lake URI {self.root!r} is unreachable ({str(exc).splitlines()[0][:160]}); "
                "check the URI and its credentials, or pass --lake ./lake"
            ) from None

    # -- reading ---------------------------------------------------------------------------------------
    def delta(self, table: str, zone: str = "raw", version: int | None = None) -> DeltaTable | None:
        try:
            return DeltaTable(
                self.table_uri(table, zone), version=version, storage_options=self.storage_options
            )
        except TableNotFoundError:
            return None

    def read(
        self,
        table: str,
        symbol: str | None = None,
        start: str | None = None,
        end: str | None = None,
        columns: list[str] | None = None,
        zone: str = "raw",
        version: int | None = None,
    ) -> pa.Table:
        """Rows of one table, optionally one symbol and an inclusive date range, sorted by (symbol, ts)."""
        dt = self.delta(table, zone, version)
        rtype = RECORD_TYPES.get(table)
        if dt is None:
            if rtype is not None and zone == "raw":
                empty = rtype.schema.empty_table()
                return empty.select(columns) if columns else empty
            raise LakeError(
                f"no table {zone}/{table} in lake {self.root}; land it first (scalper ingest ...)"
            )
        expr = None
        if symbol is not None:
            expr = ds.field("symbol") == symbol
        if start is not None:
            e = ds.field("date") >= str(start)
            expr = e if expr is None else expr & e
        if end is not None:
            e = ds.field("date") <= str(end)
            expr = e if expr is None else expr & e
        dataset = dt.to_pyarrow_dataset()
        out = dataset.to_table(filter=expr, columns=columns)
        if "ts" in out.column_names and "symbol" in out.column_names and not _is_sorted(out, by_date=False):
            out = out.sort_by([("symbol", "ascending"), ("ts", "ascending")])
        if rtype is not None and zone == "raw" and columns is None:
            out = conform(rtype, out)
        return out

    def tables(self, zone: str = "raw") -> list[str]:
        names = list(RECORD_TYPES) if zone in ("raw", "quarantine") else []
        if self.is_local:
            folder = Path(self.root.removeprefix("file://"), zone)
            if folder.is_dir():
                names = sorted({*names, *(p.name for p in folder.iterdir() if (p / "_delta_log").is_dir())})
        return [n for n in names if self.delta(n, zone) is not None]

    def describe(self, zones: tuple[str, ...] = ("raw", "quarantine")) -> list[TableInfo]:
        infos = []
        for zone in zones:
            for name in self.tables(zone):
                dt = self.delta(name, zone)
                assert dt is not None
                counts = (
                    dt.to_pyarrow_dataset().to_table(columns=["symbol", "date"]).group_by(["symbol", "date"])
                )
                agg = counts.aggregate([([], "count_all")]).sort_by(
                    [("symbol", "ascending"), ("date", "ascending")]
                )
                parts = {
                    (s, d): int(c)
                    for s, d, c in zip(
                        agg["symbol"].to_pylist(),
                        agg["date"].to_pylist(),
                        agg["count_all"].to_pylist(),
                        strict=True,
                    )
                }
                infos.append(TableInfo(zone, name, self.table_uri(name, zone), dt.version(), parts))
        return infos

    # -- writing ---------------------------------------------------------------------------------------
    def write(self, table: str, data: pa.Table, allowed_symbols: set[str] | None = None) -> WriteReport:
        """Validate, dedupe and land `data`, replacing every (symbol, date) partition it touches."""
        rtype = record_type(table)
        try:
            data = conform(rtype, data)
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
            raise LakeError(f"{table}: input does not match the {table} record schema: {exc}") from None
        rows_in = data.num_rows
        # Duplicates first: a re-sent copy of an event is a duplicate, not an event out of time order.
        data, duplicates = _dedupe(rtype, data)
        reasons = validate(rtype, data, allowed_symbols or set(known_symbols()))
        bad_mask = pc.is_valid(reasons)
        any_bad = bool(pc.any(bad_mask).as_py())
        bad = data.filter(bad_mask) if any_bad else data.slice(0, 0)
        good = data.filter(pc.invert(bad_mask)) if any_bad else data
        if not _is_sorted(good):
            good = good.sort_by([("symbol", "ascending"), ("date", "ascending"), ("ts", "ascending")])

        partitions = _partitions(data)
        reason_counts: dict[str, int] = {}
        if bad.num_rows:
            bad_reasons = reasons.filter(bad_mask)
            for item in pc.value_counts(bad_reasons).to_pylist():
                reason_counts[item["values"]] = item["counts"]
            bad = bad.append_column("reason", bad_reasons).append_column(
                "quarantined_at",
                pa.array(np.full(bad.num_rows, time.time_ns() // 1000), pa.int64()).cast(
                    pa.timestamp("us", tz="UTC")
                ),
            )
        predicate = _partition_predicate(partitions)
        # A raw table exists once anything was landed for it, even zero rows, so readers (dbt) find it.
        version = self._replace(self.table_uri(table, "raw"), good, predicate, create_empty=True)
        # The quarantine of a re-landed partition is replaced too, so it never accumulates copies.
        if bad.num_rows or self.delta(table, "quarantine") is not None:
            self._replace(self.table_uri(table, "quarantine"), bad, predicate)
        report = WriteReport(
            table=table,
            rows_in=rows_in,
            rows_written=good.num_rows,
            rows_quarantined=bad.num_rows,
            duplicates_dropped=duplicates,
            reasons=reason_counts,
            partitions=partitions,
            version=version,
            landed=good,
        )
        if bad.num_rows:
            logger.warning(report.summary())
        else:
            logger.info(report.summary())
        return report

    def _replace(self, uri: str, data: pa.Table, predicate: str, create_empty: bool = False) -> int | None:
        """Replace the rows matching `predicate` with `data` in one commit, retrying on conflicts."""
        for attempt in range(_COMMIT_ATTEMPTS):
            try:
                dt = self._open(uri)
                if dt is None:
                    if data.num_rows == 0 and not create_empty:
                        return None
                    write_deltalake(
                        uri,
                        data,
                        partition_by=["symbol", "date"],
                        mode="append",
                        storage_options=self.storage_options,
                        writer_properties=_WRITER,
                    )
                elif data.num_rows == 0:
                    dt.delete(predicate)
                else:
                    write_deltalake(
                        dt,
                        data,
                        partition_by=["symbol", "date"],
                        mode="overwrite",
                        predicate=predicate,
                        storage_options=self.storage_options,
                        writer_properties=_WRITER,
                    )
                dt = self._open(uri)
                return dt.version() if dt is not None else None
            except (CommitFailedError, DeltaError, OSError) as exc:
                if not _is_conflict(exc) or attempt == _COMMIT_ATTEMPTS - 1:
                    if isinstance(exc, OSError) or not _is_conflict(exc):
                        raise LakeError(f"writing {uri} failed: {str(exc).splitlines()[0][:200]}") from exc
                    raise
                delay = min(2.0, 0.05 * 2**attempt) * (0.5 + random.random())
                logger.debug(f"commit conflict on {uri} (attempt {attempt + 1}); retrying in {delay:.2f}s")
                time.sleep(delay)
        return None

    def _open(self, uri: str) -> DeltaTable | None:
        try:
            return DeltaTable(uri, storage_options=self.storage_options)
        except TableNotFoundError:
            return None


def _codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str]]:
    """Integer codes (in sorted order of the values) and the distinct values of a string column."""
    encoded = (
        pc.dictionary_encode(column).combine_chunks()
        if isinstance(column, pa.ChunkedArray)
        else (pc.dictionary_encode(column))
    )
    values = encoded.dictionary.to_pylist()
    order = np.argsort(np.array(values, dtype=object)) if values else np.array([], dtype=np.int64)
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(len(values))
    return rank[encoded.indices.to_numpy(zero_copy_only=False)], [values[i] for i in order]


def _is_sorted(table: pa.Table, by_date: bool = True) -> bool:
    """Whether rows are already ordered by (symbol, [date,] ts): checked in O(n), so sorting is rarely paid."""
    if table.num_rows < 2:
        return True
    ts = table["ts"].cast(pa.int64()).to_numpy()
    sym, _ = _codes(table["symbol"])
    keys = [sym]
    if by_date:
        keys.append(_codes(table["date"])[0])
    step_ok = np.ones(len(ts) - 1, dtype=bool)
    same = np.ones(len(ts) - 1, dtype=bool)
    for key in keys:
        d = np.diff(key)
        step_ok &= ~same | (d >= 0)
        same &= d == 0
    return bool((step_ok & (~same | (np.diff(ts) >= 0))).all())


def _partitions(table: pa.Table) -> list[tuple[str, str]]:
    pairs = table.select(["symbol", "date"]).group_by(["symbol", "date"], use_threads=False).aggregate([])
    return sorted(zip(pairs["symbol"].to_pylist(), pairs["date"].to_pylist(), strict=True))


def _is_conflict(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, CommitFailedError) or any(
        s in text for s in ("conflict", "concurrent", "already exists", "version", "metadata changed")
    )


def _partition_predicate(partitions: list[tuple[str, str]]) -> str:
    by_symbol: dict[str, list[str]] = {}
    for symbol, date in partitions:
        by_symbol.setdefault(symbol, []).append(date)
    clauses = []
    for symbol, dates in sorted(by_symbol.items()):
        quoted = ", ".join(literal(d) for d in sorted(dates))
        clauses.append(f"(symbol = {literal(symbol)} AND date IN ({quoted}))")
    return " OR ".join(clauses) if clauses else "false"


def _dedupe(rtype: RecordType, table: pa.Table) -> tuple[pa.Table, int]:
    """Keep the first row of each natural key: later copies are re-sends of an event already in its place."""
    if table.num_rows == 0:
        return table, 0
    if _key_strictly_increasing(rtype, table):
        return table, 0
    indexed = table.select(list(rtype.natural_key)).append_column("_row", pa.array(np.arange(table.num_rows)))
    last = indexed.group_by(list(rtype.natural_key), use_threads=False).aggregate([("_row", "min")])
    if last.num_rows == table.num_rows:
        return table, 0
    keep = np.sort(last["_row_min"].to_numpy())
    return table.take(pa.array(keep)), table.num_rows - len(keep)


def _key_strictly_increasing(rtype: RecordType, table: pa.Table) -> bool:
    """Fast path: one symbol and a single numeric/time key column strictly increasing means no duplicates."""
    rest = [k for k in rtype.natural_key if k != "symbol"]
    if len(rest) != 1 or pc.count_distinct(table["symbol"]).as_py() != 1:
        return False
    col = table[rest[0]]
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.int64())
    if not pa.types.is_integer(col.type):
        return False
    return bool((np.diff(col.to_numpy()) > 0).all())


# -- validation ----------------------------------------------------------------------------------------
def validate(rtype: RecordType, table: pa.Table, allowed_symbols: set[str]) -> pa.Array:
    """One reason string per row (null when the row is valid); the first failing rule wins."""
    n = table.num_rows
    code = np.zeros(n, dtype=np.int16)  # 0: valid, i: names[i - 1]
    names: list[str] = []

    def flag(mask: np.ndarray, reason: str) -> None:
        mask = np.asarray(mask, dtype=bool) & (code == 0)
        if mask.any():
            if reason not in names:
                names.append(reason)
            code[mask] = names.index(reason) + 1

    if n == 0:
        return pa.nulls(0, pa.string())
    sym_codes, sym_values = _codes(table["symbol"])
    flag(~np.isin(sym_codes, [i for i, v in enumerate(sym_values) if v in allowed_symbols]), "unknown_symbol")
    mkt_codes, mkt_values = _codes(table["market"])
    flag(
        ~np.isin(mkt_codes, [i for i, v in enumerate(mkt_values) if v in ("spot", "usdm", "coinm")]),
        "unknown_market",
    )
    for check in _CHECKS.get(rtype.table, ()):
        check(table, flag)
    flag(_time_backwards(table, sym_codes), "time_backwards")
    if not names:
        return pa.nulls(n, pa.string())
    lookup = pa.array([None, *names], pa.string())
    return lookup.take(pa.array(code.astype(np.int32)))


def _col(table: pa.Table, name: str) -> np.ndarray:
    return table[name].to_numpy(zero_copy_only=False)


def _levels(table: pa.Table, name: str) -> np.ndarray:
    flat = pc.list_flatten(table[name]).to_numpy(zero_copy_only=False)
    return flat.reshape(table.num_rows, BOOK_LEVELS)


def _time_backwards(table: pa.Table, symbols: np.ndarray) -> np.ndarray:
    """A row whose exchange time is earlier than a previous row of the same symbol, in source order."""
    ts = table["ts"].cast(pa.int64()).to_numpy()
    out = np.zeros(len(ts), dtype=bool)
    for symbol in np.unique(symbols):
        idx = np.flatnonzero(symbols == symbol) if symbols.max() > 0 else np.arange(len(ts))
        seq = ts[idx]
        prior_max = np.maximum.accumulate(np.concatenate(([np.iinfo(np.int64).min], seq[:-1])))
        out[idx] = seq < prior_max
    return out


def _check_price_qty(price: str, qty: str, zero_qty_ok: bool):
    def check(table, flag):
        p, q = _col(table, price), _col(table, qty)
        flag(~np.isfinite(p) | ~np.isfinite(q), "nan")
        flag(p <= 0, "non_positive_price")
        flag(q < 0 if zero_qty_ok else q <= 0, "non_positive_size")

    return check


def _check_book(table, flag):
    bid_px, bid_sz = _levels(table, "bid_px"), _levels(table, "bid_sz")
    ask_px, ask_sz = _levels(table, "ask_px"), _levels(table, "ask_sz")
    for px, sz in ((bid_px, bid_sz), (ask_px, ask_sz)):
        present = sz > 0
        flag(np.isnan(sz).any(axis=1), "nan")
        flag((sz < 0).any(axis=1), "non_positive_size")
        flag(~present[:, 0], "empty_touch")
        # Present levels come first; padding (price NaN, size 0) only at the tail.
        flag((~present[:, :-1] & present[:, 1:]).any(axis=1), "gap_in_levels")
        flag((present & ~np.isfinite(px)).any(axis=1), "nan")
        flag((present & (px <= 0)).any(axis=1), "non_positive_price")
    both = (bid_sz[:, :-1] > 0) & (bid_sz[:, 1:] > 0)
    flag((both & (np.diff(bid_px, axis=1) >= 0)).any(axis=1), "unsorted_levels")
    both = (ask_sz[:, :-1] > 0) & (ask_sz[:, 1:] > 0)
    flag((both & (np.diff(ask_px, axis=1) <= 0)).any(axis=1), "unsorted_levels")
    flag(bid_px[:, 0] > ask_px[:, 0], "crossed_book")
    flag(bid_px[:, 0] == ask_px[:, 0], "locked_book")


def _check_ticker(table, flag):
    bp, bs, ap, asz = (_col(table, c) for c in ("bid_px", "bid_sz", "ask_px", "ask_sz"))
    flag(~(np.isfinite(bp) & np.isfinite(bs) & np.isfinite(ap) & np.isfinite(asz)), "nan")
    flag((bp <= 0) | (ap <= 0), "non_positive_price")
    flag((bs < 0) | (asz < 0), "non_positive_size")
    flag(bp > ap, "crossed_book")
    flag(bp == ap, "locked_book")


def _check_side(table, flag):
    flag(~np.isin(_col(table, "side"), [-1, 1]), "bad_side")


def _check_funding(table, flag):
    flag(~np.isfinite(_col(table, "rate")), "nan")
    mark = table["mark_price"].to_numpy(zero_copy_only=False).astype(float)
    flag(mark <= 0, "non_positive_price")  # NaN (missing mark) compares false: allowed


def _check_mark(table, flag):
    mark = _col(table, "mark_price")
    flag(~np.isfinite(mark), "nan")
    flag(mark <= 0, "non_positive_price")


def _check_onchain(table, flag):
    flag(~np.isfinite(_col(table, "value")), "nan")
    avail = table["available_at"].cast(pa.int64()).to_numpy()
    ts = table["ts"].cast(pa.int64()).to_numpy()
    flag(avail < ts, "available_before_period")


_CHECKS = {
    "trades": (_check_price_qty("price", "qty", zero_qty_ok=False), _check_side),
    "book_snapshots": (_check_book,),
    "book_updates": (_check_price_qty("price", "qty", zero_qty_ok=True), _check_side),
    "book_tickers": (_check_ticker,),
    "funding_rates": (_check_funding,),
    "mark_prices": (_check_mark,),
    "onchain_metrics": (_check_onchain,),
}
