{{ config(materialized='table') }}
-- On-chain metrics (daily or coarser, a few rows a day): the whole table, deduplicated on (symbol, metric, ts).
-- available_at is when the value could first have been known; features join on it, never on ts.
SELECT
    symbol,
    asset,
    metric,
    ts,
    epoch_us(available_at) AS available_at_us,
    value
FROM {{ source('raw', 'onchain_metrics') }}
WHERE isfinite(value) AND available_at >= ts
QUALIFY row_number() OVER (PARTITION BY symbol, metric, ts ORDER BY recv_ts DESC) = 1
