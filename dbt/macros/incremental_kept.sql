{#- An incremental model whose run has nothing to add says so with incremental_kept() in its compiled SQL (the
    train-fit models while their fit is current, int_book_features_train on a day outside the train split); the
    incremental materialization then runs no statement for it instead of dbt-duckdb's ten (a temporary view, its
    columns, the target's, an empty insert, the commit, the drop: 50-70 ms a model, on the longest path of a build).
    Every other run goes to dbt-duckdb's own materialization. -#}
{% macro incremental_kept() -%}
-- scalper: incremental run with nothing to add
{%- endmacro %}

{% materialization incremental, adapter='duckdb' %}
  {%- if is_incremental() and incremental_kept() in sql -%}
    {%- call noop_statement('main', 'KEPT') -%}{%- endcall -%}
    {{ return({'relations': [this.incorporate(type='table')]}) }}
  {%- endif -%}
  {{ return(dbt.materialization_incremental_duckdb()) }}
{% endmaterialization %}
