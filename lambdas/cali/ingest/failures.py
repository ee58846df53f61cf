"""The log consumer's on-failure queue: Kinesis batches Lambda gave up on, and their replay.

When the Kinesis event source mapping exhausts its retries (or records outgrow the maximum
record age) it sends the on-failure destination a *description* of the batch, not the
records: shard, first and last sequence number, size and the condition. The records stay
in the stream for its retention period. ``replay`` reads them back from the shard and puts
them into the stream again (same data, same partition keys), so an operator can recover a
batch once its cause is fixed; ``cali failures`` is the command (docs/reliability.md).

Replaying is safe against duplicates downstream: a record counted twice is only counted,
and an alert already sent is never sent again (idempotency keys per fingerprint, window
and kind).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PUT_RECORDS_MAX = 500


@dataclass(frozen=True)
class FailedBatch:
    """One on-failure message: which records of which shard, and why they were given up."""

    message_id: str
    receipt_handle: str
    condition: str
    shard_id: str
    start_sequence: str
    end_sequence: str
    size: int
    stream_arn: str
    function_error: str = ""

    @property
    def stream_name(self) -> str:
        return self.stream_arn.rsplit("/", 1)[-1]

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> FailedBatch:
        body = json.loads(message["Body"])
        info = body["KinesisBatchInfo"]
        return cls(
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            condition=str(body.get("requestContext", {}).get("condition", "")),
            shard_id=info["shardId"],
            start_sequence=info["startSequenceNumber"],
            end_sequence=info["endSequenceNumber"],
            size=int(info["batchSize"]),
            stream_arn=info["streamArn"],
            function_error=str(body.get("responseContext", {}).get("functionError", "")),
        )


def receive_batches(
    sqs: Any, queue_url: str, *, limit: int = 100, hold_seconds: int = 300
) -> list[FailedBatch]:
    """Up to ``limit`` on-failure messages, hidden from other readers for ``hold_seconds``
    (0: only a look, they stay visible; a message seen again ends the listing)."""
    batches: dict[str, FailedBatch] = {}
    while len(batches) < limit:
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, limit - len(batches)),
            VisibilityTimeout=hold_seconds,
        ).get("Messages", [])
        new = [m for m in messages if m["MessageId"] not in batches]
        if not new:
            break
        batches.update((m["MessageId"], FailedBatch.from_message(m)) for m in new)
    return list(batches.values())


def read_records(kinesis: Any, batch: FailedBatch) -> list[dict[str, Any]]:
    """The batch's records still in the stream, in order (fewer than ``size``: some expired)."""
    iterator = kinesis.get_shard_iterator(
        StreamName=batch.stream_name,
        ShardId=batch.shard_id,
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=batch.start_sequence,
    )["ShardIterator"]
    end = int(batch.end_sequence)
    records: list[dict[str, Any]] = []
    while iterator:
        response = kinesis.get_records(ShardIterator=iterator, Limit=min(10_000, max(batch.size, 1)))
        for record in response["Records"]:
            if int(record["SequenceNumber"]) > end:
                return records
            records.append(record)
        if not response["Records"] and not response.get("MillisBehindLatest"):
            break  # at the tip of the shard
        iterator = response.get("NextShardIterator")
    return records


def put_back(kinesis: Any, stream_name: str, records: list[dict[str, Any]]) -> None:
    """PutRecords with the original data and partition keys; raises if any is refused."""
    for start in range(0, len(records), PUT_RECORDS_MAX):
        chunk = records[start : start + PUT_RECORDS_MAX]
        entries = [{"Data": r["Data"], "PartitionKey": r["PartitionKey"]} for r in chunk]
        response = kinesis.put_records(StreamName=stream_name, Records=entries)
        if response.get("FailedRecordCount"):
            raise RuntimeError(
                f"Kinesis refused {response['FailedRecordCount']} of {len(entries)} records; "
                "nothing was deleted from the on-failure queue, run the replay again"
            )
