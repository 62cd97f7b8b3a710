{#- Day partitions as vars: every incremental model (re)builds the days [start_date, end_date] (UTC, inclusive).
    Times are handled as epoch microseconds (BIGINT) so no session time zone can shift a boundary. -#}

{% macro day_start_us(day) -%}
  epoch_us(TIMESTAMP '{{ day }} 00:00:00')
{%- endmacro %}

{% macro range_start_us() -%}
  {{ day_start_us(var('start_date')) }}
{%- endmacro %}

{#- exclusive end: midnight after end_date -#}
{% macro range_end_us() -%}
  ({{ day_start_us(var('end_date')) }} + 86400000000)
{%- endmacro %}

{% macro warmup_us() -%}
  {{ (var('warmup_s') | int) * 1000000 }}
{%- endmacro %}

{#- Partition filter on the raw `date` column (pruned by the Delta scan): the range plus `days_before` warm-up days
    and `days_after` look-ahead days. -#}
{% macro raw_date_filter(days_before=0, days_after=0) -%}
  date BETWEEN strftime(DATE '{{ var("start_date") }}' - INTERVAL {{ days_before }} DAY, '%Y-%m-%d')
           AND strftime(DATE '{{ var("end_date") }}' + INTERVAL {{ days_after }} DAY, '%Y-%m-%d')
{%- endmacro %}

{#- pre_hook of the incremental models: delete what this run rebuilds, so a re-run replaces instead of duplicating. -#}
{% macro delete_range(column, lower, upper) -%}
  {% if is_incremental() %}
    DELETE FROM {{ this }} WHERE {{ column }} >= {{ lower }} AND {{ column }} < {{ upper }}
  {% else %}
    SELECT 1
  {% endif %}
{%- endmacro %}

{% macro train_start_us() -%}
  {{ day_start_us(var('train_start')) }}
{%- endmacro %}

{% macro train_end_us() -%}
  ({{ day_start_us(var('train_end')) }} + 86400000000)
{%- endmacro %}

{#- A window (t - W, t] over epoch microseconds: the frame clause of every rolling statistic. -#}
{% macro trailing(seconds) -%}
  RANGE BETWEEN {{ (seconds * 1000000) | int - 1 }} PRECEDING AND CURRENT ROW
{%- endmacro %}

{#- pre_hook of day-keyed incremental models: delete the days this run rebuilds. -#}
{% macro delete_days() -%}
  {% if is_incremental() %}
    DELETE FROM {{ this }} WHERE date BETWEEN '{{ var("start_date") }}' AND '{{ var("end_date") }}'
  {% else %}
    SELECT 1
  {% endif %}
{%- endmacro %}

{#- Does the raw range this run stages hold natural-key duplicates?  Staging dedupes only then: the lake dedupes on
    landing, and the dedupe window (a sort of every staged row) costs ~40 % of staging a day of books.  One narrow
    aggregate at run time; true at parse time and for an empty range (SQL compiled without data stays general). -#}
{% macro raw_has_duplicates(relation, key_columns) %}
  {%- if not execute -%}{{ return(true) }}{%- endif -%}
  {%- set query -%}
    SELECT count(*) = 0 OR count(*) > count(DISTINCT ({{ key_columns | join(', ') }}))
    FROM {{ relation }}
    WHERE {{ raw_date_filter() }} AND epoch_us(ts) >= {{ range_start_us() }} AND epoch_us(ts) < {{ range_end_us() }}
  {%- endset -%}
  {{ return(run_query(query).rows[0][0]) }}
{% endmacro %}

{#- The earliest of the last rows in `relation` before the range of the symbols staged in the range (the start of
    the range when none): the rows from there on hold each such symbol's book just before the range.  A literal
    from run-time aggregates (so the scans that use it still prune on ts_us): first over the warm-up before the
    range, and over the whole history only for a symbol with no row there (its first day, or after an outage);
    the start of the range at parse time. -#}
{% macro last_row_before_range_us(relation) -%}
  {%- if not execute -%}{{ return(range_start_us()) }}{%- endif -%}
  {%- set in_range -%}
    SELECT DISTINCT symbol FROM {{ relation }} WHERE ts_us >= {{ range_start_us() }} AND ts_us < {{ range_end_us() }}
  {%- endset -%}
  {%- set recent -%}
    WITH recent AS (
        SELECT symbol, max(ts_us) AS last_us FROM {{ relation }}
        WHERE ts_us >= {{ range_start_us() }} - {{ warmup_us() }} AND ts_us < {{ range_start_us() }}
        GROUP BY symbol
    )
    SELECT min(recent.last_us), count(*) FILTER (WHERE recent.symbol IS NULL)
    FROM ({{ in_range }}) AS s LEFT JOIN recent USING (symbol)
  {%- endset -%}
  {%- set row = run_query(recent).rows[0] -%}
  {%- set last_us = row[0] -%}
  {%- if row[1] > 0 -%}
    {%- set history -%}
      SELECT min(last_us) FROM (
          SELECT max(ts_us) AS last_us FROM {{ relation }}
          WHERE ts_us < {{ range_start_us() }} AND symbol IN ({{ in_range }})
          GROUP BY symbol
      )
    {%- endset -%}
    {%- set last_us = run_query(history).rows[0][0] -%}
  {%- endif -%}
  {{ return(range_start_us() if last_us is none else last_us) }}
{%- endmacro %}
