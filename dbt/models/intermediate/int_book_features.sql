{{ config(
    pre_hook="{{ delete_range('ts_us', range_start_us(), range_end_us()) }}",
) }}
{%- set M = ofi_levels() -%}
{%- set FW = flow_window() -%}
{%- set W = var('regime_window_s') | int -%}
-- Book-level features per snapshot, before any train-fit step.  Rolling statistics use the trailing window
-- (t - W, t] on exchange time (RANGE frames over epoch microseconds: correct across gaps in the grid).  The
-- rows of [start_date, end_date] are computed over the staged history from start_date - warm-up, so a day built
-- alone equals the same day built inside a longer range.  is_warmup marks rows whose longest window reaches
-- before the first staged row (the first hour of the very first day): excluded from training.
WITH book AS (
    SELECT b.*, i.tick_size
    FROM {{ ref('stg_book_snapshots') }} AS b
    JOIN {{ ref('instruments') }} AS i ON i.symbol = b.symbol AND i.market = b.market
    WHERE b.ts_us >= {{ range_start_us() }} - {{ warmup_us() }} AND b.ts_us < {{ range_end_us() }}
),
flow AS (
    SELECT *
    FROM {{ ref('int_trade_flow') }}
    WHERE ts_us >= {{ range_start_us() }} - {{ warmup_us() }} AND ts_us < {{ range_end_us() }}
),
base AS (
    SELECT
        book.symbol,
        book.market,
        book.date,
        book.ts,
        book.ts_us,
        book.tick_size,
        (ask_px_1 + bid_px_1) / 2 AS mid,
        ask_px_1 - bid_px_1 AS spread,
        bid_sz_1,
        ask_sz_1,
        bid_px_1,
        ask_px_1,
        {%- for k in [1, 3, 5, 10] %}
        ({% for i in range(1, k + 1) %}bid_sz_{{ i }}{{ ' + ' if not loop.last }}{% endfor %}) AS bid_depth_{{ k }},
        ({% for i in range(1, k + 1) %}ask_sz_{{ i }}{{ ' + ' if not loop.last }}{% endfor %}) AS ask_depth_{{ k }},
        {%- endfor %}
        ({% for i in range(1, M + 1) %}bid_sz_{{ i }} + ask_sz_{{ i }}{{ ' + ' if not loop.last }}{% endfor %}) / {{ 2 * M }} AS avg_depth_l{{ M }},
        {%- for m in range(1, M + 1) %}
        -- OFI event at level {{ m }} (Cont, Kukanov, Stoikov 2014); absent levels (NULL price) compare false
        coalesce(CASE WHEN bid_px_{{ m }} >= lag(bid_px_{{ m }}) OVER w THEN bid_sz_{{ m }} END, 0.0)
          - coalesce(CASE WHEN bid_px_{{ m }} <= lag(bid_px_{{ m }}) OVER w THEN lag(bid_sz_{{ m }}) OVER w END, 0.0)
          - coalesce(CASE WHEN ask_px_{{ m }} <= lag(ask_px_{{ m }}) OVER w THEN ask_sz_{{ m }} END, 0.0)
          + coalesce(CASE WHEN ask_px_{{ m }} >= lag(ask_px_{{ m }}) OVER w THEN lag(ask_sz_{{ m }}) OVER w END, 0.0)
          AS ofi_event_l{{ m }},
        {%- endfor %}
        ln((ask_px_1 + bid_px_1) / (lag(ask_px_1) OVER w + lag(bid_px_1) OVER w)) AS log_ret,
        -- implied cancels at the best queue while its price is unchanged: -dq - executed volume
        coalesce(CASE WHEN bid_px_1 = lag(bid_px_1) OVER w
                      THEN lag(bid_sz_1) OVER w - bid_sz_1 - coalesce(flow.sell_qty_at_bid, 0.0) END, 0.0) AS cancel_bid,
        coalesce(CASE WHEN ask_px_1 = lag(ask_px_1) OVER w
                      THEN lag(ask_sz_1) OVER w - ask_sz_1 - coalesce(flow.buy_qty_at_ask, 0.0) END, 0.0) AS cancel_ask,
        coalesce(flow.n_trades, 0) AS n_trades,
        coalesce(flow.buy_qty, 0.0) AS buy_qty,
        coalesce(flow.sell_qty, 0.0) AS sell_qty,
        coalesce(flow.buy_qty_at_ask, 0.0) AS buy_qty_at_ask,
        coalesce(flow.sell_qty_at_bid, 0.0) AS sell_qty_at_bid,
        min(book.ts_us) OVER (PARTITION BY book.symbol) AS first_ts_us
    FROM book
    LEFT JOIN flow ON flow.symbol = book.symbol AND flow.ts_us = book.ts_us
    WINDOW w AS (PARTITION BY book.symbol ORDER BY book.ts_us)
),
rolled AS (
    SELECT
        symbol,
        market,
        date,
        ts,
        ts_us,
        ts_us < first_ts_us + {{ warmup_us() }} AS is_warmup,
        mid,
        spread / mid * 1e4 AS spread_bps,
        spread / tick_size AS spread_ticks,
        {%- for k in [1, 3, 5, 10] %}
        (bid_depth_{{ k }} - ask_depth_{{ k }}) / (bid_depth_{{ k }} + ask_depth_{{ k }}) AS imbalance_l{{ k }},
        {%- endfor %}
        (ask_px_1 * bid_sz_1 + bid_px_1 * ask_sz_1) / (bid_sz_1 + ask_sz_1) AS weighted_mid,
        bid_sz_1 AS queue_bid_l1,
        ask_sz_1 AS queue_ask_l1,
        {%- for s in ofi_l1_windows() %}
        sum(ofi_event_l1) OVER {{ 'w%d' % s }} AS ofi_l1_{{ s }}s,
        {%- endfor %}
        {%- for m in range(1, M + 1) %}
        sum(ofi_event_l{{ m }}) OVER w{{ FW }} / avg(avg_depth_l{{ M }}) OVER w{{ FW }} AS ofi_l{{ m }}_{{ FW }}s_norm,
        {%- endfor %}
        {%- for s in tfi_windows() %}
        coalesce((sum(buy_qty) OVER w{{ s }} - sum(sell_qty) OVER w{{ s }})
                 / nullif(sum(buy_qty) OVER w{{ s }} + sum(sell_qty) OVER w{{ s }}, 0), 0.0) AS tfi_{{ s }}s,
        {%- endfor %}
        sum(buy_qty + sell_qty) OVER w{{ FW }} AS trade_qty_{{ FW }}s,
        sum(buy_qty_at_ask) OVER w{{ FW }} / first_value(ask_sz_1) OVER w{{ FW }} AS depletion_ask_{{ FW }}s,
        sum(sell_qty_at_bid) OVER w{{ FW }} / first_value(bid_sz_1) OVER w{{ FW }} AS depletion_bid_{{ FW }}s,
        -- time to deplete the best queue at the window's aggressive rate; 1 day when nothing traded
        least(ask_sz_1 * {{ FW }} / nullif(sum(buy_qty) OVER w{{ FW }}, 0), 86400.0) AS ttd_ask_s,
        least(bid_sz_1 * {{ FW }} / nullif(sum(sell_qty) OVER w{{ FW }}, 0), 86400.0) AS ttd_bid_s,
        sum(cancel_bid) OVER w{{ FW }} AS cancels_bid_{{ FW }}s,
        sum(cancel_ask) OVER w{{ FW }} AS cancels_ask_{{ FW }}s,
        {%- for s in rvol_windows() %}
        sqrt(coalesce(sum(log_ret * log_ret) OVER w{{ s }}, 0.0)) AS rvol_{{ s }}s,
        {%- endfor %}
        {%- for s in moment_windows() %}
        count(log_ret) OVER w{{ s }} AS n_ret_{{ s }}s,
        sum(log_ret) OVER w{{ s }} AS s1_{{ s }}s,
        sum(log_ret * log_ret) OVER w{{ s }} AS s2_{{ s }}s,
        sum(log_ret * log_ret * log_ret) OVER w{{ s }} AS s3_{{ s }}s,
        sum(log_ret * log_ret * log_ret * log_ret) OVER w{{ s }} AS s4_{{ s }}s,
        {%- endfor %}
        -- causal regime inputs: realized volatility and log trend over the regime window
        sqrt(coalesce(sum(log_ret * log_ret) OVER wr, 0.0)) AS regime_rvol,
        ln(mid / first_value(mid) OVER wr) AS regime_trend,
        bid_sz_1 / (bid_sz_1 + ask_sz_1) AS imbalance_ratio,
        log_ret,
        buy_qty - sell_qty AS net_taker_qty
    FROM base
    WINDOW
        {%- for s in [1, 10, 60, 300] %}
        w{{ s }} AS (PARTITION BY symbol ORDER BY ts_us {{ trailing(s) }}),
        {%- endfor %}
        wr AS (PARTITION BY symbol ORDER BY ts_us {{ trailing(W) }})
)
SELECT
    * EXCLUDE (
        {%- for s in moment_windows() %}n_ret_{{ s }}s, s1_{{ s }}s, s2_{{ s }}s, s3_{{ s }}s, s4_{{ s }}s{{ ', ' if not loop.last }}{% endfor %}
    ),
    {%- for s in moment_windows() %}
    -- sample skewness g1 = m3 / m2^1.5 and excess kurtosis g2 = m4 / m2^2 - 3 from power sums (central moments
    -- with divisor n); 0 when the window has fewer than 3 returns or no variation (m2 <= 1e-9 mean r^2)
    {{ moments('n_ret_%ds' % s, 's1_%ds' % s, 's2_%ds' % s, 's3_%ds' % s, 's4_%ds' % s, 'skew_%ds' % s, 'kurt_%ds' % s) }},
    {%- endfor %}
FROM rolled
WHERE ts_us >= {{ range_start_us() }}
