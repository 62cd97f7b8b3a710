-- The two parts of int_book_features hold the same books in the days built (each part's keys are unique, so equal
-- counts per symbol mean equal keys): the view's inner join drops no row.
WITH flow AS (
    SELECT symbol, count(*) AS n
    FROM {{ ref('int_book_features_flow') }}
    WHERE ts_us >= {{ range_start_us() }} AND ts_us < {{ range_end_us() }}
    GROUP BY symbol
),
returns AS (
    SELECT symbol, count(*) AS n
    FROM {{ ref('int_book_features_returns') }}
    WHERE ts_us >= {{ range_start_us() }} AND ts_us < {{ range_end_us() }}
    GROUP BY symbol
)
SELECT symbol, flow.n AS flow_rows, returns.n AS returns_rows
FROM flow
FULL JOIN returns USING (symbol)
WHERE flow.n IS DISTINCT FROM returns.n
