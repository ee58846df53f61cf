"""Stage ``search`` (the log indexer's side): OpenSearch documents, index templates and retention
(docs/search.md)."""
