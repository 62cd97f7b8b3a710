{% test unique_combination(model, columns) %}
-- rows whose combination of `columns` occurs more than once (a duplicated natural key)
SELECT {{ columns | join(', ') }}, count(*) AS n
FROM {{ model }}
GROUP BY {{ columns | join(', ') }}
HAVING count(*) > 1
{% endtest %}
