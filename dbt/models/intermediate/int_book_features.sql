{{ config(materialized='ephemeral') }}
-- The book-level features per snapshot of the days this run builds, before any train-fit step
-- (macros/int_book_features.sql).  Not a table: fct_features computes them in its own query (a second copy of every
-- feature written to the warehouse cost more than computing them, benchmarks/bench_features.py), and
-- int_book_features_train keeps those of the train days for the train-fit models.
{{ int_book_features() }}
