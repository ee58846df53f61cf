"""Daily data-quality checks over the raw archive, on DuckDB (local) or Athena (deployed)."""
