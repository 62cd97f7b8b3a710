{{ config(materialized='view') }}
-- The rows the QC tests judge: metrics_daily of the days this run built.  The failing QC tests attach here, not
-- to metrics_daily, so that a bad day still gets its metrics JSON (dashboards must show bad days too).
SELECT *
FROM {{ ref('metrics_daily') }}
WHERE date BETWEEN '{{ build_window("start_date") }}' AND '{{ build_window("end_date") }}'
