"""Builders for the events the consumer receives: Kinesis batches and log payloads."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime
from typing import Any

from cali.contracts.levels import Level
from cali.fingerprint import fingerprint
from cali.incidents.alert_queue import IdempotentAlertSender
from cali.incidents.consumer import BatchConsumer, ConsumerConfig, KinesisInput
from cali.incidents.throttle import FailOpenLimiter, Throttle, ThrottlePolicy
from cali.ingest.level_filter import LevelFilter
from cali_testing.incidents import InMemoryAlertQueue, InMemoryPersistenceLayer, InMemoryThrottleStore
from cali_testing.ingest import InMemoryDlq

SHARD = "shardId-000000000000"
ARRIVAL = datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC)


def event(
    message: str = "Payment declined for order 4411",
    level: str = "ERROR",
    service: str = "checkout",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "time": "2026-11-23T10:00:00.000Z",
        "level": level,
        "service": service,
        "message": message,
        "host": "ip-10-0-0-7",
        **extra,
    }


def line(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def cloudwatch(messages: list[str], *, control: bool = False, group: str = "/aws/lambda/orders-api") -> bytes:
    envelope = {
        "messageType": "CONTROL_MESSAGE" if control else "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": group,
        "logStream": "2026/11/23/[$LATEST]abc",
        "subscriptionFilters": ["cali"],
        "logEvents": [
            {"id": str(i), "timestamp": 1795428000000 + i, "message": m} for i, m in enumerate(messages)
        ],
    }
    return gzip.compress(json.dumps(envelope).encode())


def seq(n: int) -> str:
    return f"4959{n:052d}"


class Fake:
    """A ``ConsumerFake`` bundle: the consumer plus the in-memory boundaries it writes to."""

    def __init__(
        self,
        clock: Any,
        *,
        min_level: Level = Level.WARN,
        window: int = 900,
        surge: float = 5.0,
        fail_open_per_minute: int = 30,
        overrides: dict[str, Level] | None = None,
    ) -> None:
        self.store = InMemoryThrottleStore()
        self.queue = InMemoryAlertQueue()
        self.dlq = InMemoryDlq()
        self.persistence = InMemoryPersistenceLayer()
        self.consumer = BatchConsumer(
            config=ConsumerConfig(environment="test", max_samples=3, max_record_bytes=64_000),
            level_filter=LevelFilter(min_level, overrides or {}),
            fingerprint=fingerprint,
            throttle=Throttle(self.store, ThrottlePolicy(window_seconds=window, surge_factor=surge), clock),
            sender=IdempotentAlertSender(self.queue, self.persistence, 86_400),
            dlq=self.dlq,
            fail_open=FailOpenLimiter(fail_open_per_minute, clock),
        )

    def run(self, payloads: list[bytes], *, first: int = 1, shard: str = SHARD) -> Any:
        for offset, payload in enumerate(payloads):
            self.consumer.add(kinesis_input(payload, first + offset, shard))
        return self.consumer.finish()


def kinesis_input(payload: bytes, n: int, shard: str = SHARD) -> KinesisInput:
    return KinesisInput(
        base64.b64encode(payload).decode(),
        seq(n),
        f"pk-{n}",
        shard,
        ARRIVAL,
        "arn:aws:kinesis:eu-west-1:123456789012:stream/cali-test",
    )


def kinesis_event(payloads: list[bytes], *, first: int = 1, shard: str = SHARD) -> dict[str, Any]:
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": f"pk-{first + i}",
                    "sequenceNumber": seq(first + i),
                    "data": base64.b64encode(p).decode(),
                    "approximateArrivalTimestamp": ARRIVAL.timestamp(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard}:{seq(first + i)}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/cali",
                "awsRegion": "eu-west-1",
                "eventSourceARN": "arn:aws:kinesis:eu-west-1:123456789012:stream/cali-test",
            }
            for i, p in enumerate(payloads)
        ]
    }


class Clock:
    def __init__(self, now: datetime = ARRIVAL) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.now += timedelta(seconds=seconds)
