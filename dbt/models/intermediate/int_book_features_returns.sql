{{ config(materialized='ephemeral') }}
{{ int_book_features('returns') }}
