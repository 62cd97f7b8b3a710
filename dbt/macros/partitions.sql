{#- Day partitions: every incremental model (re)builds the days [start_date, end_date] (UTC, inclusive) of the build
    window.  Times are handled as epoch microseconds (BIGINT) so no session time zone can shift a boundary. -#}

{#- The build window: the days this run (re)builds, start_date..end_date, and the train split train_start..train_end
    that every train-fit statistic reads (inclusive days, 'YYYY-MM-DD').  It comes as JSON in the environment
    variable SCALPER_BUILD_WINDOW (written by feature_store.feature_build.BuildWindow.env(), which the CLI and the
    Dagster assets both use), not as --vars: dbt hashes the command-line vars into its partial-parse state, so a
    window passed there changes every partition and forces a full re-parse of the project on every run.  The window
    is read only when dbt executes (`execute`): at parse time the whole range stands in, which is sound because
    nothing dbt parses depends on the window (refs, sources and configs do not; the SQL is rendered again at
    execution), and an env_var read at parse time would instead schedule every model that uses it for re-parsing.
    Unset (a bare `dbt build`), the window covers every day. -#}
{% macro build_window(key) -%}
  {%- set whole = {'start_date': '2000-01-01', 'end_date': '2099-12-31', 'train_start': '2000-01-01', 'train_end': '2099-12-31'} -%}
  {%- for k in whole if var(k, none) is not none -%}
    {{ exceptions.raise_compiler_error("var " ~ k ~ ": the build window is not read from --vars; pass it as JSON in the environment variable SCALPER_BUILD_WINDOW (feature_store.feature_build.BuildWindow.env())") }}
  {%- endfor -%}
  {%- if not execute -%}{{ return(whole[key]) }}{%- endif -%}
  {%- set given = fromjson(env_var('SCALPER_BUILD_WINDOW', '{}')) -%}
  {%- if given is not mapping -%}
    {{ exceptions.raise_compiler_error("SCALPER_BUILD_WINDOW must be a JSON object, got " ~ env_var('SCALPER_BUILD_WINDOW')) }}
  {%- endif -%}
  {%- for k, v in given.items() -%}
    {%- if k not in whole or not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', v | string) -%}
      {{ exceptions.raise_compiler_error("SCALPER_BUILD_WINDOW: " ~ k ~ "=" ~ v ~ " is not one of start_date, end_date, train_start, train_end as 'YYYY-MM-DD'") }}
    {%- endif -%}
  {%- endfor -%}
  {{ return(given.get(key, whole[key])) }}
{%- endmacro %}

{% macro day_start_us(day) -%}
  epoch_us(TIMESTAMP '{{ day }} 00:00:00')
{%- endmacro %}

{% macro range_start_us() -%}
  {{ day_start_us(build_window('start_date')) }}
{%- endmacro %}

{#- exclusive end: midnight after end_date -#}
{% macro range_end_us() -%}
  ({{ day_start_us(build_window('end_date')) }} + 86400000000)
{%- endmacro %}

{% macro warmup_us() -%}
  {{ (var('warmup_s') | int) * 1000000 }}
{%- endmacro %}

{#- Partition filter on the raw `date` column (pruned by the Delta scan): the range plus `days_before` warm-up days
    and `days_after` look-ahead days. -#}
{% macro raw_date_filter(days_before=0, days_after=0) -%}
  date BETWEEN strftime(DATE '{{ build_window("start_date") }}' - INTERVAL {{ days_before }} DAY, '%Y-%m-%d')
           AND strftime(DATE '{{ build_window("end_date") }}' + INTERVAL {{ days_after }} DAY, '%Y-%m-%d')
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
  {{ day_start_us(build_window('train_start')) }}
{%- endmacro %}

{% macro train_end_us() -%}
  ({{ day_start_us(build_window('train_end')) }} + 86400000000)
{%- endmacro %}

{#- A window (t - W, t] over epoch microseconds: the frame clause of every rolling statistic. -#}
{% macro trailing(seconds) -%}
  RANGE BETWEEN {{ (seconds * 1000000) | int - 1 }} PRECEDING AND CURRENT ROW
{%- endmacro %}

{#- pre_hook of day-keyed incremental models: delete the days this run rebuilds. -#}
{% macro delete_days() -%}
  {% if is_incremental() %}
    DELETE FROM {{ this }} WHERE date BETWEEN '{{ build_window("start_date") }}' AND '{{ build_window("end_date") }}'
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
