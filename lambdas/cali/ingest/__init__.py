"""Stage ``ingest`` (the front of the log consumer, shared with the log indexer): bytes of one
Kinesis record -> validated log records, the level filter, and the DLQ for what cannot be read
(docs/ingest.md)."""
