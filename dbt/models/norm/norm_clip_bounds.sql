-- Outlier clip bounds per symbol and feature: the clip_lower_q / clip_upper_q quantiles of the train split
-- (train days, warm-up rows excluded), estimated on a deterministic hash sample of at most fit_sample_rows
-- rows per symbol (all rows when the split is smaller).  Validation and test days never enter.
{%- set cols = clipped_features() %}
{% call train_fit() %}
WITH train AS (
    SELECT *, count(*) OVER (PARTITION BY symbol) AS n_train
    FROM {{ ref('int_book_features_train') }}
    WHERE ts_us >= {{ train_start_us() }} AND ts_us < {{ train_end_us() }} AND NOT is_warmup
),
sample AS (
    SELECT *
    FROM train
    WHERE hash(symbol, ts_us) % greatest(1, ceil(n_train / {{ var('fit_sample_rows') }}))::UBIGINT = 0
)
SELECT
    symbol,
    count(*) AS n_sample,
    {%- for c in cols %}
    quantile_cont({{ c }}, {{ var('clip_lower_q') }}) AS {{ c }}__lo,
    quantile_cont({{ c }}, {{ var('clip_upper_q') }}) AS {{ c }}__hi{{ ',' if not loop.last }}
    {%- endfor %}
FROM sample
GROUP BY symbol
{% endcall %}
