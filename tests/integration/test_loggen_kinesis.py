"""`cali loggen --to-stream` against a local Kinesis (moto server): every record arrives once."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3

from cali_cli.main import main
from cali_local.aws_endpoint import MotoEndpoint
from cali_local.loggen import generate


def read_stream(client: Any, name: str) -> list[bytes]:
    out: list[bytes] = []
    for shard in client.list_shards(StreamName=name)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=10_000)
            out += [r["Data"] for r in page["Records"]]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return out


def test_loggen_puts_fluent_bit_records_into_the_stream(moto_endpoint: MotoEndpoint, capsys: Any) -> None:
    client = boto3.client("kinesis")
    client.create_stream(StreamName="cali-loggen-it", ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName="cali-loggen-it")
    args = [
        "loggen",
        "--scenario",
        "mixed",
        "--seed",
        "5",
        "--count",
        "1300",
        "--bad-fraction",
        "0.02",
        "--start",
        "2026-11-23T10:00:00Z",
        "--to-stream",
        "cali-loggen-it",
    ]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert summary["delivery"]["records_sent"] == 1300
    assert summary["delivery"]["records_failed"] == 0
    assert summary["delivery"]["requests"] >= 3  # 500 records per PutRecords at most
    expected = list(
        generate("mixed", seed=5, count=1300, bad_fraction=0.02, start=datetime(2026, 11, 23, 10, tzinfo=UTC))
    )
    stored = read_stream(client, "cali-loggen-it")
    assert sorted(stored) == sorted(e.data for e in expected)
