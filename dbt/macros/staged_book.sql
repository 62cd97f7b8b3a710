{#- stg_book_snapshots keeps the columns the features read.  A table staged before held the prices of the levels past
    the OFI levels and the receive time too: this pre-hook drops them, so that the incremental run's schema check
    (on_schema_change: fail) passes and the table keeps what the model writes; on a table of the current layout it
    does nothing. -#}
{% macro drop_unread_book_levels() %}
  {%- set relation = load_relation(this) if execute else none -%}
  {%- if relation is none or should_full_refresh() -%}
    {{ return('SELECT 1') }}
  {%- endif -%}
  {%- set unread = ['recv_ts_us'] -%}
  {%- for side in ['bid', 'ask'] %}
    {%- for i in range(ofi_levels() + 1, (depth_levels() | max) + 1) %}{% do unread.append('%s_px_%d' % (side, i)) %}{% endfor %}
  {%- endfor -%}
  {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
  {%- set dropped = unread | select('in', columns) | list -%}
  {%- if not dropped -%}
    {{ return('SELECT 1') }}
  {%- endif -%}
  {%- for column in dropped %}
    ALTER TABLE {{ relation }} DROP COLUMN {{ adapter.quote(column) }};
  {%- endfor %}
{% endmacro %}
