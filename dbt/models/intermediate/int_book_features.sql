{{ config(materialized='view') }}
-- The book-level features per snapshot: the two parts that dbt builds side by side (macros/int_book_features.sql),
-- joined on the book's key.  Both parts hold exactly the staged books of the days built (tests on each part).
SELECT f.*, r.* EXCLUDE (symbol, market, date, ts, ts_us)
FROM {{ ref('int_book_features_flow') }} AS f
JOIN {{ ref('int_book_features_returns') }} AS r USING (symbol, ts_us)
