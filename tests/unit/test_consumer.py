"""One batch through the consumer and the real Lambda handler, with in-memory boundaries."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cali.contracts.levels import Level
from cali.incidents.consumer import KinesisInput
from cali.incidents.throttle import StoreThrottled, StoreUnavailable
from tests.support.consumer_support import (
    ARRIVAL,
    Clock,
    Fake,
    cloudwatch,
    event,
    kinesis_event,
    kinesis_input,
    line,
    seq,
)

STACK = "java.lang.IllegalStateException: boom\n\tat com.shop.Pay.charge(Pay.java:10)"


def test_conservation_and_every_bad_input_class_goes_to_the_dlq() -> None:
    fake = Fake(Clock())
    payloads = [
        line(event()),  # kept
        line(event(level="INFO")),  # filtered
        # newline-joined: 1 kept, 1 filtered, 1 bad
        b"\n".join([line(event(level="WARN")), line(event(level="DEBUG")), b"{broken"]),
        gzip.compress(line(event(level="FATAL"))),  # kept
        cloudwatch(["[ERROR] x", "plain"]),  # 1 kept 1 filtered
        cloudwatch([], control=True),  # control
        b"{not json at all",  # not_json (plain text would be a raw line, see below)
        b"\xff\xfe",  # invalid_utf8
        b"\x1f\x8bnot gzip",  # invalid_gzip
        b"[1,2]",  # not_an_object
        line({"time": "2026-11-23T10:00:00Z"}),  # missing_field:message
        line(event(time="soon")),  # invalid_field:timestamp
        b"{" + b" " * 70_000 + b"}",  # oversized (limit 64,000 in the fake)
    ]
    for i, payload in enumerate(payloads):
        fake.consumer.add(kinesis_input(payload, i + 1))
    fake.consumer.add(KinesisInput("!!!not base64!!!", seq(99), "pk", "shardId-000000000000", ARRIVAL))
    result = fake.consumer.finish()
    counts = result.counts
    assert counts.conserved
    assert (counts.records_in, counts.kept, counts.filtered, counts.invalid, counts.control_messages) == (
        17,
        4,
        3,
        9,
        1,
    )
    reasons = sorted(e.reason for e in fake.dlq.entries.values())
    assert reasons == sorted(
        [
            "not_json",
            "not_json",
            "invalid_utf8",
            "invalid_gzip",
            "not_an_object",
            "missing_field:message",
            "invalid_field:timestamp",
            "oversized",
            "invalid_base64",
        ]
    )
    by_reason = {e.reason: e for e in fake.dlq.entries.values()}
    assert by_reason["invalid_utf8"].data == b"\xff\xfe"
    assert by_reason["invalid_field:timestamp"].data == line(event(time="soon"))
    line_error = next(e for e in fake.dlq.entries.values() if e.event_index == 2)
    assert line_error.data == b"{broken"  # only the bad line, not its good neighbours
    assert by_reason["invalid_base64"].data_base64 == "!!!not base64!!!"
    assert result.failed_sequence_numbers == set()
    assert counts.per_level == {"ERROR": 2, "INFO": 2, "WARN": 1, "DEBUG": 1, "FATAL": 1}
    # The ERROR, WARN and FATAL lines share a template: one incident at the highest level.
    assert sorted(m.level for m in result.alerts) == [Level.ERROR, Level.FATAL]


def test_an_unexpected_error_on_one_event_dlqs_it_instead_of_making_a_poison_pill() -> None:
    # A deterministic bug would fail the same record on every redelivery; in the DLQ its bytes
    # wait for the fix and `cali dlq replay`, and the rest of the batch goes on.
    fake = Fake(Clock())
    real = fake.consumer.fingerprint

    def buggy(message: str, stack_trace: str | None) -> Any:
        if "trigger" in message:
            raise RuntimeError("fingerprint bug")
        return real(message, stack_trace)

    fake.consumer.fingerprint = buggy
    result = fake.run([line(event()), line(event(message="trigger the bug"))], first=1)
    assert result.failed_sequence_numbers == set() and result.counts.conserved
    assert (result.counts.kept, result.counts.invalid) == (1, 1)
    (entry,) = fake.dlq.entries.values()
    assert entry.reason == "internal_error:RuntimeError" and entry.sequence_number == seq(2)
    assert entry.data == line(event(message="trigger the bug"))
    assert [m.kind for m in fake.queue.sent] == ["new"]


def test_same_records_processed_twice_produce_one_alert() -> None:
    clock = Clock()
    fake = Fake(clock)
    batch = [line(event()), line(event(message="Payment declined for order 9"))]
    fake.run(batch, first=1)
    clock.advance(7200)  # redelivered long after the window: still recognised by sequence number
    again = fake.run(batch, first=1)
    assert [m.kind for m in fake.queue.sent] == ["new"]
    assert again.counts.duplicates == 2 and fake.queue.sent[0].count == 2


def test_still_firing_incident_gets_one_update_per_window_rollover() -> None:
    from cali.incidents.aggregation import incident_id

    # Windows follow the events' own time: each batch's events are stamped with the clock.
    clock = Clock()
    fake = Fake(clock)
    opened = clock()
    fake.run([line(event(time=clock().isoformat()))], first=1)
    fake.run([line(event(time=clock().isoformat()))] * 3, first=2)  # repeats: counted, not sent
    assert [m.kind for m in fake.queue.sent] == ["new"]
    fp_id = fake.queue.sent[0].fingerprint

    clock.advance(900)
    rollover = clock()
    fake.run([line(event(time=rollover.isoformat()))] * 2, first=10)
    # One message for one still-firing incident: no second "new", no second LLM analysis.
    assert [m.kind for m in fake.queue.sent] == ["new", "update"]
    update = fake.queue.sent[1]
    assert (update.count, update.window_count) == (3, 4)  # unreported repeats, old window total
    assert update.incident_id == incident_id(fp_id, int(rollover.timestamp()) * 1000)
    assert update.incident_id != fake.queue.sent[0].incident_id
    assert update.first_seen == opened  # it reports the window that opened then

    fake.run([line(event(time=clock().isoformat()))] * 4, first=20)
    clock.advance(900)
    fake.run([line(event(time=clock().isoformat()))], first=30)
    # The next rollover: a second single update, distinct for the idempotent send.
    assert [m.kind for m in fake.queue.sent] == ["new", "update", "update"]
    second = fake.queue.sent[2]
    assert (second.count, second.window_count) == (6, 6)  # the 2 that opened the window + 4
    assert second.incident_id == incident_id(fp_id, int(clock().timestamp()) * 1000)
    # Redelivering the rollover batch sends nothing again.
    fake.run([line(event(time=clock().isoformat()))], first=30)
    assert len(fake.queue.sent) == 3


def test_incident_that_stopped_and_recurs_alerts_new_again() -> None:
    clock = Clock()
    fake = Fake(clock)
    fake.run([line(event(time=clock().isoformat()))], first=1)
    clock.advance(1800)  # its window held only the alerted occurrence, then a window of silence
    fake.run([line(event(time=clock().isoformat()))], first=2)
    assert [(m.kind, m.count) for m in fake.queue.sent] == [("new", 1), ("new", 1)]
    assert fake.queue.sent[0].incident_id != fake.queue.sent[1].incident_id


def test_parallelization_factor_setting_switches_off_the_sequence_dedupe() -> None:
    from log_consumer.handler import compose

    from cali.contracts.settings import ConsumerSettings
    from cali_testing.incidents import InMemoryAlertQueue, InMemoryPersistenceLayer, InMemoryThrottleStore
    from cali_testing.ingest import InMemoryDlq

    def build(factor: int) -> Any:
        settings = ConsumerSettings(cali_env="test", parallelization_factor=factor)
        return compose(
            settings,
            throttle_store=InMemoryThrottleStore(),
            queue=InMemoryAlertQueue(),
            dlq=InMemoryDlq(),
            persistence=InMemoryPersistenceLayer(),
            clock=Clock(),
        )

    def count_after(consumer: Any, batches: list[list[int]]) -> int:
        for numbers in batches:
            for n in numbers:
                consumer.add(kinesis_input(line(event()), n))
            consumer.finish()
        state = next(iter(consumer.throttle.store.items.values()))
        return int(state.count)

    interleaved = [[2, 4, 6], [1, 3, 5]]  # two concurrent batches of one shard
    assert count_after(build(4), interleaved) == 6
    assert count_after(build(1), [[1, 2, 3], [1, 2, 3]]) == 3  # a redelivery counts nothing twice


def test_failed_send_is_retried_then_sent_exactly_once() -> None:
    fake = Fake(Clock())
    fake.queue.fail_next = 1
    first = fake.run([line(event())], first=1)
    assert first.failed_sequence_numbers == {seq(1)} and fake.queue.sent == []
    retry = fake.run([line(event())], first=1)  # Lambda redelivers; the outbox resends
    assert retry.failed_sequence_numbers == set()
    assert [m.kind for m in fake.queue.sent] == ["new"]
    fake.run([line(event())], first=1)
    fake.run([line(event())], first=2)
    assert len(fake.queue.sent) == 1


def test_idempotency_record_stops_a_resend_of_an_already_sent_alert() -> None:
    fake = Fake(Clock())
    fake.run([line(event())], first=1)
    # Simulate a crash after SQS accepted the message but before the outbox was cleared.
    fp_id = fake.queue.sent[0].fingerprint
    state = fake.store.load(fp_id)
    assert state is not None and state.outbox == {}
    key = f"new#{int(ARRIVAL.timestamp()) * 1000}"
    fake.store.items[fp_id] = state.__class__(
        **{
            **{f: getattr(state, f) for f in state.__dataclass_fields__},
            "outbox": {key: fake.queue.sent[0].model_dump_json()},
        }
    )
    fake.run([line(event())], first=2)
    assert len(fake.queue.sent) == 1
    final = fake.store.load(fp_id)
    assert final is not None and final.outbox == {}


def test_alert_claimed_by_a_sender_that_crashed_is_not_taken_as_sent() -> None:
    fake = Fake(Clock())
    fake.queue.fail_next = 1
    fake.run([line(event())], first=1)  # the alert waits in the outbox
    state = next(iter(fake.store.items.values()))
    (body,) = state.outbox.values()
    from cali.contracts.incident import IncidentMessage
    from cali.incidents.alert_queue import alert_key

    key = alert_key(IncidentMessage.model_validate_json(body))
    # A sender claimed it and died before SQS saw it (Lambda timeout): the claim is in progress.
    fake.persistence.save_inprogress({"key": key}, 60_000)
    retry = fake.run([line(event())], first=1)
    assert fake.queue.sent == [] and retry.failed_sequence_numbers == {seq(1)}
    assert next(iter(fake.store.items.values())).outbox != {}  # not confirmed as sent
    fake.persistence.records[next(iter(fake.persistence.records))].in_progress_expiry_timestamp = 1
    retry = fake.run([line(event())], first=1)  # the claim expired: this attempt sends it
    assert [m.kind for m in fake.queue.sent] == ["new"] and retry.failed_sequence_numbers == set()
    assert next(iter(fake.store.items.values())).outbox == {}


def test_store_unavailable_fails_open_under_rate_limit() -> None:
    clock = Clock()
    fake = Fake(clock, fail_open_per_minute=2)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("connection refused")

    fake.store.increment_if_quiet = down  # type: ignore[method-assign]
    messages = [f"error kind {chr(97 + i)} happened" for i in range(4)]
    result = fake.run([line(event(message=m)) for m in messages], first=1)
    assert result.counts.alerts_fail_open == 2 and result.counts.alerts_suppressed == 2
    assert [m.kind for m in fake.queue.sent] == ["new", "new"]
    assert result.failed_sequence_numbers == set()


def test_store_throttling_is_retryable() -> None:
    fake = Fake(Clock())

    def throttled(*args: Any, **kwargs: Any) -> Any:
        raise StoreThrottled("ProvisionedThroughputExceededException")

    fake.store.increment_if_quiet = throttled  # type: ignore[method-assign]
    result = fake.run([line(event(level="INFO")), line(event())], first=1)
    assert result.failed_sequence_numbers == {seq(2)} and fake.queue.sent == []


def test_dlq_write_failure_retries_the_bad_records() -> None:
    fake = Fake(Clock())

    def broken(entries: Any) -> None:
        raise OSError("S3 unavailable")

    fake.dlq.write = broken  # type: ignore[method-assign]
    result = fake.run([line(event(level="INFO")), b"{junk"], first=1)
    assert result.failed_sequence_numbers == {seq(2)}


def test_one_incident_per_fingerprint_with_samples_services_and_hosts() -> None:
    fake = Fake(Clock())
    payloads = [
        line(event(message=f"Payment declined for order {i}", service=s, host=h))
        for i, (s, h) in enumerate([("checkout", "h1"), ("payments", "h2"), ("checkout", "h1")])
    ]
    payloads.append(line(event(message="Payment declined for order 77", level="FATAL", stack_trace=STACK)))
    fake.run(payloads, first=1)
    assert len(fake.queue.sent) == 2  # the stack trace makes a different fingerprint
    plain = next(m for m in fake.queue.sent if m.exception_type is None)
    assert (plain.count, plain.services, plain.hosts, plain.level) == (
        3,
        ["checkout", "payments"],
        ["h1", "h2"],
        Level.ERROR,
    )
    assert len(plain.samples) == 3 and plain.environment == "test"
    assert plain.first_seen <= plain.last_seen


def test_samples_prefer_severe_and_stack_traces() -> None:
    from cali.contracts.records import build_record
    from cali.fingerprint import fingerprint
    from cali.incidents.aggregation import aggregate

    records = [
        build_record(event(message=f"m{i}", level=lvl, **extra))
        for i, (lvl, extra) in enumerate(
            [("WARN", {}), ("ERROR", {}), ("ERROR", {"stack_trace": STACK}), ("FATAL", {})]
        )
    ]
    fp = fingerprint("m")
    group = aggregate([(r, fp, f"{i:064d}") for i, r in enumerate(records)])[fp.id]
    assert [s.message for s in group.samples(3)] == ["m3", "m2", "m1"]


# -- the Lambda handler ---------------------------------------------------------------------


@pytest.fixture
def handler_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Fake]]:
    from log_consumer import handler as consumer_handler

    fake = Fake(Clock())
    # The handler's one composition seam: this execution environment's dependencies.
    monkeypatch.setattr(consumer_handler, "dependencies", lambda: fake.consumer)
    yield consumer_handler, fake


class Context:
    function_name = "log_consumer"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:log_consumer"
    aws_request_id = "req"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


def test_handler_bad_data_never_fails_the_batch(handler_fake: tuple[Any, Fake], capsys: Any) -> None:
    module, fake = handler_fake
    response = module.handler(kinesis_event([b"{junk", line(event()), b"\xff"]), Context())
    assert response == {"batchItemFailures": []}
    assert len(fake.dlq.entries) == 2 and len(fake.queue.sent) == 1
    out = capsys.readouterr().out
    assert '"RecordsInvalid":[2.0]' in out and '"RecordsKept":[1.0]' in out and '"AlertsSent":[1.0]' in out
    assert "Payment declined" not in out  # no log bodies in the function's own logs


def test_handler_reports_retryable_failures_as_partial_batch(handler_fake: tuple[Any, Fake]) -> None:
    module, fake = handler_fake
    fake.queue.fail_next = 1
    response = module.handler(kinesis_event([line(event(level="INFO")), line(event())]), Context())
    assert response == {"batchItemFailures": [{"itemIdentifier": seq(2)}]}
    assert base64.b64decode(kinesis_event([b"x"])["Records"][0]["kinesis"]["data"]) == b"x"


def test_idempotency_store_failure_still_sends_the_alert() -> None:
    fake = Fake(Clock())

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("dynamodb unreachable")

    fake.persistence._put_record = broken  # type: ignore[method-assign]
    result = fake.run([line(event())], first=1)
    assert [m.kind for m in fake.queue.sent] == ["new"] and result.failed_sequence_numbers == set()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)
alias_keys = st.sampled_from(
    [
        "time",
        "ts",
        "@timestamp",
        "level",
        "lvl",
        "severity",
        "message",
        "msg",
        "log",
        "service",
        "app",
        "kubernetes",
        "stack_trace",
        "trace_id",
        "host",
        "pod_name",
    ]
)
events = st.dictionaries(alias_keys | st.text(max_size=8), json_values, max_size=8)
payloads = st.one_of(
    st.binary(max_size=200),
    events.map(lambda e: json.dumps(e).encode()),
    st.lists(events, min_size=1, max_size=4).map(lambda es: b"\n".join(json.dumps(e).encode() for e in es)),
    events.map(lambda e: gzip.compress(json.dumps(e).encode())),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(payloads, min_size=1, max_size=6))
def test_any_input_is_counted_and_never_raises(batch: list[bytes]) -> None:
    fake = Fake(Clock())
    result = fake.run(batch, first=1)
    counts = result.counts
    assert counts.conserved and counts.records_in >= len(batch)
    # One DLQ entry per record holds all its bad events.
    assert counts.invalid == sum(e.events for e in fake.dlq.entries.values())
    assert result.failed_sequence_numbers == set()


def test_sqs_batches_are_bounded_in_bytes_not_characters() -> None:
    # SQS limits a SendMessageBatch to 256 KiB of UTF-8; CJK text is 3 bytes a character.
    from cali.contracts.records import build_record
    from cali.fingerprint import fingerprint
    from cali.incidents.aggregation import aggregate, incident_message
    from cali.incidents.alert_queue import SQS_BATCH_BYTES, _chunks

    records = [
        build_record(event(message=f"注文 {n} の決済に失敗しました " + "失敗" * 6_000)) for n in range(5)
    ]
    fp = fingerprint(records[0].message)
    group = aggregate([(r, fp, str(i)) for i, r in enumerate(records)])[fp.id]
    messages = [
        incident_message(
            group,
            kind="new",
            window_start_ms=n * 1000,
            count=1,
            window_count=1,
            environment="t",
            max_samples=5,
        )
        for n in range(10)
    ]
    # Samples are now bounded in bytes; a long template keeps each message large in bytes.
    messages = [m.model_copy(update={"template": "失敗" * 5_000}) for m in messages]
    size = len(messages[0].model_dump_json())
    assert size * 10 < SQS_BATCH_BYTES < len(messages[0].model_dump_json().encode()) * 10
    chunks = _chunks(messages)
    assert [m.incident_id for c in chunks for m in c] == [m.incident_id for m in messages]
    assert all(sum(len(m.model_dump_json().encode()) for m in c) <= SQS_BATCH_BYTES for c in chunks)


def test_a_dead_senders_claim_is_waited_out_and_a_live_one_is_not() -> None:
    """Issue 11 row 2: a claim ends with the invocation that took it. A retry waits for the
    claim of an invocation that died (its deadline is before ours) instead of failing until
    Lambda gives up; a claim that outlives this invocation fails the alert for a later retry."""
    import time

    from cali.incidents.alert_queue import IdempotentAlertSender, alert_key
    from cali_testing.incidents import InMemoryAlertQueue, InMemoryPersistenceLayer
    from tests.support.analysis_samples import incident

    alert = incident()
    persistence = InMemoryPersistenceLayer()
    queue = InMemoryAlertQueue()
    dead = IdempotentAlertSender(queue, persistence, 3600, remaining_ms=lambda: 300)
    persistence.save_inprogress({"key": alert_key(alert)}, dead.remaining_ms())  # then it died
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    retry = IdempotentAlertSender(queue, persistence, 3600, remaining_ms=lambda: 5_000, sleep=sleep)
    report = retry.send([alert])
    assert report.sent == [alert] and queue.sent == [alert] and 0 < sum(slept) < 1.0

    other = incident(incident_id="0123456789abcdef-20261123T0915")
    persistence.save_inprogress({"key": alert_key(other)}, 60_000)  # a live sender, 60 s left
    busy = IdempotentAlertSender(queue, persistence, 3600, remaining_ms=lambda: 5_000, sleep=sleep)
    assert busy.send([other]).failed == [other] and other not in queue.sent
