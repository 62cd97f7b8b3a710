{{ config(
    pre_hook=["{{ drop_unread_book_levels() }}", "{{ delete_range('ts_us', range_start_us(), range_end_us()) }}"],
) }}
-- Typed, deduplicated, QC-clipped book on the snapshot grid, one plain column per level and side: the sizes of the
-- levels the depth features sum (1..{{ depth_levels() | max }}) and the prices of the levels OFI compares
-- (1..{{ ofi_levels() }}), what the features read (levels 11-20 and the other prices stay in lake/raw, for the replay
-- simulator; a table staged before holds prices of levels 6-10 and the receive time, which the first run drops).
-- Each run (re)stages [start_date, end_date] only (reading the previous day's 20-level lists again would double
-- the cost): the rolling windows of start_date take their warm-up from the previous day's rows already in this
-- table, staged by the run that built that day.  Build days in order (or as one range); a day whose previous
-- day was never built gets its first rows flagged is_warmup instead.
-- QC clip: a level with a non-finite price or a non-positive size is treated as absent (price NULL, size 0);
-- a snapshot without a best bid or best ask is dropped.  Crossed / locked books are kept and flagged: the
-- dbt tests count them (a planted crossed day fails `qc_crossed_books`).
WITH raw AS (
    SELECT *, epoch_us(ts) AS ts_us
    FROM {{ source('raw', 'book_snapshots') }}
    WHERE {{ raw_date_filter() }}
),
levels AS (
    SELECT
        symbol,
        market,
        date,
        ts,
        ts_us,
        epoch_us(recv_ts) AS recv_ts_us,
        update_id,
        {%- for side in ['bid', 'ask'] %}
        {%- for i in range(1, (depth_levels() | max) + 1) %}
        {%- set present = '%s_sz[%d] > 0 AND isfinite(%s_px[%d])' % (side, i, side, i) %}
        {%- if i <= ofi_levels() %}
        CASE WHEN {{ present }} THEN {{ side }}_px[{{ i }}] END AS {{ side }}_px_{{ i }},
        {%- endif %}
        CASE WHEN {{ present }} THEN {{ side }}_sz[{{ i }}] ELSE 0.0 END AS {{ side }}_sz_{{ i }},
        {%- endfor %}
        {%- endfor %}
    FROM raw
    WHERE ts_us >= {{ range_start_us() }} AND ts_us < {{ range_end_us() }}
)
SELECT
    * EXCLUDE (update_id, recv_ts_us),
    bid_px_1 > ask_px_1 AS is_crossed,
    bid_px_1 = ask_px_1 AS is_locked
FROM levels
WHERE bid_px_1 IS NOT NULL AND ask_px_1 IS NOT NULL
{%- if raw_has_duplicates(source('raw', 'book_snapshots'), ['symbol', 'ts']) %}
-- dedupe on the natural key (symbol, ts): the last received copy wins (after level extraction: cheaper)
QUALIFY row_number() OVER (PARTITION BY symbol, ts_us ORDER BY recv_ts_us DESC, update_id DESC) = 1
{%- endif %}
