{#- Writes a Python model's result, in place of dbt-duckdb's py_write_table (a macro of the root project takes
    precedence over the adapter's of the same name).  The adapter's imports pyarrow in every Python model to test
    for a pyarrow Table; this project's Python models return DuckDB relations, and that import (pyarrow, numpy and
    OpenBLAS's threads) cost ~0.25 CPU-s and ~70 MB of RSS in each build, beside fct_features.  Here pyarrow is
    loaded only for a result that is a pyarrow object.  The adapter's partitioned_by / sorted_by options are not
    supported, and a model that sets them is refused. -#}
{% macro py_write_table(temporary, relation, compiled_code, partitioned_by=none, sorted_by=none) -%}
{%- if partitioned_by or sorted_by -%}
    {{ exceptions.raise_compiler_error(
        "Python model " ~ relation ~ " sets partitioned_by / sorted_by, which dbt/macros/py_write_table.sql does not"
        ~ " support: drop the option, or write the table from the model itself") }}
{%- endif -%}
{{ compiled_code }}

def materialize(df, con):
    if type(df).__module__.partition('.')[0] == 'pyarrow':
        # registering a pyarrow Table needs pyarrow.dataset loaded (duckdb/duckdb#6584)
        import pyarrow.dataset  # noqa: F401
    view = '__dbt_python_model_df_{{ relation.identifier }}'
    con.register(view, df)
    con.execute('create table {{ relation }} as select * from ' + view)
    con.unregister(view)
{%- endmacro %}
