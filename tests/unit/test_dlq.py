from __future__ import annotations

from datetime import timedelta

import pytest

from cali.ingest.dlq import entry_key, replay
from cali_testing.ingest import InMemoryDlq
from tests.support.dlq_support import FakeKinesis, T, entry


def test_entry_id_is_deterministic_and_locates_its_key() -> None:
    a, b = entry(1), entry(1)
    assert a.entry_id == b.entry_id != entry(2).entry_id
    assert a.entry_id != entry(1, event_index=1).entry_id
    assert entry_key("dlq/", a.entry_id) == f"dlq/2026/11/23/10/{a.entry_id}.json"
    assert a.model_dump(mode="json").keys() >= {
        "reason",
        "error",
        "source",
        "shard_id",
        "sequence_number",
        "partition_key",
        "arrival_time",
        "dlq_time",
        "data_base64",
    }


def test_list_filters_by_time_and_reason_prefix() -> None:
    dlq = InMemoryDlq()
    dlq.write([entry(1), entry(2, "missing_field:message"), entry(3, "missing_field:time"), entry(90)])
    window = (T, T + timedelta(minutes=10))
    assert [e.sequence_number for e in dlq.list(*window)] == ["1", "2", "3"]
    assert [e.sequence_number for e in dlq.list(*window, reason="missing_field")] == ["2", "3"]
    assert [e.sequence_number for e in dlq.list(*window, reason="missing_field:time")] == ["3"]


def test_replay_is_a_dry_run_unless_executed() -> None:
    dlq = InMemoryDlq()
    dlq.write([entry(1), entry(2)])
    kinesis = FakeKinesis()
    result = replay(dlq.list(T, T + timedelta(hours=1)), dlq, kinesis.as_client(), "stream", execute=False)
    assert len(result.replayed) == 2 and kinesis.calls == []
    assert all(e.replayed_at is None for e in dlq.entries.values())


def test_replay_sends_original_bytes_retries_rejections_and_marks() -> None:
    dlq = InMemoryDlq()
    dlq.write([entry(1, data=b"one"), entry(2, data=b"two")])
    kinesis = FakeKinesis(throttle_first_calls=1)
    result = replay(
        list(dlq.list(T, T + timedelta(hours=1))),
        dlq,
        kinesis.as_client(),
        "stream",
        execute=True,
        now=T,
    )
    assert result.failed == {} and len(result.replayed) == 2
    assert [r["Data"] for r in kinesis.calls[0]] == [b"one", b"two"] and [
        r["Data"] for r in kinesis.calls[1]
    ] == [b"one"]
    assert all(e.replayed_at == T for e in dlq.entries.values())
    again = replay(
        list(dlq.list(T, T + timedelta(hours=1))),
        dlq,
        kinesis.as_client(),
        "stream",
        execute=True,
    )
    assert again.replayed == [] and len(again.skipped) == 2


def test_replay_reports_records_kinesis_keeps_rejecting() -> None:
    dlq = InMemoryDlq()
    dlq.write([entry(1)])
    result = replay(
        list(dlq.entries.values()),
        dlq,
        FakeKinesis(throttle_first_calls=5).as_client(),
        "stream",
        execute=True,
        attempts=2,
    )
    assert list(result.failed.values()) == ["ProvisionedThroughputExceededException: slow down"]
    assert next(iter(dlq.entries.values())).replayed_at is None


def test_replay_needs_a_client_to_execute() -> None:
    with pytest.raises(ValueError):
        replay([entry(1)], InMemoryDlq(), None, "s", execute=True)


def test_replay_keeps_requests_within_kinesis_limits() -> None:
    dlq = InMemoryDlq()
    big = b"x" * (900 * 1024)  # six of these exceed one PutRecords request's 5 MiB
    dlq.write([entry(n, data=big) for n in range(1, 7)])
    dlq.write([entry(7, reason="oversized", data=b"y" * (1024 * 1024 + 1))])  # never fits a record
    kinesis = FakeKinesis()
    result = replay(list(dlq.list(T, T + timedelta(hours=1))), dlq, kinesis.as_client(), "s", execute=True)
    assert len(result.replayed) == 6 and [len(call) for call in kinesis.calls] == [5, 1]
    assert list(result.failed) == [entry(7).entry_id] and "1 MiB" in result.failed[entry(7).entry_id]
    assert dlq.get(entry(7).entry_id).replayed_at is None
