"""On a real capture: the Binance USD-M BTCUSDT WebSocket capture (6 minutes, /work/shared/data/binance/usdm),
rebuilt by feature_store.sources.binance_capture, landed in a raw lake and run through `dbt build`; every SQL
feature and label equals the numpy reference.  Tolerances as in test_features_reference (1e-9 relative;
1e-6 for skewness / kurtosis and the integrated OFI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from feature_lake import assert_close, warehouse_table, write_raw

from feature_store import features_ref as ref
from feature_store.feature_build import BuildWindow, run_dbt
from feature_store.instruments import instrument
from feature_store.records import RECORD_TYPES

CAPTURE = Path("/work/shared/data/binance/usdm/btcusdt_20240808.gz")
DAY, LAST_DAY = "2024-08-08", "2024-08-09"  # the capture ends one second past midnight
PARAMS = ref.RefParams(warmup_s=60, regime_window_s=60)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    if not CAPTURE.exists():
        pytest.skip(f"the real capture {CAPTURE} is not on this machine")
    from feature_store.sources.binance_capture import load_capture

    capture = load_capture([CAPTURE], "usdm", grid_ms=100)
    root = tmp_path_factory.mktemp("real_lake")
    for name in ("book_snapshots", "trades", "funding_rates", "mark_prices", "onchain_metrics"):
        table = capture.tables.get(name)
        if table is None:  # the capture has no rows of it: an empty table keeps the source readable
            table = RECORD_TYPES[name].schema.empty_table()
        write_raw(root, name, table)
    window = BuildWindow(DAY, LAST_DAY, train_start=DAY, train_end=LAST_DAY)
    # six minutes of data: the daily QC thresholds (singular tests) are not what this test is about; the capture's
    # book is a complete 100 ms grid, so the streaming plan is asked for (dbt fails if the grid were not regular)
    run_dbt(
        root,
        "build",
        window,
        extra_vars={"warmup_s": 60, "regime_window_s": 60, "feature_plan": "streaming"},
        exclude="test_type:singular",
    )
    return root, capture


def test_real_capture_features_equal_numpy(real):
    root, capture = real
    tick = instrument("BTCUSDT").tick_size
    books, trades = capture.tables["book_snapshots"], capture.tables["trades"]
    book = ref.book_from_records(books, tick)
    f = ref.book_features(book, trades, PARAMS)
    fit = ref.fit_train(f, np.ones(len(book.ts_us), bool), tick, PARAMS)
    want = ref.published_features(f, fit, tick, PARAMS)
    got = warehouse_table(root, "SELECT * FROM fct_features ORDER BY ts_us")
    assert got.num_rows == len(book.ts_us) > 3000
    np.testing.assert_array_equal(got["ts_us"].to_numpy(), f["ts_us"])
    assert (f["ts_us"][1:] - f["ts_us"][:-1]).min() > 0
    for name in [
        "mid",
        "weighted_mid",
        "micro_price",
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
    ]:
        loose = name.startswith(("skew", "kurt", "ofi_integrated"))
        assert_close(name, got[name].to_numpy(zero_copy_only=False), want[name], 1e-6 if loose else 1e-9)
    labels = warehouse_table(root, "SELECT * FROM fct_labels ORDER BY ts_us")
    for name, values in ref.mid_markouts(f["ts_us"], f["mid"]).items():
        assert_close(name, labels[name].to_numpy(zero_copy_only=False), values, 1e-9)
    # real trades do move the real book: the flow features are not degenerate
    assert np.abs(got["tfi_10s"].to_numpy()).max() > 0.5 and np.abs(got["ofi_l1_10s"].to_numpy()).max() > 0


def test_real_capture_trade_markouts_equal_numpy(real):
    root, capture = real
    tick = instrument("BTCUSDT").tick_size
    book = ref.book_from_records(capture.tables["book_snapshots"], tick)
    mid = (book.bid_px[:, 0] + book.ask_px[:, 0]) / 2
    trades = capture.tables["trades"]
    order = np.lexsort((trades["trade_id"].to_numpy(), trades["ts"].cast(pa.int64()).to_numpy()))
    want = ref.trade_markouts(book.ts_us, mid, trades.take(pa.array(order)))
    got = warehouse_table(root, "SELECT * FROM fct_trade_markouts ORDER BY ts_us, trade_id")
    np.testing.assert_array_equal(got["trade_id"].to_numpy(), want["trade_id"])
    for h in ref.MARKOUT_HORIZONS:
        assert_close(
            f"markout_{h}s_bps",
            got[f"markout_{h}s_bps"].to_numpy(zero_copy_only=False),
            want[f"markout_{h}s_bps"],
            1e-9,
        )
