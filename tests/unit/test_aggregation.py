from __future__ import annotations

from datetime import timedelta

from cali.contracts.levels import Level
from cali.contracts.records import build_record
from cali.fingerprint import fingerprint
from cali.incidents.aggregation import MAX_LISTED, aggregate, incident_id, incident_message
from tests.support.consumer_support import event


def test_aggregate_groups_by_fingerprint_in_batch_order() -> None:
    records = [
        build_record(event(message=f"Timeout calling inventory after {n} ms")) for n in (100, 250, 3000)
    ]
    other = build_record(event(message="Disk full"))
    items = [(r, fingerprint(r.message), f"{i:064d}") for i, r in enumerate([*records, other])]
    groups = aggregate(items)
    assert [g.count for g in groups.values()] == [3, 1]


def test_incident_message_fields() -> None:
    base = build_record(event(message="Timeout calling inventory after 100 ms"))
    later = base.model_copy(
        update={
            "timestamp": base.timestamp + timedelta(seconds=30),
            "level": Level.FATAL,
            "host": "h2",
            "service": "orders",
        }
    )
    fp = fingerprint(base.message)
    group = aggregate([(base, fp, "1"), (later, fp, "2")])[fp.id]
    message = incident_message(
        group,
        kind="new",
        window_start_ms=1795428000000,
        count=2,
        window_count=2,
        environment="prod",
        max_samples=1,
    )
    assert message.incident_id == incident_id(fp.id, 1795428000000) == f"{fp.id}-20261123T100000Z"
    assert (message.level, message.services, message.hosts) == (
        Level.FATAL,
        ["checkout", "orders"],
        ["h2", "ip-10-0-0-7"],
    )
    assert message.first_seen == base.timestamp and message.last_seen == later.timestamp
    assert len(message.samples) == 1 and message.samples[0].level is Level.FATAL


def test_samples_are_bounded_for_sqs_and_the_outbox() -> None:
    huge = build_record(event(message="Crash " + "x" * 10_000, stack_trace="at a.B(B.java:1)\n" * 1500))
    fp = fingerprint(huge.message, huge.stack_trace)
    message = incident_message(
        aggregate([(huge, fp, "1")] * 20)[fp.id],
        kind="new",
        window_start_ms=1795428000000,
        count=20,
        window_count=20,
        environment="prod",
        max_samples=20,
    )
    assert len(message.model_dump_json()) < 200_000
    assert message.samples[0].stack_trace is not None and "[truncated" in message.samples[0].stack_trace


def test_services_and_hosts_are_bounded_for_sqs_and_the_outbox() -> None:
    # A fleet-wide error: one template from thousands of hosts in one batch. Unbounded, the
    # message outgrows SQS's 256 KiB, and a rejection that no retry can fix blocks the shard.
    base = build_record(event(message="Connection refused to kube-dns"))
    fp = fingerprint(base.message)
    records = [
        base.model_copy(
            update={"host": f"ip-10-0-{n // 250}-{n % 250}.eu-west-1.compute.internal", "service": f"svc-{n}"}
        )
        for n in range(8_000)
    ]
    group = aggregate([(r, fp, f"{i:064d}") for i, r in enumerate(records)])[fp.id]
    message = incident_message(
        group,
        kind="new",
        window_start_ms=1795428000000,
        count=8_000,
        window_count=8_000,
        environment="prod",
        max_samples=5,
    )
    assert len(message.model_dump_json().encode()) < 200_000
    assert len(message.hosts) == MAX_LISTED and message.hosts == sorted(message.hosts)
    assert len(message.services) == MAX_LISTED


def test_sample_bounds_are_utf8_bytes_and_the_message_fits_sqs_and_dynamodb() -> None:
    """Issue 11 row 10: 2,000 characters of emoji are 8,000 bytes; SQS and DynamoDB count bytes."""
    from cali.incidents.aggregation import MESSAGE_MAX_BYTES, SAMPLE_MESSAGE_BYTES, truncate_utf8

    cut = truncate_utf8("😀" * 2_000, SAMPLE_MESSAGE_BYTES)
    assert len(cut.encode("utf-8")) <= SAMPLE_MESSAGE_BYTES and cut.startswith("😀") and "truncated" in cut
    assert truncate_utf8("ok", 10) == "ok"
    assert MESSAGE_MAX_BYTES < 256 * 1024 and 3 * MESSAGE_MAX_BYTES < 400_000
