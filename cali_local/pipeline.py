"""The whole CALI pipeline on one machine, driving the real Lambda handlers.

``run_pipeline`` starts the local services, creates the environment's resources, loads
the knowledge base into Milvus Lite with the real knowledge-sync handler, puts log
records into Kinesis the way Fluent Bit does, then pumps three consumers of the stream
until everything has settled:

* the Firehose stand-in (raw archive in S3, ``log_indexer`` transform, OpenSearch);
* the Kinesis event-source stand-in feeding the real ``log_consumer`` handler;
* the SQS event-source stand-in feeding the real ``incident_analyzer`` handler.

It returns a ``PipelineReport`` with the counts per stage (read back from S3, OpenSearch,
the queues and the handlers' own metrics), the DLQ entries, the incidents, the Slack
messages and the latency of each stage.
"""

from __future__ import annotations

import base64
import functools
import importlib
import json
import os
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from cali_local.event_source import KinesisEventSource, LambdaContext, SqsEventSource, StreamMapping
from cali_local.firehose import FirehoseStandIn
from cali_local.fluentbit import KinesisStreamsOutput
from cali_local.lambda_runtime import EmfMetrics, lambda_logs_to, with_metrics_capture
from cali_local.lifecycle import (
    DEMO_TEAM,
    LifecycleDemo,
    StateStream,
    lifecycle_environment,
    new_signing_secret,
)
from cali_local.resources import LocalResources, ResourceNames, create_resources
from cali_local.services import LocalServices, local_services
from cali_local.slack_interactivity import SlackClient


class StageCount(BaseModel):
    stage: str
    records_in: int
    records_out: int
    detail: str = ""


class StageLatency(BaseModel):
    stage: str
    invocations: int
    p50_ms: float
    p95_ms: float
    max_ms: float


class DlqEntry(BaseModel):
    key: str
    reason: str
    events: int = 1
    error: str = ""
    preview: str = ""


class SlackMessageView(BaseModel):
    channel: str | None = None
    thread_ts: str | None = None
    text: str
    blocks: list[dict[str, Any]]
    rendered: str


class PipelineReport(BaseModel):
    environment: str
    scenario: str
    services: dict[str, str]
    stages: list[StageCount]
    conservation: dict[str, bool]
    metrics: dict[str, dict[str, float]]
    dlq: list[DlqEntry]
    dlq_by_reason: dict[str, int]
    incidents: list[dict[str, Any]]
    slack: list[SlackMessageView]
    latency: list[StageLatency]
    seconds_to_first_alert: float | None = None
    total_seconds: float = 0.0
    notes: list[str] = Field(default_factory=list)
    # `cali demo --input`: what the consumer read from the files (format -> events, level
    # source -> events, inferred level -> events)
    input_formats: dict[str, int] = Field(default_factory=dict)
    input_level_sources: dict[str, int] = Field(default_factory=dict)
    input_inferred_levels: dict[str, int] = Field(default_factory=dict)
    lifecycle: list[str] = Field(
        default_factory=list, description="What the on-call team did, and what followed"
    )


@dataclass
class PipelineOptions:
    """What to run: waves of records as Fluent Bit's kinesis_streams output sends them."""

    environment: str = "dev"
    scenario: str = "demo"
    waves: Sequence[Sequence[bytes]] = ()
    workdir: Path = Path(".cali")
    #: The demo shortens the throttle window so that a second wave shows the update that
    #: a window with repeats ends with; deployed environments use minutes.
    throttle_window_seconds: int = 900
    shards: int = 2
    #: After the last wave, deliver every record to the consumer again, as Lambda does
    #: when a batch is retried after a crash before its checkpoint: no new alert may result.
    redeliver: bool = False
    extra_env: Mapping[str, str] = field(default_factory=dict)
    #: With the local Slack sink: post in bot mode (buttons) and, after the waves, play the
    #: incident lifecycle (cali_local.lifecycle): ack, resolve, mute, escalate, regression, quiet.
    lifecycle: bool = False
    #: The first wave logged again *now* (fresh event times) for the lifecycle's regression:
    #: windows follow the lines' own time, so re-sending the same bytes is the same window.
    #: None: wave 0 as it was (a replayed file keeps its times and shows no regression).
    again: Callable[[], Sequence[bytes]] | None = None
    #: Copy the bucket's raw/ and dlq/ here at the end, for `cali archive` / `cali quality --local`.
    archive_copy: Path | None = None


def handler_environment(
    services: LocalServices, resources: LocalResources, options: PipelineOptions
) -> dict[str, str]:
    """The environment variables the stacks give the functions, pointed at local services."""
    env = {
        "AWS_ENDPOINT_URL": services.aws_endpoint_url,
        "AWS_DEFAULT_REGION": services.region,
        "AWS_REGION": services.region,
        "CALI_ENV": options.environment,
        "STATE_TABLE_NAME": resources.names.state_table,
        "DLQ_BUCKET_NAME": resources.names.bucket,
        "DLQ_PREFIX": "dlq/",
        "INCIDENTS_QUEUE_URL": resources.incidents_queue_url,
        "THROTTLE_WINDOW_SECONDS": str(options.throttle_window_seconds),
        "SLACK_WEBHOOK_URL": services.slack_webhook_url,
        "LOCAL_MILVUS_URI": services.milvus_uri,
        "INCIDENTS_OPENSEARCH_URL": services.opensearch_url,
        "OPENSEARCH_DASHBOARDS_URL": "http://localhost:5601",
        "GRAFANA_URL": "http://localhost:3000",
        "POWERTOOLS_METRICS_NAMESPACE": "CALI",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    if os.environ.get("OPENAI_BASE_URL"):
        env["LLM_BASE_URL"] = os.environ["OPENAI_BASE_URL"]
    if os.environ.get("OPENAI_MODEL"):
        env["LLM_MODEL"] = os.environ["OPENAI_MODEL"]
    for name in ("LLM_MODEL", "LLM_SELF_HOSTED", "LLM_TIMEOUT_SECONDS", "LLM_MAX_RETRIES", "LLM_PRICES"):
        if os.environ.get(name):  # scripts/offline-llm.sh env sets these for a local model
            env[name] = os.environ[name]
    env.update(options.extra_env)
    return env


ANALYZER_TIMEOUT_SECONDS = 120.0
"""The analyzer Lambda's default timeout (``stacks/config.py``)."""


def analyzer_batching() -> dict[str, Any]:
    """Timeout and batch size of the analyzer's event source, sized like production must be:
    the timeout fits one incident's worst case (``seconds_needed``: 255 s with a self-hosted
    model), and a batch holds no more incidents than fit in it, so the handler never hands
    records back (each hand-back is a receive; five of them dead-letter the incident)."""
    from incident_analyzer.handler import seconds_needed

    from cali.contracts.settings import analyzer_settings

    needed = seconds_needed(analyzer_settings())
    timeout = max(ANALYZER_TIMEOUT_SECONDS, needed)
    return {"timeout_seconds": timeout, "batch_size": max(1, min(10, int(timeout // needed)))}


def _load_handlers() -> dict[str, Any]:
    """Import the handlers after the environment is set, as Lambda's init phase does."""
    from cali.contracts import settings
    from cali.lifecycle.config import lifecycle_settings

    for cached in (settings.consumer_settings, settings.analyzer_settings, settings.knowledge_sync_settings):
        cached.cache_clear()
    lifecycle_settings.cache_clear()
    names = (
        "log_consumer",
        "log_indexer",
        "incident_analyzer",
        "knowledge_sync",
        "slack_interactions",
        "incident_lifecycle",
    )
    handlers = {}
    for name in names:
        module = importlib.import_module(f"{name}.handler")
        # A fresh execution environment: each handler composes its dependencies again from
        # the environment just set (closing what the previous run left open).
        if module.dependencies.cache_info().currsize:
            close = getattr(module.dependencies(), "close", None)
            if callable(close):
                close()
        module.dependencies.cache_clear()
        handlers[name] = module.handler
    return handlers


def put_records(kinesis: Any, stream: str, records: Iterable[bytes]) -> int:
    """Put records with the batching and retries of Fluent Bit's kinesis_streams output."""
    output = KinesisStreamsOutput(kinesis, stream)
    for data in records:
        output.add(data)
    report = output.close()
    if report.failed:
        raise RuntimeError(f"{len(report.failed)} records were refused by Kinesis: {report.failed[:3]}")
    return report.records_sent


@dataclass
class _Pump:
    firehose: FirehoseStandIn
    consumer: KinesisEventSource
    analyzer: SqsEventSource

    def settle(self) -> None:
        idle = 0
        while idle < 2:
            moved = self.firehose.poll() + self.consumer.poll() + self.analyzer.poll()
            idle = idle + 1 if moved == 0 else 0


def run_pipeline(options: PipelineOptions) -> PipelineReport:
    started = time.monotonic()
    workdir = options.workdir / f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    with local_services(workdir) as services:
        resources = create_resources(
            services.clients, ResourceNames(options.environment), shards=options.shards
        )
        notes: list[str] = []
        _apply_search_index(services, notes)
        saved_environment = dict(os.environ)
        os.environ.update(handler_environment(services, resources, options))
        if options.lifecycle and services.slack_sink is not None:
            queue = services.clients.sqs.create_queue(QueueName=f"cali-{options.environment}-lifecycle")
            secret = new_signing_secret()
            os.environ.update(lifecycle_environment(services.slack_sink, queue["QueueUrl"], secret))
        try:
            return _run(
                options=options,
                services=services,
                resources=resources,
                notes=notes,
                started=started,
                workdir=workdir,
            )
        finally:
            # The process may run other work afterwards (tests): give it back its environment.
            os.environ.clear()
            os.environ.update(saved_environment)


def _run(
    *,
    options: PipelineOptions,
    services: LocalServices,
    resources: LocalResources,
    notes: list[str],
    started: float,
    workdir: Path,
) -> PipelineReport:
    handlers = _load_handlers()
    metrics = EmfMetrics()
    with lambda_logs_to(workdir / "lambda.log") as log:
        wrapped = {name: with_metrics_capture(h, metrics, log) for name, h in handlers.items()}
        sync = wrapped["knowledge_sync"](_scheduled_event(services.region), LambdaContext("knowledge_sync"))
        notes.append(f"knowledge sync: {json.dumps(sync, default=str)}")
        pump = _Pump(
            FirehoseStandIn(
                services.clients.kinesis,
                services.clients.s3,
                services.search,
                resources.names.stream,
                resources.names.bucket,
                wrapped["log_indexer"],
                region=services.region,
            ),
            KinesisEventSource(
                services.clients.kinesis,
                services.clients.sqs,
                resources.names.stream,
                wrapped["log_consumer"],
                "log_consumer",
                on_failure_queue_url=resources.consumer_failures_queue_url,
                mapping=StreamMapping.deployed(options.environment),
                region=services.region,
            ),
            SqsEventSource(
                services.clients.sqs,
                resources.incidents_queue_url,
                wrapped["incident_analyzer"],
                "incident_analyzer",
                region=services.region,
                **analyzer_batching(),
            ),
        )
        ingest_started = time.time()
        sent = 0
        for number, wave in enumerate(options.waves):
            if number:
                # Let the throttle window of the previous wave end, so its repeats are
                # reported in one update message, as in production after N minutes.
                time.sleep(options.throttle_window_seconds + 0.5)
            sent += put_records(services.clients.kinesis, resources.names.stream, wave)
            pump.settle()
        lifecycle_lines: list[str] = []
        if options.lifecycle and services.slack_sink is not None and options.waves:
            capture = functools.partial(with_metrics_capture, metrics=metrics, log=log)
            lifecycle_lines, resent = _play_lifecycle(
                options, services, resources, pump, wrapped, capture=capture
            )
            sent += resent
        if options.redeliver:
            posted_before = len(services.slack_sink.messages) if services.slack_sink else 0
            # Counts in the report are those of the first delivery; the second only
            # has to leave no trace in Slack.
            metrics = metrics.snapshot()
            pump.consumer.rewind()
            pump.settle()
            posted_after = len(services.slack_sink.messages) if services.slack_sink else 0
            notes.append(
                f"redelivery: every Kinesis record delivered to log_consumer a second time; "
                f"Slack messages {posted_before} before, {posted_after} after"
            )
    if options.archive_copy is not None:
        from cali_local.archive import replace_with_bucket

        replace_with_bucket(services.clients.s3, resources.names.bucket, options.archive_copy)
    report = _report(
        options=options,
        services=services,
        resources=resources,
        pump=pump,
        metrics=metrics,
        sent=sent,
        ingest_started=ingest_started,
        started=started,
        notes=notes,
    )
    return report.model_copy(update={"lifecycle": lifecycle_lines})


MAX_REPLAY_WINDOW_SECONDS = 30


def _play_lifecycle(
    options: PipelineOptions,
    services: LocalServices,
    resources: LocalResources,
    pump: _Pump,
    wrapped: Mapping[str, Any],
    *,
    capture: Callable[[Any], Any],
) -> tuple[list[str], int]:
    from incident_lifecycle import handler as worker_handler

    from cali.lifecycle.config import lifecycle_settings

    def _timers(worker: Any) -> Any:
        return lambda event, _context: worker_handler.handle_records(list(event["Records"]), worker)

    assert services.slack_sink is not None

    def resend() -> int:
        # After two windows the throttle treats the fingerprints as having stopped: `new` again.
        time.sleep(2 * options.throttle_window_seconds + 0.5)
        wave = options.again() if options.again is not None else options.waves[0]
        count = put_records(services.clients.kinesis, resources.names.stream, wave)
        pump.settle()
        return count

    demo = LifecycleDemo(
        sink=services.slack_sink,
        handlers=wrapped,
        worker_queue=SqsEventSource(
            services.clients.sqs,
            os.environ["LIFECYCLE_QUEUE_URL"],
            wrapped["incident_lifecycle"],
            "incident_lifecycle",
            region=services.region,
        ),
        stream=StateStream(services.clients.dynamodb, resources.names.state_table),
        slack=SlackClient(os.environ["SLACK_SIGNING_SECRET"], team_id=DEMO_TEAM),
        region=services.region,
        make_timers=lambda clock: capture(_timers(worker_handler.compose(lifecycle_settings(), clock))),
        # A replay waits two throttle windows in real time: seconds in the generated demo,
        # 30 minutes with --input's production window.
        resend=resend if options.throttle_window_seconds <= MAX_REPLAY_WINDOW_SECONDS else None,
    )
    lines = demo.run()
    return lines, demo.resent


def _apply_search_index(services: LocalServices, notes: list[str]) -> None:
    from cali.search import index as search_index

    try:
        search_index.apply(services.search, retention_days=7)
    except search_index.IsmUnavailableError as error:
        # The in-memory server has no ISM plugin; the stack applies the same policy in AWS.
        notes.append(f"retention policy not applied locally: {error}")


def _scheduled_event(region: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:000000000000:rule/cali-knowledge-sync"],
        "detail": {},
    }


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _latency(stage: str, durations_ms: Sequence[float]) -> StageLatency:
    return StageLatency(
        stage=stage,
        invocations=len(durations_ms),
        p50_ms=round(_percentile(durations_ms, 50), 1),
        p95_ms=round(_percentile(durations_ms, 95), 1),
        max_ms=round(max(durations_ms, default=0.0), 1),
    )


def _list_objects(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [obj["Key"] for obj in page.get("Contents", [])]
    return keys


def _dlq_entries(s3: Any, bucket: str) -> list[DlqEntry]:
    entries = []
    for key in _list_objects(s3, bucket, "dlq/"):
        body = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        raw = base64.b64decode(body.get("data_base64", ""))
        entries.append(
            DlqEntry(
                key=key,
                reason=body.get("reason", "?"),
                events=int(body.get("events", 1)),
                error=str(body.get("error", ""))[:200],
                preview=raw[:80].decode("utf-8", "replace"),
            )
        )
    return entries


def _queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _incidents(search: Any) -> list[dict[str, Any]]:
    from opensearchpy.exceptions import NotFoundError

    try:
        search.indices.refresh(index="cali-incidents-*")
        hits = search.search(index="cali-incidents-*", body={"size": 200, "sort": [{"@timestamp": "asc"}]})[
            "hits"
        ]["hits"]
    except NotFoundError:  # no incident index yet simply means no incident
        return []
    return [hit["_source"] for hit in hits]


def _slack_views(services: LocalServices) -> list[SlackMessageView]:
    from cali_local.slack_text import render

    if services.slack_sink is None:
        return []
    views = []
    for message in services.slack_sink.messages:
        blocks = list(message.blocks or [])
        views.append(
            SlackMessageView(
                channel=message.channel,
                thread_ts=message.thread_ts,
                text=message.text or "",
                blocks=blocks,
                rendered=render(blocks, message.text or ""),
            )
        )
    return views


def _report(
    *,
    options: PipelineOptions,
    services: LocalServices,
    resources: LocalResources,
    pump: _Pump,
    metrics: EmfMetrics,
    sent: int,
    ingest_started: float,
    started: float,
    notes: list[str],
) -> PipelineReport:
    clients, names = services.clients, resources.names
    consumer_in = metrics.get("log_consumer", "RecordsIn")
    kept = metrics.get("log_consumer", "RecordsKept")
    filtered = metrics.get("log_consumer", "RecordsFiltered")
    invalid = metrics.get("log_consumer", "RecordsInvalid")
    control = metrics.get("log_consumer", "ControlMessagesSkipped")
    dlq = _dlq_entries(clients.s3, names.bucket)
    by_reason: Counter[str] = Counter()
    for entry in dlq:
        by_reason[entry.reason] += entry.events
    services.search.indices.refresh(index="cali-logs-*")
    indexed = int(services.search.count(index="cali-logs-*")["count"])
    firehose = pump.firehose.stats
    incidents = _incidents(services.search)
    slack = _slack_views(services)
    analyzer_in = pump.analyzer.stats.records_delivered
    incidents_dlq = _queue_depth(clients.sqs, resources.incidents_dlq_url)
    consumer_failures = _queue_depth(clients.sqs, resources.consumer_failures_queue_url)
    stages = [
        StageCount(stage="Fluent Bit records -> Kinesis", records_in=sent, records_out=sent),
        StageCount(
            stage="Firehose -> S3 raw archive",
            records_in=firehose.records_in,
            records_out=firehose.archived,
            detail=f"{firehose.archive_objects} gzip objects under raw/",
        ),
        StageCount(
            stage="Firehose -> log_indexer -> OpenSearch",
            records_in=firehose.records_in,
            records_out=indexed,
            detail=f"{firehose.failed} to opensearch-failed/ {dict(firehose.failed_reasons)}",
        ),
        StageCount(
            stage="log_consumer (validate, filter)",
            records_in=consumer_in,
            records_out=kept,
            detail=f"filtered {filtered}, invalid {invalid} -> DLQ, control messages {control}",
        ),
        StageCount(
            stage="log_consumer (fingerprint, throttle)",
            records_in=kept,
            records_out=metrics.get("log_consumer", "AlertsSent"),
            detail=(
                f"incidents opened {metrics.get('log_consumer', 'IncidentsOpened')}, "
                f"suppressed {metrics.get('log_consumer', 'AlertsSuppressed')}, "
                f"fail-open {metrics.get('log_consumer', 'AlertsFailOpen')}"
            ),
        ),
        StageCount(
            stage="incident_analyzer -> Slack",
            records_in=analyzer_in,
            records_out=metrics.get("incident_analyzer", "SlackPosted"),
            detail=(
                f"analyzed {metrics.get('incident_analyzer', 'IncidentsAnalyzed')}, "
                f"degraded {metrics.get('incident_analyzer', 'AnalysisDegraded')}, "
                f"Slack failures {metrics.get('incident_analyzer', 'SlackFailed')}, "
                f"incidents DLQ depth {incidents_dlq}"
            ),
        ),
    ]
    conservation = {
        "every record reached the consumer": consumer_in + control == sent or consumer_in == sent,
        "consumer: in = kept + filtered + invalid": consumer_in == kept + filtered + invalid,
        "every invalid record is in the DLQ with a reason": invalid == sum(e.events for e in dlq)
        and all(e.reason for e in dlq),
        "every record archived raw": firehose.archived == sent,
        "every record indexed or in opensearch-failed/": firehose.records_in
        == firehose.indexed + firehose.failed + firehose.dropped,
        "no batch sent to the consumer's on-failure queue": consumer_failures == 0,
        "no incident in the incidents DLQ": incidents_dlq == 0,
    }
    first_alert = None
    if services.slack_sink is not None and services.slack_sink.messages:
        first_alert = round(services.slack_sink.messages[0].received_at - ingest_started, 2)
    latency = [
        _latency("log_indexer (Firehose transform)", [s * 1000 for s in firehose.transform_seconds]),
        _latency("log_consumer", pump.consumer.stats.durations_ms()),
        _latency("incident_analyzer", pump.analyzer.stats.durations_ms()),
    ]
    return PipelineReport(
        environment=options.environment,
        scenario=options.scenario,
        services={
            "aws": f"{services.aws_endpoint_kind} {services.aws_endpoint_url}",
            "opensearch": f"osmem-server {services.opensearch_url}",
            "milvus": f"Milvus Lite {services.milvus_uri}",
            "slack": "local Slack sink" if services.slack_sink else "SLACK_WEBHOOK_URL",
            "llm": services.llm_description,
        },
        stages=stages,
        conservation=conservation,
        metrics=metrics.as_dict(),
        dlq=dlq,
        dlq_by_reason=dict(by_reason),
        incidents=incidents,
        slack=slack,
        latency=latency,
        seconds_to_first_alert=first_alert,
        total_seconds=round(time.monotonic() - started, 1),
        notes=notes,
    )


__all__ = ["PipelineOptions", "PipelineReport", "handler_environment", "run_pipeline"]
