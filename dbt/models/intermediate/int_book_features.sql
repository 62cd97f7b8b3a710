{{ config(materialized='ephemeral') }}
-- The book-level features per snapshot of the days this run builds, before any train-fit step: the two parts of
-- macros/int_book_features.sql joined on the book's key.  Not a table: fct_features computes them in its own query
-- (a second copy of every feature written to the warehouse cost more than computing them, benchmarks/
-- bench_features.py), and int_book_features_train keeps those of the train days for the train-fit models.
SELECT f.*, r.* EXCLUDE (symbol, market, date, ts, ts_us)
FROM {{ ref('int_book_features_flow') }} AS f
JOIN {{ ref('int_book_features_returns') }} AS r USING (symbol, ts_us)
