-- QC outliers: every clipped feature of the built days lies inside its train-fit bounds.
{%- set cols = clipped_features() %}
SELECT f.symbol, f.ts_us
FROM {{ ref('fct_features') }} AS f
JOIN {{ ref('norm_clip_bounds') }} AS b USING (symbol)
WHERE f.date BETWEEN '{{ build_window("start_date") }}' AND '{{ build_window("end_date") }}'
  AND (
    {%- for c in cols %}
    f.{{ c }} < b.{{ c }}__lo OR f.{{ c }} > b.{{ c }}__hi{{ ' OR' if not loop.last }}
    {%- endfor %}
  )
