"""Every published SQL feature, label and train-fit statistic equals the numpy reference (feature_store.features_ref).

The lake: three synthetic days of BTCUSDT on a 1 s grid built once through `dbt build` (tests/feature_lake.py).
Tolerance: relative 1e-9 and absolute 1e-9 x the column's scale (max |value|) for sums, ratios and prices;
1e-6 for skewness / kurtosis (power sums in SQL against two-pass central moments in numpy) and the OFI
eigenvector (repeated squaring against LAPACK).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from feature_lake import TEST_DAYS, TEST_VARS, assert_close, day_start_us, shared_lake, warehouse_table

from feature_store import features_ref as ref
from feature_store import qc
from feature_store.instruments import instrument

TICK = instrument("BTCUSDT").tick_size
PARAMS = ref.RefParams(warmup_s=900, regime_window_s=900)
DAY_US = 86_400_000_000


@pytest.fixture(scope="module")
def built():
    lake = shared_lake()
    books = lake.raw["book_snapshots"]
    trades = lake.raw["trades"]
    book = ref.book_from_records(books, TICK)
    f = ref.book_features(book, trades, PARAMS)
    train_end = int(np.datetime64(TEST_DAYS[0], "us").astype(np.int64)) + DAY_US
    fit = ref.fit_train(f, f["ts_us"] < train_end, TICK, PARAMS)
    pub = ref.published_features(f, fit, TICK, PARAMS)
    sql = warehouse_table(lake.root, "SELECT * FROM fct_features WHERE symbol = 'BTCUSDT' ORDER BY ts_us")
    return lake, book, f, fit, pub, sql


def test_rows_and_times_match(built):
    _, book, f, _, _, sql = built
    np.testing.assert_array_equal(sql["ts_us"].to_numpy(), f["ts_us"])
    np.testing.assert_array_equal(sql["is_warmup"].to_numpy(), f["is_warmup"])


ROUGH = {c for c in ref.clipped_features() if c.startswith(("skew_", "kurt_"))}


@pytest.mark.parametrize(
    "column",
    [
        "mid",
        "weighted_mid",
        "micro_price",
        "weighted_mid_offset_bps",
        "microprice_offset_bps",
        "imbalance_l1",
        "imbalance_l3",
        "imbalance_l5",
        "imbalance_l10",
        *ref.clipped_features(),
        "ofi_integrated_10s",
        "tfi_1s",
        "tfi_10s",
        "tfi_60s",
        "regime_score",
        "log_ret",
    ],
)
def test_feature_equals_reference(built, column):
    *_, pub, sql = built
    if column in ROUGH:
        assert_close(column, sql[column].to_numpy(zero_copy_only=False), pub[column], 1e-6)
    elif column == "ofi_integrated_10s":
        assert_close(column, sql[column].to_numpy(zero_copy_only=False), pub[column], 1e-7)
    else:
        assert_close(column, sql[column].to_numpy(zero_copy_only=False), pub[column])


def test_regime_labels_equal_reference(built):
    *_, pub, sql = built
    got = np.array(sql["regime"].to_pylist())
    agree = got == pub["regime"]
    # a score exactly on a threshold may fall either side through rounding; nothing else may differ
    assert agree.mean() > 0.999, f"regime labels agree on {agree.mean():.4%} of rows"
    assert set(got) <= {"bull", "bear", "range"}
    np.testing.assert_array_equal(
        np.array(sql["vol_regime"].to_pylist()) == "high", pub["vol_regime"] == "high"
    )


def test_train_fit_statistics_equal_reference(built):
    lake, _, _, fit, _, _ = built
    bounds = warehouse_table(
        lake.root, "SELECT * FROM norm_clip_bounds WHERE symbol = 'BTCUSDT'"
    ).to_pylist()[0]
    for c, (lo, hi) in fit.clip_bounds.items():
        assert np.isclose(bounds[f"{c}__lo"], lo, rtol=1e-9, atol=1e-12), c
        assert np.isclose(bounds[f"{c}__hi"], hi, rtol=1e-9, atol=1e-12), c
    g = warehouse_table(lake.root, "SELECT * FROM norm_microprice_g ORDER BY imb_bucket, spread_bucket")
    g_sql = np.array(g["g_ticks"].to_pylist()).reshape(fit.g_ticks.shape)
    np.testing.assert_allclose(g_sql, fit.g_ticks, rtol=1e-9, atol=1e-12)
    w = warehouse_table(lake.root, "SELECT * FROM norm_ofi_weights").to_pylist()[0]
    np.testing.assert_allclose([w[f"w_l{m}"] for m in range(1, 6)], fit.ofi_weights, rtol=1e-7, atol=1e-9)
    rt = warehouse_table(lake.root, "SELECT * FROM regime_thresholds").to_pylist()[0]
    assert np.isclose(rt["trend_threshold"], fit.trend_threshold, rtol=1e-9)
    assert np.isclose(rt["vol_threshold"], fit.vol_threshold, rtol=1e-9)


def test_normalization_stats_equal_reference(built):
    lake, _, f, _, pub, _ = built
    stats = warehouse_table(lake.root, "SELECT feature, mean, std FROM norm_feature_stats").to_pylist()
    train = (f["ts_us"] < int(np.datetime64(TEST_DAYS[1], "us").astype(np.int64))) & ~f["is_warmup"]
    checked = 0
    for row in stats:
        if row["feature"] not in pub:
            continue
        x = np.asarray(pub[row["feature"]], dtype=float)[train]
        x = x[np.isfinite(x)]
        assert np.isclose(row["mean"], x.mean(), rtol=1e-8, atol=1e-12 * max(1, np.abs(x).max())), row[
            "feature"
        ]
        assert np.isclose(row["std"], x.std(), rtol=1e-6, atol=1e-12 * max(1, np.abs(x).max())), row[
            "feature"
        ]
        checked += 1
    assert checked >= 30


def test_mid_markouts_equal_reference(built):
    lake, book, f, *_ = built
    labels = warehouse_table(lake.root, "SELECT * FROM fct_labels ORDER BY ts_us")
    np.testing.assert_array_equal(labels["ts_us"].to_numpy(), f["ts_us"])
    want = ref.mid_markouts(f["ts_us"], f["mid"])
    for name, values in want.items():
        assert_close(name, labels[name].to_numpy(zero_copy_only=False), values)


def test_trade_markouts_equal_reference(built):
    lake, book, f, *_ = built
    got = warehouse_table(lake.root, "SELECT * FROM fct_trade_markouts ORDER BY ts_us, trade_id")
    trades = lake.raw["trades"]
    order = np.lexsort((trades["trade_id"].to_numpy(), trades["ts"].cast(pa.int64()).to_numpy()))
    want = ref.trade_markouts(f["ts_us"], f["mid"], trades.take(pa.array(order)))
    np.testing.assert_array_equal(got["trade_id"].to_numpy(), want["trade_id"])
    for h in ref.MARKOUT_HORIZONS:
        assert_close(
            f"markout_{h}s_bps",
            got[f"markout_{h}s_bps"].to_numpy(zero_copy_only=False),
            want[f"markout_{h}s_bps"],
        )


def test_funding_and_onchain_are_as_of(built):
    lake, _, f, _, _, sql = built
    funding = warehouse_table(lake.root, "SELECT ts_us, rate FROM stg_funding_rates ORDER BY ts_us")
    want = ref.asof(funding["ts_us"].to_numpy(), funding["rate"].to_numpy(), f["ts_us"])
    assert_close("funding_rate_last", sql["funding_rate_last"].to_numpy(zero_copy_only=False), want)
    oc = warehouse_table(
        lake.root, "SELECT available_at_us, value FROM stg_onchain_metrics WHERE metric = 'tx_count'"
    )
    want = ref.asof(oc["available_at_us"].to_numpy(), oc["value"].to_numpy(), f["ts_us"])
    assert_close("onchain_tx_count", sql["onchain_tx_count"].to_numpy(zero_copy_only=False), want)
    # a day's on-chain value (published the next day + 2 h) is invisible before its availability time
    first_day = sql.filter(pa.compute.less(sql["ts_us"], int(f["ts_us"][0]) + 2 * 3_600_000_000))
    assert first_day["onchain_tx_count"].null_count == first_day.num_rows


SYNC_LAGS = range(-10, 11)


def _sync_reference(net_taker_qty: np.ndarray, log_ret: np.ndarray) -> tuple[int, float]:
    """The L2/trade sync of one symbol-day: the correlation of the taker volume at row t with the log return at
    row t + k over the pairs where both exist (the day's first row has no return), and the k (in rows) where it is
    highest."""
    n = len(net_taker_qty)
    corr = {}
    for k in SYNC_LAGS:
        t = np.arange(max(0, -k), min(n, n - k))
        x, r = net_taker_qty[t], log_ret[t + k]
        ok = np.isfinite(r)
        corr[k] = float(np.corrcoef(x[ok], r[ok])[0, 1])
    best = max(corr, key=corr.get)
    return best, corr[best]


def test_daily_qc_metrics_equal_the_landing_qc_and_numpy(built):
    """metrics_daily (SQL over the staged book, the trade flow and the staged trades, one run per day) against two
    independent numpy implementations: the landing QC's counters over the day's raw rows (feature_store.qc), and
    the L2/trade sync and touch sizes over the reference's staged books and trade flow.  Covers the planted bad day
    (a 61 s gap, 5 crossed books) as well as the good ones."""
    lake, book, f, *_ = built
    got_rows = warehouse_table(lake.root, "SELECT * FROM metrics_daily WHERE symbol = 'BTCUSDT'").to_pylist()
    got_by_day = {str(m["date"]): m for m in got_rows}
    assert sorted(got_by_day) == list(TEST_DAYS)
    raw_books, raw_trades = lake.raw["book_snapshots"], lake.raw["trades"]
    raw_book_ts = raw_books["ts"].cast(pa.int64()).to_numpy()
    raw_trade_ts = raw_trades["ts"].cast(pa.int64()).to_numpy()
    grid_s = TEST_VARS["grid_ms"] / 1000
    for day in TEST_DAYS:
        lo, hi = day_start_us(day), day_start_us(day) + DAY_US
        trades = raw_trades.filter(pa.array((raw_trade_ts >= lo) & (raw_trade_ts < hi)))
        tables = {
            "book_snapshots": raw_books.filter(pa.array((raw_book_ts >= lo) & (raw_book_ts < hi))),
            "trades": trades,
        }
        want = qc.day_counters(tables, TICK, grid_ms=TEST_VARS["grid_ms"])
        got = got_by_day[day]
        n = got["book_rows"]
        assert n == want["book_rows"] and got["books_dropped"] == 0, day
        # metrics_daily rates are per book, the landing QC's gap rate per step: compare the counts
        assert round(got["gap_rate"] * n) == want["book_gaps"], day
        assert got["max_gap_s"] == pytest.approx(want["book_max_gap_s"], rel=1e-12), day
        assert round(got["crossed_rate"] * n) == want["crossed_books"], day
        assert round(got["locked_rate"] * n) == want["locked_books"], day
        assert got["spread_bps_p50"] == pytest.approx(want["spread_bps_p50"], rel=1e-9), day
        assert got["spread_bps_p99"] == pytest.approx(want["spread_bps_p99"], rel=1e-9), day
        assert got["trade_rows"] == want["trade_rows"], day
        recv_lag = trades["recv_ts"].cast(pa.int64()).to_numpy() - trades["ts"].cast(pa.int64()).to_numpy()
        assert got["mean_trade_recv_lag_s"] == pytest.approx(recv_lag.mean() / 1e6, rel=1e-9), day

        in_day = (f["ts_us"] >= lo) & (f["ts_us"] < hi)
        touch = np.minimum(book.bid_sz[in_day, 0], book.ask_sz[in_day, 0]).min()
        assert got["min_touch_size"] == pytest.approx(touch, rel=1e-12), day
        mid = f["mid"][in_day]
        log_ret = np.r_[np.nan, np.log(mid[1:] / mid[:-1])]  # a day's first book has no return within the day
        lag_rows, corr = _sync_reference(f["net_taker_qty"][in_day], log_ret)
        assert got["sync_best_lag_s"] == pytest.approx(lag_rows * grid_s), day
        assert got["sync_best_corr"] == pytest.approx(corr, rel=1e-9), day
