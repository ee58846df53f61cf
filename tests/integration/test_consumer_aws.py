"""The consumer's boto3 code against moto server: S3 DLQ, SQS, DynamoDB conditional writes,
Powertools idempotency on the state table, Kinesis replay through ``cali dlq replay``."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from cali.fingerprint import fingerprint
from cali.incidents.alert_queue import IdempotentAlertSender, SqsAlertQueue
from cali.incidents.consumer import BatchConsumer, ConsumerConfig
from cali.incidents.throttle import (
    DynamoDbThrottleStore,
    FailOpenLimiter,
    Observation,
    Throttle,
    ThrottlePolicy,
    pad_sequence,
)
from cali.ingest.dlq import S3Dlq
from cali.ingest.level_filter import LevelFilter
from cali_local.aws_endpoint import MotoEndpoint
from cali_local.resources import create_state_table
from tests.support.consumer_support import Clock, cloudwatch, event, kinesis_event, kinesis_input, line


@pytest.fixture
def aws(moto_endpoint: MotoEndpoint) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    dynamodb = boto3.client("dynamodb")
    table = f"cali-test-state-{suffix}"
    create_state_table(dynamodb, table)
    s3 = boto3.client("s3")
    bucket = f"cali-test-archive-{suffix}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"cali-test-incidents-{suffix}")["QueueUrl"]
    kinesis = boto3.client("kinesis")
    stream = f"cali-test-logs-{suffix}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1})
    return {
        "dynamodb": dynamodb,
        "table": table,
        "s3": s3,
        "bucket": bucket,
        "sqs": sqs,
        "queue_url": queue_url,
        "kinesis": kinesis,
        "stream": stream,
    }


def consumer_for(aws: dict[str, Any], clock: Clock) -> BatchConsumer:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    persistence = DynamoDBPersistenceLayer(
        table_name=aws["table"],
        key_attr="pk",
        sort_key_attr="sk",
        expiry_attr="expires_at",
        boto3_client=aws["dynamodb"],
    )
    return BatchConsumer(
        config=ConsumerConfig(environment="test"),
        level_filter=LevelFilter(),
        fingerprint=fingerprint,
        throttle=Throttle(DynamoDbThrottleStore(aws["dynamodb"], aws["table"]), ThrottlePolicy(), clock),
        sender=IdempotentAlertSender(SqsAlertQueue(aws["sqs"], aws["queue_url"]), persistence, 86_400),
        dlq=S3Dlq(aws["s3"], aws["bucket"]),
        fail_open=FailOpenLimiter(30, clock),
    )


def receive_all(aws: dict[str, Any]) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    while True:
        response = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10)
        messages = response.get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=message["ReceiptHandle"])


def run(consumer: BatchConsumer, payloads: list[bytes], first: int) -> Any:
    for i, payload in enumerate(payloads):
        consumer.add(kinesis_input(payload, first + i))
    return consumer.finish()


def test_batch_against_moto_dlq_sqs_dynamodb_and_redelivery(aws: dict[str, Any]) -> None:
    clock = Clock()
    consumer = consumer_for(aws, clock)
    payloads = [
        line(event()),
        line(event(level="INFO")),
        b"\xff\xfe not json",
        cloudwatch(["[ERROR] Task timed out after 30.03 seconds"]),
        line({"time": "2026-11-23T10:00:00Z", "level": "ERROR"}),
    ]
    result = run(consumer, payloads, first=1)
    assert result.counts.conserved and result.failed_sequence_numbers == set()
    assert result.counts.invalid == 2
    alerts = receive_all(aws)
    assert sorted(a["kind"] for a in alerts) == ["new", "new"]

    dlq = S3Dlq(aws["s3"], aws["bucket"])
    entries = list(dlq.list(datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC)))
    assert sorted(e.reason for e in entries) == ["invalid_utf8", "missing_field:message"]
    assert dlq.get(entries[0].entry_id) == entries[0]

    # The same records again (a Lambda retry): nothing counted, nothing alerted, DLQ overwritten.
    again = run(consumer, payloads, first=1)
    assert again.counts.duplicates == 2 and receive_all(aws) == []
    assert len(list(dlq.list(datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC)))) == 2

    # Repeats are counted by the one-call atomic ADD path, then ONE update when the window
    # ends (it opens the next window: no second "new" for a still-firing incident). Windows
    # follow the events' own time, so each batch's events carry the clock's time.
    run(consumer, [line(event(time=clock().isoformat()))] * 4, first=10)
    assert receive_all(aws) == []
    clock.advance(901)
    run(consumer, [line(event(time=clock().isoformat()))], first=20)
    kinds = [(a["kind"], a["count"], a["window_count"]) for a in receive_all(aws)]
    assert kinds == [("update", 4, 5)]
    # The next rollover's update has its own incident id, so the idempotent send lets it through.
    run(consumer, [line(event(time=clock().isoformat()))] * 2, first=30)
    clock.advance(901)
    run(consumer, [line(event(time=clock().isoformat()))], first=40)
    second = receive_all(aws)
    assert [(a["kind"], a["count"], a["window_count"]) for a in second] == [("update", 3, 3)]


def test_conditional_writes_let_one_container_open_a_window(aws: dict[str, Any]) -> None:
    store = DynamoDbThrottleStore(aws["dynamodb"], aws["table"])
    clock = Clock()
    a = Throttle(store, ThrottlePolicy(), clock)
    b = Throttle(store, ThrottlePolicy(), clock)
    fp = "0123456789abcdef"
    first = a.observe(Observation(fp, "shardId-000000000000", [pad_sequence("1")]), lambda alerts: {})
    second = b.observe(Observation(fp, "shardId-000000000001", [pad_sequence("1")]), lambda alerts: {})
    assert [x.kind for x in first.alerts] == ["new"] and second.alerts == ()
    state = store.load(fp)
    assert (
        state is not None
        and state.count == 2
        and set(state.hw) == {"shardId-000000000000", "shardId-000000000001"}
    )
    # A stale version loses the compare-and-swap.
    assert not store.save(fp, state, expected_version=state.version - 1, expires_at=0)
    item = aws["dynamodb"].get_item(
        TableName=aws["table"], Key={"pk": {"S": f"throttle#{fp}"}, "sk": {"S": "window"}}
    )["Item"]
    assert int(item["expires_at"]["N"]) > int(clock().timestamp())


def test_failed_send_keeps_alert_in_outbox_until_next_batch(aws: dict[str, Any]) -> None:
    clock = Clock()
    consumer = consumer_for(aws, clock)
    good_url = aws["queue_url"]
    consumer.sender.queue = SqsAlertQueue(aws["sqs"], good_url + "-missing", attempts=1)
    result = run(consumer, [line(event(message="Disk full on /dev/xvda1"))], first=1)
    assert result.failed_sequence_numbers  # retryable: Lambda will redeliver
    assert receive_all(aws) == []
    consumer.sender.queue = SqsAlertQueue(aws["sqs"], good_url)
    retry = run(consumer, [line(event(message="Disk full on /dev/xvda1"))], first=1)
    assert retry.failed_sequence_numbers == set()
    assert [a["kind"] for a in receive_all(aws)] == ["new"]
    # Sent once; the outbox is empty again and a third delivery sends nothing.
    run(consumer, [line(event(message="Disk full on /dev/xvda1"))], first=1)
    assert receive_all(aws) == []


def test_dlq_replay_puts_original_bytes_back_into_kinesis(aws: dict[str, Any], capsys: Any) -> None:
    clock = Clock()
    consumer = consumer_for(aws, clock)
    bad = b'{"time": "yesterday-ish", "level": "ERROR", "message": "x"}'
    run(consumer, [bad, b'{"plain": "text'], first=1)  # plain text is a raw line, not bad data
    common = ["--bucket", aws["bucket"], "--since", "2026-11-23T00:00:00Z", "--until", "2026-11-24T00:00:00Z"]
    assert main(["dlq", "list", *common, "--reason", "invalid_field"]) == 0
    listed = capsys.readouterr().out
    assert "invalid_field:timestamp" in listed and "not_json" not in listed

    assert main(["dlq", "replay", *common, "--stream", aws["stream"]]) == 0
    assert "dry run" in capsys.readouterr().out.lower()
    shard = aws["kinesis"].describe_stream(StreamName=aws["stream"])["StreamDescription"]["Shards"][0]
    iterator = aws["kinesis"].get_shard_iterator(
        StreamName=aws["stream"], ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    assert aws["kinesis"].get_records(ShardIterator=iterator)["Records"] == []

    assert main(["dlq", "replay", *common, "--stream", aws["stream"], "--execute"]) == 0
    capsys.readouterr()
    records = aws["kinesis"].get_records(ShardIterator=iterator)["Records"]
    assert sorted(r["Data"] for r in records) == sorted([bad, b'{"plain": "text'])
    # Marked: a second execute replays nothing.
    assert main(["dlq", "replay", *common, "--stream", aws["stream"], "--execute"]) == 0
    assert "0 replayed" in capsys.readouterr().out
    assert main(["dlq", "list", *common, "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert all(row["replayed_at"] for row in rows) and len(rows) == 2


def test_handler_end_to_end_on_moto(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from log_consumer import handler as consumer_handler

    from cali.contracts.settings import ConsumerSettings

    settings = ConsumerSettings(
        state_table_name=aws["table"],
        dlq_bucket_name=aws["bucket"],
        incidents_queue_url=aws["queue_url"],
        cali_env="test",
    )
    consumer = consumer_handler.compose(settings, clock=Clock(datetime.now(UTC)))
    event_ = kinesis_event([line(event()), b"{nope", line(event(level="DEBUG"))])
    response, counts = consumer_handler.process(event_, _Context(), consumer)  # type: ignore[arg-type]
    assert response == {"batchItemFailures": []}
    assert [a["kind"] for a in receive_all(aws)] == ["new"]
    assert counts is not None and (counts.kept, counts.filtered, counts.invalid) == (1, 1, 1)


def main(argv: list[str]) -> int:
    """``cali`` with only the dlq command (the other commands belong to other tests)."""
    import argparse

    from cali_cli.commands import dlq as dlq_command

    parser = argparse.ArgumentParser(prog="cali")
    dlq_command.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


class _Context:
    function_name = "log_consumer"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:log_consumer"
    aws_request_id = "req-1"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


def test_unreachable_dynamodb_fails_open_with_real_clients(aws: dict[str, Any]) -> None:
    from botocore.config import Config

    from cali_local.aws_endpoint import free_port

    dead = boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(connect_timeout=0.5, read_timeout=0.5, retries={"max_attempts": 1}),
    )
    clock = Clock()
    consumer = consumer_for(aws, clock)
    consumer.throttle.store = DynamoDbThrottleStore(dead, aws["table"])
    consumer.fail_open = FailOpenLimiter(1, clock)
    result = run(consumer, [line(event(message="Disk full")), line(event(message="OOM killed pod"))], first=1)
    assert (result.counts.alerts_fail_open, result.counts.alerts_suppressed) == (1, 1)
    assert [a["kind"] for a in receive_all(aws)] == ["new"]
    assert result.failed_sequence_numbers == set()


def test_parallelization_factor_counts_interleaved_batches_of_one_shard(aws: dict[str, Any]) -> None:
    store = DynamoDbThrottleStore(aws["dynamodb"], aws["table"])
    shard = "shardId-000000000000"

    def count(policy: ThrottlePolicy, fp: str, batches: list[list[int]]) -> int:
        throttle = Throttle(store, policy, Clock())
        for numbers in batches:
            throttle.observe(Observation(fp, shard, [pad_sequence(str(n)) for n in numbers]), lambda a: {})
        state = store.load(fp)
        assert state is not None
        return state.count

    interleaved = [[2, 4, 6], [1, 3, 5], [7, 9], [8]]  # slow path, then the conditional ADD
    assert count(ThrottlePolicy(parallelization_factor=4), "00000000000000c4", interleaved) == 9
    state = store.load("00000000000000c4")
    assert state is not None and state.hw == {}
    # One batch per shard: a redelivery (slow path, then fast path) counts nothing twice.
    redelivered = [[1, 2, 3], [1, 2, 3], [4, 5], [4, 5]]
    assert count(ThrottlePolicy(parallelization_factor=1), "00000000000000c1", redelivered) == 5


def test_dynamodb_fast_path_counts_and_surge_takes_the_slow_path(aws: dict[str, Any]) -> None:
    store = DynamoDbThrottleStore(aws["dynamodb"], aws["table"])
    throttle = Throttle(store, ThrottlePolicy(surge_factor=5.0, surge_min_baseline=10), Clock())
    fp = "00000000000000bb"
    numbers = iter(range(1, 10_000))

    def observe(n: int) -> list[str]:
        seqs = [pad_sequence(str(next(numbers))) for _ in range(n)]
        outcome = throttle.observe(Observation(fp, "shardId-000000000000", seqs), lambda alerts: {})
        return [a.kind for a in outcome.alerts]

    assert observe(1) == ["new"]
    before = store.load(fp)
    assert observe(20) == [] and observe(20) == []  # one conditional ADD each
    after = store.load(fp)
    assert before is not None and after is not None
    assert (after.count, after.version) == (41, before.version + 2) and after.surge_at == 50
    assert observe(9) == ["surge"]
    assert observe(100) == []
    final = store.load(fp)
    assert final is not None and final.surge_sent and final.count == 150
