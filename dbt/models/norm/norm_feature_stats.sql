-- Normalization statistics per symbol and feature: mean and population standard deviation of the published
-- (already clipped) feature values over the train split, warm-up rows excluded.  The snapshot stores them and
-- feature_store.snapshots.load(normalize=True) applies (x - mean) / std unchanged to every split.
{%- set cols = model_features() %}
{% call train_fit() %}
WITH train AS (
    SELECT symbol, {{ cols | join(', ') }}
    FROM {{ ref('fct_features') }}
    WHERE ts_us >= {{ train_start_us() }} AND ts_us < {{ train_end_us() }} AND NOT is_warmup
)
SELECT
    symbol,
    feature,
    avg(value) AS mean,
    coalesce(stddev_pop(value), 0.0) AS std,
    count(value) AS n
FROM (
    UNPIVOT train
    ON {{ cols | join(', ') }}
    INTO NAME feature VALUE value
)
GROUP BY ALL
ORDER BY ALL
{% endcall %}
