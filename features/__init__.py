"""The feature pipeline: offline tables built from raw data with DuckDB, validated, published."""
