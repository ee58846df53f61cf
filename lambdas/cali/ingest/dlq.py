"""The dead-letter queue for bad log data: one JSON object per bad event in S3.

Layout (the contract): ``s3://<bucket>/<prefix><yyyy>/<mm>/<dd>/<hh>/<id>.json``, the hour
being the record's Kinesis arrival time. The id is derived from shard, sequence number and
event index, so a redelivered batch overwrites its own DLQ objects instead of doubling
them; it also starts with the hour, so ``cali dlq show ID`` finds the key without a scan.

Operators list entries by time and reason, fix the producer or the consumer, then replay:
the original bytes go back into the stream and the entry is marked ``replayed_at`` so a
second replay skips it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

_ID_TIME = "%Y%m%d%H"


class DlqEntry(BaseModel):
    """One bad event, with everything needed to understand and replay it."""

    model_config = ConfigDict(extra="ignore")

    reason: str
    error: str
    source: Literal["kinesis"] = "kinesis"
    shard_id: str
    sequence_number: str
    partition_key: str
    arrival_time: datetime
    dlq_time: datetime
    data_base64: str
    event_index: int = 0
    #: Log events this entry holds: the bad lines (or events) of one record share one
    #: entry, replayable as one record, however many there are.
    events: int = 1
    stream_arn: str | None = None
    replayed_at: datetime | None = None

    @property
    def entry_id(self) -> str:
        digest = hashlib.sha256(
            f"{self.shard_id}|{self.sequence_number}|{self.event_index}".encode()
        ).hexdigest()[:20]
        return f"{self.arrival_time.astimezone(UTC):{_ID_TIME}}-{digest}"

    @property
    def data(self) -> bytes:
        return base64.b64decode(self.data_base64)


def entry_key(prefix: str, entry_id: str) -> str:
    """S3 key of an entry id (the id's first ten characters are its yyyymmddhh)."""
    stamp = datetime.strptime(entry_id[:10], _ID_TIME)
    return f"{prefix}{stamp:%Y/%m/%d/%H}/{entry_id}.json"


class DlqWriter(Protocol):
    """Where the consumer sends bad events; must be durable before the batch is acknowledged."""

    def write(self, entries: Sequence[DlqEntry]) -> None: ...


class DlqStore(DlqWriter, Protocol):
    """What ``cali dlq`` needs beyond writing."""

    def list(self, since: datetime, until: datetime, reason: str | None = None) -> Iterator[DlqEntry]: ...

    def get(self, entry_id: str) -> DlqEntry: ...

    def mark_replayed(self, entry: DlqEntry, when: datetime) -> None: ...


def _reason_matches(entry: DlqEntry, reason: str | None) -> bool:
    # "missing_field" matches every "missing_field:<name>".
    return reason is None or entry.reason == reason or entry.reason.startswith(f"{reason}:")


class S3Dlq:
    """The DLQ in the archive bucket. Writes run in parallel: a batch of 10,000 bad records
    must not take 10,000 sequential PUT latencies."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "dlq/", max_workers: int = 16) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._max_workers = max_workers

    def _put(self, entry: DlqEntry) -> None:
        self._client.put_object(
            Bucket=self._bucket,
            Key=entry_key(self._prefix, entry.entry_id),
            Body=entry.model_dump_json().encode(),
            ContentType="application/json",
        )

    def write(self, entries: Sequence[DlqEntry]) -> None:
        if len(entries) <= 2:
            for entry in entries:
                self._put(entry)
            return
        with ThreadPoolExecutor(max_workers=min(self._max_workers, len(entries))) as pool:
            # list() re-raises the first failure: the batch must then be retried, not acked.
            list(pool.map(self._put, entries))

    def list(self, since: datetime, until: datetime, reason: str | None = None) -> Iterator[DlqEntry]:
        paginator = self._client.get_paginator("list_objects_v2")
        for hour_prefix in _hour_prefixes(self._prefix, since, until):
            for page in paginator.paginate(Bucket=self._bucket, Prefix=hour_prefix):
                for item in page.get("Contents", []):
                    entry = self._read(item["Key"])
                    if since <= entry.arrival_time < until and _reason_matches(entry, reason):
                        yield entry

    def _read(self, key: str) -> DlqEntry:
        body = self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        return DlqEntry.model_validate_json(body)

    def get(self, entry_id: str) -> DlqEntry:
        return self._read(entry_key(self._prefix, entry_id))

    def mark_replayed(self, entry: DlqEntry, when: datetime) -> None:
        self._put(entry.model_copy(update={"replayed_at": when}))


def _hour_prefixes(prefix: str, since: datetime, until: datetime) -> Iterator[str]:
    hour = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = until.astimezone(UTC)
    while hour < end:
        yield f"{prefix}{hour:%Y/%m/%d/%H}/"
        hour = datetime.fromtimestamp(hour.timestamp() + 3600, tz=UTC)


class ReplayResult(BaseModel):
    replayed: list[str] = []
    skipped: list[str] = []
    failed: dict[str, str] = {}


KINESIS_RECORD_BYTES = 1024 * 1024
PUT_RECORDS_COUNT = 500
PUT_RECORDS_BYTES = 5 * 1024 * 1024


def _put_size(entry: DlqEntry) -> int:
    # Kinesis counts the data blob plus the partition key against both limits.
    return len(entry.data) + len(entry.partition_key.encode())


def _put_records_chunks(entries: Sequence[DlqEntry]) -> Iterator[list[DlqEntry]]:
    """PutRecords requests: at most 500 records and 5 MiB each."""
    chunk: list[DlqEntry] = []
    size = 0
    for entry in entries:
        entry_size = _put_size(entry)
        if chunk and (len(chunk) == PUT_RECORDS_COUNT or size + entry_size > PUT_RECORDS_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += entry_size
    if chunk:
        yield chunk


def replay(
    entries: Iterable[DlqEntry],
    store: DlqStore,
    kinesis: KinesisClient | None,
    stream: str,
    *,
    execute: bool,
    force: bool = False,
    now: datetime | None = None,
    attempts: int = 3,
) -> ReplayResult:
    """Put the original bytes of ``entries`` back into ``stream`` (ARN or name).

    Dry run unless ``execute``: then the result lists what would be replayed. Entries
    already replayed are skipped unless ``force``. Records Kinesis rejects (throttling)
    are retried ``attempts`` times, then reported as failed and left unmarked; so are entries
    too large for a Kinesis record. Requests stay within PutRecords' 500 records and 5 MiB.
    """
    result = ReplayResult()
    todo = _not_yet_replayed(entries, force, result)
    if not execute:
        result.replayed = [entry.entry_id for entry in todo]
        return result
    if kinesis is None:
        raise ValueError("a Kinesis client is needed to execute a replay")
    target: dict[str, Any] = {"StreamARN": stream} if stream.startswith("arn:") else {"StreamName": stream}
    put = _Replayer(kinesis, target, store, now or datetime.now(UTC), result)
    for request in _put_records_chunks(_fitting(todo, result)):
        put.with_retries(request, attempts)
    return result


def _not_yet_replayed(entries: Iterable[DlqEntry], force: bool, result: ReplayResult) -> list[DlqEntry]:
    """The entries to replay; the others are listed in ``result.skipped``."""
    todo: list[DlqEntry] = []
    for entry in entries:
        if entry.replayed_at is not None and not force:
            result.skipped.append(entry.entry_id)
        else:
            todo.append(entry)
    return todo


def _fitting(todo: list[DlqEntry], result: ReplayResult) -> list[DlqEntry]:
    """The entries Kinesis can take; the others are listed in ``result.failed``."""
    fitting: list[DlqEntry] = []
    for entry in todo:
        if _put_size(entry) > KINESIS_RECORD_BYTES:
            # Kinesis would refuse the whole request for it: report it, send the others.
            result.failed[entry.entry_id] = "too large for a Kinesis record (1 MiB with its partition key)"
        else:
            fitting.append(entry)
    return fitting


@dataclass(frozen=True)
class _Replayer:
    """Sends PutRecords requests and records each entry's outcome in ``result``."""

    kinesis: KinesisClient
    target: dict[str, Any]
    store: DlqStore
    when: datetime
    result: ReplayResult

    def with_retries(self, request: list[DlqEntry], attempts: int) -> None:
        """Send ``request``; resend what Kinesis rejected, backing off, up to ``attempts`` times."""
        chunk = request
        for attempt in range(attempts):
            retry = self.once(chunk)
            if not retry:
                break
            chunk = retry
            time.sleep(0.2 * 2**attempt)

    def once(self, chunk: list[DlqEntry]) -> list[DlqEntry]:
        """One PutRecords call; marks what was accepted, returns what was rejected."""
        response = self.kinesis.put_records(
            Records=[{"Data": entry.data, "PartitionKey": entry.partition_key} for entry in chunk],
            **self.target,
        )
        retry: list[DlqEntry] = []
        for entry, outcome in zip(chunk, response["Records"], strict=True):
            if "ErrorCode" in outcome:
                retry.append(entry)
                error = f"{outcome['ErrorCode']}: {outcome.get('ErrorMessage', '')}"
                self.result.failed[entry.entry_id] = error
            else:
                self.result.failed.pop(entry.entry_id, None)
                self.store.mark_replayed(entry, self.when)
                self.result.replayed.append(entry.entry_id)
        return retry
