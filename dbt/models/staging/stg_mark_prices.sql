{{ config(
    pre_hook="{{ delete_range('ts_us', range_start_us(), range_end_us()) }}",
) }}
-- Mark / index price and predicted funding of [start_date, end_date], deduplicated on (symbol, ts); the as-of
-- join at the start of a day falls back on the previous day's staged rows.
SELECT
    symbol,
    ts,
    epoch_us(ts) AS ts_us,
    mark_price,
    index_price,
    est_funding_rate,
    epoch_us(next_funding_ts) AS next_funding_ts_us
FROM {{ source('raw', 'mark_prices') }}
WHERE {{ raw_date_filter() }}
  AND epoch_us(ts) >= {{ range_start_us() }}
  AND epoch_us(ts) < {{ range_end_us() }}
  AND mark_price > 0
QUALIFY row_number() OVER (PARTITION BY symbol, ts ORDER BY recv_ts DESC) = 1
