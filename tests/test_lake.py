"""The lake: schema round trips, idempotent re-landing, quarantine with reasons, concurrent partition writes."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import DAY_US, make_books, make_trades

from feature_store.lake import Lake, LakeError
from feature_store.records import RECORD_TYPES, BookSnapshot

DAY2_US = DAY_US + 86_400_000_000


def test_schema_round_trip_books_and_trades(lake: Lake):
    books, trades = make_books(), make_trades()
    lake.write("book_snapshots", books)
    lake.write("trades", trades)
    assert lake.read("book_snapshots").equals(books)
    assert lake.read("trades").equals(trades)
    assert lake.read("book_snapshots").schema == BookSnapshot.schema


def test_every_record_type_has_a_partitioned_schema():
    for rtype in RECORD_TYPES.values():
        for col in ("exchange", "market", "symbol", "date", "ts", "recv_ts"):
            assert col in rtype.schema.names, (rtype.table, col)
        assert set(rtype.natural_key) <= set(rtype.schema.names)


def test_relanding_a_partition_leaves_one_copy(lake: Lake):
    books = make_books(30)
    first = lake.write("book_snapshots", books)
    second = lake.write("book_snapshots", books)
    assert lake.read("book_snapshots").num_rows == 30
    assert second.version == first.version + 1
    # Re-landing a smaller version of the day replaces it: no stale rows survive.
    lake.write("book_snapshots", books.slice(0, 10))
    assert lake.read("book_snapshots").num_rows == 10


def test_relanding_one_day_keeps_the_other(lake: Lake):
    lake.write("trades", pa.concat_tables([make_trades(20), make_trades(25, start_us=DAY2_US)]))
    lake.write("trades", make_trades(5, start_us=DAY2_US))
    info = {p: n for i in lake.describe() for p, n in i.partitions.items()}
    assert info == {("BTCUSDT", "2024-08-08"): 20, ("BTCUSDT", "2024-08-09"): 5}


def test_duplicates_on_natural_key_are_dropped_and_counted(lake: Lake):
    trades = make_trades(10)
    report = lake.write("trades", pa.concat_tables([trades, trades.slice(2, 3)]))
    assert report.duplicates_dropped == 3
    assert lake.read("trades").num_rows == 10


def test_invalid_rows_are_quarantined_with_reasons(lake: Lake):
    books = make_books(20)
    bid = np.stack(books["bid_px"].to_numpy(zero_copy_only=False))
    ask = np.stack(books["ask_px"].to_numpy(zero_copy_only=False))
    bid[3, :] = ask[3, 0] + 0.1 + np.arange(20)[::-1] * 0.1  # crossed: best bid above best ask
    bid_sz = np.stack(books["bid_sz"].to_numpy(zero_copy_only=False))
    bid_sz[5, 0] = -1.0
    bid[7, 0] = np.nan
    cols = {name: books[name] for name in books.column_names}
    from feature_store.records import table_from_columns

    cols.update(bid_px=bid, bid_sz=bid_sz)
    cols["symbol"] = pa.array(["BTCUSDT"] * 19 + ["NOPEUSDT"])
    bad = table_from_columns(BookSnapshot, cols)
    report = lake.write("book_snapshots", bad)
    assert report.rows_written == 16
    assert report.rows_quarantined == 4
    assert report.reasons == {"crossed_book": 1, "non_positive_size": 1, "nan": 1, "unknown_symbol": 1}
    quarantine = lake.read("book_snapshots", zone="quarantine")
    assert sorted(quarantine["reason"].to_pylist()) == sorted(
        ["crossed_book", "non_positive_size", "nan", "unknown_symbol"]
    )
    # Re-landing the same input does not double the quarantine either.
    lake.write("book_snapshots", bad)
    assert lake.read("book_snapshots", zone="quarantine").num_rows == 4


def test_time_going_backwards_is_quarantined(lake: Lake):
    trades = make_trades(10)
    ts = trades["ts"].cast(pa.int64()).to_numpy().copy()
    ts[6] = ts[2] - 1
    trades = trades.set_column(
        trades.schema.get_field_index("ts"), "ts", pa.array(ts).cast(trades.schema.field("ts").type)
    )
    report = lake.write("trades", trades)
    assert report.reasons == {"time_backwards": 1}
    assert report.rows_written == 9


def test_non_positive_trade_price_is_quarantined(lake: Lake):
    trades = make_trades(6)
    price = trades["price"].to_numpy().copy()
    price[0] = 0.0
    trades = trades.set_column(trades.schema.get_field_index("price"), "price", pa.array(price))
    assert lake.write("trades", trades).reasons == {"non_positive_price": 1}


def test_concurrent_writes_of_different_partitions_both_land(lake: Lake):
    days = [DAY_US + i * 86_400_000_000 for i in range(4)]
    errors: list[BaseException] = []

    def land(start_us: int) -> None:
        try:
            lake.write("trades", make_trades(15, start_us=start_us))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=land, args=(d,)) for d in days]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    landed = lake.read("trades")
    assert landed.num_rows == 60
    assert sorted(set(landed["date"].to_pylist())) == ["2024-08-08", "2024-08-09", "2024-08-10", "2024-08-11"]


def test_read_filters_by_symbol_and_dates(lake: Lake):
    lake.write("trades", pa.concat_tables([make_trades(10), make_trades(12, start_us=DAY2_US)]))
    lake.write("trades", make_trades(7, symbol="ETHUSDT"))
    assert lake.read("trades", symbol="ETHUSDT").num_rows == 7
    assert lake.read("trades", symbol="BTCUSDT", start="2024-08-09").num_rows == 12
    assert lake.read("trades", end="2024-08-08").num_rows == 17
    ts = lake.read("trades")["ts"]
    assert pc.all(pc.equal(lake.read("trades", symbol="BTCUSDT")["symbol"], "BTCUSDT")).as_py()
    assert len(ts) == 29


def test_schema_mismatch_is_a_clear_error(lake: Lake):
    with pytest.raises(LakeError, match="does not match the trades record schema"):
        lake.write("trades", make_books(3))


def test_unwritable_root_and_bad_scheme_fail_fast(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(LakeError, match="not writable"):
        Lake(blocker / "lake").ensure_usable()
    with pytest.raises(LakeError, match="unsupported scheme"):
        Lake("ftp://example.invalid/lake").ensure_usable()


def test_reading_a_missing_raw_table_gives_an_empty_typed_table(lake: Lake):
    out = lake.read("funding_rates")
    assert out.num_rows == 0
    assert out.schema == RECORD_TYPES["funding_rates"].schema
