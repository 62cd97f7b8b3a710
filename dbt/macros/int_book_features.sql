{#- The book-level features per snapshot, before any train-fit step, in one pass over the time-sorted staged books
    (the ephemeral model int_book_features, computed inside fct_features and int_book_features_train): the book's
    shape (mid, spread, imbalances, weighted mid, queues), OFI, trade flow, depletion and cancels; log returns,
    realized volatility, skew / kurtosis and the regime inputs; the funding, mark-price and on-chain values as of each
    book. -#}
{% macro int_book_features() -%}
{%- set M = ofi_levels() -%}
{%- set FW = flow_window() -%}
{%- set W = var('regime_window_s') | int -%}
{#- the warm-up, reaching back to each symbol's last staged book before the range when that is older (a gap across
    midnight longer than the warm-up): the range's first rows difference against the same previous book whatever
    order the days were built in -#}
{%- set LOWER = 'least(' ~ range_start_us() ~ ' - ' ~ warmup_us() ~ ', ' ~ last_row_before_range_us(ref('stg_book_snapshots')) ~ ')' -%}
{%- set STREAMING = staged_grid_is_regular(
        ref('stg_book_snapshots'), LOWER, range_end_us(),
        ofi_l1_windows() + tfi_windows() + rvol_windows() + moment_windows() + [FW, W]) -%}
-- Book-level features per snapshot (macros/int_book_features.sql).  Rolling statistics use the
-- trailing window (t - W, t] on exchange time.  Two plans compute the same columns: on a regular staged grid the streaming plan
-- (running sums minus lagged running sums over time-sorted rows, macros/regular_grid.sql), otherwise RANGE frames
-- over epoch microseconds (correct across gaps).  The rows of [start_date, end_date] are computed over the staged
-- history from start_date - warm-up (or the previous staged book, when older), so a day built alone equals the same
-- day built inside a longer range.
-- is_warmup marks rows whose longest window reaches before the first staged row (the first hour of the very first
-- day): excluded from training.  Funding, mark-price premium and on-chain values are joined as of ts (on-chain as of
-- available_at, never the period they describe).
WITH book AS (
    SELECT b.*, i.tick_size
    FROM {{ ref('stg_book_snapshots') }} AS b
    JOIN {{ ref('instruments') }} AS i ON i.symbol = b.symbol AND i.market = b.market
    WHERE b.ts_us >= {{ LOWER }} AND b.ts_us < {{ range_end_us() }}
),
flow AS (
    SELECT *
    FROM {{ ref('int_trade_flow') }}
    WHERE ts_us >= {{ LOWER }} AND ts_us < {{ range_end_us() }}
),
-- the funding, mark-price and on-chain events the books take their values as of: one row per (symbol, ts_us) of a
-- kind (staging dedupes them)
funding_events AS (
    SELECT symbol, ts_us, rate, interval_hours
    FROM {{ ref('stg_funding_rates') }}
    WHERE ts_us < {{ range_end_us() }}
),
mark_events AS (
    SELECT symbol, ts_us, mark_price, index_price, est_funding_rate, next_funding_ts_us
    FROM {{ ref('stg_mark_prices') }}
    WHERE ts_us >= {{ LOWER }} AND ts_us < {{ range_end_us() }}
    UNION ALL
    -- the mark in force when the warm-up starts
    SELECT symbol, max(ts_us), arg_max_null(mark_price, ts_us), arg_max_null(index_price, ts_us),
           arg_max_null(est_funding_rate, ts_us), arg_max_null(next_funding_ts_us, ts_us)
    FROM {{ ref('stg_mark_prices') }}
    WHERE ts_us < {{ LOWER }}
    GROUP BY symbol
),
{%- for m in var('onchain_metrics') %}
onchain_{{ m }}_events AS (
    SELECT symbol, available_at_us AS ts_us, arg_max(value, ts) AS value
    FROM {{ ref('stg_onchain_metrics') }}
    WHERE metric = '{{ m }}' AND available_at_us < {{ range_end_us() }}
    GROUP BY symbol, available_at_us
),
{%- endfor %}
{%- set AS_OF_KINDS = ['funding', 'mark'] %}
{%- for m in var('onchain_metrics') %}{% do AS_OF_KINDS.append('onchain_' ~ m) %}{% endfor %}
{%- if STREAMING %}
{%- set SUMMED = ['avg_depth_l%d' % M] %}
{%- for m in range(1, M + 1) %}{% do SUMMED.append('ofi_event_l%d' % m) %}{% endfor %}
{%- do SUMMED.extend(['buy_qty', 'sell_qty', 'buy_qty_at_ask', 'sell_qty_at_bid', 'cancel_bid', 'cancel_ask']) %}
{%- do SUMMED.extend(['ret1', 'ret2', 'ret3', 'ret4']) %}
{%- set COUNTED = ['has_buy', 'has_sell', 'has_ret', 'nonzero_ret'] %}
{%- set FIRST = ['ts_us', 'bid_sz_1', 'ask_sz_1', 'mid'] %}
{#- lags longer than DuckDB streams (stream_far_lags): the return moments' and realized volatilities' long windows
    and the regime window's first mid -#}
{%- set FAR = {} %}
{%- for s in moment_windows() %}{% do FAR.setdefault(grid_rows(s) | int, []).extend(['c_has_ret', 'c_nonzero_ret', 'c_ret1', 'c_ret2', 'c_ret3', 'c_ret4']) %}{% endfor %}
{%- for s in rvol_windows() + [W] %}{% do FAR.setdefault(grid_rows(s) | int, []).extend(['c_nonzero_ret', 'c_ret2']) %}{% endfor %}
{%- do FAR.setdefault((grid_rows(W) | int) - 1, []).append('mid') %}
{%- for n in FAR %}{% do FAR.update({n: FAR[n] | unique | list}) %}{% endfor %}
{%- set AS_OF_AT = [] %}
{%- for kind in AS_OF_KINDS %}{% do AS_OF_AT.append(kind ~ '__at') %}{% endfor %}
book_flow AS (
    SELECT
        book.symbol,
        book.market,
        book.date,
        book.ts,
        book.ts_us,
        book.tick_size,
        {%- for m in range(1, M + 1) %}
        bid_px_{{ m }}, bid_sz_{{ m }}, ask_px_{{ m }}, ask_sz_{{ m }},
        {%- endfor %}
        {{ book_depth_columns(M) }},
        coalesce(flow.buy_qty, 0.0) AS buy_qty,
        coalesce(flow.sell_qty, 0.0) AS sell_qty,
        coalesce(flow.buy_qty_at_ask, 0.0) AS buy_qty_at_ask,
        coalesce(flow.sell_qty_at_bid, 0.0) AS sell_qty_at_bid
    FROM book
    LEFT JOIN flow ON flow.symbol = book.symbol AND flow.ts_us = book.ts_us
),
ordered AS (
    SELECT *, true AS is_book
    FROM book_flow
    {%- for kind in AS_OF_KINDS %}
    UNION ALL BY NAME
    -- the events join the sorted stream as rows that only mark their time (<kind>__at)
    SELECT symbol, ts_us, ts_us AS {{ kind }}__at, false AS is_book FROM {{ kind }}_events
    {%- endfor %}
    -- an event at the time of a book counts for that book (as of: at or before)
    ORDER BY symbol, ts_us, is_book
),
numbered AS (
    SELECT *, row_number() OVER () AS stream_rn FROM ordered
),
book_rows AS (
    -- the time of the latest event of each kind so far in the stream (which runs across symbols); the event's
    -- values are joined on (symbol, time) after the windows (rolled): four running aggregates of one integer
    -- instead of carrying every field (fct_features on a 100 ms day: 5.64 -> 5.29 CPU-s)
    SELECT
        * EXCLUDE (is_book, stream_rn, {{ AS_OF_AT | join(', ') }}),
        {%- for kind in AS_OF_KINDS %}
        arg_max({{ kind }}__at, stream_rn) FILTER (WHERE {{ kind }}__at IS NOT NULL) OVER (ROWS UNBOUNDED PRECEDING)
            AS {{ kind }}__at{{ ',' if not loop.last }}
        {%- endfor %}
    FROM numbered
    QUALIFY is_book
),
events AS (
    -- streaming windows (empty OVER clauses) over the sorted rows; prev() is the symbol's previous row
    SELECT
        symbol,
        market,
        date,
        ts,
        ts_us,
        row_number() OVER () AS rn,
        symbol IS DISTINCT FROM lag(symbol) OVER () AS is_first,
        (ask_px_1 + bid_px_1) / 2 AS mid,
        tick_size,
        ask_px_1 - bid_px_1 AS spread,
        bid_sz_1,
        ask_sz_1,
        bid_px_1,
        ask_px_1,
        {%- for k in depth_levels() %}
        bid_depth_{{ k }},
        ask_depth_{{ k }},
        {%- endfor %}
        avg_depth_l{{ M }},
        {{ book_event_columns(M, stream_prev('%s'), 'sell_qty_at_bid', 'buy_qty_at_ask') }},
        buy_qty,
        sell_qty,
        buy_qty_at_ask,
        sell_qty_at_bid,
        {{ AS_OF_AT | join(', ') }}
    FROM book_rows
),
terms AS (
    SELECT
        *,
        (buy_qty > 0)::BIGINT AS has_buy,
        (sell_qty > 0)::BIGINT AS has_sell,
        coalesce(log_ret, 0.0) AS ret1,
        coalesce(log_ret * log_ret, 0.0) AS ret2,
        coalesce(log_ret * log_ret * log_ret, 0.0) AS ret3,
        coalesce(log_ret * log_ret * log_ret * log_ret, 0.0) AS ret4,
        -- integer counts: a window with none of these has an exact zero sum, as RANGE frames give
        (log_ret IS NOT NULL)::BIGINT AS has_ret,
        (coalesce(log_ret, 0.0) <> 0)::BIGINT AS nonzero_ret
    FROM events
),
running AS (
    SELECT
        *,
        max(CASE WHEN is_first THEN rn END) OVER (ROWS UNBOUNDED PRECEDING) AS seg_rn,
        {%- for c in SUMMED %}
        fsum({{ c }}) OVER (ROWS UNBOUNDED PRECEDING) AS c_{{ c }},
        {%- endfor %}
        {%- for c in COUNTED %}
        sum({{ c }}) OVER (ROWS UNBOUNDED PRECEDING)::BIGINT AS c_{{ c }},
        {%- endfor %}
        {%- for c in FIRST %}
        arg_max({{ c }}, rn) FILTER (WHERE is_first) OVER (ROWS UNBOUNDED PRECEDING) AS first_{{ c }}{{ ',' if not loop.last }}
        {%- endfor %}
    FROM terms
),
based AS (
    SELECT
        *,
        {%- for c in SUMMED + COUNTED %}
        arg_max(c_{{ c }} - {{ c }}, rn) FILTER (WHERE is_first) OVER (ROWS UNBOUNDED PRECEDING) AS base_{{ c }}{{ ',' if not loop.last }}
        {%- endfor %}
    FROM running
),
{{ stream_far_lags('based', 'far', FAR) }}
stream_rolled AS (
    SELECT
        symbol,
        market,
        date,
        ts,
        ts_us,
        {{ book_snapshot_columns() }},
        {%- for s in ofi_l1_windows() %}
        {{ stream_window_sum('ofi_event_l1', s) }} AS ofi_l1_{{ s }}s,
        {%- endfor %}
        {%- for m in range(1, M + 1) %}
        {{ stream_window_sum('ofi_event_l%d' % m, FW) }}
            / ({{ stream_window_sum('avg_depth_l%d' % M, FW) }} / {{ stream_window_count(FW) }}) AS ofi_l{{ m }}_{{ FW }}s_norm,
        {%- endfor %}
        {%- for s in tfi_windows() %}
        CASE WHEN {{ stream_window_sum('has_buy', s) }} + {{ stream_window_sum('has_sell', s) }} = 0 THEN 0.0
             ELSE ({{ stream_window_sum('buy_qty', s) }} - {{ stream_window_sum('sell_qty', s) }})
                  / ({{ stream_window_sum('buy_qty', s) }} + {{ stream_window_sum('sell_qty', s) }}) END AS tfi_{{ s }}s,
        {%- endfor %}
        {{ stream_window_sum('buy_qty', FW) }} + {{ stream_window_sum('sell_qty', FW) }} AS trade_qty_{{ FW }}s,
        {{ stream_window_sum('buy_qty_at_ask', FW) }} / {{ stream_window_first('ask_sz_1', FW) }} AS depletion_ask_{{ FW }}s,
        {{ stream_window_sum('sell_qty_at_bid', FW) }} / {{ stream_window_first('bid_sz_1', FW) }} AS depletion_bid_{{ FW }}s,
        -- time to deplete the best queue at the window's aggressive rate; 1 day when nothing traded
        CASE WHEN {{ stream_window_sum('has_buy', FW) }} = 0 THEN 86400.0
             ELSE least(ask_sz_1 * {{ FW }} / {{ stream_window_sum('buy_qty', FW) }}, 86400.0) END AS ttd_ask_s,
        CASE WHEN {{ stream_window_sum('has_sell', FW) }} = 0 THEN 86400.0
             ELSE least(bid_sz_1 * {{ FW }} / {{ stream_window_sum('sell_qty', FW) }}, 86400.0) END AS ttd_bid_s,
        {{ stream_window_sum('cancel_bid', FW) }} AS cancels_bid_{{ FW }}s,
        {{ stream_window_sum('cancel_ask', FW) }} AS cancels_ask_{{ FW }}s,
        bid_sz_1 / (bid_sz_1 + ask_sz_1) AS imbalance_ratio,
        buy_qty - sell_qty AS net_taker_qty,
        {%- for s in rvol_windows() %}
        CASE WHEN {{ stream_window_sum('nonzero_ret', s) }} = 0 THEN 0.0
             ELSE sqrt(greatest({{ stream_window_sum('ret2', s) }}, 0.0)) END AS rvol_{{ s }}s,
        {%- endfor %}
        {%- for s in moment_windows() %}
        {{ stream_window_sum('has_ret', s) }} AS n_ret_{{ s }}s,
        {%- for p in range(1, 5) %}
        CASE WHEN {{ stream_window_sum('nonzero_ret', s) }} = 0 THEN 0.0 ELSE {{ stream_window_sum('ret%d' % p, s) }} END AS s{{ p }}_{{ s }}s,
        {%- endfor %}
        {%- endfor %}
        -- causal regime inputs: realized volatility and log trend over the regime window
        CASE WHEN {{ stream_window_sum('nonzero_ret', W) }} = 0 THEN 0.0
             ELSE sqrt(greatest({{ stream_window_sum('ret2', W) }}, 0.0)) END AS regime_rvol,
        ln(mid / {{ stream_window_first('mid', W) }}) AS regime_trend,
        log_ret,
        {{ AS_OF_AT | join(', ') }}
    FROM {{ stream_far_last('far', FAR) }}
),
rolled AS (
    -- each book's latest events by (symbol, time), after the windows (their rows stay narrow): an event the stream
    -- carried over from the previous symbol finds none, as one of this symbol at that time lies after the book
    SELECT r.* EXCLUDE ({{ AS_OF_AT | join(', ') }}), {{ as_of_columns('r.ts_us') }}
    FROM stream_rolled AS r
    {%- for kind in AS_OF_KINDS %}
    LEFT JOIN {{ kind }}_events AS {{ kind }}_ev
        ON {{ kind }}_ev.symbol = r.symbol AND {{ kind }}_ev.ts_us = r.{{ kind }}__at AND r.{{ kind }}__at <= r.ts_us
    {%- endfor %}
)
{%- else %}
base AS (
    SELECT
        book.symbol,
        book.market,
        book.date,
        book.ts,
        book.ts_us,
        (ask_px_1 + bid_px_1) / 2 AS mid,
        book.tick_size,
        ask_px_1 - bid_px_1 AS spread,
        bid_sz_1,
        ask_sz_1,
        bid_px_1,
        ask_px_1,
        {{ book_depth_columns(M) }},
        {{ book_event_columns(M, 'lag(%s) OVER w', 'coalesce(flow.sell_qty_at_bid, 0.0)', 'coalesce(flow.buy_qty_at_ask, 0.0)') }},
        coalesce(flow.buy_qty, 0.0) AS buy_qty,
        coalesce(flow.sell_qty, 0.0) AS sell_qty,
        coalesce(flow.buy_qty_at_ask, 0.0) AS buy_qty_at_ask,
        coalesce(flow.sell_qty_at_bid, 0.0) AS sell_qty_at_bid,
        min(book.ts_us) OVER (PARTITION BY book.symbol) AS first_ts_us
    FROM book
    LEFT JOIN flow ON flow.symbol = book.symbol AND flow.ts_us = book.ts_us
    WINDOW w AS (PARTITION BY book.symbol ORDER BY book.ts_us)
),
range_rolled AS (
    SELECT
        symbol,
        market,
        date,
        ts,
        ts_us,
        {{ book_snapshot_columns() }},
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
        bid_sz_1 / (bid_sz_1 + ask_sz_1) AS imbalance_ratio,
        buy_qty - sell_qty AS net_taker_qty,
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
        log_ret
    FROM base
    WINDOW
        {%- for s in [1, 10, 60, 300] %}
        w{{ s }} AS (PARTITION BY symbol ORDER BY ts_us {{ trailing(s) }}),
        {%- endfor %}
        wr AS (PARTITION BY symbol ORDER BY ts_us {{ trailing(W) }})
),
as_of AS (
    -- as-of values joined on the narrow key only: ASOF sorts its left input, so keep the wide rows out of it
    SELECT k.symbol, k.ts_us, {{ as_of_columns('k.ts_us') }}
    FROM (SELECT symbol, ts_us FROM range_rolled WHERE ts_us >= {{ range_start_us() }}) AS k
    {%- for kind in AS_OF_KINDS %}
    ASOF LEFT JOIN {{ kind }}_events AS {{ kind }}_ev ON {{ kind }}_ev.symbol = k.symbol AND k.ts_us >= {{ kind }}_ev.ts_us
    {%- endfor %}
),
rolled AS (
    SELECT r.*, a.* EXCLUDE (symbol, ts_us)
    FROM range_rolled AS r
    JOIN as_of AS a ON a.symbol = r.symbol AND a.ts_us = r.ts_us
)
{%- endif %}
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
{%- endmacro %}

{#- A book's as-of columns at time `ts` from its latest events joined as funding_ev, mark_ev and onchain_<m>_ev
    (int_book_features' <kind>_events; NULL where there is none yet). -#}
{% macro as_of_columns(ts) -%}
        funding_ev.rate AS funding_rate_last,
        (coalesce(mark_ev.next_funding_ts_us, funding_ev.ts_us + (funding_ev.interval_hours * 3600e6)::BIGINT) - {{ ts }}) / 1e6
            AS funding_time_to_next_s,
        mark_ev.est_funding_rate AS funding_rate_predicted,
        (mark_ev.mark_price - mark_ev.index_price) / mark_ev.index_price * 1e4 AS mark_premium_bps,
  {%- for m in var('onchain_metrics') %}
        onchain_{{ m }}_ev.value AS onchain_{{ m }}{{ ',' if not loop.last }}
  {%- endfor %}
{%- endmacro %}
