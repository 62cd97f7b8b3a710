{#- Rows whose combination of `columns` occurs more than once (a duplicated natural key).  With `rebuilt_from`, only
    rows with ts_us from the first time this run (re)wrote are checked: the rows of earlier runs were checked by
    them, and a duplicate needs a row written now (so the test costs a day, not the whole history):
      range    - the run's first day (models that rewrite [start_date, end_date])
      warmup   - the warm-up before it (models that rewrite their warm-up too)
      markouts - markouts_start_us() (label models, which recompute the previous day's last horizon)
    A key with ts_us is checked up to the end of the range too: both rows of such a duplicate lie where this run
    wrote, and a rebuild of an old day then reads that day, not every day after it.
    With `day_partitions` (a model stored as files per day, whose date column names the UTC day of ts_us, such as
    the published fct_features) a range check also names its days: a view of the files then opens those days'
    files only, not the footer of every day published (with a year of days, 0.14 -> 0.04 s a check). -#}
{% test unique_combination(model, columns, rebuilt_from=none, day_partitions=false) %}
{%- if rebuilt_from not in (none, 'range', 'warmup', 'markouts') %}
  {{ exceptions.raise_compiler_error("unique_combination: rebuilt_from=" ~ rebuilt_from ~ " is not one of range, warmup, markouts") }}
{%- endif %}
SELECT {{ columns | join(', ') }}, count(*) AS n
FROM {{ model }}
{%- if rebuilt_from == 'range' %}
WHERE ts_us >= {{ range_start_us() }}
{%- elif rebuilt_from == 'warmup' %}
WHERE ts_us >= {{ range_start_us() }} - {{ warmup_us() }}
{%- elif rebuilt_from == 'markouts' %}
WHERE ts_us >= {{ markouts_start_us() }}
{%- endif %}
{%- if rebuilt_from is not none and 'ts_us' in columns %}
  AND ts_us < {{ range_end_us() }}
{%- endif %}
{%- if day_partitions and rebuilt_from == 'range' %}
  AND date BETWEEN '{{ build_window("start_date") }}' AND '{{ build_window("end_date") }}'
{%- elif day_partitions %}
  {{ exceptions.raise_compiler_error("unique_combination: day_partitions applies to rebuilt_from=range only") }}
{%- endif %}
GROUP BY {{ columns | join(', ') }}
HAVING count(*) > 1
{% endtest %}
