{{ config(
    pre_hook="{{ delete_range('ts_us', range_start_us() ~ ' - 86400000000', range_end_us()) }}",
) }}
-- Mark / index price and predicted funding of [start_date - 1 day, end_date] (the day before is the as-of
-- warm-up), deduplicated on (symbol, ts).
SELECT
    symbol,
    ts,
    epoch_us(ts) AS ts_us,
    mark_price,
    index_price,
    est_funding_rate,
    epoch_us(next_funding_ts) AS next_funding_ts_us
FROM {{ source('raw', 'mark_prices') }}
WHERE {{ raw_date_filter(days_before=1) }}
  AND epoch_us(ts) >= {{ range_start_us() }} - 86400000000
  AND epoch_us(ts) < {{ range_end_us() }}
  AND mark_price > 0
QUALIFY row_number() OVER (PARTITION BY symbol, ts ORDER BY recv_ts DESC) = 1
