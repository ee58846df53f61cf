"""The event-source stand-ins must do what Lambda's event source mappings do."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cali_local.event_source import (
    CDK_JSON,
    KinesisEventSource,
    RuntimeExit,
    SqsEventSource,
    StreamMapping,
    drain,
)

REGION = "us-east-1"


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        kinesis = boto3.client("kinesis", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        kinesis.create_stream(StreamName="logs", ShardCount=1)
        yield kinesis, sqs


def put(kinesis: Any, *payloads: str) -> None:
    for payload in payloads:
        kinesis.put_record(StreamName="logs", Data=payload.encode(), PartitionKey="k")


def data(record: dict[str, Any]) -> str:
    return base64.b64decode(record["kinesis"]["data"]).decode()


class Recorder:
    """A handler that records what it was given and fails as told."""

    def __init__(self, *, fail_once: Iterable[str] = (), poison: Iterable[str] = ()) -> None:
        self.batches: list[list[str]] = []
        self.fail_once = set(fail_once)
        self.poison = set(poison)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert context.function_name == "consumer" and context.get_remaining_time_in_millis() > 0
        batch = [data(r) for r in event["Records"]]
        self.batches.append(batch)
        if self.poison & set(batch):
            raise RuntimeError("poison record")
        failures = []
        for record in event["Records"]:
            if data(record) in self.fail_once:
                self.fail_once.discard(data(record))
                failures.append({"itemIdentifier": record["kinesis"]["sequenceNumber"]})
        return {"batchItemFailures": failures}


def test_kinesis_event_has_lambdas_shape(aws: tuple[Any, Any]) -> None:
    kinesis, sqs = aws
    put(kinesis, "a")
    seen: list[dict[str, Any]] = []
    source = KinesisEventSource(kinesis, sqs, "logs", lambda e, c: seen.append(e), "consumer")
    assert source.poll() == 1
    (record,) = seen[0]["Records"]
    assert record["eventSource"] == "aws:kinesis" and record["eventName"] == "aws:kinesis:record"
    assert record["eventSourceARN"].endswith(":stream/logs")
    assert record["eventID"] == f"shardId-000000000000:{record['kinesis']['sequenceNumber']}"
    assert data(record) == "a" and record["kinesis"]["partitionKey"] == "k"
    assert isinstance(record["kinesis"]["approximateArrivalTimestamp"], float)


def test_partial_failure_retries_from_the_first_failed_record(aws: tuple[Any, Any]) -> None:
    kinesis, sqs = aws
    put(kinesis, "a", "b", "c", "d")
    handler = Recorder(fail_once={"c"})
    source = KinesisEventSource(kinesis, sqs, "logs", handler, "consumer")
    drain(source.poll)
    # Checkpointed after "b": the retry starts at "c" and includes what follows it.
    assert handler.batches == [["a", "b", "c", "d"], ["c", "d"]]
    assert source.stats.records_succeeded == 4


def test_error_bisects_and_sends_the_poison_record_to_the_failure_destination(aws: tuple[Any, Any]) -> None:
    kinesis, sqs = aws
    queue = sqs.create_queue(QueueName="failures")["QueueUrl"]
    put(kinesis, "a", "b", "poison", "d")
    handler = Recorder(poison={"poison"})
    source = KinesisEventSource(
        kinesis,
        sqs,
        "logs",
        handler,
        "consumer",
        on_failure_queue_url=queue,
        mapping=StreamMapping(max_retry_attempts=2, bisect_on_error=True),
    )
    drain(source.poll)
    assert ["a", "b"] in handler.batches and ["d"] in handler.batches
    assert source.stats.records_succeeded == 3
    assert source.stats.records_to_failure_destination == 1
    (message,) = sqs.receive_message(QueueUrl=queue)["Messages"]
    info = json.loads(message["Body"])
    assert info["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert info["KinesisBatchInfo"]["batchSize"] == 1
    assert info["KinesisBatchInfo"]["shardId"] == "shardId-000000000000"


def test_deployed_mapping_is_read_from_cdk_json() -> None:
    from stacks.config import ConsumerConfig

    dev = StreamMapping.deployed("dev")
    defaults = ConsumerConfig()
    context = json.loads(CDK_JSON.read_text())["context"]["environments"]["dev"]["consumer"]
    assert dev.max_retry_attempts == context["max_retries"]
    assert dev.max_record_age_seconds == context["max_record_age_seconds"]
    assert dev.batch_size == context["batch_size"] and dev.timeout_seconds == context["timeout_seconds"]
    assert dev.bisect_on_error is context.get("bisect_batch_on_error", defaults.bisect_batch_on_error)


def test_runtime_exit_is_a_function_error_even_inside_except_exception(aws: tuple[Any, Any]) -> None:
    kinesis, sqs = aws
    queue = sqs.create_queue(QueueName="failures")["QueueUrl"]
    put(kinesis, "a")
    calls: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        calls.append(1)
        try:
            raise RuntimeExit("out of memory")
        except Exception:  # pragma: no cover - a crash is not an Exception
            return None

    source = KinesisEventSource(
        kinesis,
        sqs,
        "logs",
        handler,
        "consumer",
        on_failure_queue_url=queue,
        mapping=StreamMapping(max_retry_attempts=1),
    )
    source.drain()
    assert len(calls) == 2 and source.stats.records_to_failure_destination == 1
    assert "Runtime exited" in (source.stats.invocations[0].error or "")


def test_unlimited_retries_stop_at_the_maximum_record_age(aws: tuple[Any, Any]) -> None:
    kinesis, sqs = aws
    queue = sqs.create_queue(QueueName="failures")["QueueUrl"]
    put(kinesis, "poison")
    now = [time.time()]
    handler = Recorder(poison={"poison"})

    def back_off(retry: int) -> None:
        now[0] += 30  # each retry a little later, as Lambda backs off

    source = KinesisEventSource(
        kinesis,
        sqs,
        "logs",
        handler,
        "consumer",
        on_failure_queue_url=queue,
        mapping=StreamMapping(max_retry_attempts=-1, max_record_age_seconds=100),
        clock=lambda: now[0],
        before_retry=back_off,
    )
    source.drain()
    assert len(handler.batches) == 4  # at 0, 30, 60 and 90 s; at 120 s the record is too old
    (message,) = sqs.receive_message(QueueUrl=queue)["Messages"]
    assert json.loads(message["Body"])["requestContext"]["condition"] == "RecordAgeExceeded"


def test_an_invocation_longer_than_the_timeout_is_retried_whatever_it_returned(aws: tuple[Any, Any]) -> None:
    kinesis, sqs = aws
    queue = sqs.create_queue(QueueName="failures")["QueueUrl"]
    put(kinesis, "a")
    calls: list[float] = []

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(context.get_remaining_time_in_millis())
        time.sleep(0.06)
        return {"batchItemFailures": []}

    source = KinesisEventSource(
        kinesis,
        sqs,
        "logs",
        slow,
        "consumer",
        on_failure_queue_url=queue,
        mapping=StreamMapping(max_retry_attempts=1, timeout_seconds=0.05),
    )
    source.drain()
    assert len(calls) == 2 and all(ms <= 50 for ms in calls)
    assert source.stats.records_to_failure_destination == 1
    assert "Task timed out" in (source.stats.invocations[0].error or "")


def test_rewind_delivers_every_record_again(aws: tuple[Any, Any]) -> None:
    kinesis, sqs = aws
    put(kinesis, "a", "b")
    handler = Recorder()
    source = KinesisEventSource(kinesis, sqs, "logs", handler, "consumer")
    drain(source.poll)
    source.rewind()
    drain(source.poll)
    assert handler.batches == [["a", "b"], ["a", "b"]]


def test_sqs_failures_are_redelivered_then_dead_lettered(aws: tuple[Any, Any]) -> None:
    _, sqs = aws
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName="incidents",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})},
    )["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="good")
    sqs.send_message(QueueUrl=queue, MessageBody="bad")
    received: list[str] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert all(r["eventSource"] == "aws:sqs" for r in event["Records"])
        received.extend(r["body"] for r in event["Records"])
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"
            ]
        }

    source = SqsEventSource(sqs, queue, handler, "analyzer")
    source.drain()
    assert received.count("good") == 1 and received.count("bad") == 2
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=dlq)["Messages"]] == ["bad"]
    assert source.stats.records_succeeded == 1
