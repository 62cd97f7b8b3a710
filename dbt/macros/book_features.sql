{#- Per-snapshot book columns shared by both plans of int_book_features (streaming and RANGE frames,
    macros/int_book_features.sql): one place for each formula, so the plans cannot drift apart. -#}

{#- Depth sums at L1/L3/L5/L10 per side and the mean size of the top `M` levels (from the staged level columns). -#}
{% macro book_depth_columns(M) -%}
  {%- for k in depth_levels() %}
        ({% for i in range(1, k + 1) %}bid_sz_{{ i }}{{ ' + ' if not loop.last }}{% endfor %}) AS bid_depth_{{ k }},
        ({% for i in range(1, k + 1) %}ask_sz_{{ i }}{{ ' + ' if not loop.last }}{% endfor %}) AS ask_depth_{{ k }},
  {%- endfor %}
        ({% for i in range(1, M + 1) %}bid_sz_{{ i }} + ask_sz_{{ i }}{{ ' + ' if not loop.last }}{% endfor %}) / {{ 2 * M }} AS avg_depth_l{{ M }}
{%- endmacro %}

{#- Events against the symbol's previous snapshot, `prev` % col being that snapshot's col (NULL on its first row):
    OFI at levels 1..M, the log mid return and implied cancels at the best queues (`sell_at_bid` / `buy_at_ask`:
    the executed volume at the best prices in between). -#}
{% macro book_event_columns(M, prev, sell_at_bid, buy_at_ask) -%}
  {%- for m in range(1, M + 1) %}
        -- OFI event at level {{ m }} (Cont, Kukanov, Stoikov 2014); absent levels (NULL price) compare false
        coalesce(CASE WHEN bid_px_{{ m }} >= {{ prev % ('bid_px_%d' % m) }} THEN bid_sz_{{ m }} END, 0.0)
          - coalesce(CASE WHEN bid_px_{{ m }} <= {{ prev % ('bid_px_%d' % m) }} THEN {{ prev % ('bid_sz_%d' % m) }} END, 0.0)
          - coalesce(CASE WHEN ask_px_{{ m }} <= {{ prev % ('ask_px_%d' % m) }} THEN ask_sz_{{ m }} END, 0.0)
          + coalesce(CASE WHEN ask_px_{{ m }} >= {{ prev % ('ask_px_%d' % m) }} THEN {{ prev % ('ask_sz_%d' % m) }} END, 0.0)
          AS ofi_event_l{{ m }},
  {%- endfor %}
        {{ book_log_ret(prev) }} AS log_ret,
        -- implied cancels at the best queue while its price is unchanged: -dq - executed volume
        coalesce(CASE WHEN bid_px_1 = {{ prev % 'bid_px_1' }}
                      THEN {{ prev % 'bid_sz_1' }} - bid_sz_1 - {{ sell_at_bid }} END, 0.0) AS cancel_bid,
        coalesce(CASE WHEN ask_px_1 = {{ prev % 'ask_px_1' }}
                      THEN {{ prev % 'ask_sz_1' }} - ask_sz_1 - {{ buy_at_ask }} END, 0.0) AS cancel_ask
{%- endmacro %}

{#- The log mid return against the symbol's previous snapshot (`prev` as in book_event_columns). -#}
{% macro book_log_ret(prev) -%}
  ln((ask_px_1 + bid_px_1) / ({{ prev % 'ask_px_1' }} + {{ prev % 'bid_px_1' }}))
{%- endmacro %}

{#- The published per-snapshot columns (no windows), from mid, spread, depths and the best levels. -#}
{% macro book_snapshot_columns() -%}
        ts_us < first_ts_us + {{ warmup_us() }} AS is_warmup,
        mid,
        spread / mid * 1e4 AS spread_bps,
        spread / tick_size AS spread_ticks,
  {%- for k in depth_levels() %}
        (bid_depth_{{ k }} - ask_depth_{{ k }}) / (bid_depth_{{ k }} + ask_depth_{{ k }}) AS imbalance_l{{ k }},
  {%- endfor %}
        (ask_px_1 * bid_sz_1 + bid_px_1 * ask_sz_1) / (bid_sz_1 + ask_sz_1) AS weighted_mid,
        bid_sz_1 AS queue_bid_l1,
        ask_sz_1 AS queue_ask_l1
{%- endmacro %}
