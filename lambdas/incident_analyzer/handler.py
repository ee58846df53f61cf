"""Incident analyzer Lambda: SQS batch of incidents → analysis → Slack → incident document.

Thin on purpose: Powertools parses each record into ``IncidentMessage`` and reports
partial batch failures; ``cali.analysis.analyzer.IncidentAnalysis`` does the work. A
record fails only when its alert could not be delivered (Slack after retries, or the
incident document after Slack succeeded): SQS then redelivers it and, after the queue's
``maxReceiveCount``, moves it to the DLQ. A message that does not parse fails the same
way and ends in the DLQ with the parse error in the logs.

Settings are read once per execution environment; AWS clients, the embedder, the Milvus
connection and the OpenAI client are created on first use and reused. The embedder and
Milvus are built lazily *per call* too: when they cannot be built (Milvus unreachable at
cold start) the alert degrades and a later invocation tries again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Generic, TypeVar

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from cali.analysis.alert_state import DynamoDbAlertState
from cali.analysis.analyzer import AlertNotPostedError, AnalysisOutcome, IncidentAnalysis
from cali.analysis.embeddings import Embedder, make_embedder
from cali.analysis.incident_sink import FirehoseIncidentSink, IncidentSink, OpenSearchIncidentSink
from cali.analysis.llm.analyzer import NOT_CALLED_FOR_UPDATE, LlmAnalyzer, LlmConfig, config_for_endpoint
from cali.analysis.llm.budget import DynamoDbTokenBudget
from cali.analysis.llm.cache import DynamoDbLlmCache
from cali.analysis.llm.pricing import DEFAULT_PRICES, ModelPrice
from cali.analysis.redaction import Redactor
from cali.contracts.analysis import SimilarIncident
from cali.contracts.incident import IncidentMessage
from cali.contracts.settings import AnalyzerSettings, analyzer_settings
from cali.knowledge.relevance import RelevancePolicy, TermStats
from cali.knowledge.store import KnowledgeStore
from cali.lifecycle.alerts import AlertLifecycle
from cali.lifecycle.store import DynamoDbLifecycleStore
from cali.lifecycle.timers import AwsTimerScheduler, TimerPolicy
from cali.notify.slack.delivery import make_notifier
from cali.notify.slack.links import IncidentLinks, build_incident_links

SERVICE = "incident_analyzer"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace="CALI", service=SERVICE)
# The domain modules log through stdlib loggers under "cali": give them this JSON format
# and service name (Powertools copies only to top-level loggers, hence "cali", not a module).
copy_config_to_registered_loggers(source_logger=logger, include={"cali"})


class IncidentRecord(SqsRecordModel):
    body: Json[IncidentMessage]  # the JSON string body, parsed and validated


processor = BatchProcessor(event_type=EventType.SQS, model=IncidentRecord)


# ------------------------------------------------------------------------------- wiring

T = TypeVar("T")


class _Lazy(Generic[T]):
    """Build on first use; a failed build is retried at the next use, not cached."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None

    def get(self) -> T:
        if self._value is None:
            self._value = self._factory()
        return self._value


class LazyEmbedder:
    def __init__(self, factory: Callable[[], Embedder], *, model_name: str, dim: int) -> None:
        self._lazy = _Lazy(factory)
        self.model_name = model_name
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self._lazy.get().embed(texts)


class LazyKnowledgeStore:
    def __init__(self, factory: Callable[[], KnowledgeStore]) -> None:
        self._lazy = _Lazy(factory)

    def search(
        self,
        vector: Sequence[float],
        *,
        top_k: int,
        min_score: float,
        service: str | None = None,
        source: str | None = None,
        fingerprint: str | None = None,
    ) -> list[SimilarIncident]:
        return self._lazy.get().search(
            vector, top_k=top_k, min_score=min_score, service=service, source=source, fingerprint=fingerprint
        )

    def term_stats(self) -> TermStats:
        return self._lazy.get().term_stats()


def openai_api_key(settings: AnalyzerSettings) -> str | None:
    """From Secrets Manager in AWS; locally the usual ``OPENAI_API_KEY`` variable."""
    if not settings.openai_secret_arn:
        return os.environ.get("OPENAI_API_KEY") or None
    from aws_lambda_powertools.utilities import parameters

    try:
        secret = parameters.get_secret(settings.openai_secret_arn, transform="json", max_age=300)
    except parameters.exceptions.TransformParameterError:
        secret = None  # not JSON: same answer as a JSON of the wrong shape, below
    key = secret.get("api_key") if isinstance(secret, dict) else None
    if not isinstance(key, str) or not key.strip():
        # The LLM is optional: a bad secret degrades the analysis, it must not stop alerts.
        logger.error("the OpenAI secret must be JSON with a string 'api_key'; LLM analysis disabled")
        return None
    return key.strip()  # a pasted newline would make an invalid Authorization header


def llm_config(settings: AnalyzerSettings) -> LlmConfig:
    prices = dict(DEFAULT_PRICES)
    prices.update({model: ModelPrice(*price) for model, price in settings.llm_prices.items()})
    config = LlmConfig(
        model=settings.llm_model,
        max_tokens=settings.llm_max_tokens,
        prompt_max_tokens=settings.llm_prompt_max_tokens,
        cache_ttl_seconds=settings.llm_cache_ttl_seconds,
        prices=prices,
        review_pass=settings.llm_review_pass,
    )
    return config_for_endpoint(
        config,
        base_url=settings.llm_base_url or None,
        self_hosted=settings.llm_self_hosted,
        timeout_seconds=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
    )


def incident_sink(settings: AnalyzerSettings) -> IncidentSink:
    if settings.incidents_stream_name:
        return FirehoseIncidentSink(settings.incidents_stream_name, client=boto3.client("firehose"))
    if settings.incidents_opensearch_url:
        return OpenSearchIncidentSink.connect(settings.incidents_opensearch_url)
    raise ValueError(
        "nowhere to record incidents: set INCIDENTS_STREAM_NAME (AWS) or INCIDENTS_OPENSEARCH_URL"
    )


def links_builder(settings: AnalyzerSettings) -> Callable[[IncidentMessage], IncidentLinks]:
    dashboards = str(settings.opensearch_dashboards_url) if settings.opensearch_dashboards_url else None
    grafana = str(settings.grafana_url) if settings.grafana_url else None
    return lambda incident: build_incident_links(
        incident, opensearch_dashboards_url=dashboards, grafana_url=grafana
    )


def compose(settings: AnalyzerSettings) -> IncidentAnalysis:
    api_key = openai_api_key(settings)
    dynamodb = boto3.client("dynamodb")
    table = settings.state_table_name
    cfg = llm_config(settings)
    llm = LlmAnalyzer(
        LlmAnalyzer.create_client(cfg, api_key=api_key, base_url=settings.llm_base_url),
        cfg,
        budget=DynamoDbTokenBudget(table, settings.llm_daily_token_budget, client=dynamodb),
        cache=DynamoDbLlmCache(table, client=dynamodb),
    )
    return IncidentAnalysis(
        redactor=Redactor(settings.redaction_extra_patterns),
        embedder=LazyEmbedder(
            lambda: make_embedder(settings, api_key),
            model_name=settings.embedding_model,
            dim=settings.embedding_dim,
        ),
        knowledge=LazyKnowledgeStore(lambda: KnowledgeStore.from_settings(settings)),
        llm=llm,
        notifier=make_notifier(settings),
        sink=incident_sink(settings),
        state=DynamoDbAlertState(table, client=dynamodb),
        environment=settings.cali_env,
        links_for=links_builder(settings),
        top_k=settings.retrieval_top_k,
        relevance=RelevancePolicy(
            min_cosine=settings.retrieval_min_score,
            line_alone=settings.retrieval_line_alone,
            min_line=settings.retrieval_min_line,
            min_agreement=settings.retrieval_min_agreement,
            max_gap=settings.retrieval_max_gap,
            min_share=settings.retrieval_min_share,
        ),
        lifecycle=alert_lifecycle(settings, dynamodb),
    )


def alert_lifecycle(settings: AnalyzerSettings, dynamodb: Any) -> AlertLifecycle | None:
    """Buttons, mute/regression gating and escalation/quiet timers, when the worker queue exists."""
    if not settings.lifecycle_queue_url:
        return None
    table = settings.state_table_name
    scheduler = AwsTimerScheduler(
        table,
        settings.lifecycle_queue_url,
        dynamodb=dynamodb,
        sqs=boto3.client("sqs"),
        max_delay_seconds=settings.lifecycle_max_delay_seconds,
    )
    policy = TimerPolicy(settings.escalation, timedelta(minutes=settings.quiet_after_minutes))
    return AlertLifecycle(
        DynamoDbLifecycleStore(table, client=dynamodb), scheduler=scheduler, policy=policy, clock=utc_now
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


@cache
def dependencies() -> IncidentAnalysis:
    """One per execution environment (a failed build, e.g. no Slack config, is retried)."""
    return compose(analyzer_settings())


# ------------------------------------------------------------------------------ handler


def emit_metrics(outcome: AnalysisOutcome) -> None:
    if outcome.disposition == "muted":
        metrics.add_metric("AlertsMuted", MetricUnit.Count, 1)
        return
    result = outcome.result
    if result is None:  # resumed or duplicate delivery: nothing was analysed this time
        return
    metrics.add_metric("IncidentsAnalyzed", MetricUnit.Count, 1)
    metrics.add_metric("AnalysisLatencyMs", MetricUnit.Milliseconds, outcome.analysis_latency_ms)
    if result.degraded and result.degraded_reason != NOT_CALLED_FOR_UPDATE:
        metrics.add_metric("AnalysisDegraded", MetricUnit.Count, 1)
    usage = result.usage
    if usage is not None and not usage.cached:
        metrics.add_metric("LlmTokens", MetricUnit.Count, usage.prompt_tokens + usage.completion_tokens)
        metrics.add_metric("LlmCostUsd", MetricUnit.NoUnit, usage.cost_usd)
        metrics.add_metric("LlmLatencyMs", MetricUnit.Milliseconds, usage.latency_ms)
    metrics.add_metric(
        "SlackPosted" if outcome.disposition == "posted" else "SlackFailed", MetricUnit.Count, 1
    )


class NotEnoughTimeError(RuntimeError):
    """Too little invocation time left to analyse one more incident safely."""


class _Batch:
    records_started = 0


def seconds_needed(settings: AnalyzerSettings) -> float:
    """Time to start one more incident: one full LLM attempt plus retrieval, Slack and the sink.

    The attempt is the endpoint's own timeout (``cali.analysis.llm.endpoint``: 20 s for a
    hosted API, 240 s for a self-hosted server). Not the worst case of a hosted API (every
    retry timing out): that rarely happens and, with the default batch size and timeout,
    would hand most records back to the queue for nothing. A self-hosted endpoint has no
    retries, so there it is the worst case. The Lambda timeout must be at least this much
    (docs/analysis.md), and the SQS batch size at most timeout / this, or records handed
    back count as receives and can dead-letter.
    """
    return llm_config(settings).timeout_seconds + 15.0


def record_handler(record: IncidentRecord, lambda_context: LambdaContext | None = None) -> None:
    incident: IncidentMessage = record.body
    logger.append_keys(incident_id=incident.incident_id, fingerprint=incident.fingerprint, kind=incident.kind)
    try:
        # Better to hand a record back to SQS now than to be killed by the Lambda timeout
        # in the middle of the batch. The first record is always tried, so a timeout set
        # too low cannot starve the queue.
        if lambda_context is not None and _Batch.records_started > 0:
            remaining = lambda_context.get_remaining_time_in_millis() / 1000
            needed = seconds_needed(analyzer_settings())
            if remaining < needed:
                logger.warning(
                    "not enough time left for this incident; returning it to the queue",
                    extra={"remaining_seconds": remaining, "needed_seconds": needed},
                )
                raise NotEnoughTimeError(f"{remaining:.0f}s left, up to {needed:.0f}s needed")
        _Batch.records_started += 1
        if lambda_context is not None:  # the alert's lease ends with this invocation
            dependencies().remaining_ms = lambda_context.get_remaining_time_in_millis
        try:
            outcome = dependencies().process(incident)
        except AlertNotPostedError as exc:
            emit_metrics(exc.outcome)
            logger.exception("alert not delivered to Slack; SQS will redeliver the message")
            raise
        except Exception:
            logger.exception("incident not processed; SQS will redeliver the message")
            raise
        emit_metrics(outcome)
        result = outcome.result
        logger.info(
            "incident processed",
            extra={
                "disposition": outcome.disposition,
                "degraded_reason": result.degraded_reason if result else None,
                "flags": result.flags if result else [],
            },
        )
    finally:
        logger.remove_keys(["incident_id", "fingerprint", "kind"])


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    _Batch.records_started = 0
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
