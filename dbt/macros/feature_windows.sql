{#- The rolling-window horizons of the features (seconds).  Column names carry them, so they are part of the
    published contract: change them together with models/features/_features.yml. -#}
{% macro ofi_levels() %}{{ return(5) }}{% endmacro %}
{#- book depth and imbalance per side over the top k levels -#}
{% macro depth_levels() %}{{ return([1, 3, 5, 10]) }}{% endmacro %}
{% macro rvol_windows() %}{{ return([10, 60, 300]) }}{% endmacro %}
{% macro moment_windows() %}{{ return([60, 300]) }}{% endmacro %}
{% macro tfi_windows() %}{{ return([1, 10, 60]) }}{% endmacro %}
{% macro ofi_l1_windows() %}{{ return([1, 10]) }}{% endmacro %}
{#- multi-level OFI, queue depletion, implied cancels -#}
{% macro flow_window() %}{{ return(10) }}{% endmacro %}

{#- Features clipped at train-fit quantile bounds (heavy-tailed); bounded or price-level columns are not. -#}
{% macro clipped_features() %}
  {%- set FW = flow_window() -%}
  {%- set cols = ['spread_bps', 'spread_ticks', 'queue_bid_l1', 'queue_ask_l1'] -%}
  {%- for s in ofi_l1_windows() %}{% do cols.append('ofi_l1_%ds' % s) %}{% endfor -%}
  {%- for m in range(1, ofi_levels() + 1) %}{% do cols.append('ofi_l%d_%ds_norm' % (m, FW)) %}{% endfor -%}
  {%- for c in ['trade_qty_%ds', 'depletion_ask_%ds', 'depletion_bid_%ds', 'cancels_bid_%ds', 'cancels_ask_%ds'] %}{% do cols.append(c % FW) %}{% endfor -%}
  {%- do cols.extend(['ttd_ask_s', 'ttd_bid_s']) -%}
  {%- for s in rvol_windows() %}{% do cols.append('rvol_%ds' % s) %}{% endfor -%}
  {%- for s in moment_windows() %}{% do cols.extend(['skew_%ds' % s, 'kurt_%ds' % s]) %}{% endfor -%}
  {{ return(cols) }}
{% endmacro %}

{#- Every feature column of fct_features that the agent consumes (normalized with train mean/std). -#}
{% macro model_features() %}
  {%- set cols = ['spread_bps', 'spread_ticks', 'imbalance_l1', 'imbalance_l3', 'imbalance_l5', 'imbalance_l10',
                  'weighted_mid_offset_bps', 'microprice_offset_bps', 'queue_bid_l1', 'queue_ask_l1'] -%}
  {%- for c in clipped_features() %}{% if c not in cols %}{% do cols.append(c) %}{% endif %}{% endfor -%}
  {%- do cols.append('ofi_integrated_%ds' % flow_window()) -%}
  {%- for s in tfi_windows() %}{% do cols.append('tfi_%ds' % s) %}{% endfor -%}
  {%- do cols.extend(['funding_rate_last', 'funding_time_to_next_s', 'funding_rate_predicted', 'mark_premium_bps']) -%}
  {%- for m in var('onchain_metrics') %}{% do cols.append('onchain_' ~ m) %}{% endfor -%}
  {{ return(cols) }}
{% endmacro %}
