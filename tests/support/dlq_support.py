"""DLQ entries and a Kinesis double shared by the DLQ library and CLI tests."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from cali.ingest.dlq import DlqEntry

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

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


class FakeKinesis:
    """PutRecords with Kinesis' per-record failure shape; fails the listed calls' first record."""

    def __init__(self, throttle_first_calls: int = 0) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.throttle = throttle_first_calls

    def put_records(self, Records: list[dict[str, Any]], **target: Any) -> dict[str, Any]:
        # Kinesis validates the whole request first: 500 records, 1 MiB each, 5 MiB in all
        # (data plus partition key), else the call fails and nothing is written.
        sizes = [len(r["Data"]) + len(r["PartitionKey"].encode()) for r in Records]
        if len(Records) > 500 or any(size > 1024 * 1024 for size in sizes) or sum(sizes) > 5 * 1024 * 1024:
            from botocore.exceptions import ClientError

            error = {"Error": {"Code": "ValidationException", "Message": "request exceeds limits"}}
            raise ClientError(error, "PutRecords")  # type: ignore[arg-type]
        self.calls.append(Records)
        results: list[dict[str, Any]] = [{"SequenceNumber": "1", "ShardId": "s"} for _ in Records]
        if self.throttle > 0:
            self.throttle -= 1
            results[0] = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}

    def as_client(self) -> KinesisClient:
        # replay() only calls put_records; the boto3 client type has dozens of methods this
        # double deliberately does not fake, so it is typed as the client it stands in for.
        return cast("KinesisClient", self)
