{#- The materialization of the published fct_features: its rows are written once, as the Parquet days under
    <lake>/features/<model>/symbol=<s>/date=<d>/part_0.parquet (feature_store.day_export.publish_days, through the
    plugin plugins/published_parquet.py), and the warehouse relation of the model is a view of those files.
    Incremental by day partition: the days of the build window are replaced, the other days stay (a full refresh
    removes them).  The contract is enforced as for a table: the query's columns and types against the yml before
    anything is written, not_null columns while the rows are written, and a run whose columns differ from the days
    already published fails (rebuild with --full-refresh), as on_schema_change: fail does for a table.
    Config partitions_from: the model whose (symbol, date) partitions in the build window are the ones this model's
    rows fall in (fct_features: one row per staged book), so that a run of one partition copies its rows straight
    into its file; a row outside them fails the run. -#}
{% materialization published_parquet, adapter='duckdb' %}
  {%- set folder = env_var('SCALPER_LAKE', 'lake') ~ '/features/' ~ this.identifier -%}
  {%- set columns = [] -%}
  {%- set not_null = [] -%}
  {%- for name, column in model['columns'].items() -%}
    {%- do columns.append([name, column['data_type']]) -%}
    {%- for constraint in column['constraints'] if constraint['type'] == 'not_null' -%}
      {%- do not_null.append(name) -%}
    {%- endfor -%}
  {%- endfor -%}
  {%- if not columns -%}
    {{ exceptions.raise_compiler_error(this.identifier ~ ": materialized published_parquet needs its columns in the yml (the view's columns and types)") }}
  {%- endif -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}
  {%- if config.get('contract').enforced -%}
    {%- do get_assert_columns_equivalent(sql) -%}
  {%- endif -%}
  {%- set expected = none -%}
  {%- if config.get('partitions_from') -%}
    {%- set source = this.incorporate(path={'identifier': config.get('partitions_from')}) -%}
    {%- set expected = run_query(
          "SELECT DISTINCT symbol, date FROM " ~ source ~ " WHERE date BETWEEN '" ~ build_window('start_date') ~
          "' AND '" ~ build_window('end_date') ~ "' ORDER BY ALL").rows | map('list') | list -%}
  {%- endif -%}
  {%- do adapter.store_relation('published_parquet', this, [], folder, 'parquet', {
        'sql': sql,
        'columns': columns,
        'not_null': not_null,
        'expected': expected,
        'full_refresh': should_full_refresh(),
        'window': {'start_date': build_window('start_date'), 'end_date': build_window('end_date'),
                   'train_start': build_window('train_start'), 'train_end': build_window('train_end')},
      }) -%}
  {%- call statement('main') -%}
    SELECT count(*) AS published_rows FROM {{ this }}
    WHERE date BETWEEN '{{ build_window("start_date") }}' AND '{{ build_window("end_date") }}'
  {%- endcall -%}
  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {%- do adapter.commit() -%}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [this.incorporate(type='view')]}) }}
{% endmaterialization %}
