"""Publishing the day's report: S3 objects, one OpenSearch document per check, Slack only on
failure and only once per day; the quality_job handler end to end on moto S3."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cali.contracts.settings import quality_job_settings
from cali.notify.slack.message import SlackMessage
from cali.quality.engines import DuckDbEngine
from cali.quality.publish import S3ReportStore, publish
from cali.quality.report import QualityReport, quality_index_name
from cali.quality.runner import run_quality
from tests.support import quality_support as qs


class RecordingIndex:
    def __init__(self) -> None:
        self.documents: dict[tuple[str, str], dict[str, Any]] = {}

    def index(self, index: str, documents: list[tuple[str, dict[str, Any]]]) -> int:
        for doc_id, document in documents:
            self.documents[(index, doc_id)] = document
        return len(documents)


class RecordingSlack:
    def __init__(self) -> None:
        self.messages: list[SlackMessage] = []

    def post(self, message: SlackMessage) -> object:
        self.messages.append(message)
        return None


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, QualityReport]:
    good = qs.Week(tmp_path_factory.mktemp("good")).write().root
    bad = qs.Week(tmp_path_factory.mktemp("bad"), today_edits=[qs.only("billing", qs.silent)]).write().root
    return {
        "good": run_quality(DuckDbEngine(good), qs.DAY, environment="prod"),
        "bad": run_quality(DuckDbEngine(bad), qs.DAY, environment="prod"),
    }


@pytest.fixture
def bucket() -> Iterator[Any]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket="results", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield s3


def test_passing_day_is_stored_and_indexed_without_slack(
    reports: dict[str, QualityReport], bucket: Any
) -> None:
    index, slack = RecordingIndex(), RecordingSlack()
    published = publish(reports["good"], store=S3ReportStore(bucket, "results"), index=index, notifier=slack)
    assert published.json_uri == "s3://results/quality-reports/prod/2026/12/03/report.json"
    stored = json.loads(
        bucket.get_object(Bucket="results", Key="quality-reports/prod/2026/12/03/report.json")["Body"].read()
    )
    assert QualityReport.model_validate(stored).passed
    html = bucket.get_object(Bucket="results", Key="quality-reports/prod/2026/12/03/report.html")
    assert html["ContentType"].startswith("text/html")
    assert len(index.documents) == 8 and all(key[0] == "cali-quality-2026-12" for key in index.documents)
    assert slack.messages == [] and not published.slack_posted


def test_failing_day_posts_one_summary_even_when_rerun(
    reports: dict[str, QualityReport], bucket: Any
) -> None:
    index, slack = RecordingIndex(), RecordingSlack()
    store = S3ReportStore(bucket, "results")
    first = publish(reports["bad"], store=store, index=index, notifier=slack)
    second = publish(reports["bad"], store=store, index=index, notifier=slack)
    assert first.slack_posted and not second.slack_posted
    (message,) = slack.messages
    assert "volume" in message.text and "billing" in message.text
    assert "s3://results/quality-reports/prod/2026/12/03/report.html" in message.text
    # A rerun overwrites the documents (same ids), it does not add eight more.
    assert len(index.documents) == 8
    volume = index.documents[(quality_index_name(date(2026, 12, 3)), "prod-2026-12-03-volume")]
    assert volume["passed"] is False and volume["status"] == "fail" and volume["unexpected_count"] == 3


def test_documents_match_the_index_template(reports: dict[str, QualityReport]) -> None:
    from cali.search import index as search_index

    mapping = search_index.index_templates()[search_index.QUALITY_TEMPLATE]["template"]["mappings"]
    for _doc_id, document in reports["bad"].opensearch_documents():
        assert set(document) == set(mapping["properties"])


def test_html_escapes_what_producers_wrote(tmp_path: Path) -> None:
    def evil(service: str, lines: list[qs.Line]) -> list[qs.Line]:
        return (
            [*lines, dict(lines[0], level=50, msg="<script>alert(1)</script> broke")]
            if service == "orders"
            else lines
        )

    evil_edits: list[Callable[[str, list[qs.Line]], list[qs.Line]]] = [evil]
    qs.Week(tmp_path, today_edits=evil_edits).write()
    page = run_quality(DuckDbEngine(tmp_path), qs.DAY, environment="t").to_html()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_handler_runs_on_athena_and_publishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bucket: Any
) -> None:
    """quality_job's handler with the Athena API double (answering from the same archive)."""
    from quality_job import handler as job

    qs.Week(tmp_path, today_edits=[qs.only("billing", qs.silent)]).write()
    fake = qs.FakeAthena(DuckDbEngine(tmp_path).connection())
    real_client = boto3.client

    def client(name: str, *args: Any, **kwargs: Any) -> Any:
        assert name in ("athena", "s3")
        return fake if name == "athena" else real_client("s3", region_name="eu-west-1")

    monkeypatch.setattr("quality_job.handler.boto3.client", client)
    monkeypatch.setattr("cali.quality.engines.AthenaEngine.poll_seconds", 0.0)
    for name, value in {
        "CALI_ENV": "prod",
        "REPORTS_BUCKET": "results",
        "ATHENA_WORKGROUP": "cali-prod",
        "QUALITY_THRESHOLDS": '{"spike_ratio": 2.5}',
    }.items():
        monkeypatch.setenv(name, value)
    # A new execution environment: settings and dependencies built from this environment.
    quality_job_settings.cache_clear()
    job.dependencies.cache_clear()
    try:
        summary = job.handler({"date": "2026-12-03"}, _Context())
        thresholds = job.dependencies().thresholds
    finally:
        quality_job_settings.cache_clear()
        job.dependencies.cache_clear()
    assert summary["passed"] is False and summary["failed"] == ["volume"]
    assert summary["report"] == "s3://results/quality-reports/prod/2026/12/03/report.html"
    assert summary["slack_posted"] is False  # no Slack configured: nothing to post to
    assert thresholds.spike_ratio == 2.5  # QUALITY_THRESHOLDS overrides one default
    assert len(fake.received) == 8 and all(
        "FROM raw_lines" in q or "FROM dlq_entries" in q for q in fake.received
    )


class _Context:
    function_name = "quality_job"
    memory_limit_in_mb = 2048
    invoked_function_arn = "arn:aws:lambda:eu-west-1:000000000000:function:quality_job"
    aws_request_id = "req-1"


def test_a_misspelt_threshold_fails_at_init() -> None:
    from pydantic import ValidationError
    from quality_job import handler as job

    from cali.contracts.settings import QualityJobSettings

    with pytest.raises(ValidationError, match="max_dlq_shares"):
        job.compose(QualityJobSettings(quality_thresholds={"max_dlq_shares": 0.1}))
