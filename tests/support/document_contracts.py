"""The OpenSearch document contract, written out once for the tests that check it (not a
test module). It restates the contract on purpose rather than importing it from the code
under test, so a change to the code cannot quietly change the contract."""

# OpenSearch log document (index cali-logs-YYYY-MM-DD): what the log_indexer Firehose
# transform and the local pipeline write, and what the index template maps.
LOG_DOCUMENT_FIELDS = {
    "@timestamp",
    "level",
    "service",
    "environment",
    "message",
    "fingerprint",
    "template",
    "exception_type",
    "stack_trace",
    "trace_id",
    "request_id",
    "host",
    "pod",
    "container",
    "namespace",
    "logger",
    "fields",
}
