from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cali.dlq import DlqEntry, InMemoryDlq, entry_key, replay

T = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)


def entry(n: int, reason: str = "not_json", data: bytes = b"junk", **extra: Any) -> DlqEntry:
    return DlqEntry(
        reason=reason,
        error="x",
        shard_id="shardId-000000000000",
        sequence_number=str(n),
        partition_key=f"pk{n}",
        arrival_time=T + timedelta(minutes=n),
        dlq_time=T,
        data_base64=base64.b64encode(data).decode(),
        **extra,
    )


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


class FakeKinesis:
    """PutRecords with Kinesis' per-record failure shape; fails the listed calls' first record."""

    def __init__(self, throttle_first_calls: int = 0) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.throttle = throttle_first_calls

    def put_records(self, Records: list[dict[str, Any]], **target: Any) -> dict[str, Any]:
        self.calls.append(Records)
        results: list[dict[str, Any]] = [{"SequenceNumber": "1", "ShardId": "s"} for _ in Records]
        if self.throttle > 0:
            self.throttle -= 1
            results[0] = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}


def test_replay_is_a_dry_run_unless_executed() -> None:
    dlq = InMemoryDlq()
    dlq.write([entry(1), entry(2)])
    kinesis = FakeKinesis()
    result = replay(dlq.list(T, T + timedelta(hours=1)), dlq, kinesis, "stream", execute=False)  # type: ignore[arg-type]
    assert len(result.replayed) == 2 and kinesis.calls == []
    assert all(e.replayed_at is None for e in dlq.entries.values())


def test_replay_sends_original_bytes_retries_rejections_and_marks() -> None:
    dlq = InMemoryDlq()
    dlq.write([entry(1, data=b"one"), entry(2, data=b"two")])
    kinesis = FakeKinesis(throttle_first_calls=1)
    result = replay(
        list(dlq.list(T, T + timedelta(hours=1))),
        dlq,
        kinesis,
        "stream",  # type: ignore[arg-type]
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
        kinesis,
        "stream",  # type: ignore[arg-type]
        execute=True,
    )
    assert again.replayed == [] and len(again.skipped) == 2


def test_replay_reports_records_kinesis_keeps_rejecting() -> None:
    dlq = InMemoryDlq()
    dlq.write([entry(1)])
    result = replay(
        list(dlq.entries.values()),
        dlq,
        FakeKinesis(throttle_first_calls=5),
        "stream",  # type: ignore[arg-type]
        execute=True,
        attempts=2,
    )
    assert list(result.failed.values()) == ["ProvisionedThroughputExceededException: slow down"]
    assert next(iter(dlq.entries.values())).replayed_at is None


def test_replay_needs_a_client_to_execute() -> None:
    with pytest.raises(ValueError):
        replay([entry(1)], InMemoryDlq(), None, "s", execute=True)
