{#- The streaming plan of the rolling features, used when the staged book grid is regular.

    On a regular grid of step g (every symbol's rows are exactly lo, lo + g, ..., hi) the trailing window (t - W, t]
    is the last W / g rows of the symbol, so a window sum is a running sum minus the running sum W / g rows back,
    and first_value over the window is the value W / g - 1 rows back.  Running sums and lags over rows sorted by
    (symbol, ts_us) with no PARTITION BY / ORDER BY in the OVER clause run as DuckDB streaming windows: one sort
    and no segment trees (about 5x cheaper than RANGE frames, benchmarks/bench_features.py).  The running sums
    run across symbols; a window that would reach before its symbol's first row subtracts the running sum just
    before that row instead (base_<col>).  The plan is taken only after `staged_grid_is_regular` checked the
    staged rows at run time; otherwise the models use RANGE frames over exchange time (correct across gaps).

    Precision: a running-sum difference carries the rounding of the additions inside the window (~sqrt(W/g) x
    1e-16 x the running sum); the compensated `fsum` keeps it at ~1e-16 x the running sum.  Windows with no
    non-zero term are reported as exact zeros from integer counts, as the RANGE plan does. -#}

{#- Is every symbol's staged book in [lower_us, upper_us) a complete grid of step var('grid_ms'), and does that step
    divide every window?  One aggregate query at run time; false at parse time or with var feature_plan: range. -#}
{% macro staged_grid_is_regular(relation, lower_us, upper_us, window_seconds) %}
  {%- if var('feature_plan', 'auto') not in ('auto', 'streaming', 'range') -%}
    {{ exceptions.raise_compiler_error("var feature_plan: " ~ var('feature_plan') ~ " is not one of auto, streaming, range") }}
  {%- endif -%}
  {%- if not execute or var('feature_plan', 'auto') == 'range' -%}
    {{ return(false) }}
  {%- endif -%}
  {%- set g = grid_us() -%}
  {%- for s in window_seconds -%}
    {%- if (s * 1000000) % g != 0 -%}{{ return(false) }}{%- endif -%}
  {%- endfor -%}
  {%- set query -%}
    SELECT count(*) AS n_symbols,
           coalesce(bool_and(n = (hi - lo) // {{ g }} + 1 AND (hi - lo) % {{ g }} = 0 AND n_phase = 1), false) AS ok
    FROM (
        SELECT symbol, count(*) AS n, min(ts_us) AS lo, max(ts_us) AS hi, count(DISTINCT ts_us % {{ g }}) AS n_phase
        FROM {{ relation }}
        WHERE ts_us >= {{ lower_us }} AND ts_us < {{ upper_us }}
        GROUP BY symbol
    )
  {%- endset -%}
  {%- set row = run_query(query).rows[0] -%}
  {%- if var('feature_plan', 'auto') == 'streaming' and not row[1] -%}
    {{ exceptions.raise_compiler_error("var feature_plan: streaming was asked for, but the staged book of " ~ relation ~ " is not a regular " ~ g ~ " us grid (gaps or off-grid rows): use feature_plan: auto") }}
  {%- endif -%}
  {{ return(row[0] > 0 and row[1]) }}
{% endmacro %}

{#- The book grid's step in microseconds (var grid_ms). -#}
{% macro grid_us() -%}
  {{ return((var('grid_ms') | int) * 1000) }}
{%- endmacro %}

{#- Rows in a window of `seconds` on the grid. -#}
{% macro grid_rows(seconds) -%}
  {{ ((seconds * 1000000) // grid_us()) | int }}
{%- endmacro %}

{#- DuckDB streams lag() only for offsets below 2048 rows; a longer lag is a chain of shorter ones over successive
    CTEs (stream_far_lags) that leaves lag(col, n) in the column far_<n>_<col>. -#}
{% macro stream_max_lag() %}{{ return(2047) }}{% endmacro %}

{#- `col` lagged by `n` rows over the sorted stream. -#}
{% macro stream_lag(col, n) -%}
  {%- if n <= stream_max_lag() -%}
  lag({{ col }}, {{ n }}) OVER ()
  {%- else -%}
  far_{{ n }}_{{ col }}
  {%- endif -%}
{%- endmacro %}

{#- CTEs `name`_0 .. `name`_k after `source`: far maps a row offset n to the columns whose lag by n rows is needed;
    for n above stream_max_lag() each CTE lags far_<n>_<col> by at most stream_max_lag() rows, so that after the
    last one far_<n>_<col> = lag(col, n).  Emits the CTE definitions, each followed by a comma; read the last one
    with stream_far_last(name, far). -#}
{% macro stream_far_lags(source, name, far) -%}
{{ name }}_0 AS (
    SELECT *
    {%- for n, cols in far.items() if n > stream_max_lag() %}{% for c in cols %}, {{ c }} AS far_{{ n }}_{{ c }}{% endfor %}{% endfor %}
    FROM {{ source }}
),
  {%- for level in range(1, stream_far_depth(far) + 1) %}
{{ name }}_{{ level }} AS (
    SELECT * REPLACE (
    {%- set items = [] -%}
    {%- for n, cols in far.items() if n > stream_max_lag() -%}
      {%- set k = (n + stream_max_lag() - 1) // stream_max_lag() -%}
      {%- if level <= k -%}
        {%- set step = n // k + (1 if level <= n % k else 0) -%}
        {%- for c in cols -%}{%- do items.append('lag(far_%d_%s, %d) OVER () AS far_%d_%s' % (n, c, step, n, c)) -%}{%- endfor -%}
      {%- endif -%}
    {%- endfor %}
        {{ items | join(', ') }}
    )
    FROM {{ name }}_{{ level - 1 }}
),
  {%- endfor %}
{%- endmacro %}

{% macro stream_far_depth(far) -%}
  {%- set depths = [0] -%}
  {%- for n in far if n > stream_max_lag() -%}{%- do depths.append((n + stream_max_lag() - 1) // stream_max_lag()) -%}{%- endfor -%}
  {{ return(depths | max) }}
{%- endmacro %}

{% macro stream_far_last(name, far) -%}
  {{ name }}_{{ stream_far_depth(far) }}
{%- endmacro %}

{#- The sum of `col` over the trailing window of `seconds`: needs c_<col> (running sum), base_<col> (running sum
    before the symbol's first row), rn (row number) and seg_rn (the symbol's first rn) in the input. -#}
{% macro stream_window_sum(col, seconds) -%}
  {%- set n = grid_rows(seconds) | int -%}
  (c_{{ col }} - CASE WHEN rn - {{ n }} >= seg_rn THEN {{ stream_lag('c_' ~ col, n) }} ELSE base_{{ col }} END)
{%- endmacro %}

{#- The first value of `col` in the trailing window of `seconds` (first_<col>: the symbol's first value). -#}
{% macro stream_window_first(col, seconds) -%}
  {%- set n = grid_rows(seconds) | int -%}
  {%- if n == 1 -%}
  {{ col }}
  {%- else -%}
  CASE WHEN rn - {{ n - 1 }} >= seg_rn THEN {{ stream_lag(col, n - 1) }} ELSE first_{{ col }} END
  {%- endif -%}
{%- endmacro %}

{#- Rows in the trailing window of `seconds` (the grid is complete from the symbol's first row). -#}
{% macro stream_window_count(seconds) -%}
  least({{ grid_rows(seconds) }}, rn - seg_rn + 1)
{%- endmacro %}

{#- `col` of the same symbol's row `n` rows before in the sorted stream (NULL where the symbol has none). -#}
{% macro stream_prev(col, n=1) -%}
  {%- set offset = '' if n == 1 else ', %d' % n -%}
  CASE WHEN lag(symbol{{ offset }}) OVER () = symbol THEN lag({{ col }}{{ offset }}) OVER () END
{%- endmacro %}
