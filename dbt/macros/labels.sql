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
