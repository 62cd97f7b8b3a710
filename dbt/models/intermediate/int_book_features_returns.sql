{{ config(
    pre_hook="{{ delete_range('ts_us', range_start_us(), range_end_us()) }}",
) }}
{{ int_book_features('returns') }}
