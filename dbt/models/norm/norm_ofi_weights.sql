-- Integrated-OFI weights per symbol (Cont, Cucuringu, Zhang 2023): the first principal component of the
-- normalized multi-level OFI vector (ofi_l1..l{{ ofi_levels() }}_{{ flow_window() }}s_norm) over the train split,
-- scaled to unit L1 norm with a positive sum.  The eigenvector comes from repeated squaring of the covariance
-- matrix (C^(2^48), rescaled each step), whose rows all point along it; equal weights when OFI never varied.
{%- set M = ofi_levels() %}
{%- set FW = flow_window() %}
{% call train_fit() %}
WITH RECURSIVE train AS (
    SELECT *
    FROM {{ ref('int_book_features_train') }}
    WHERE ts_us >= {{ train_start_us() }} AND ts_us < {{ train_end_us() }} AND NOT is_warmup
),
cov AS (
    SELECT
        symbol,
        [
            {%- for i in range(1, M + 1) %}
            [{% for j in range(1, M + 1) %}coalesce(covar_pop(ofi_l{{ i }}_{{ FW }}s_norm, ofi_l{{ j }}_{{ FW }}s_norm), 0.0)::DOUBLE{{ ', ' if not loop.last }}{% endfor %}]{{ ',' if not loop.last }}
            {%- endfor %}
        ] AS c
    FROM train
    GROUP BY symbol
),
squared AS (
    SELECT symbol, 0 AS k, c AS m FROM cov
    UNION ALL
    SELECT symbol, k + 1, CASE WHEN mx > 0 THEN [[x / mx for x in r] for r in mm] ELSE mm END
    FROM (
        SELECT symbol, k, mm, list_max([list_max([abs(x) for x in r]) for r in mm]) AS mx
        FROM (SELECT symbol, k, [[list_dot_product(r, s) for s in m] for r in m] AS mm FROM squared WHERE k < 48)
    )
),
top AS (
    SELECT symbol, m, list_position([m[i][i] for i in range(1, {{ M + 1 }})], list_max([m[i][i] for i in range(1, {{ M + 1 }})])) AS best
    FROM squared
    WHERE k = 48
),
vec AS (
    SELECT symbol, m[best] AS v, list_sum([abs(x) for x in m[best]]) AS l1, list_sum(m[best]) AS total
    FROM top
)
SELECT
    symbol,
    {%- for i in range(1, M + 1) %}
    CASE WHEN l1 > 0 THEN sign(CASE WHEN total = 0 THEN 1 ELSE total END) * v[{{ i }}] / l1 ELSE {{ 1.0 / M }} END AS w_l{{ i }}{{ ',' if not loop.last }}
    {%- endfor %}
FROM vec
{% endcall %}
