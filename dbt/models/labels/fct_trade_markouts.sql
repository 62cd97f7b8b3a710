{{ config(
    pre_hook="{{ delete_range('ts_us', markouts_start_us(), range_end_us()) }}",
    on_schema_change='fail',
) }}
-- depends_on: {{ ref('fct_features') }}
-- (for scheduling only, the markouts read no features: they run after fct_features, beside what reads it;
-- dbt_project.yml, the schedule of a build)
{%- set STREAMING = staged_grid_is_regular(
        ref('stg_book_snapshots'), markouts_start_us(), range_end_us() ~ ' + ' ~ max_horizon_us(),
        markout_horizons()) %}
{%- set G = grid_us() %}
-- Trade markouts per trade, from the aggressor's side d (+1 buy, -1 sell): d * (m(t+h) - p) / p * 1e4 bps, with
-- m(t+h) the mid of the last book snapshot at or before t+h; NULL while t+h lies beyond the staged books.
-- On a regular staged grid the snapshot at or before t+h is a computed grid time: one equality join per trade on
-- its own grid row, whose future mids are streaming lags (macros/regular_grid.sql); otherwise as-of joins.
WITH book AS (
    SELECT symbol, ts_us, (bid_px_1 + ask_px_1) / 2 AS mid
    FROM {{ ref('stg_book_snapshots') }}
    -- books up to one horizon past the range: labels at the range's end look into the next day when it is staged
    WHERE ts_us >= {{ markouts_start_us() }} AND ts_us < {{ range_end_us() }} + {{ max_horizon_us() }}
),
{{ markout_last_book() }},
-- read by both branches below, but not kept in memory between them (~100 MB for a day): the second branch, trades
-- before the first staged book, filters it down to nothing on every day but the first
trades AS NOT MATERIALIZED (
    SELECT symbol, date, ts, ts_us, trade_id, price, qty, side
    FROM {{ ref('stg_trades') }}
    WHERE ts_us >= {{ markouts_start_us() }} AND ts_us < {{ range_end_us() }}
)
{%- if STREAMING %},
first_books AS (
    SELECT book.symbol, book.ts_us, book.mid
    FROM book
    JOIN last_book AS lb USING (symbol)
    WHERE book.ts_us < lb.first_ts_us + {{ max_horizon_us() }}
),
future_mids AS (
    SELECT
        symbol,
        ts_us,
        {%- for h in markout_horizons() %}
        {{ stream_prev('mid', grid_rows(h) | int) }} AS mid_{{ h }}s{{ ',' if not loop.last }}
        {%- endfor %}
    FROM (SELECT * FROM book ORDER BY symbol, ts_us DESC)
)
SELECT {{ trade_markout_columns('f.mid_%ds', past_window=true) }}
FROM trades AS t
JOIN last_book AS lb USING (symbol)
-- the grid row at or before the trade (floor to the grid, whose phase is the first row's)
LEFT JOIN future_mids AS f
    ON f.symbol = t.symbol
   AND f.ts_us = t.ts_us - (((t.ts_us - lb.first_ts_us) % {{ G }}) + {{ G }}) % {{ G }}
WHERE t.ts_us >= lb.first_ts_us
UNION ALL
-- trades before the first staged book (start of history): the grid row at or before t+h, one join a horizon, on
-- the books of the first max horizon only (t + h < first book + h): the whole window would be four hash tables of
-- the day's books, ~550 MB, to match no row on every day but the first
SELECT {{ trade_markout_columns('b%d.mid', past_window=true) }}
FROM trades AS t
JOIN last_book AS lb USING (symbol)
{%- for h in markout_horizons() %}
LEFT JOIN first_books AS b{{ h }}
    ON b{{ h }}.symbol = t.symbol
   AND b{{ h }}.ts_us = t.ts_us + {{ h * 1000000 }} - (((t.ts_us + {{ h * 1000000 }} - lb.first_ts_us) % {{ G }}) + {{ G }}) % {{ G }}
{%- endfor %}
WHERE t.ts_us < lb.first_ts_us
{%- else %}
SELECT {{ trade_markout_columns('b%d.mid') }}
FROM trades AS t
JOIN last_book AS lb USING (symbol)
{%- for h in markout_horizons() %}
ASOF LEFT JOIN book AS b{{ h }} ON b{{ h }}.symbol = t.symbol AND t.ts_us + {{ h * 1000000 }} >= b{{ h }}.ts_us
{%- endfor %}
{%- endif %}
