{#- Label horizons (seconds): mid and trade markouts.  Labels are never features. -#}
{% macro markout_horizons() %}{{ return([1, 5, 30, 60]) }}{% endmacro %}
{% macro max_horizon_us() %}{{ return(60 * 1000000) }}{% endmacro %}
