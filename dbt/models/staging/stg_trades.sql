{{ config(
    pre_hook="{{ delete_range('ts_us', range_start_us(), range_end_us()) }}",
) }}
-- Typed, deduplicated trades of [start_date, end_date] (warm-up: the previous day's staged rows): positive price and quantity, side +1 (buyer
-- aggressor) or -1 (seller aggressor); the rest is dropped here (lake/raw quarantines it already on landing).
SELECT
    symbol,
    market,
    date,
    ts,
    epoch_us(ts) AS ts_us,
    epoch_us(recv_ts) AS recv_ts_us,
    trade_id,
    price,
    qty,
    CAST(side AS TINYINT) AS side
FROM {{ source('raw', 'trades') }}
WHERE {{ raw_date_filter() }}
  AND epoch_us(ts) >= {{ range_start_us() }}
  AND epoch_us(ts) < {{ range_end_us() }}
  AND price > 0 AND isfinite(price) AND qty > 0 AND isfinite(qty) AND side IN (-1, 1)
{%- if raw_has_duplicates(source('raw', 'trades'), ['symbol', 'trade_id']) %}
QUALIFY row_number() OVER (PARTITION BY symbol, trade_id ORDER BY recv_ts DESC) = 1
{%- endif %}
