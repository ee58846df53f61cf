"""Stage ``knowledge``: runbooks and resolved incidents, their Milvus collection and the sync that
fills it (docs/knowledge.md)."""
