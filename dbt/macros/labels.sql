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

{#- fct_trade_markouts' output columns over trades `t` and last_book `lb`, with m(t+h) read from `mid_format` % h. -#}
{% macro trade_markout_columns(mid_format) %}
    t.symbol, t.date, t.ts, t.ts_us, t.trade_id, t.price, t.qty, t.side,
    {%- for h in markout_horizons() %}
    CASE WHEN lb.last_ts_us >= t.ts_us + {{ h * 1000000 }}
         THEN t.side * ({{ mid_format | format(h) }} - t.price) / t.price * 1e4 END AS markout_{{ h }}s_bps{{ ',' if not loop.last }}
    {%- endfor %}
{% endmacro %}
