"""Lambda entry point of the log consumer (Kinesis event source mapping, partial batch responses).

Thin by design: Powertools BatchProcessor feeds each record to ``BatchConsumer.add`` (decode,
validate, filter, fingerprint; bad data goes to the DLQ and never fails), and when the
batch is done the processor's clean-up step runs ``BatchConsumer.finish`` (DLQ write,
aggregation, throttle, alerts). Only retryable failures (DLQ/SQS/DynamoDB throttling)
become ``batchItemFailures``; Lambda then redelivers from the earliest of them.

Wiring: ``compose`` is the one place that chooses implementations (AWS by default; tests,
the benchmark and the local pipeline pass their own), ``dependencies`` builds them once per
execution environment, and ``process`` runs one event against given dependencies. AWS
clients are created on first use, not at import, to keep cold starts short.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

from cali.contracts.settings import ConsumerSettings, consumer_settings
from cali.incidents.consumer import BatchConsumer, BatchCounts, ConsumerConfig, KinesisInput

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from cali.contracts.clock import Clock
    from cali.incidents.alert_queue import AlertQueue
    from cali.incidents.throttle import ThrottleStore
    from cali.ingest.dlq import DlqWriter

logger = Logger(service="log_consumer")
metrics = Metrics(namespace="CALI", service="log_consumer")
# The domain modules log through stdlib loggers under "cali": give them this JSON format
# and service name (Powertools copies only to top-level loggers, hence "cali", not a module).
copy_config_to_registered_loggers(source_logger=logger, include={"cali"})


class IncidentBatchProcessor(BatchProcessor):
    """BatchProcessor whose clean-up first finishes the batch-level work.

    Incidents are aggregated over the whole batch, so the retryable failures of that step
    are only known after every record went through the record handler; they are added to
    the processor's failures before it builds the partial batch response.
    """

    def __init__(self, consumer: BatchConsumer) -> None:
        super().__init__(event_type=EventType.KinesisDataStreams, raise_on_entire_batch_failure=False)
        self.consumer = consumer
        self.last_counts: BatchCounts | None = None

    def _clean(self) -> None:
        result = self.consumer.finish()
        self.last_counts = result.counts
        record_metrics(result.counts)
        if result.failed_sequence_numbers:
            keep: list[Any] = []
            for raw in self.success_messages:
                record: dict[str, Any] = raw  # type: ignore[assignment]  # success keeps the raw dict
                if record["kinesis"]["sequenceNumber"] in result.failed_sequence_numbers:
                    self.fail_messages.append(KinesisStreamRecord(record))
                else:
                    keep.append(raw)
            self.success_messages[:] = keep
        super()._clean()  # type: ignore[no-untyped-call]


class LazyClient:
    """A boto3 client created on first use.

    Most batches never write to the DLQ and most never alert, so the S3 and SQS clients
    (the S3 model alone costs ~100 ms to load) are only built when needed; cold starts stay
    within the init budget.
    """

    def __init__(self, service: str) -> None:
        self._service = service
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # Short timeouts, few retries: a stuck call must not eat the batch's time budget.
            config = Config(
                connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"}
            )
            self._client = boto3.client(self._service, config=config)  # type: ignore[call-overload]
        return getattr(self._client, name)


def compose(
    settings: ConsumerSettings,
    *,
    throttle_store: ThrottleStore | None = None,
    queue: AlertQueue | None = None,
    dlq: DlqWriter | None = None,
    persistence: BasePersistenceLayer | None = None,
    clock: Clock | None = None,
) -> BatchConsumer:
    """Wire the domain objects; anything not given is the AWS implementation."""
    from cali.contracts.clock import utc_now
    from cali.fingerprint import fingerprint
    from cali.incidents.alert_queue import IdempotentAlertSender, SqsAlertQueue
    from cali.incidents.throttle import (
        DynamoDbThrottleStore,
        FailOpenLimiter,
        Throttle,
        ThrottlePolicy,
    )
    from cali.ingest.dlq import S3Dlq
    from cali.ingest.level_filter import LevelFilter
    from cali.state import keys

    if throttle_store is None or queue is None or dlq is None or persistence is None:
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

        if throttle_store is None or persistence is None:
            dynamodb: Any = LazyClient("dynamodb")
            throttle_store = throttle_store or DynamoDbThrottleStore(dynamodb, settings.state_table_name)
            persistence = persistence or DynamoDBPersistenceLayer(
                table_name=settings.state_table_name,
                key_attr=keys.PK,
                sort_key_attr=keys.SK,
                expiry_attr=keys.TTL,
                boto3_client=dynamodb,
            )
        sqs: Any = LazyClient("sqs")
        s3: Any = LazyClient("s3")
        queue = queue or SqsAlertQueue(sqs, settings.incidents_queue_url)
        dlq = dlq or S3Dlq(s3, settings.dlq_bucket_name, settings.dlq_prefix)
    clock = clock or utc_now
    policy = ThrottlePolicy(
        window_seconds=settings.throttle_window_seconds,
        surge_factor=settings.surge_factor,
        retention_seconds=settings.idempotency_ttl_seconds,
        parallelization_factor=settings.parallelization_factor,
    )
    from cali.ingest.events import EventPreparer

    return BatchConsumer(
        prepare=EventPreparer.from_settings(settings),
        config=ConsumerConfig(
            environment=settings.cali_env,
            max_samples=settings.max_samples,
            max_record_bytes=settings.max_record_bytes,
        ),
        level_filter=LevelFilter(settings.min_level, settings.level_overrides),
        fingerprint=fingerprint,
        throttle=Throttle(throttle_store, policy, clock),
        sender=IdempotentAlertSender(queue, persistence, settings.idempotency_ttl_seconds),
        dlq=dlq,
        fail_open=FailOpenLimiter(settings.fail_open_alerts_per_minute, clock),
    )


@cache
def dependencies() -> BatchConsumer:
    """The consumer of this execution environment, built from settings on first use."""
    return compose(consumer_settings())


def record_handler(consumer: BatchConsumer, record: KinesisStreamRecord) -> None:
    kinesis = record["kinesis"]
    consumer.add(
        KinesisInput(
            data_base64=kinesis["data"],
            sequence_number=kinesis["sequenceNumber"],
            partition_key=kinesis["partitionKey"],
            shard_id=record["eventID"].split(":", 1)[0],
            arrival_time=datetime.fromtimestamp(kinesis["approximateArrivalTimestamp"], tz=UTC),
            stream_arn=record.get("eventSourceARN"),
        )
    )


def record_metrics(counts: BatchCounts) -> None:
    for name, value in (
        ("RecordsIn", counts.records_in),
        ("RecordsInvalid", counts.invalid),
        ("RecordsFiltered", counts.filtered),
        ("RecordsKept", counts.kept),
        ("ControlMessagesSkipped", counts.control_messages),
        ("IncidentsOpened", counts.incidents_opened),
        ("AlertsSent", counts.alerts_sent),
        ("AlertsSuppressed", counts.alerts_suppressed),
        ("AlertsFailOpen", counts.alerts_fail_open),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for level, value in counts.per_level.items():
        metrics.add_metric(name=f"Records{level}", unit=MetricUnit.Count, value=value)


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response, _ = process(event, context, dependencies())
    return response


def process(
    event: dict[str, Any], context: LambdaContext | None, consumer: BatchConsumer
) -> tuple[dict[str, Any], BatchCounts | None]:
    """One Kinesis event through ``consumer``: the partial batch response and the batch's counts."""
    processor = IncidentBatchProcessor(consumer)
    if context is not None:
        # Alert claims expire with this invocation, so a crash never holds one past its deadline.
        consumer.sender.remaining_ms = context.get_remaining_time_in_millis

    def handle(record: KinesisStreamRecord) -> None:
        record_handler(consumer, record)

    response = process_partial_response(
        event=event,
        record_handler=handle,
        processor=processor,
        context=context,
    )
    return dict(response), processor.last_counts
