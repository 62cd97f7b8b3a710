{{ config(
    pre_hook="{{ delete_range('ts_us', range_start_us() ~ ' - ' ~ max_horizon_us(), range_end_us()) }}",
    on_schema_change='fail',
) }}
-- Mid markouts per book snapshot: (m(t+h) - m(t)) / m(t) * 1e4 bps with m(t+h) the mid of the last snapshot at
-- or before t+h.  NULL while t+h lies beyond the staged data; each run recomputes the last max-horizon of the
-- previous day too, so those labels are filled once the next day is built.  Split embargoes are applied by
-- feature_store.snapshots (rows whose horizon crosses a split boundary are dropped there).
WITH book AS (
    SELECT symbol, date, ts, ts_us, (bid_px_1 + ask_px_1) / 2 AS mid
    FROM {{ ref('stg_book_snapshots') }}
    WHERE ts_us >= {{ range_start_us() }} - {{ max_horizon_us() }} AND ts_us < {{ range_end_us() }}
),
ahead AS (
    SELECT
        *,
        max(ts_us) OVER (PARTITION BY symbol) AS last_ts_us,
        {%- for h in markout_horizons() %}
        last_value(mid) OVER (PARTITION BY symbol ORDER BY ts_us RANGE BETWEEN CURRENT ROW AND {{ h * 1000000 }} FOLLOWING) AS mid_{{ h }}s{{ ',' if not loop.last }}
        {%- endfor %}
    FROM book
)
SELECT
    symbol,
    date,
    ts,
    ts_us,
    {%- for h in markout_horizons() %}
    CASE WHEN last_ts_us >= ts_us + {{ h * 1000000 }} THEN (mid_{{ h }}s - mid) / mid * 1e4 END AS markout_mid_{{ h }}s_bps{{ ',' if not loop.last }}
    {%- endfor %}
FROM ahead
