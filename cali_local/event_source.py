"""Stand-ins for the Lambda event source mappings, which cannot run without AWS or Docker.

``KinesisEventSource`` and ``SqsEventSource`` poll the local endpoint, build exactly the
event shapes Lambda sends, invoke the real handler in-process and apply what Lambda does
with the answer: ``batchItemFailures`` checkpoint and retry, bisect on error, bounded
retries and the on-failure destination for Kinesis; delete on success and redelivery
(then the queue's redrive DLQ) for SQS. Only the transport is emulated: the handlers are
the ones deployed.

``StreamMapping.deployed(env)`` reads the consumer's mapping settings from ``cdk.json``
(validated by ``stacks.config``, the same values ``stacks/functions.py`` deploys), so the
local pipeline and the fault suite retry, bisect and give up exactly as the deployed
mapping would. ``RuntimeExit`` models the process dying (out of memory, killed by the
timeout): domain code cannot catch it, like a SIGKILL, and the mapping sees a function error.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Handler = Callable[[dict[str, Any], Any], Any]

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


class RuntimeExit(BaseException):
    """The function's process died mid-invocation (OOM, timeout kill): not an ``Exception``,
    so no ``except Exception`` in the handler can swallow it, as none can catch a SIGKILL."""


@dataclass(frozen=True)
class StreamMapping:
    """The error-handling settings of a Kinesis event source mapping (-1: unlimited)."""

    batch_size: int = 100
    max_retry_attempts: int = -1
    max_record_age_seconds: int = -1
    bisect_on_error: bool = False
    timeout_seconds: float = 60.0
    memory_mb: int = 512

    @classmethod
    def deployed(cls, environment: str = "dev", cdk_json: Path = CDK_JSON) -> StreamMapping:
        """The log consumer's mapping as ``stacks/functions.py`` deploys it for ``environment``."""
        from stacks.config import load_environments

        context = json.loads(cdk_json.read_text(encoding="utf-8"))["context"]
        (resolved,) = load_environments(context, environment, defaults={"CDK_DEFAULT_REGION": "us-east-1"})
        consumer = resolved.config.consumer
        return cls(
            batch_size=consumer.batch_size,
            max_retry_attempts=consumer.max_retries,
            max_record_age_seconds=consumer.max_record_age_seconds,
            bisect_on_error=consumer.bisect_batch_on_error,
            timeout_seconds=consumer.timeout_seconds,
            memory_mb=consumer.memory_mb,
        )


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that Powertools and our handlers read."""

    function_name: str
    memory_limit_in_mb: int = 512
    timeout_seconds: float = 60.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    region: str = "us-east-1"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:000000000000:function:{self.function_name}"

    @property
    def function_version(self) -> str:
        return "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


@dataclass
class Invocation:
    """One handler invocation, for the report: how many records and how long it took."""

    records: int
    failed: int
    seconds: float
    error: str | None = None


@dataclass
class SourceStats:
    invocations: list[Invocation] = field(default_factory=list)
    records_delivered: int = 0
    records_succeeded: int = 0
    records_to_failure_destination: int = 0

    def durations_ms(self) -> list[float]:
        return [i.seconds * 1000 for i in self.invocations]


def _invoke(
    handler: Handler,
    event: dict[str, Any],
    function_name: str,
    region: str,
    *,
    timeout_seconds: float = 60.0,
    memory_mb: int = 512,
) -> tuple[Any, float]:
    started = time.perf_counter()
    context = LambdaContext(
        function_name=function_name,
        region=region,
        timeout_seconds=timeout_seconds,
        memory_limit_in_mb=memory_mb,
    )
    try:
        result = handler(event, context)
    except RuntimeExit as exit_:
        raise FunctionError(f"Runtime exited: {exit_}") from exit_
    seconds = time.perf_counter() - started
    if seconds > timeout_seconds:
        # Lambda would have killed the invocation; whatever it returned never arrives.
        raise FunctionError(f"Task timed out after {timeout_seconds:.2f} seconds")
    return result, seconds


class FunctionError(Exception):
    """What the mapping sees when the invocation did not return: a crash or a timeout."""


def _failed_ids(result: Any) -> set[str]:
    if not isinstance(result, Mapping):
        return set()
    return {str(item["itemIdentifier"]) for item in result.get("batchItemFailures", [])}


@dataclass
class ShardReader:
    """Reads every shard of a stream from the oldest record on, as one consumer of it.

    Each consumer of the stream (the Lambda event source, each Firehose) has its own
    position, like the separate consumers of the deployed stream.
    """

    kinesis: Any
    stream_name: str
    batch_size: int
    stream_arn: str = ""
    _iterators: dict[str, str] = field(default_factory=dict)

    def read(self) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """One GetRecords per shard: ``(shard_id, records)`` for shards that had records."""
        description = self.kinesis.describe_stream(StreamName=self.stream_name)["StreamDescription"]
        self.stream_arn = description["StreamARN"]
        for shard in description["Shards"]:
            shard_id = shard["ShardId"]
            iterator = (
                self._iterators.get(shard_id)
                or self.kinesis.get_shard_iterator(
                    StreamName=self.stream_name, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            )
            response = self.kinesis.get_records(ShardIterator=iterator, Limit=self.batch_size)
            self._iterators[shard_id] = response["NextShardIterator"]
            if response["Records"]:
                yield shard_id, response["Records"]

    def rewind(self) -> None:
        """Start again from the oldest record of every shard (a replay or a lost checkpoint)."""
        self._iterators.clear()


def drain(poll: Callable[[], int], idle_polls: int = 2) -> int:
    """Call ``poll`` until it moved nothing ``idle_polls`` times in a row; total moved."""
    total, idle = 0, 0
    while idle < idle_polls:
        moved = poll()
        total += moved
        idle = idle + 1 if moved == 0 else 0
    return total


@dataclass
class KinesisEventSource:
    """Polls every shard of a stream like a Kinesis event source mapping.

    Semantics follow the Lambda documentation for Kinesis, with the settings of ``mapping``:

    * a partial batch response (``batchItemFailures``) checkpoints before the lowest failed
      sequence number and retries from there;
    * a function error (a raise, a ``RuntimeExit``, an invocation longer than the timeout)
      retries the batch, split in two first when ``bisect_on_error``;
    * records older than ``max_record_age_seconds`` are not sent to the function again;
    * after ``max_retry_attempts`` retries, or when records are too old, the batch is
      described in a message to the on-failure destination (an SQS queue) and skipped.

    ``clock`` (epoch seconds) decides record age; ``before_retry(n)`` runs before retry n,
    where Lambda backs off (a scenario can advance a clock or sleep there).
    """

    kinesis: Any
    sqs: Any
    stream_name: str
    handler: Handler
    function_name: str
    on_failure_queue_url: str | None = None
    mapping: StreamMapping = field(
        default_factory=lambda: StreamMapping(max_retry_attempts=3, bisect_on_error=True)
    )
    region: str = "us-east-1"
    clock: Callable[[], float] = time.time
    before_retry: Callable[[int], None] | None = None
    stats: SourceStats = field(default_factory=SourceStats)
    _reader: ShardReader | None = None

    @property
    def reader(self) -> ShardReader:
        if self._reader is None:
            self._reader = ShardReader(self.kinesis, self.stream_name, self.mapping.batch_size)
        return self._reader

    def poll(self) -> int:
        """Read each shard once (up to ``batch_size`` records) and deliver; returns records read."""
        total = 0
        for shard_id, records in self.reader.read():
            total += len(records)
            self._deliver(shard_id, [self._event_record(shard_id, r) for r in records])
        return total

    def drain(self, idle_polls: int = 2) -> int:
        return drain(self.poll, idle_polls)

    def rewind(self) -> None:
        self.reader.rewind()

    def _event_record(self, shard_id: str, record: Mapping[str, Any]) -> dict[str, Any]:
        arrival = record["ApproximateArrivalTimestamp"]
        arrival_epoch = arrival.timestamp() if isinstance(arrival, datetime) else float(arrival)
        return {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": record["PartitionKey"],
                "sequenceNumber": record["SequenceNumber"],
                "data": base64.b64encode(record["Data"]).decode(),
                "approximateArrivalTimestamp": arrival_epoch,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard_id}:{record['SequenceNumber']}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": f"arn:aws:iam::000000000000:role/{self.function_name}",
            "awsRegion": self.region,
            "eventSourceARN": self.reader.stream_arn,
        }

    def _expired(self, chunk: list[dict[str, Any]]) -> int:
        """How many leading records of ``chunk`` are older than the maximum record age."""
        max_age = self.mapping.max_record_age_seconds
        if max_age < 0:
            return 0
        oldest_allowed = self.clock() - max_age
        arrivals = [r["kinesis"]["approximateArrivalTimestamp"] for r in chunk]
        return next((i for i, a in enumerate(arrivals) if a >= oldest_allowed), len(chunk))

    def _exhausted(self, retries: int) -> bool:
        limit = self.mapping.max_retry_attempts
        return limit >= 0 and retries >= limit

    def _deliver(self, shard_id: str, batch: list[dict[str, Any]]) -> None:
        # Each pending entry is a slice of the batch and how many times it was retried.
        pending: list[tuple[list[dict[str, Any]], int]] = [(batch, 0)]
        while pending:
            chunk, retries = pending.pop(0)
            if retries and self.before_retry is not None:
                self.before_retry(retries)
            expired = self._expired(chunk)
            if expired:
                self._to_failure_destination(shard_id, chunk[:expired], "RecordAgeExceeded", retries)
                chunk = chunk[expired:]
                if not chunk:
                    continue
            self.stats.records_delivered += len(chunk)
            try:
                result, seconds = _invoke(
                    self.handler,
                    {"Records": chunk},
                    self.function_name,
                    self.region,
                    timeout_seconds=self.mapping.timeout_seconds,
                    memory_mb=self.mapping.memory_mb,
                )
            except Exception as error:  # Lambda turns any raise into a retry
                self.stats.invocations.append(Invocation(len(chunk), len(chunk), 0.0, repr(error)))
                if self._exhausted(retries):
                    self._to_failure_destination(
                        shard_id, chunk, "RetryAttemptsExhausted", retries, repr(error)
                    )
                elif self.mapping.bisect_on_error and len(chunk) > 1:
                    middle = len(chunk) // 2
                    pending[:0] = [(chunk[:middle], retries + 1), (chunk[middle:], retries + 1)]
                else:
                    pending.insert(0, (chunk, retries + 1))
                continue
            failed = _failed_ids(result)
            self.stats.invocations.append(Invocation(len(chunk), len(failed), seconds))
            sequence_numbers = [r["kinesis"]["sequenceNumber"] for r in chunk]
            first_failed = next((i for i, s in enumerate(sequence_numbers) if s in failed), len(chunk))
            # Lambda checkpoints before the lowest failed sequence number and retries from it.
            self.stats.records_succeeded += first_failed
            if first_failed == len(chunk):
                continue
            rest = chunk[first_failed:]
            if self._exhausted(retries):
                self._to_failure_destination(
                    shard_id, rest, "RetryAttemptsExhausted", retries, "batchItemFailures after retries"
                )
            else:
                pending.insert(0, (rest, retries + 1))

    def _to_failure_destination(
        self,
        shard_id: str,
        chunk: list[dict[str, Any]],
        condition: Literal["RetryAttemptsExhausted", "RecordAgeExceeded"],
        retries: int,
        function_error: str = "",
    ) -> None:
        self.stats.records_to_failure_destination += len(chunk)
        if not self.on_failure_queue_url:
            raise RuntimeError(
                f"{len(chunk)} records of {shard_id} were discarded ({condition}) "
                "and no on-failure destination is set"
            )
        sequence_numbers = [r["kinesis"]["sequenceNumber"] for r in chunk]
        # The same shape Lambda sends to an on-failure destination for stream sources.
        message = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"arn:aws:lambda:{self.region}:000000000000:function:{self.function_name}",
                "condition": condition,
                "approximateInvokeCount": retries + 1,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": function_error,
            },
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "KinesisBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": sequence_numbers[0],
                "endSequenceNumber": sequence_numbers[-1],
                "approximateArrivalOfFirstRecord": chunk[0]["kinesis"]["approximateArrivalTimestamp"],
                "approximateArrivalOfLastRecord": chunk[-1]["kinesis"]["approximateArrivalTimestamp"],
                "batchSize": len(chunk),
                "streamArn": self.reader.stream_arn,
            },
        }
        self.sqs.send_message(QueueUrl=self.on_failure_queue_url, MessageBody=json.dumps(message))


@dataclass
class SqsEventSource:
    """Polls a queue like an SQS event source mapping with ReportBatchItemFailures.

    Successful messages are deleted; failed ones become visible again at once (instead of
    after the visibility timeout, to keep the demo fast) so the queue's redrive policy
    moves them to its DLQ after ``maxReceiveCount`` receives.
    """

    sqs: Any
    queue_url: str
    handler: Handler
    function_name: str
    batch_size: int = 10
    region: str = "us-east-1"
    timeout_seconds: float = 60.0
    #: Lambda leaves a failed message invisible for the queue's visibility timeout; the
    #: demo makes it visible at once. The fault suite sets a (scaled-down) real delay,
    #: longer than ``timeout_seconds`` as the stack's 6x is, so a crashed invocation is
    #: over before its message comes back.
    retry_visibility_seconds: int = 0
    stats: SourceStats = field(default_factory=SourceStats)
    _queue_arn: str = ""

    def poll(self) -> int:
        if not self._queue_arn:
            self._queue_arn = self.sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        records = [self._event_record(m) for m in messages]
        self.stats.records_delivered += len(records)
        try:
            result, seconds = _invoke(
                self.handler,
                {"Records": records},
                self.function_name,
                self.region,
                timeout_seconds=self.timeout_seconds,
            )
            failed = _failed_ids(result)
            self.stats.invocations.append(Invocation(len(records), len(failed), seconds))
        except Exception as error:  # the whole batch returns to the queue
            failed = {r["messageId"] for r in records}
            self.stats.invocations.append(Invocation(len(records), len(records), 0.0, repr(error)))
        for message in messages:
            if message["MessageId"] in failed:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self.retry_visibility_seconds,
                )
            else:
                self.stats.records_succeeded += 1
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def drain(self, idle_polls: int = 2) -> int:
        return drain(self.poll, idle_polls)

    def _event_record(self, message: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self._queue_arn,
            "awsRegion": self.region,
        }
