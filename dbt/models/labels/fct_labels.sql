{{ config(
    pre_hook="{{ delete_range('ts_us', markouts_start_us(), range_end_us()) }}",
    on_schema_change='fail',
) }}
-- (runs beside int_trade_flow, before fct_features: dbt_project.yml, the schedule of a build)
{%- set STREAMING = staged_grid_is_regular(
        ref('stg_book_snapshots'), markouts_start_us(), range_end_us() ~ ' + ' ~ max_horizon_us(),
        markout_horizons()) %}
-- Mid markouts per book snapshot: (m(t+h) - m(t)) / m(t) * 1e4 bps with m(t+h) the mid of the last snapshot at
-- or before t+h.  NULL while t+h lies beyond the staged data; each run recomputes the last max-horizon of the
-- previous day too (markouts_start_us), so those labels are filled once the next day is built.  Split embargoes
-- are applied by feature_store.snapshots (rows whose horizon crosses a split boundary are dropped there).
-- On a regular staged grid m(t+h) is the row h / grid later (streaming lags over rows sorted backwards in time,
-- macros/regular_grid.sql); otherwise as-of self joins.
WITH book AS (
    SELECT symbol, date, ts, ts_us, (bid_px_1 + ask_px_1) / 2 AS mid
    FROM {{ ref('stg_book_snapshots') }}
    -- books up to one horizon past the range: labels at the range's end look into the next day when it is staged
    WHERE ts_us >= {{ markouts_start_us() }} AND ts_us < {{ range_end_us() }} + {{ max_horizon_us() }}
)
{%- if STREAMING %},
{{ markout_last_book() }},
backwards AS (
    SELECT * FROM book ORDER BY symbol, ts_us DESC
),
lagged AS (
    SELECT
        symbol,
        date,
        ts,
        ts_us,
        mid,
        {%- for h in markout_horizons() %}
        {{ stream_prev('mid', grid_rows(h) | int) }} AS mid_{{ h }}s{{ ',' if not loop.last }}
        {%- endfor %}
    FROM backwards
)
SELECT
    l.symbol,
    l.date,
    l.ts,
    l.ts_us,
    {%- for h in markout_horizons() %}
    CASE WHEN lb.last_ts_us >= l.ts_us + {{ h * 1000000 }}
         THEN ({{ mid_past_window('l.ts_us', h, 'l.mid_%ds' % h) }} - l.mid) / l.mid * 1e4 END
        AS markout_mid_{{ h }}s_bps{{ ',' if not loop.last }}
    {%- endfor %}
FROM lagged AS l
JOIN last_book AS lb USING (symbol)
WHERE l.ts_us < {{ range_end_us() }}
{%- else %},
{{ markout_last_book() }}
-- m(t+h) by as-of self joins (5x cheaper here than last_value over RANGE ... FOLLOWING frames)
SELECT
    b.symbol,
    b.date,
    b.ts,
    b.ts_us,
    {%- for h in markout_horizons() %}
    CASE WHEN lb.last_ts_us >= b.ts_us + {{ h * 1000000 }} THEN (a{{ h }}.mid - b.mid) / b.mid * 1e4 END
        AS markout_mid_{{ h }}s_bps{{ ',' if not loop.last }}
    {%- endfor %}
FROM book AS b
JOIN last_book AS lb USING (symbol)
{%- for h in markout_horizons() %}
ASOF LEFT JOIN book AS a{{ h }} ON a{{ h }}.symbol = b.symbol AND b.ts_us + {{ h * 1000000 }} >= a{{ h }}.ts_us
{%- endfor %}
WHERE b.ts_us < {{ range_end_us() }}
{%- endif %}
