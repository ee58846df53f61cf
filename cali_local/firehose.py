"""A stand-in for the two Firehose delivery streams that read the Kinesis stream.

moto does not emulate Firehose reading from Kinesis or delivering to OpenSearch, so this
class does what the deployed streams do, with the real transformation Lambda:

* raw archive: every record's bytes, GZIP-compressed, under
  ``raw/year=YYYY/month=MM/day=DD/hour=HH/`` in the archive bucket;
* search: records go through ``log_indexer`` (a Firehose data-transformation event, the
  same shape Firehose sends); ``Ok`` records are indexed one document each into the
  daily ``cali-logs-YYYY-MM-DD`` index (rotation by arrival time, as Firehose does);
  ``ProcessingFailed`` records and documents OpenSearch rejects are written to
  ``opensearch-failed/`` in the bucket, as Firehose's S3 backup of failed documents.
"""

from __future__ import annotations

import base64
import gzip
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cali.search.index import log_index_name
from cali_local.event_source import LambdaContext, ShardReader

Transform = Callable[[dict[str, Any], Any], Any]


@dataclass
class DeliveryStats:
    records_in: int = 0
    archived: int = 0
    archive_objects: int = 0
    indexed: int = 0
    dropped: int = 0
    failed: int = 0
    failed_reasons: Counter[str] = field(default_factory=Counter)
    transform_seconds: list[float] = field(default_factory=list)


@dataclass
class FirehoseStandIn:
    kinesis: Any
    s3: Any
    search: Any
    stream_name: str
    bucket: str
    transform: Transform
    region: str = "us-east-1"
    batch_size: int = 500
    stats: DeliveryStats = field(default_factory=DeliveryStats)
    _reader: ShardReader | None = None

    def poll(self) -> int:
        if self._reader is None:
            self._reader = ShardReader(self.kinesis, self.stream_name, self.batch_size)
        total = 0
        for shard_id, records in self._reader.read():
            total += len(records)
            self._deliver(self._reader.stream_arn, shard_id, records)
        return total

    def _deliver(self, stream_arn: str, shard_id: str, records: Sequence[Mapping[str, Any]]) -> None:
        self.stats.records_in += len(records)
        now = datetime.now(UTC)
        self._archive(now, records)
        event: dict[str, Any] = {
            "invocationId": str(uuid.uuid4()),
            "deliveryStreamArn": f"arn:aws:firehose:{self.region}:000000000000:deliverystream/local-search",
            "sourceKinesisStreamArn": stream_arn,
            "region": self.region,
            "records": [
                {
                    "recordId": f"{shard_id}:{r['SequenceNumber']}",
                    "approximateArrivalTimestamp": int(_epoch(r["ApproximateArrivalTimestamp"]) * 1000),
                    "data": base64.b64encode(r["Data"]).decode(),
                    "kinesisRecordMetadata": {
                        "sequenceNumber": r["SequenceNumber"],
                        "subsequenceNumber": 0,
                        "partitionKey": r["PartitionKey"],
                        "shardId": shard_id,
                        "approximateArrivalTimestamp": int(_epoch(r["ApproximateArrivalTimestamp"]) * 1000),
                    },
                }
                for r in records
            ],
        }
        started = time.perf_counter()
        response = self.transform(event, LambdaContext(function_name="log_indexer", region=self.region))
        self.stats.transform_seconds.append(time.perf_counter() - started)
        returned = {r["recordId"]: r for r in response["records"]}
        missing = [r["recordId"] for r in event["records"] if r["recordId"] not in returned]
        if missing:
            # Firehose treats a transform that loses record ids as a failure of those records.
            raise RuntimeError(f"log_indexer returned no result for {len(missing)} record ids")
        documents: list[tuple[str, dict[str, Any]]] = []
        failed: list[tuple[str, str, bytes]] = []
        for source in event["records"]:
            result = returned[source["recordId"]]
            if result["result"] == "Dropped":
                self.stats.dropped += 1
                continue
            data = base64.b64decode(result.get("data", ""))
            if result["result"] != "Ok":
                failed.append((source["recordId"], "ProcessingFailed", base64.b64decode(source["data"])))
                continue
            try:
                document = json.loads(data)
            except ValueError:
                failed.append((source["recordId"], "NotJsonDocument", data))
                continue
            documents.append((source["recordId"], document))
        self._index(now, documents, failed)
        self._write_failed(now, failed)

    def _archive(self, now: datetime, records: Sequence[Mapping[str, Any]]) -> None:
        body = gzip.compress(b"".join(_with_newline(r["Data"]) for r in records))
        key = f"raw/year={now:%Y}/month={now:%m}/day={now:%d}/hour={now:%H}/local-raw-{uuid.uuid4()}.gz"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        self.stats.archived += len(records)
        self.stats.archive_objects += 1

    def _index(
        self,
        now: datetime,
        documents: list[tuple[str, dict[str, Any]]],
        failed: list[tuple[str, str, bytes]],
    ) -> None:
        if not documents:
            return
        index = log_index_name(now)
        lines: list[str] = []
        for _, document in documents:
            lines += [json.dumps({"index": {"_index": index}}), json.dumps(document)]
        response = self.search.bulk(body="\n".join(lines) + "\n", refresh=True)
        for (record_id, document), item in zip(documents, response["items"], strict=True):
            outcome = item.get("index", {})
            if outcome.get("status", 500) >= 300:
                error = outcome.get("error", {})
                reason = error.get("type", "IndexError") if isinstance(error, dict) else str(error)
                failed.append((record_id, reason, json.dumps(document).encode()))
            else:
                self.stats.indexed += 1

    def _write_failed(self, now: datetime, failed: list[tuple[str, str, bytes]]) -> None:
        if not failed:
            return
        lines = []
        for record_id, reason, data in failed:
            self.stats.failed += 1
            self.stats.failed_reasons[reason] += 1
            lines.append(
                json.dumps(
                    {
                        "recordId": record_id,
                        "errorCode": reason,
                        "rawData": base64.b64encode(data).decode(),
                        "attemptEndingTimestamp": int(now.timestamp() * 1000),
                    }
                )
            )
        key = f"opensearch-failed/{now:%Y/%m/%d/%H}/local-failed-{uuid.uuid4()}.gz"
        body = gzip.compress(("\n".join(lines) + "\n").encode())
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def _with_newline(data: bytes) -> bytes:
    return data if data.endswith(b"\n") else data + b"\n"
