"""quality_job: the daily data-quality run (EventBridge Scheduler -> this function).

Runs every check of ``cali.quality`` for one day on Athena and publishes the report (S3,
OpenSearch ``cali-quality-*``, Slack when a check fails). The event may name the day
(``{"date": "2026-12-02"}``, for a rerun); the schedule sends none, which means yesterday
(UTC), the last complete day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from cali.contracts.settings import QualityJobSettings, quality_job_settings
from cali.quality.checks import QualitySettings
from cali.quality.engines import AthenaEngine, Engine
from cali.quality.publish import DocumentIndex, Notifier, OpenSearchIndex, ReportStore, S3ReportStore, publish
from cali.quality.runner import run_quality

logger = Logger(service="quality_job")
metrics = Metrics(namespace="CALI", service="quality_job")
copy_config_to_registered_loggers(source_logger=logger, include={"cali"})


@dataclass(frozen=True)
class Dependencies:
    environment: str
    thresholds: QualitySettings
    engine: Engine
    store: ReportStore
    index: DocumentIndex | None
    notifier: Notifier | None


def _search_client(endpoint: str) -> Any:
    from opensearchpy import AWSV4SignerAuth, OpenSearch, RequestsHttpConnection

    session = boto3.Session()
    auth = AWSV4SignerAuth(session.get_credentials(), session.region_name or "us-east-1", "es")
    return OpenSearch(
        hosts=[{"host": endpoint, "port": 443}],
        http_auth=auth,
        use_ssl=True,
        verify_certs=True,
        connection_class=RequestsHttpConnection,
    )


def _notifier(settings: QualityJobSettings) -> Notifier | None:
    if not (settings.slack_secret_arn or settings.slack_webhook_url or settings.slack_bot_token):
        return None
    from cali.notify.slack.delivery import make_notifier

    return make_notifier(settings)


def compose(settings: QualityJobSettings) -> Dependencies:
    endpoint = settings.quality_opensearch_endpoint
    return Dependencies(
        environment=settings.cali_env,
        # A misspelt threshold name fails here, at init, not as a silently ignored override.
        thresholds=QualitySettings(**settings.quality_thresholds),
        engine=AthenaEngine(
            boto3.client("athena"),
            workgroup=settings.athena_workgroup,
            database=settings.athena_database,
            timeout_seconds=settings.query_timeout_seconds,
        ),
        store=S3ReportStore(boto3.client("s3"), settings.reports_bucket),
        index=OpenSearchIndex(_search_client(endpoint)) if endpoint else None,
        notifier=_notifier(settings),
    )


@cache
def dependencies() -> Dependencies:
    return compose(quality_job_settings())


def day_of(event: dict[str, Any] | None) -> date:
    requested = (event or {}).get("date")
    return date.fromisoformat(requested) if requested else (datetime.now(UTC) - timedelta(days=1)).date()


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps = dependencies()
    day = day_of(event)
    report = run_quality(deps.engine, day, environment=deps.environment, settings=deps.thresholds)
    published = publish(report, store=deps.store, index=deps.index, notifier=deps.notifier)
    metrics.add_metric("QualityChecksFailed", MetricUnit.Count, len(report.failed))
    metrics.add_metric("QualityQuerySeconds", MetricUnit.Seconds, report.query_seconds)
    summary = {
        "day": str(day),
        "passed": report.passed,
        "failed": [check.name for check in report.failed],
        "report": published.html_uri,
        "documents": published.documents,
        "slack_posted": published.slack_posted,
        "query_seconds": report.query_seconds,
    }
    logger.info("quality run finished", extra=summary)
    return summary
