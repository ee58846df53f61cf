from __future__ import annotations

import gzip
import json

import pytest

from cali.contracts.levels import Level
from cali.contracts.records import build_record
from cali.ingest.decoding import decode_payload, gunzip_bounded
from cali.ingest.events import prepare_event
from tests.support.consumer_support import cloudwatch, event, line


def test_single_fluent_bit_event_with_trailing_newline() -> None:
    decoded = decode_payload(line(event()) + b"\n")
    assert decoded.events == [event()] and decoded.raws == [None] and decoded.total == 1


def test_newline_joined_events_keep_their_own_bytes() -> None:
    payload = b"\n".join([line(event(message="a")), line(event(message="b")), b"", line(event(message="c"))])
    decoded = decode_payload(payload)
    assert [e["message"] for e in decoded.events] == ["a", "b", "c"]
    assert decoded.raw_for(1) == line(event(message="b"))


def test_one_bad_line_does_not_spoil_its_neighbours() -> None:
    decoded = decode_payload(line(event(message="a")) + b"\n{not json\n" + line(event(message="c")))
    assert [e["message"] for e in decoded.events] == ["a", "c"]
    assert [(e.index, e.reason, e.raw) for e in decoded.errors] == [(1, "not_json", b"{not json")]
    assert decoded.positions == [0, 2]  # DLQ ids use the line's own position
    assert decoded.total == 3


def test_gzip_of_one_or_many_events() -> None:
    assert decode_payload(gzip.compress(line(event()))).events == [event()]
    many = gzip.compress(line(event(message="a")) + b"\n" + line(event(message="b")))
    assert len(decode_payload(many).events) == 2


def test_cloudwatch_subscription_envelope() -> None:
    payload = cloudwatch(
        [
            '{"level": "error", "msg": "json line"}',
            "[ERROR]\t2026-11-23T10:00:00Z\tboom",
            "START RequestId: 1",
        ]
    )
    decoded = decode_payload(payload)
    assert decoded.events[0]["log"] == '{"level": "error", "msg": "json line"}'
    records = [build_record(prepare_event(e, None)) for e in decoded.events]
    assert [r.level for r in records] == [Level.ERROR, Level.ERROR, Level.INFO]
    assert records[0].message == "json line"
    assert all(
        e["service"] == "orders-api" and e["log_group"] == "/aws/lambda/orders-api" for e in decoded.events
    )
    assert decoded.events[0]["timestamp"] == 1795428000000
    # Each event's replayable bytes are a one-event envelope in CloudWatch's own shape.
    single = json.loads(gzip.decompress(decoded.raw_for(1) or b""))
    assert [e["message"] for e in single["logEvents"]] == ["[ERROR]\t2026-11-23T10:00:00Z\tboom"]


def test_cloudwatch_control_message_is_skipped_and_counted() -> None:
    decoded = decode_payload(cloudwatch([], control=True))
    assert (
        decoded.events == [] and decoded.errors == [] and decoded.control_messages == 1 and decoded.total == 1
    )


# Explicit ids: the default id of a bytes value is the bytes themselves, and gzip's header
# carries the compression time, so pytest-xdist workers would collect different names.
@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param(b'{"level": "error", "msg": "cut', "not_json", id="truncated-json"),
        pytest.param(b"\xff\xfe\x00garbage", "invalid_utf8", id="not-utf8"),
        pytest.param(b"\x1f\x8b\x08\x00broken", "invalid_gzip", id="gzip-magic-then-junk"),
        pytest.param(gzip.compress(b"x" * 200, mtime=0)[:-6], "invalid_gzip", id="gzip-truncated"),
        pytest.param(b"{" + b" " * 2000 + b"}", "oversized", id="over-max-bytes"),
        pytest.param(
            gzip.compress(b"[" + b"0," * 5000 + b"0]", mtime=0), "oversized", id="gzip-inflates-past-limit"
        ),
    ],
)
def test_whole_record_errors(payload: bytes, reason: str) -> None:
    decoded = decode_payload(payload, max_bytes=1000)
    assert [(e.reason, e.raw) for e in decoded.errors] == [(reason, None)] and decoded.total == 1


def test_valid_json_that_is_not_an_object_is_passed_on_for_validation() -> None:
    # The record layer owns the "not_an_object" reason, so decoding keeps the value.
    assert decode_payload(b"[1, 2]").events == [[1, 2]]


def test_gunzip_bounded_refuses_bombs() -> None:
    with pytest.raises(OverflowError):
        gunzip_bounded(gzip.compress(b"0" * 10_000), 100)


def test_concatenated_gzip_members_are_all_decoded() -> None:
    # RFC 1952 allows several members in one stream (appending producers, `cat a.gz b.gz`);
    # `gzip -d` reads them all, so stopping after the first would silently drop events.
    payload = gzip.compress(line(event(message="a")) + b"\n") + gzip.compress(line(event(message="b")))
    decoded = decode_payload(payload)
    assert [e["message"] for e in decoded.events] == ["a", "b"] and decoded.total == 2


def test_bytes_after_the_gzip_stream_are_bad_data_not_ignored() -> None:
    payload = gzip.compress(line(event()), mtime=0) + b"trailing junk"
    assert [e.reason for e in decode_payload(payload).errors] == ["invalid_gzip"]


def test_gunzip_bounded_counts_every_member_against_the_limit() -> None:
    with pytest.raises(OverflowError):
        gunzip_bounded(gzip.compress(b"0" * 80) + gzip.compress(b"0" * 80), 100)


def _nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_is_bounded_before_any_work() -> None:
    """Issue 11 row 7: orjson reads 1,024 levels but writes 255; deeper events are bad data."""
    import json as json_

    from cali.ingest.decoding import MAX_NESTING, decode_payload

    deep = json_.dumps({"level": "ERROR", "message": "deep", "ctx": _nested(400)}).encode()
    whole = decode_payload(deep)
    assert [e.reason for e in whole.errors] == ["too_deep"] and not whole.events

    lines = decode_payload(b'{"message": "fine"}\n' + deep)
    assert [e.reason for e in lines.errors] == ["too_deep"] and lines.errors[0].raw == deep
    assert lines.events == [{"message": "fine"}]

    at_limit = json_.dumps({"message": "ok", "ctx": _nested(MAX_NESTING - 2)}).encode()
    assert decode_payload(at_limit).errors == []


def test_the_bad_lines_of_one_record_are_one_error() -> None:
    from cali.ingest.decoding import decode_payload

    # Readable text is a raw line (issue 10); bad data is broken JSON or bytes that are not UTF-8.
    decoded = decode_payload(b'{"message": "a"}\n{not json\n{"message": "b"}\n\xff\xfe\n')
    (error,) = decoded.errors
    assert error.count == 2 and error.raw == b"{not json\n\xff\xfe" and error.index == 1
    assert error.reason == "not_json"
    assert decoded.total == 4 and len(decoded.events) == 2


def test_readable_text_is_a_raw_line_never_bad_data() -> None:
    decoded = decode_payload(b"Dec  1 11:58:00 h sshd[7]: Failed password for root")
    assert decoded.events == [{"log": "Dec  1 11:58:00 h sshd[7]: Failed password for root"}]
    assert decoded.errors == []
    many = decode_payload(line(event(message="a")) + b"\nuser_id=42\n\xff\xfe\n")
    assert many.events[1] == {"log": "user_id=42"}
    assert [e.reason for e in many.errors] == ["invalid_utf8"]
    record = build_record({"log": "user_id=42", "timestamp": 1795428000000})
    assert record.message == "user_id=42"


def test_json_with_some_envelope_keys_is_the_applications_own_event() -> None:
    app = {"level": "error", "msg": "batch failed", "messageType": "batch", "logEvents": [{"n": 1}]}
    decoded = decode_payload(line(app))
    assert decoded.events == [app]
    assert decoded.control_messages == 0


def test_cloudwatch_text_lines_are_raw_lines_for_the_normaliser() -> None:
    decoded = decode_payload(cloudwatch(["2026-11-23T10:00:01.000Z ERROR boom"]))
    assert decoded.events[0]["log"] == "2026-11-23T10:00:01.000Z ERROR boom"
    assert decoded.events[0]["timestamp"] == 1795428000000
