"""Firehose data-transformation Lambda: Kinesis record -> one OpenSearch log document.

It reuses the consumer's decoding, ``LogRecord`` validation and fingerprinting, so search
documents carry the same level, service and fingerprint the alerts use.

Firehose requires exactly one output per input ``recordId`` and indexes each ``Ok`` output
as one document; its multi-record deaggregation exists only for dynamic partitioning to
S3, not for the OpenSearch destination. So a Kinesis record holding several events (a
newline-joined Fluent Bit record, a CloudWatch Logs envelope) becomes one document: the
most severe event (the first among equals), with ``fields.record_events`` (how many the
record held) and ``fields.other_events`` (timestamp, level, message of up to 50 others).
Nothing is lost: the raw archive in S3 keeps every byte and the consumer alerts on every
event. Fluent Bit's ``kinesis_streams`` output sends one event per record, the normal case.

Results: ``Ok`` with the document; ``Dropped`` for CloudWatch control messages (not log
data); ``ProcessingFailed`` when no event is valid, which Firehose writes to the error
prefix of the backup bucket with the original bytes.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.kinesis_firehose_event import (
    KinesisFirehoseDataTransformationRecord,
    KinesisFirehoseDataTransformationResponse,
)

from cali.contracts.levels import Level
from cali.contracts.records import RecordError, build_record, truncate
from cali.contracts.settings import IngestSettings
from cali.fingerprint import fingerprint
from cali.ingest.decoding import decode_payload
from cali.ingest.events import EventPreparer
from cali.search.documents import log_document

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(service="log_indexer")
metrics = Metrics(namespace="CALI", service="log_indexer")
# The domain modules log through stdlib loggers under "cali": give them this JSON format
# and service name (Powertools copies only to top-level loggers, hence "cali", not a module).
copy_config_to_registered_loggers(source_logger=logger, include={"cali"})

MAX_OTHER_EVENTS = 50


@dataclass
class Indexed:
    """What one Kinesis record yields: documents (batch order) and per-event errors."""

    documents: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    control_messages: int = 0


def index_payload(
    payload: bytes,
    environment: str,
    arrival_time: datetime | None = None,
    prepare: EventPreparer | None = None,
) -> Indexed:
    decoded = decode_payload(payload)
    result = Indexed(errors=[e.reason for e in decoded.errors], control_messages=decoded.control_messages)
    # The same reading of raw lines as the consumer: the document's @timestamp is the line's time.
    prepare = prepare or dependencies().prepare
    for event in decoded.events:
        try:
            record = build_record(prepare(event, arrival_time), arrival_time)
        except RecordError as exc:
            result.errors.append(exc.reason)
            continue
        fp = fingerprint(record.message, record.stack_trace)
        result.documents.append(log_document(record, fp, environment))
    return result


def to_documents(payload: bytes, environment: str) -> list[dict[str, Any]]:
    """Every valid event of one record as a log document (the local pipeline indexes these)."""
    return index_payload(payload, environment).documents


def merge_documents(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """The single document Firehose can index for a multi-event record (see module doc)."""
    if len(documents) == 1:
        return documents[0]
    main_index = max(range(len(documents)), key=lambda i: (Level[documents[i]["level"]], -i))
    main = dict(documents[main_index])
    others = [
        {"@timestamp": d["@timestamp"], "level": d["level"], "message": truncate(d["message"], 512)}
        for i, d in enumerate(documents)
        if i != main_index
    ]
    main["fields"] = {
        **main["fields"],
        "record_events": len(documents),
        "other_events": others[:MAX_OTHER_EVENTS],
    }
    return main


@dataclass(frozen=True)
class Dependencies:
    """What the transform needs besides the event: the environment and how raw lines are read."""

    environment: str
    prepare: EventPreparer


def compose(settings: IngestSettings) -> Dependencies:
    return Dependencies(environment=settings.cali_env, prepare=EventPreparer.from_settings(settings))


@cache
def dependencies() -> Dependencies:
    """Read once per execution environment."""
    return compose(IngestSettings())


Transformed = KinesisFirehoseDataTransformationRecord


def transform_record(record: dict[str, Any], environment: str) -> Transformed:
    record_id = record["recordId"]
    try:
        payload = binascii.a2b_base64(record["data"], strict_mode=True)
    except (binascii.Error, ValueError):
        return Transformed(record_id=record_id, result="ProcessingFailed", data=record["data"])
    arrival_ms = record.get("approximateArrivalTimestamp")
    arrival = datetime.fromtimestamp(arrival_ms / 1000, tz=UTC) if arrival_ms else None
    indexed = index_payload(payload, environment, arrival)
    if indexed.documents:
        document = merge_documents(indexed.documents)
        return Transformed(record_id=record_id, data=base64.b64encode(orjson.dumps(document)).decode())
    if indexed.control_messages and not indexed.errors:
        return Transformed(record_id=record_id, result="Dropped", data=record["data"])
    logger.warning("Record failed transformation", extra={"record_id": record_id, "reasons": indexed.errors})
    return Transformed(record_id=record_id, result="ProcessingFailed", data=record["data"])


def _transform_or_fail(record: dict[str, Any], environment: str) -> Transformed:
    try:
        return transform_record(record, environment)
    except Exception:
        # A bug on one record must not fail the invocation: Firehose would then send every
        # record of the batch to the error prefix. This one goes there with its bytes.
        logger.exception(
            "Unexpected error transforming a record", extra={"record_id": record.get("recordId")}
        )
        return Transformed(record_id=record["recordId"], result="ProcessingFailed", data=record["data"])


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    environment = dependencies().environment
    response = KinesisFirehoseDataTransformationResponse()
    for r in event.get("records", []):
        response.add_record(_transform_or_fail(r, environment))
    records = response.records
    ok = sum(1 for r in records if r.result == "Ok")
    failed = sum(1 for r in records if r.result == "ProcessingFailed")
    metrics.add_metric(name="DocumentsIndexed", unit=MetricUnit.Count, value=ok)
    metrics.add_metric(name="DocumentsFailed", unit=MetricUnit.Count, value=failed)
    logger.info("Transformed", extra={"records": len(records), "ok": ok, "failed": failed})
    return response.asdict()
