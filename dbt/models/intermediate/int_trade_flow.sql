{{ config(
    pre_hook="{{ delete_range('ts_us', range_start_us(), range_end_us()) }}",
) }}
{%- set LOWER = last_row_before_range_us(ref('stg_book_snapshots')) %}
-- Trades aligned as-of to the book grid: a trade at time u belongs to the first book snapshot at or after u
-- (the book it is visible in), so the aggregates of the row at t cover trades in (t_prev, t].  "At best" means
-- executed exactly at the best price of the book the trade hit (the last book strictly before it), i.e. the
-- volume that consumed the displayed best queue.
-- A run writes the rows of [start_date, end_date] only: a row at t depends only on the trades and books at or
-- before t, so later days change nothing before the range.  It reads from each symbol's last staged book before
-- the range on,
-- so the range's first row takes the previous day's trades after that book (a fixed warm-up would leave the
-- first book of the warm-up without the book before it, and its row without its trades).
{%- set GRID = staged_grid_is_regular(ref('stg_book_snapshots'), LOWER, range_end_us(), []) %}
{%- set G = grid_us() %}
WITH books AS (
    SELECT
        symbol,
        ts_us,
        bid_px_1,
        ask_px_1
        {%- if not GRID %},
        lead(ts_us) OVER (PARTITION BY symbol ORDER BY ts_us) AS next_ts_us
        {%- endif %}
    FROM {{ ref('stg_book_snapshots') }}
    WHERE ts_us >= {{ LOWER }} AND ts_us < {{ range_end_us() }}
),
{%- if GRID %}
-- On a regular staged grid (macros/regular_grid.sql) the first book at or after a trade at u is u rounded up to
-- the symbol's grid, and the last book strictly before it is one step earlier: an equality join instead of a
-- sort for the as-of join (half the time of the ASOF plan).  Trades at or before the first book, or after the
-- last, have no such pair of books, as in the as-of plan.
span AS (
    SELECT symbol, min(ts_us) AS lo, max(ts_us) AS hi
    FROM books
    GROUP BY symbol
),
trades AS (
    SELECT
        t.symbol,
        t.ts_us + (((s.lo - t.ts_us) % {{ G }}) + {{ G }}) % {{ G }} AS row_ts_us,
        t.ts_us,
        t.recv_ts_us,
        t.price,
        t.qty,
        t.side
    FROM {{ ref('stg_trades') }} AS t
    JOIN span AS s USING (symbol)
    WHERE t.ts_us >= {{ LOWER }} AND t.ts_us < {{ range_end_us() }} AND t.ts_us > s.lo AND t.ts_us <= s.hi
),
{%- else %}
trades AS (
    SELECT symbol, ts_us, recv_ts_us, price, qty, side
    FROM {{ ref('stg_trades') }}
    WHERE ts_us >= {{ LOWER }} AND ts_us < {{ range_end_us() }}
),
{%- endif %}
matched AS (
    SELECT
        t.symbol,
        {{ 't.row_ts_us' if GRID else 'b.next_ts_us' }} AS ts_us,
        t.ts_us AS trade_ts_us,
        t.recv_ts_us,
        t.price,
        t.qty,
        t.side,
        b.bid_px_1,
        b.ask_px_1
    FROM trades AS t
    {%- if GRID %}
    JOIN books AS b ON b.symbol = t.symbol AND b.ts_us = t.row_ts_us - {{ G }}
    {%- else %}
    ASOF JOIN books AS b ON t.symbol = b.symbol AND t.ts_us > b.ts_us
    {%- endif %}
)
SELECT
    symbol,
    ts_us,
    count(*) AS n_trades,
    coalesce(sum(qty) FILTER (WHERE side = 1), 0.0) AS buy_qty,
    coalesce(sum(qty) FILTER (WHERE side = -1), 0.0) AS sell_qty,
    coalesce(sum(qty) FILTER (WHERE side = 1 AND price = ask_px_1), 0.0) AS buy_qty_at_ask,
    coalesce(sum(qty) FILTER (WHERE side = -1 AND price = bid_px_1), 0.0) AS sell_qty_at_bid,
    sum(price * qty) AS notional,
    max(trade_ts_us) AS last_trade_ts_us,
    avg(recv_ts_us - trade_ts_us) AS mean_recv_lag_us
FROM matched
WHERE ts_us >= {{ range_start_us() }}
GROUP BY symbol, ts_us
