"""Published days as Parquet (zstd) under <lake>/features/<table>/, one hive folder per symbol and day
(symbol=<s>/date=<d>/part_0.parquet, without the two partition columns, as DuckDB's PARTITION_BY writes them; the
files of a rebuilt day are replaced).  Two writers:
- `publish_days` writes a query's rows: the published fct_features is these files, which the dbt materialization
  published_parquet (dbt/macros/published_parquet.sql, through the plugin dbt/plugins/published_parquet.py) writes
  and shows in the warehouse as a view;
- `export_days` copies the rebuilt days of a warehouse table (the dbt Python model export_labels, which also
  copies the day before the window again: its labels of the last horizon are rewritten by the run).

One plain COPY per symbol-day: COPY ... PARTITION_BY costs 4 to 6 times the CPU of plain COPYs of the same rows
(DuckDB 2.0, a day of fct_features: 14.4-15.7 against 2.5 CPU-s).  A query whose rows are one symbol-day (a daily
build of one symbol) is copied straight into its file; the rows of several are held in a temporary table first, from
which each is copied (streaming them out as Arrow batches and encoding them with pyarrow instead cost the same CPU,
but ran the encoding on one thread on the build's longest path and held 170 MB more: measured in a build)."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from feature_store.feature_build import BuildWindow
from feature_store.sql_text import ident, literal

PARTITION_COLUMNS = ("symbol", "date")
PART_FILE = "part_0.parquet"
# partition values written into folder names as they are (no escaping): symbols and ISO days
_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.\-]+")

# zstd level 1 with Parquet 2.x data pages (DELTA_BINARY_PACKED integers, dictionaries kept where they pay): a day of
# fct_features (864k rows) takes 2.1 CPU-s instead of 3.1 with the defaults (level 3, Parquet 1.0 pages) and the
# file is 3 % smaller, with the same rows; pyarrow, polars and DuckDB read it (measured: this COPY over one day of the
# benchmark lake, benchmarks/bench_features.py, median of 4 runs).  A dictionary is given up past 16 KB: most
# feature columns are distinct doubles, and building a larger dictionary first cost 1.52 instead of 1.35 CPU-s a day
# for a file of the same size (190 MB; with no dictionary at all it is 210 MB).
PARQUET_OPTIONS = (
    "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, PARQUET_VERSION v2, DICTIONARY_SIZE_LIMIT 16384)"
)


class PublishError(RuntimeError):
    """Rows that cannot be published as asked; the message names the table, the problem and the fix."""


def publish_days(
    cursor,
    sql: str,
    folder: str,
    window: BuildWindow,
    *,
    expected: Sequence[tuple[str, str]] | None = None,
    full_refresh: bool = False,
    not_null: Sequence[str] = (),
) -> dict[tuple[str, str], int]:
    """Write the rows of `sql` (a query with the partition columns symbol and date) under `folder` and return the
    rows written per (symbol, date).  `expected` (when known beforehand, e.g. the staged partitions the rows are
    built from) lets a query of one partition be copied straight to its file; a row outside it fails the run.  The
    days start_date..end_date of `window` are replaced: a partition of those days the query no longer returns is
    removed; with `full_refresh` every partition it did not write is.  A NULL in a `not_null` column, or columns that
    differ from the partitions already published (an incremental run of a changed model), fail the run with the
    published files left as they were."""
    table = os.path.basename(os.path.normpath(folder))
    token = f".{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"  # not *.parquet: readers of the folder never see it
    new_files: dict[tuple[str, str], str] = {}  # the files this run writes, under their temporary names
    written: dict[tuple[str, str], int] = {}

    def copy(key: tuple[str, str], query: str) -> str:
        path = new_files[key] = _partition_file(folder, *key) + token
        os.makedirs(os.path.dirname(path), exist_ok=True)
        cursor.execute(
            f"COPY (SELECT * EXCLUDE ({', '.join(PARTITION_COLUMNS)}) FROM ({query})) TO {literal(path)} "
            f"{PARQUET_OPTIONS}"
        )
        return path

    try:
        if expected is not None and len(expected) == 1:
            key = (expected[0][0], expected[0][1])
            path = copy(key, f"SELECT * FROM ({sql}) WHERE {_guard(table, not_null, key)}")
            ((written[key],),) = cursor.execute(
                f"SELECT count(*) FROM read_parquet({literal(path)})"
            ).fetchall()
        else:
            staged = f"__publish_{uuid.uuid4().hex[:8]}"
            cursor.execute(
                f"CREATE TEMP TABLE {staged} AS SELECT * FROM ({sql}) WHERE {_guard(table, not_null)}"
            )
            try:
                counts = cursor.execute(
                    f"SELECT symbol, date, count(*) FROM {staged} GROUP BY ALL ORDER BY ALL"
                ).fetchall()
                known = None if expected is None else {(s, d) for s, d in expected}
                outside = [
                    f"symbol={s}/date={d}" for s, d, _ in counts if known is not None and (s, d) not in known
                ]
                if outside:
                    raise PublishError(
                        f"{table}: rows outside the expected partitions: {', '.join(outside[:5])}"
                    )
                for symbol, day, n in counts:
                    copy(
                        (symbol, day),
                        f"SELECT * FROM {staged} WHERE symbol = {literal(symbol)} AND date = {literal(day)}",
                    )
                    written[(symbol, day)] = n
            finally:
                cursor.execute(f"DROP TABLE IF EXISTS {staged}")
        if new_files and not full_refresh:
            _check_same_columns(cursor, table, folder, next(iter(new_files.values())), set(new_files))
    except BaseException:
        for path in new_files.values():
            Path(path).unlink(missing_ok=True)
        raise
    # each new file replaces its partition's in one step; then the window's partitions the query no longer returns go
    for key, path in new_files.items():
        os.replace(path, _partition_file(folder, *key))
    for symbol, day in published_partitions(folder):
        replaced = full_refresh or window.start_date <= day <= window.end_date
        if replaced and (symbol, day) not in new_files:
            shutil.rmtree(os.path.dirname(_partition_file(folder, symbol, day)), ignore_errors=True)
    return written


def _guard(table: str, not_null: Sequence[str], key: tuple[str, str] | None = None) -> str:
    """A filter that keeps every row, and fails the query on a NULL in a not_null column or a row outside `key`."""
    checks = [
        f"{ident(c)} IS NULL THEN error({literal(f'{table}: {c} is NULL, and the contract says not_null')})"
        for c in not_null
    ]
    if key is not None:
        outside = f"{table}: a row outside the expected partition symbol={key[0]}/date={key[1]}"
        checks.append(
            f"symbol IS DISTINCT FROM {literal(key[0])} OR date IS DISTINCT FROM {literal(key[1])} "
            f"THEN error({literal(outside)})"
        )
    if not checks:
        return "true"
    return "CASE WHEN " + " WHEN ".join(checks) + " ELSE true END"


def published_view_sql(folder: str, columns: Sequence[tuple[str, str]]) -> str:
    """The query of the published days under `folder` as one relation with `columns` ((name, DuckDB type), the
    contract's, in order): read_parquet over the absolute path, symbol and date from the folder names; no rows
    but the same columns before any day is published (read_parquet refuses a glob that matches no file)."""
    if not published_partitions(folder):
        nulls = ", ".join(f"NULL::{dtype} AS {ident(name)}" for name, dtype in columns)
        return f"SELECT {nulls} WHERE false"
    glob = os.path.join(os.path.abspath(folder), "symbol=*", "date=*", PART_FILE)
    hive_types = ", ".join(
        f"{literal(name)}: {dtype}" for name, dtype in columns if name in PARTITION_COLUMNS
    )
    return (
        f"SELECT {', '.join(ident(name) for name, _ in columns)} "
        f"FROM read_parquet({literal(glob)}, hive_partitioning = true, hive_types = {{{hive_types}}})"
    )


def _check_same_columns(cursor, table: str, folder: str, path: str, written: set[tuple[str, str]]) -> None:
    """Fail when the columns of the new file at `path` differ from those of a published partition not rewritten (one
    stands for all: each was checked against the others when it was written)."""
    kept = [key for key in published_partitions(folder) if key not in written]
    if not kept:
        return
    old, new = dict(_columns(cursor, _partition_file(folder, *kept[0]))), dict(_columns(cursor, path))
    if list(old.items()) != list(new.items()):
        changed = sorted(c for c in old.keys() | new.keys() if old.get(c) != new.get(c))
        raise PublishError(
            f"{table}: the model's columns changed ({', '.join(changed)}) against the published partition "
            f"symbol={kept[0][0]}/date={kept[0][1]}: rebuild every day with `--full-refresh`"
        )


def _columns(cursor, path: str) -> list[tuple[str, str]]:
    return cursor.execute(
        f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet({literal(path)}))"
    ).fetchall()


def published_partitions(folder: str) -> list[tuple[str, str]]:
    """The (symbol, date) of every partition file under `folder`."""
    found = []
    if not os.path.isdir(folder):
        return found
    for symbol_dir in os.listdir(folder):
        if not symbol_dir.startswith("symbol="):
            continue
        for day_dir in os.listdir(os.path.join(folder, symbol_dir)):
            if day_dir.startswith("date=") and os.path.exists(
                os.path.join(folder, symbol_dir, day_dir, PART_FILE)
            ):
                found.append((symbol_dir[len("symbol=") :], day_dir[len("date=") :]))
    return found


def _partition_file(folder: str, symbol: str, day: str) -> str:
    for name, value in (("symbol", symbol), ("date", day)):
        if not _SAFE_VALUE.fullmatch(str(value)):
            raise PublishError(f"{os.path.basename(folder)}: {name} {value!r} cannot name a partition folder")
    return os.path.join(folder, f"symbol={symbol}", f"date={day}", PART_FILE)


def export_days(session, table: str, window: BuildWindow, lake: str, rewritten_from_us: str | None = None):
    """Write every (symbol, date) of `table` inside the window's days, and, with `rewritten_from_us` (a SQL scalar:
    the first ts_us the run rewrote, before the window), every day holding rows from then on; returns a relation
    of the rows written per symbol and day (the model's own table)."""
    start, end = window.start_date, window.end_date
    since = "false" if rewritten_from_us is None else f"ts_us >= ({rewritten_from_us})"
    days = session.execute(
        f"SELECT DISTINCT symbol, date FROM {table} WHERE date <= ? AND (date >= ? OR {since}) ORDER BY ALL",
        [end, start],
    ).fetchall()
    for symbol, day in days:
        path = _partition_file(os.path.join(lake, "features", table), symbol, day)
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
        os.makedirs(os.path.dirname(path))
        session.execute(
            f"COPY (SELECT * EXCLUDE (symbol, date) FROM {table} "
            f"WHERE symbol = {literal(symbol)} AND date = {literal(day)}) TO {literal(path)} {PARQUET_OPTIONS}"
        )
    exported = ", ".join(f"({literal(symbol)}, {literal(day)})" for symbol, day in days) or "(NULL, NULL)"
    return session.sql(
        f"SELECT symbol, date, count(*) AS exported_rows FROM {table} "
        f"WHERE (symbol, date) IN (SELECT * FROM (VALUES {exported})) GROUP BY ALL ORDER BY ALL"
    )
