{% test positive_values(model, column_name) %}
-- QC sizes: a size that is zero, negative or not finite
SELECT {{ column_name }} FROM {{ model }}
WHERE NOT ({{ column_name }} > 0) OR NOT isfinite({{ column_name }})
{% endtest %}
