{{ config(materialized='table') }}
-- Settled funding rates (a few rows a day): the whole table, deduplicated on (symbol, ts); ts is the funding time.
SELECT
    symbol,
    ts,
    epoch_us(ts) AS ts_us,
    rate,
    interval_hours
FROM {{ source('raw', 'funding_rates') }}
WHERE isfinite(rate) AND interval_hours > 0
QUALIFY row_number() OVER (PARTITION BY symbol, ts ORDER BY recv_ts DESC) = 1
