"""quality_job: the daily data-quality run (EventBridge Scheduler -> this function).

Runs every check of ``cali.quality`` for one day on Athena and publishes the report. The
event may name the day (``{"date": "2026-12-02"}``, for a rerun); the schedule sends none,
which means yesterday (UTC), the last complete day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from pydantic import Field

from cali.contracts.settings import AnalyzerSettings
from cali.quality.engines import AthenaEngine
from cali.quality.publish import OpenSearchIndex, S3ReportStore, publish
from cali.quality.runner import run_quality

logger = Logger(service="quality_job")


class QualityJobSettings(AnalyzerSettings):
    athena_workgroup: str = Field("cali-local", description="Athena workgroup (results, scan limit)")
    athena_database: str = Field("cali_local", description="Glue database with raw_lines, dlq_entries")
    reports_bucket: str = Field("cali-local-results", description="Bucket for report.json / report.html")
    quality_opensearch_endpoint: str = Field("", description="OpenSearch domain endpoint; empty: skip")
    query_timeout_seconds: float = Field(600.0, gt=0, description="Longest wait for the queries")


@lru_cache(maxsize=1)
def settings() -> QualityJobSettings:
    return QualityJobSettings()


def _search_client(endpoint: str) -> Any:
    from opensearchpy import AWSV4SignerAuth, OpenSearch, RequestsHttpConnection

    session = boto3.Session()
    credentials = session.get_credentials()
    auth = AWSV4SignerAuth(credentials, session.region_name or "us-east-1", "es")
    return OpenSearch(
        hosts=[{"host": endpoint, "port": 443}],
        http_auth=auth,
        use_ssl=True,
        connection_class=RequestsHttpConnection,
    )


def _notifier(config: QualityJobSettings) -> Any:
    if not (config.slack_secret_arn or config.slack_webhook_url or config.slack_bot_token):
        return None
    from cali.notify.slack.delivery import make_notifier

    return make_notifier(config)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    config = settings()
    requested = (event or {}).get("date")
    day = date.fromisoformat(requested) if requested else (datetime.now(UTC) - timedelta(days=1)).date()
    engine = AthenaEngine(
        boto3.client("athena"),
        workgroup=config.athena_workgroup,
        database=config.athena_database,
        timeout_seconds=config.query_timeout_seconds,
    )
    report = run_quality(engine, day, environment=config.cali_env)
    endpoint = config.quality_opensearch_endpoint
    published = publish(
        report,
        store=S3ReportStore(boto3.client("s3"), config.reports_bucket),
        index=OpenSearchIndex(_search_client(endpoint)) if endpoint else None,
        notifier=_notifier(config),
    )
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
