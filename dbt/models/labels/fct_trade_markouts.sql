{{ config(
    pre_hook="{{ delete_range('ts_us', range_start_us() ~ ' - ' ~ max_horizon_us(), range_end_us()) }}",
    on_schema_change='fail',
) }}
-- Trade markouts per trade, from the aggressor's side d (+1 buy, -1 sell): d * (m(t+h) - p) / p * 1e4 bps, with
-- m(t+h) the mid of the last book snapshot at or before t+h; NULL while t+h lies beyond the staged books.
WITH book AS (
    SELECT symbol, ts_us, (bid_px_1 + ask_px_1) / 2 AS mid
    FROM {{ ref('stg_book_snapshots') }}
    -- books up to one horizon past the range: labels at the range's end look into the next day when it is staged
    WHERE ts_us >= {{ range_start_us() }} - {{ max_horizon_us() }} AND ts_us < {{ range_end_us() }} + {{ max_horizon_us() }}
),
last_book AS (
    SELECT symbol, max(ts_us) AS last_ts_us FROM book GROUP BY symbol
),
trades AS (
    SELECT symbol, date, ts, ts_us, trade_id, price, qty, side
    FROM {{ ref('stg_trades') }}
    WHERE ts_us >= {{ range_start_us() }} - {{ max_horizon_us() }} AND ts_us < {{ range_end_us() }}
)
SELECT
    t.symbol,
    t.date,
    t.ts,
    t.ts_us,
    t.trade_id,
    t.price,
    t.qty,
    t.side,
    {%- for h in markout_horizons() %}
    CASE WHEN lb.last_ts_us >= t.ts_us + {{ h * 1000000 }}
         THEN t.side * (b{{ h }}.mid - t.price) / t.price * 1e4 END AS markout_{{ h }}s_bps{{ ',' if not loop.last }}
    {%- endfor %}
FROM trades AS t
JOIN last_book AS lb USING (symbol)
{%- for h in markout_horizons() %}
ASOF LEFT JOIN book AS b{{ h }} ON b{{ h }}.symbol = t.symbol AND t.ts_us + {{ h * 1000000 }} >= b{{ h }}.ts_us
{%- endfor %}
