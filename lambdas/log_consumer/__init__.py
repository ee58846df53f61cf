"""Lambda: log_consumer."""
