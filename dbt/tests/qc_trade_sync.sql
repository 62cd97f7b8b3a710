-- QC L2/trade sync: on a day with trades, signed taker volume must move the mid at a lag within
-- qc_max_trade_lag_s and with a correlation of at least qc_min_sync_corr (clocks out of sync fail this).
SELECT symbol, date, sync_best_lag_s, sync_best_corr, trade_rows
FROM {{ ref('qc_daily') }}
WHERE date BETWEEN '{{ build_window("start_date") }}' AND '{{ build_window("end_date") }}'
  AND trade_rows >= 100
  AND (abs(sync_best_lag_s) > {{ var('qc_max_trade_lag_s') }} OR coalesce(sync_best_corr, 0) < {{ var('qc_min_sync_corr') }})
