"""The kinesis_streams output: PutRecords batching, retries and what was refused."""

from __future__ import annotations

import random
import string
import time as _time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cali_local.fluentbit.config import (
    MAX_EVENT_SIZE,
    MAX_EVENTS_PER_PUT,
    PUT_RECORDS_FOOTER_LEN,
    PUT_RECORDS_HEADER_LEN,
    PUT_RECORDS_PAYLOAD_SIZE,
    PUT_RECORDS_PER_RECORD_LEN,
)


class PutRecordsClient(Protocol):
    """The one Kinesis call the output makes (a boto3 Kinesis client satisfies it)."""

    def put_records(self, *, StreamName: str, Records: list[dict[str, Any]]) -> Mapping[str, Any]: ...


@dataclass
class DeliveryReport:
    records_in: int = 0
    records_sent: int = 0
    requests: int = 0
    retried_records: int = 0
    throttled_requests: int = 0
    failed: list[tuple[bytes, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "records_in": self.records_in,
            "records_sent": self.records_sent,
            "requests": self.requests,
            "retried_records": self.retried_records,
            "throttled_requests": self.throttled_requests,
            "records_failed": len(self.failed),
        }


_RETRYABLE_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "InternalFailure",
    "ServiceUnavailable",
    "KMSThrottlingException",
    "LimitExceededException",
}


class KinesisStreamsOutput:
    """PutRecords batching the way ``kinesis_streams`` does it, with per-record retries.

    Batches hold at most 500 records and stay under 5 MiB by Fluent Bit's own accounting
    (base64 size + 48 bytes per record). Partition keys are random per record like the
    plugin's (10 instance characters + a djb2 hash of the tag and the clock). Unlike the
    plugin, which resends a whole batch when some records fail, only the failed records
    are resent, with exponential backoff and jitter; records still failing after
    ``max_attempts`` are kept in the report with their error code, never dropped quietly.
    """

    def __init__(
        self,
        client: PutRecordsClient,
        stream: str,
        *,
        max_attempts: int = 8,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.stream = stream
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep or _time.sleep
        self.rng = rng or random.Random()  # noqa: S311 - partition keys and jitter, not secrets
        self.instance_id = "".join(self.rng.choice(string.ascii_letters + string.digits) for _ in range(10))
        self.report = DeliveryReport()
        self._batch: list[dict[str, Any]] = []
        self._batch_size = PUT_RECORDS_HEADER_LEN + PUT_RECORDS_FOOTER_LEN + len(stream)

    def partition_key(self, tag: str) -> str:
        mask = (1 << 64) - 1
        h = 5381
        for byte in tag.encode():
            h = ((h << 5) + h + byte) & mask
        now = _time.time_ns()
        h2 = (5381 * (now // 1_000_000_000) * (now % 1_000_000_000)) & mask
        return f"{self.instance_id}{h % 7919}{h2 % 7919}"

    def add(self, data: bytes, tag: str = "kube.cali.loggen") -> None:
        self.report.records_in += 1
        if len(data) >= MAX_EVENT_SIZE:
            self.report.failed.append((data, "RecordTooLarge"))
            return
        event_bytes = (len(data) + 2) // 3 * 4 + PUT_RECORDS_PER_RECORD_LEN
        if self._batch and (self._batch_size + event_bytes > PUT_RECORDS_PAYLOAD_SIZE):
            self.flush()
        self._batch.append({"Data": data, "PartitionKey": self.partition_key(tag)})
        self._batch_size += event_bytes
        if len(self._batch) >= MAX_EVENTS_PER_PUT:
            self.flush()

    def flush(self) -> None:
        pending, self._batch = self._batch, []
        self._batch_size = PUT_RECORDS_HEADER_LEN + PUT_RECORDS_FOOTER_LEN + len(self.stream)
        attempt = 0
        while pending:
            attempt += 1
            self.report.requests += 1
            try:
                response = self.client.put_records(StreamName=self.stream, Records=pending)
            except Exception as exc:
                code = _error_code(exc)
                if code not in _RETRYABLE_CODES or attempt >= self.max_attempts:
                    self.report.failed.extend((r["Data"], code) for r in pending)
                    if code not in _RETRYABLE_CODES:
                        raise
                    return
                self.report.throttled_requests += 1
                self._backoff(attempt)
                continue
            results = list(response.get("Records", []))
            failed = [(rec, res) for rec, res in zip(pending, results, strict=True) if res.get("ErrorCode")]
            self.report.records_sent += len(pending) - len(failed)
            if not failed:
                return
            if attempt >= self.max_attempts:
                self.report.failed.extend((rec["Data"], str(res.get("ErrorCode"))) for rec, res in failed)
                return
            self.report.retried_records += len(failed)
            pending = [rec for rec, _ in failed]
            self._backoff(attempt)

    def close(self) -> DeliveryReport:
        self.flush()
        return self.report

    def _backoff(self, attempt: int) -> None:
        delay = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        self.sleep(self.rng.uniform(0, delay))


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__
