{#- An incremental run of a SQL model writes its rows once: dbt-duckdb's incremental materialization first builds
    the new rows into a temporary table and then inserts them into the target (every row written twice: ~30 % more CPU
    in stg_book_snapshots for a day, benchmarks/bench_features.py).  Here that temporary relation is a temporary
    view over the model's query instead, so the append strategy's INSERT runs the query straight into the target.
    The schema check (on_schema_change: fail) and column expansion still read the view's columns.  Everything
    else (tables, first builds, full refreshes, Python models) goes to dbt-duckdb's own macro.
    tests/test_dbt_build_order.py checks from dbt's log that incremental runs take this path. -#}
{% macro duckdb__create_table_as(temporary, relation, compiled_code, language='sql', partitioned_by=none, sorted_by=none) -%}
  {%- if temporary and language == 'sql' and config.get('materialized') == 'incremental' -%}
    create temporary view {{ relation.include(database=false, schema=false) }} as (
      {{ compiled_code }}
    );
  {%- else -%}
    {{ return(dbt.duckdb__create_table_as(temporary, relation, compiled_code, language, partitioned_by=partitioned_by, sorted_by=sorted_by)) }}
  {%- endif -%}
{%- endmacro %}
