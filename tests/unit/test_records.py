from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cali.contracts.levels import Level
from cali.contracts.records import (
    MAX_MESSAGE_CHARS,
    MAX_SHORT_FIELD_CHARS,
    LogRecord,
    RecordError,
    build_record,
    parse_level,
    parse_timestamp,
    truncate,
)

T = datetime(2026, 11, 23, 10, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    [
        "2026-11-23T10:00:00.123Z",
        "2026-11-23T10:00:00.123+00:00",
        "2026-11-23T11:00:00.123+01:00",
        "2026-11-23 10:00:00,123",  # logback
        "2026-11-23T10:00:00,123",  # log4j ISO8601
        "23 Nov 2026 10:00:00,123",  # log4j DATE
        "2026/11/23 10:00:00.123",  # Go log
        1795428000.123,
        1795428000123,
        "1795428000123",
        1795428000123000,
        1795428000123000000,
    ],
)
def test_timestamp_forms(raw: object) -> None:
    assert abs((parse_timestamp(raw) - T).total_seconds()) < 0.001


@pytest.mark.parametrize("raw", ["yesterday", "", True, {"s": 1}, "2026-13-45T99:00:00Z"])
def test_bad_timestamps_raise(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ERR", Level.ERROR),
        ("SEVERE", Level.ERROR),
        ("critical", Level.FATAL),
        ("WARNING", Level.WARN),
        ("fatal", Level.FATAL),
        ("Information", Level.INFO),
        ("dpanic", Level.FATAL),
        # pino / bunyan numbers
        (10, Level.TRACE),
        (20, Level.DEBUG),
        (30, Level.INFO),
        (40, Level.WARN),
        (50, Level.ERROR),
        (60, Level.FATAL),
        (3, Level.ERROR),
    ],
)
def test_level_aliases(raw: object, expected: Level) -> None:
    assert parse_level(raw) is expected


def fluent(**extra: Any) -> dict[str, Any]:
    return {"time": "2026-11-23T10:00:00.123Z", "level": "error", "message": "boom", **extra}


def test_fluent_bit_shape_with_kubernetes_metadata() -> None:
    record = build_record(
        fluent(
            trace_id="t1",
            request_id="r1",
            logger="com.shop.X",
            thread="main",
            environment="prod",
            cluster="eu",
            kubernetes={
                "pod_name": "checkout-1",
                "namespace_name": "shop",
                "container_name": "app",
                "host": "node-1",
                "labels": {"app": "checkout"},
            },
        )
    )
    assert (record.service, record.pod, record.namespace, record.container, record.host) == (
        "checkout",
        "checkout-1",
        "shop",
        "app",
        "node-1",
    )
    assert (record.trace_id, record.request_id, record.logger, record.thread, record.environment) == (
        "t1",
        "r1",
        "com.shop.X",
        "main",
        "prod",
    )
    assert record.fields == {"cluster": "eu"}
    assert record.timestamp == T and record.level is Level.ERROR


@pytest.mark.parametrize(
    ("event", "service", "message", "level"),
    [
        (
            {"ts": 1795428000.123, "msg": "zap says", "level": "warn", "service": "api"},
            "api",
            "zap says",
            Level.WARN,
        ),
        ({"time": 1795428000123, "msg": "pino", "level": 50, "app": "web"}, "web", "pino", Level.ERROR),
        (
            {
                "@timestamp": "2026-11-23T10:00:00.123Z",
                "message": "logstash",
                "severity": "CRITICAL",
                "container_name": "c1",
            },
            "c1",
            "logstash",
            Level.FATAL,
        ),
        (
            {"time": "2026-11-23T10:00:00.123Z", "log": "raw line", "lvl": "eror"},
            "unknown",
            "raw line",
            Level.INFO,
        ),
    ],
)
def test_json_logger_aliases(event: dict[str, Any], service: str, message: str, level: Level) -> None:
    record = build_record(event)
    assert (record.service, record.message, record.level) == (service, message, level)


def test_multiline_message_is_split_into_message_and_stack_trace() -> None:
    record = build_record(
        fluent(message="Request failed\njava.lang.NullPointerException\n\tat a.B.c(B.java:1)")
    )
    assert record.message == "Request failed"
    assert record.stack_trace == "java.lang.NullPointerException\n\tat a.B.c(B.java:1)"
    explicit = build_record(fluent(message="a\nb", stack_trace="trace"))
    assert (explicit.message, explicit.stack_trace) == ("a\nb", "trace")


def test_overlong_fields_are_truncated_with_marker_not_rejected() -> None:
    record = build_record(fluent(message="x" * (MAX_MESSAGE_CHARS + 10), trace_id="t" * 1000))
    assert record.message.endswith("…[truncated 10 chars]")
    assert record.trace_id is not None and record.trace_id.endswith(
        f"[truncated {1000 - MAX_SHORT_FIELD_CHARS} chars]"
    )
    assert truncate("abc", 5) == "abc"


def test_missing_timestamp_falls_back_to_arrival_time() -> None:
    record = build_record({"message": "m", "level": "ERROR"}, arrival_time=T)
    assert record.timestamp == T


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (["a", "list"], "not_an_object"),
        ("a string", "not_an_object"),
        ({"time": "2026-11-23T10:00:00Z", "level": "ERROR"}, "missing_field:message"),
        ({"message": "no time"}, "missing_field:timestamp"),
        (fluent(time="not a time"), "invalid_field:timestamp"),
        # In range as written, out of range in UTC: once an OverflowError escaped (poison pill).
        (fluent(time="9999-12-31T23:59:59-01:00"), "invalid_field:timestamp"),
        (fluent(time="0001-01-01T00:00:00+01:00"), "invalid_field:timestamp"),
        (fluent(message={"nested": True}), "invalid_field:message"),
        (fluent(level={"n": 1}), "invalid_field:level"),
        (fluent(trace_id=["a"]), "invalid_field:trace_id"),
        (fluent(service=42), "invalid_field:service"),
    ],
)
def test_bad_events_raise_with_stable_reason(event: object, reason: str) -> None:
    with pytest.raises(RecordError) as caught:
        build_record(event)
    assert caught.value.reason == reason


def test_model_validate_accepts_raw_aliases_too() -> None:
    record = LogRecord.model_validate({"ts": "2026-11-23T10:00:00.123Z", "msg": "hi", "level": "E"})
    assert record.level is Level.ERROR and record.message == "hi"


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("2026-11-23 10:00:01.456 [http-1] ERROR com.acme.Orders - order 1234 failed", Level.ERROR),
        ("2026-11-23 10:00:03.000 [main] WARN  com.acme.Pool - pool 80% used", Level.WARN),
        ("[error] 2026/11/23 10:00:00 upstream timed out", Level.ERROR),
        ("E1123 10:00:00.000000 1 main.go:42] ERR: dial tcp", Level.ERROR),
        ("request finished with no error in 20 ms", Level.INFO),
        ("x" * 120 + " ERROR late in the line", Level.INFO),
    ],
)
def test_raw_line_without_level_field_takes_the_level_in_its_header(line: str, level: Level) -> None:
    # Fluent Bit's `log` key when no parser matched the line.
    record = build_record({"time": "2026-11-23T10:00:00Z", "log": line, "service": "raw"})
    assert record.level is level


def test_level_field_wins_over_header() -> None:
    assert build_record(fluent(level="info", message="ERROR in text")).level is Level.INFO
