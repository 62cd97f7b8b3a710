{#- Skewness and excess kurtosis of a window from its power sums s1..s4 and count n (central moments, divisor n).
    Emits two select-list items. -#}
{% macro moments(n, s1, s2, s3, s4, skew_name, kurt_name) -%}
  {%- set mean = '(' ~ s1 ~ ' / ' ~ n ~ ')' -%}
  {%- set m2 = '(' ~ s2 ~ ' / ' ~ n ~ ' - ' ~ mean ~ ' * ' ~ mean ~ ')' -%}
  {%- set m3 = '(' ~ s3 ~ ' / ' ~ n ~ ' - 3 * ' ~ mean ~ ' * ' ~ s2 ~ ' / ' ~ n ~ ' + 2 * ' ~ mean ~ ' * ' ~ mean ~ ' * ' ~ mean ~ ')' -%}
  {%- set m4 = '(' ~ s4 ~ ' / ' ~ n ~ ' - 4 * ' ~ mean ~ ' * ' ~ s3 ~ ' / ' ~ n ~ ' + 6 * ' ~ mean ~ ' * ' ~ mean ~ ' * ' ~ s2 ~ ' / ' ~ n ~ ' - 3 * ' ~ mean ~ ' * ' ~ mean ~ ' * ' ~ mean ~ ' * ' ~ mean ~ ')' -%}
  CASE WHEN {{ n }} >= 3 AND {{ m2 }} > 1e-9 * {{ s2 }} / {{ n }} THEN {{ m3 }} / pow({{ m2 }}, 1.5) ELSE 0.0 END AS {{ skew_name }},
  CASE WHEN {{ n }} >= 3 AND {{ m2 }} > 1e-9 * {{ s2 }} / {{ n }} THEN {{ m4 }} / ({{ m2 }} * {{ m2 }}) - 3.0 ELSE 0.0 END AS {{ kurt_name }}
{%- endmacro %}
