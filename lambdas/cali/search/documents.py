"""The OpenSearch log document (index ``cali-logs-YYYY-MM-DD``), built from a validated record.

The same function serves the ``log_indexer`` Firehose transform and the local pipeline, so
what Grafana searches locally is exactly what it searches in AWS.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from cali.contracts.records import LogRecord
from cali.fingerprint import Fingerprint


def log_document(record: LogRecord, fingerprint: Fingerprint, environment: str) -> dict[str, Any]:
    """One log document per the contract; ``environment`` fills in when the record has none."""
    return {
        "@timestamp": record.timestamp.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "level": record.level.name,
        "service": record.service,
        "environment": record.environment or environment,
        "message": record.message,
        "fingerprint": fingerprint.id,
        "template": fingerprint.template,
        "exception_type": fingerprint.exception_type,
        "stack_trace": record.stack_trace,
        "trace_id": record.trace_id,
        "request_id": record.request_id,
        "host": record.host,
        "pod": record.pod,
        "container": record.container,
        "namespace": record.namespace,
        "logger": record.logger,
        "fields": record.fields,
    }
