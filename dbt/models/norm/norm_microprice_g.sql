-- Micro-price adjustment table g(I, s) (Stoikov 2018), fit on the train split only.  State: imbalance
-- I = qb1 / (qb1 + qa1) in `microprice_imbalance_buckets` equal buckets and spread in ticks (1, 2, ..., the last
-- bucket open-ended).  g is the first-order micro-price adjustment g1: the expected change of the mid at its
-- next move, in ticks, estimated directly on train rows, symmetrized as in the paper (state (I, s) with change
-- dM also counts as (1 - I, s) with -dM).  The next move is looked for inside the train split only, so no
-- validation or test row can change g.  micro_price = mid + g * tick.
{%- set NI = var('microprice_imbalance_buckets') | int %}
{%- set NS = var('microprice_spread_buckets') | int %}
{% call train_fit() %}
WITH train AS (
    SELECT
        f.symbol,
        f.ts_us,
        f.mid,
        least(floor(imbalance_ratio * {{ NI }}), {{ NI - 1 }})::INTEGER AS imb_bucket,
        least(greatest(round(spread_ticks), 1), {{ NS }})::INTEGER AS spread_bucket,
        i.tick_size
    FROM {{ ref('int_book_features_train') }} AS f
    JOIN {{ ref('instruments') }} AS i USING (symbol, market)
    WHERE ts_us >= {{ train_start_us() }} AND ts_us < {{ train_end_us() }} AND NOT is_warmup
),
marked AS (
    SELECT *, CASE WHEN mid <> lag(mid) OVER (PARTITION BY symbol ORDER BY ts_us) THEN mid END AS changed_mid
    FROM train
),
observed AS (
    SELECT
        symbol,
        imb_bucket,
        spread_bucket,
        tick_size,
        (first_value(changed_mid IGNORE NULLS) OVER (
            PARTITION BY symbol ORDER BY ts_us ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING
        ) - mid) AS dm
    FROM marked
),
obs AS (
    SELECT symbol, imb_bucket, spread_bucket, dm / tick_size AS dm_ticks
    FROM observed
    WHERE dm IS NOT NULL AND tick_size > 0
    UNION ALL
    SELECT symbol, {{ NI - 1 }} - imb_bucket, spread_bucket, -dm / tick_size
    FROM observed
    WHERE dm IS NOT NULL AND tick_size > 0
),
fitted AS (
    SELECT symbol, imb_bucket, spread_bucket, avg(dm_ticks) AS g_ticks, count(*) AS n_obs
    FROM obs
    GROUP BY ALL
),
grid AS (
    SELECT s.symbol, i.imb_bucket, sp.spread_bucket
    FROM (SELECT DISTINCT symbol FROM train) AS s
    CROSS JOIN (SELECT range::INTEGER AS imb_bucket FROM range({{ NI }})) AS i
    CROSS JOIN (SELECT range::INTEGER + 1 AS spread_bucket FROM range({{ NS }})) AS sp
)
SELECT
    grid.symbol,
    grid.imb_bucket,
    grid.spread_bucket,
    coalesce(fitted.g_ticks, 0.0) AS g_ticks,
    coalesce(fitted.n_obs, 0) AS n_obs
FROM grid
LEFT JOIN fitted USING (symbol, imb_bucket, spread_bucket)
ORDER BY 1, 2, 3
{% endcall %}
