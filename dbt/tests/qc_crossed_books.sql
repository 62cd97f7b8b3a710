-- QC crossed or locked books: a built day with more crossed (bid > ask) or locked (bid = ask) snapshots than
-- qc_max_crossed_rate allows.
SELECT symbol, date, crossed_rate, locked_rate
FROM {{ ref('qc_daily') }}
WHERE date BETWEEN '{{ build_window("start_date") }}' AND '{{ build_window("end_date") }}'
  AND (crossed_rate > {{ var('qc_max_crossed_rate') }} OR locked_rate > {{ var('qc_max_crossed_rate') }})
