-- Regime thresholds per symbol, fit on the train split (warm-up rows excluded).  The causal trend score is the
-- log mid change over the regime window divided by the realized volatility over the same window; rows whose
-- |score| exceeds the `regime_trend_quantile` of |score| on train are bull (score > 0) or bear (< 0), the rest
-- range.  vol_threshold (train median of the window's realized volatility) splits high / low volatility.
{% call train_fit() %}
WITH train AS (
    SELECT symbol, regime_trend / nullif(regime_rvol, 0) AS score, regime_rvol
    FROM {{ ref('int_book_features_train') }}
    WHERE ts_us >= {{ train_start_us() }} AND ts_us < {{ train_end_us() }} AND NOT is_warmup
)
SELECT
    symbol,
    quantile_cont(abs(coalesce(score, 0.0)), {{ var('regime_trend_quantile') }}) AS trend_threshold,
    quantile_cont(regime_rvol, 0.5) AS vol_threshold,
    count(*) AS n_train
FROM train
GROUP BY symbol
{% endcall %}
