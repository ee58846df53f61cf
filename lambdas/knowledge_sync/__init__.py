"""Lambda: knowledge_sync."""
