-- QC timestamp continuity: a built day whose book grid has a hole longer than qc_max_gap_s, or whose share of
-- steps longer than 1.5 grid intervals exceeds qc_max_gap_rate.
SELECT symbol, date, gap_rate, max_gap_s
FROM {{ ref('qc_daily') }}
WHERE date BETWEEN '{{ build_window("start_date") }}' AND '{{ build_window("end_date") }}'
  AND (max_gap_s > {{ var('qc_max_gap_s') }} OR gap_rate > {{ var('qc_max_gap_rate') }})
