"""``cali failures``: a batch Lambda gave up on is read back from the shard and put again."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cali_cli.commands import failures as command
from cali_local.event_source import KinesisEventSource, StreamMapping

REGION = "eu-west-1"


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cali")
    command.register(parser.add_subparsers())
    args = parser.parse_args(["failures", *argv])
    return int(args.func(args))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, str]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        kinesis = boto3.client("kinesis", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        kinesis.create_stream(StreamName="logs", ShardCount=1)
        queue = sqs.create_queue(QueueName="consumer-failures")["QueueUrl"]
        yield kinesis, sqs, queue


def all_data(kinesis: Any) -> list[bytes]:
    shard = kinesis.describe_stream(StreamName="logs")["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName="logs", ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    return [r["Data"] for r in kinesis.get_records(ShardIterator=iterator, Limit=1000)["Records"]]


def test_a_given_up_batch_is_put_back_and_its_message_deleted(
    aws: tuple[Any, Any, str], capsys: pytest.CaptureFixture[str]
) -> None:
    kinesis, sqs, queue = aws
    for data in (b"ok-1", b"poison-a", b"poison-b"):
        kinesis.put_record(StreamName="logs", Data=data, PartitionKey=data.decode())

    def handler(event: dict[str, Any], context: Any) -> None:
        import base64

        if any(base64.b64decode(r["kinesis"]["data"]).startswith(b"poison") for r in event["Records"]):
            raise RuntimeError("a bug in the consumer")

    # What Lambda does with the deployed settings: retries, bisects, then gives up.
    source = KinesisEventSource(
        kinesis,
        sqs,
        "logs",
        handler,
        "consumer",
        on_failure_queue_url=queue,
        mapping=StreamMapping(max_retry_attempts=1, bisect_on_error=False),
    )
    source.drain()
    assert source.stats.records_to_failure_destination == 3

    assert cli(["list", "--queue-url", queue]) == 0
    assert "3 records RetryAttemptsExhausted" in capsys.readouterr().out
    assert cli(["replay", "--queue-url", queue]) == 0  # dry run: nothing put, message kept
    assert "3 records" in capsys.readouterr().out and len(all_data(kinesis)) == 3

    assert cli(["replay", "--queue-url", queue, "--execute"]) == 0
    assert "3 records put back" in capsys.readouterr().out
    assert all_data(kinesis) == [b"ok-1", b"poison-a", b"poison-b"] * 2
    assert sqs.receive_message(QueueUrl=queue).get("Messages", []) == []


def test_without_a_queue_the_command_says_what_to_pass(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CONSUMER_FAILURES_QUEUE_URL", raising=False)
    monkeypatch.setattr(command, "_clients", lambda: (None, None))
    assert cli(["replay"]) == 2
    assert "--queue-url" in capsys.readouterr().out
