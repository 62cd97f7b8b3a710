{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_days() }}",
    on_schema_change='sync_all_columns',
) }}
-- depends_on: {{ ref('export_labels') }}
-- (for scheduling only, the metrics read no labels: they run after the fits and the labels export, beside
-- fct_features once it has sorted the day's books; dbt_project.yml, the schedule of a build)
-- Daily QC metrics per symbol for the dashboards and the QC tests: timestamp continuity (gaps over 1.5 grid
-- steps: rate and longest), crossed / locked books, books dropped by staging, trade counts and receive lags, spread
-- percentiles, and L2/trade sync: the lag (in grid rows, -10..10) at which the signed taker volume of a row
-- best correlates with the mid's log return, and that correlation (trades printed on time lead the mid by 0).
WITH ordered AS (
    -- the day's books in time order, each with its signed taker volume.  The spread before the train-fit clip (as
    -- the landing QC reports it, feature_store/qc.py) and the volume come from the staged book and the trade flow,
    -- not the features, so that these metrics run beside fct_features instead of after it
    SELECT
        b.symbol,
        b.date,
        b.ts_us,
        b.bid_px_1,
        b.ask_px_1,
        b.bid_sz_1,
        b.ask_sz_1,
        b.is_crossed,
        b.is_locked,
        coalesce(t.buy_qty, 0.0) - coalesce(t.sell_qty, 0.0) AS net_taker_qty
    FROM {{ ref('stg_book_snapshots') }} AS b
    LEFT JOIN {{ ref('int_trade_flow') }} AS t
        ON t.symbol = b.symbol AND t.ts_us = b.ts_us AND t.ts_us >= {{ range_start_us() }}
    WHERE b.ts_us >= {{ range_start_us() }} AND b.ts_us < {{ range_end_us() }}
    ORDER BY b.symbol, b.ts_us
),
stepped AS (
    -- streaming windows (empty OVER clauses) over the sorted rows; stream_prev() is the same symbol's row k rows before
    SELECT
        symbol,
        date,
        is_crossed,
        is_locked,
        bid_sz_1,
        ask_sz_1,
        net_taker_qty,
        ts_us - {{ stream_prev('ts_us') }} AS step_us,
        (ask_px_1 - bid_px_1) / ((ask_px_1 + bid_px_1) / 2) * 1e4 AS spread_bps,
        {{ book_log_ret(stream_prev('%s')) }} AS log_ret
    FROM ordered
),
book AS (
    -- for the L2/trade sync, the pairs of a return and the signed taker volume k rows away (k = -10..10): the volume
    -- k rows before the return (net_taker_qty_p<k>), or the return k rows before the volume (log_ret_p<k>, the
    -- volume k rows after the return), all lags of the same symbol's rows.  Streaming lags over the one sort rather
    -- than a window partition holding every lag: for a 100 ms day the query peaks at 197 instead of 290 MB and
    -- takes 0.61 instead of 0.81 CPU-s (0.48 instead of 0.45 s alone: the lags run on one thread), the same
    -- metrics; beside fct_features, whose memory it shares, a rebuild took 8.55 instead of 8.75 s (medians of 8
    -- alternating pairs)
    SELECT
        *,
        {%- for k in range(1, 11) %}
        {{ stream_prev('net_taker_qty', k) }} AS net_taker_qty_p{{ k }},
        {{ stream_prev('log_ret', k) }} AS log_ret_p{{ k }}{{ ',' if not loop.last }}
        {%- endfor %}
    FROM stepped
),
book_daily AS (
    -- every per-day figure of the books in one aggregate over book: continuity, crossed books, the spread
    -- percentiles and the correlation at every lag (one aggregate per lag, not 21 stacked copies of the day)
    SELECT
        symbol,
        date,
        count(*) AS book_rows,
        count(*) FILTER (WHERE step_us > {{ grid_us() * 1.5 }}) / count(*) AS gap_rate,
        coalesce(max(step_us), 0) / 1e6 AS max_gap_s,
        avg(is_crossed::INTEGER) AS crossed_rate,
        avg(is_locked::INTEGER) AS locked_rate,
        min(least(bid_sz_1, ask_sz_1)) AS min_touch_size,
        quantile_cont(spread_bps, 0.5) AS spread_bps_p50,
        quantile_cont(spread_bps, 0.99) AS spread_bps_p99,
        {%- for k in range(-10, 11) %}
        {%- if k < 0 %}
        corr(net_taker_qty, log_ret_p{{ -k }}) AS c_m{{ -k }},
        {%- elif k == 0 %}
        corr(net_taker_qty, log_ret) AS c_p0,
        {%- else %}
        corr(net_taker_qty_p{{ k }}, log_ret) AS c_p{{ k }}{{ ',' if not loop.last }}
        {%- endif %}
        {%- endfor %}
    FROM book
    GROUP BY ALL
),
raw_books AS (
    SELECT symbol, date, count(*) AS raw_book_rows
    FROM {{ source('raw', 'book_snapshots') }}
    WHERE {{ raw_date_filter() }}
    GROUP BY ALL
),
trades AS (
    SELECT symbol, date, count(*) AS trade_rows, avg(recv_ts_us - ts_us) / 1e6 AS mean_trade_recv_lag_s
    FROM {{ ref('stg_trades') }}
    WHERE ts_us >= {{ range_start_us() }} AND ts_us < {{ range_end_us() }}
    GROUP BY ALL
),
sync_long AS (
    SELECT
        symbol,
        date,
        unnest([{% for k in range(-10, 11) %}{{ k }}{{ ', ' if not loop.last }}{% endfor %}]) AS lag_rows,
        unnest([{% for k in range(-10, 11) %}c_{{ 'p' if k >= 0 else 'm' }}{{ k | abs }}{{ ', ' if not loop.last }}{% endfor %}]) AS c
    FROM book_daily
),
sync AS (
    SELECT symbol, date, arg_max(lag_rows, coalesce(c, -2)) AS best_lag_rows, max(c) AS best_corr
    FROM sync_long
    GROUP BY ALL
)
SELECT
    b.symbol,
    b.date,
    b.book_rows,
    coalesce(r.raw_book_rows, 0) - b.book_rows AS books_dropped,
    b.gap_rate,
    b.max_gap_s,
    b.crossed_rate,
    b.locked_rate,
    b.min_touch_size,
    coalesce(t.trade_rows, 0) AS trade_rows,
    t.mean_trade_recv_lag_s,
    s.best_lag_rows * {{ var('grid_ms') | int }} / 1000.0 AS sync_best_lag_s,
    s.best_corr AS sync_best_corr,
    b.spread_bps_p50,
    b.spread_bps_p99
FROM book_daily AS b
LEFT JOIN raw_books AS r USING (symbol, date)
LEFT JOIN trades AS t USING (symbol, date)
LEFT JOIN sync AS s USING (symbol, date)
