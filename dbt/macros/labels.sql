{#- Label horizons (seconds): mid and trade markouts.  Labels are never features. -#}
{% macro markout_horizons() %}{{ return([1, 5, 30, 60]) }}{% endmacro %}
{% macro max_horizon_us() %}{{ return(60 * 1000000) }}{% endmacro %}

{#- First time a run (re)computes markouts from: a markout at horizon h stays NULL until a book at or after t+h is
    staged, so the run of a day recomputes every book row and trade within the max horizon of the previous day's
    last staged book (not of midnight: that book precedes midnight by up to a grid step, or by a gap). -#}
{% macro markouts_start_us() -%}
  ((SELECT coalesce(max(ts_us), {{ range_start_us() }}) FROM {{ ref('stg_book_snapshots') }}
    WHERE ts_us < {{ range_start_us() }}) - {{ max_horizon_us() }})
{%- endmacro %}

{#- CTE last_book over the markout models' `book` (symbol, ts_us, mid: the books of the run's window): per symbol the
    window's first and last book (window_last_ts_us, window_last_mid) and last_ts_us, the last staged time a label
    may look to: the window's last book, or the first book staged after the window (a later day built before this
    run).  A label at t is set when a book at or after t+h is staged, whatever the order days were built in: then
    m(t+h) is the mid of the last book at or before t+h, the window's last one where t+h lies past it. -#}
{% macro markout_last_book() -%}
later_book AS (
    SELECT symbol, min(ts_us) AS later_ts_us
    FROM {{ ref('stg_book_snapshots') }}
    WHERE ts_us >= {{ range_end_us() }} + {{ max_horizon_us() }}
    GROUP BY symbol
),
last_book AS (
    SELECT
        book.symbol,
        min(book.ts_us) AS first_ts_us,
        max(book.ts_us) AS window_last_ts_us,
        arg_max(book.mid, book.ts_us) AS window_last_mid,
        coalesce(any_value(later_book.later_ts_us), max(book.ts_us)) AS last_ts_us
    FROM book
    LEFT JOIN later_book USING (symbol)
    GROUP BY book.symbol
)
{%- endmacro %}

{#- m(t+h) for a time `t_us` from `lagged` (the streaming plans' mid of the grid row at or before t+h, NULL past the
    window's last book): past the window's last book it is that book's mid (last_book `lb`). -#}
{% macro mid_past_window(t_us, h, lagged) -%}
  CASE WHEN {{ t_us }} + {{ h * 1000000 }} > lb.window_last_ts_us THEN lb.window_last_mid ELSE {{ lagged }} END
{%- endmacro %}

{#- fct_trade_markouts' output columns over trades `t` and last_book `lb`, with m(t+h) read from `mid_format` % h
    (the streaming plans, whose m(t+h) is NULL past the window's last book, pass past_window=true). -#}
{% macro trade_markout_columns(mid_format, past_window=false) %}
    t.symbol, t.date, t.ts, t.ts_us, t.trade_id, t.price, t.qty, t.side,
    {%- for h in markout_horizons() %}
    {%- set mid = mid_past_window('t.ts_us', h, mid_format | format(h)) if past_window else mid_format | format(h) %}
    CASE WHEN lb.last_ts_us >= t.ts_us + {{ h * 1000000 }}
         THEN t.side * ({{ mid }} - t.price) / t.price * 1e4 END AS markout_{{ h }}s_bps{{ ',' if not loop.last }}
    {%- endfor %}
{% endmacro %}
