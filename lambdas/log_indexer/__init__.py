"""Lambda: log_indexer."""
