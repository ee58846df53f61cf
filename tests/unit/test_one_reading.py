"""One reading of a line: the Fluent Bit path and the CloudWatch Logs path give the same record.

Fluent Bit only groups lines and adds metadata (docs/fluent-bit.md); CloudWatch Logs
subscriptions deliver the text as it was written. Both reach the same normaliser in the
consumer, so every corpus line must come out the same: time, level and where it came from,
message, logger, thread, ids and the recognised format.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from cali.contracts.records import LogRecord, build_record
from cali.ingest.decoding import decode_payload
from cali.ingest.events import REPLAY_TIME_RULE, prepare_event
from cali_local.fluentbit import FILES_CONFIG, FluentBitPipeline, LogSource

CORPUS = Path(__file__).parent / "data" / "formats_corpus.yaml"
READ_TIME = datetime(2026, 12, 1, tzinfo=UTC)
ENV = {"CALI_ENV": "test", "CALI_CLUSTER": "unit", "HOSTNAME": "host-1", "AWS_REGION": "eu-west-1"}
ENV["CALI_STREAM_NAME"] = "cali-test-logs"
LINES = [case["line"] for entry in yaml.safe_load(CORPUS.read_text()) for case in entry["lines"]]


def _read(payload: bytes) -> LogRecord:
    decoded = decode_payload(payload)
    assert decoded.errors == []
    [event] = decoded.events
    return build_record(prepare_event(event, READ_TIME, time_rule=REPLAY_TIME_RULE), READ_TIME)


def via_fluent_bit(line: str) -> LogRecord:
    pipeline = FluentBitPipeline.load(FILES_CONFIG, ENV)
    [record] = pipeline.run([line], LogSource("/var/log/app/orders.log"), time=READ_TIME)
    return _read(record.data)


def via_cloudwatch(line: str) -> LogRecord:
    envelope = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "/aws/lambda/orders",
        "logStream": "2026/12/01/[$LATEST]abc",
        "subscriptionFilters": ["cali"],
        "logEvents": [{"id": "1", "timestamp": int(READ_TIME.timestamp() * 1000), "message": line}],
    }
    return _read(gzip.compress(json.dumps(envelope).encode()))


def _view(record: LogRecord) -> dict[str, Any]:
    return {
        "timestamp": record.timestamp,
        "level": record.level,
        "level_source": record.fields.get("level_source"),
        "log_format": record.fields.get("log_format"),
        "message": record.message,
        "stack_trace": record.stack_trace,
        "service": record.service,
        "logger": record.logger,
        "thread": record.thread,
        "trace_id": record.trace_id,
        "request_id": record.request_id,
    }


@pytest.mark.parametrize("line", LINES, ids=[f"line{i}" for i in range(len(LINES))])
def test_fluent_bit_and_cloudwatch_give_the_same_record(line: str) -> None:
    assert _view(via_fluent_bit(line)) == _view(via_cloudwatch(line))


def test_the_paths_really_are_different_transports() -> None:
    # Guard against comparing a path with itself: the metadata differs, the reading does not.
    line = "2026-11-30 10:00:01,456 ERROR [http-1] com.acme.OrderService - order 1234 failed"
    fluent_bit, cloudwatch = via_fluent_bit(line), via_cloudwatch(line)
    assert fluent_bit.fields.get("cluster") == "unit" and "log_group" not in fluent_bit.fields
    assert cloudwatch.fields.get("log_group") == "/aws/lambda/orders" and "cluster" not in cloudwatch.fields
    assert fluent_bit.message == cloudwatch.message == "order 1234 failed"
