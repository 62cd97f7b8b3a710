{#- Train-fit models (norm_*, regime_thresholds) are refit only when their input can have changed: a fit reads the
    train split's rows only, and those change only when a run rebuilds a train day or the train split itself is
    another one.  A daily run after the train split (the usual schedule) keeps the fit tables as they are instead
    of recomputing five fits over the whole train split (~1.8 s a day of the benchmark, more as the split grows).

    The models are incremental (append): the body goes inside {% call train_fit() %} ... {% endcall %}, which adds a
    train_window column ('<train_start>..<train_end>', as fct_features records it) and, while the stored fit is
    current, renders a query of no rows instead, which the materialization runs no statement for
    (macros/incremental_kept.sql); the pre_hook `refit_delete()` empties the table before a refit.
    --full-refresh always refits, and so does a fit table without train_window (built before this macro existed:
    on_schema_change sync_all_columns adds the column). -#}

{#- The train days among the days this run builds, [first, last] ('YYYY-MM-DD'; none when first > last). -#}
{% macro train_days_built() -%}
  {{ return([[build_window('start_date'), build_window('train_start')] | max,
             [build_window('end_date'), build_window('train_end')] | min]) }}
{%- endmacro %}

{% macro train_window_label() -%}
  {{ build_window('train_start') }}..{{ build_window('train_end') }}
{%- endmacro %}

{#- True when `this` holds a fit of the current train split and this run rebuilds no train day. -#}
{% macro fit_is_current() %}
  {%- if not execute or not is_incremental() -%}{{ return(false) }}{%- endif -%}
  {%- set first, last = train_days_built() -%}
  {%- if first <= last -%}
    {{ return(false) }}
  {%- endif -%}
  {%- if 'train_window' not in (adapter.get_columns_in_relation(this) | map(attribute='name') | list) -%}
    {{ return(false) }}
  {%- endif -%}
  {%- set rows = run_query("SELECT DISTINCT train_window FROM " ~ this).rows -%}
  {{ return(rows | length == 1 and rows[0][0] == train_window_label()) }}
{% endmacro %}

{% macro train_fit() -%}
  {%- if fit_is_current() -%}
    -- the stored fit is of train split {{ train_window_label() }} and no train day is rebuilt: keep it
    {{ incremental_kept() }}
    SELECT * FROM {{ this }} WHERE false
  {%- else -%}
    {%- do assert_train_split_built() -%}
    SELECT *, '{{ train_window_label() }}' AS train_window
    FROM (
    {{ caller() }}
    )
  {%- endif -%}
{%- endmacro %}

{#- A fit reads the train split from int_book_features_train: refuse one over a split whose staged books are not all
    there (days staged by a run that failed before the features, days built while the train split was another one,
    or a lake built before int_book_features_train existed), since it would silently fit fewer days. -#}
{% macro assert_train_split_built() %}
  {#- the refs outside the execute check, so that dbt's parse records them -#}
  {%- set staged, features = ref('stg_book_snapshots'), ref('int_book_features_train') -%}
  {%- if not execute -%}{{ return(none) }}{%- endif -%}
  {%- set query -%}
    SELECT
        (SELECT count(*) FROM {{ staged }} WHERE ts_us >= {{ train_start_us() }} AND ts_us < {{ train_end_us() }}),
        (SELECT count(*) FROM {{ features }} WHERE ts_us >= {{ train_start_us() }} AND ts_us < {{ train_end_us() }})
  {%- endset -%}
  {%- set row = run_query(query).rows[0] -%}
  {%- if row[0] != row[1] -%}
    {{ exceptions.raise_compiler_error("train split " ~ train_window_label() ~ ": int_book_features_train holds "
        ~ row[1] ~ " of the " ~ row[0] ~ " staged books, so " ~ this.identifier ~ " would be fit on part of it: "
        ~ "build the train days first (scalper features build --start " ~ build_window('train_start') ~ " --end "
        ~ build_window('train_end') ~ ")") }}
  {%- endif -%}
{% endmacro %}

{% macro refit_delete() -%}
  {%- if is_incremental() and not fit_is_current() -%}
    DELETE FROM {{ this }}
  {%- else -%}
    SELECT 1
  {%- endif -%}
{%- endmacro %}
