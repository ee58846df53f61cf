"""The incident analyzer handler as Lambda runs it: SQS event in, batchItemFailures out.

Boundaries are emulated, everything else is real: AWS APIs by moto (DynamoDB state table,
Firehose to S3, SQS with a redrive DLQ), Slack by the local Slack server over HTTP (real
slack_sdk notifier), the LLM by the OpenAI-compatible stub over HTTP; the local embedder
and a Milvus Lite file serve retrieval.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from incident_analyzer import handler as analyzer
from moto import mock_aws

from cali.analysis.embeddings import LocalOnnxEmbedder
from cali.contracts.incident import IncidentMessage
from cali.contracts.settings import analyzer_settings
from cali_local.event_source import LambdaContext, SqsEventSource
from cali_local.openai_stub import OpenAiStub, StubReply
from cali_local.resources import create_state_table
from cali_local.slack_sink import SlackSink
from tests.support.analysis_samples import incident, knowledge_store

# One worker runs the whole module, so its module-scoped servers start once under -n 2.
pytestmark = pytest.mark.xdist_group("test_analyzer_handler")


REGION = "us-east-1"
TABLE = "cali-test-state"
STREAM = "cali-test-incidents"
BUCKET = "cali-test-archive"


class Env:
    def __init__(self, stub: OpenAiStub, slack: SlackSink) -> None:
        self.stub = stub
        self.slack = slack
        self.s3 = boto3.client("s3", region_name=REGION)
        self.firehose = boto3.client("firehose", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)

    def create_stream(self) -> None:
        self.firehose.create_delivery_stream(
            DeliveryStreamName=STREAM,
            S3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": f"arn:aws:s3:::{BUCKET}",
                "Prefix": "incidents/",
            },
        )

    def documents(self) -> list[dict[str, Any]]:
        listing = self.s3.list_objects_v2(Bucket=BUCKET, Prefix="incidents/").get("Contents", [])
        bodies = [self.s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read().decode() for o in listing]
        return [json.loads(line) for body in bodies for line in body.splitlines() if line]

    def reset(self) -> None:
        self.stub.reset()
        self.slack.clear()
        for obj in self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            self.s3.delete_object(Bucket=BUCKET, Key=obj["Key"])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    milvus_dir: Path = tmp_path_factory.mktemp("milvus")
    knowledge_store(milvus_dir, LocalOnnxEmbedder()).close()
    with (
        OpenAiStub() as stub,
        SlackSink(rate_limit_per_channel=None) as slack,
        mock_aws(),
        pytest.MonkeyPatch.context() as mp,
    ):
        for name, value in {
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "CALI_ENV": "dev",
            "STATE_TABLE_NAME": TABLE,
            "INCIDENTS_STREAM_NAME": STREAM,
            "SLACK_WEBHOOK_URL": slack.webhook_url,
            "LLM_BASE_URL": stub.base_url,
            "LLM_MAX_RETRIES": "0",
            "LLM_TIMEOUT_SECONDS": "2",
            "LOCAL_MILVUS_URI": str(milvus_dir / "milvus.db"),
            "MILVUS_COLLECTION": "cali_test",
            "GRAFANA_URL": "https://grafana.example.com",
            "POWERTOOLS_METRICS_NAMESPACE": "CALI",
        }.items():
            mp.setenv(name, value)
        mp.delenv("OPENAI_API_KEY", raising=False)
        analyzer_settings.cache_clear()
        analyzer.dependencies.cache_clear()
        e = Env(stub, slack)
        create_state_table(e.dynamodb, TABLE)
        e.s3.create_bucket(Bucket=BUCKET)
        e.create_stream()
        yield e
        analyzer.dependencies.cache_clear()
        analyzer_settings.cache_clear()


@pytest.fixture
def aws(env: Env) -> Env:
    env.reset()
    return env


def sqs_event(*bodies: str) -> dict[str, Any]:
    """Exactly what the SQS event source mapping hands to the function."""
    records = []
    for i, body in enumerate(bodies):
        records.append(
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"AQEB{uuid.uuid4().hex}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": str(1763888400000 + i),
                    "SenderId": "AROAEXAMPLE:log_consumer",
                    "ApproximateFirstReceiveTimestamp": str(1763888400100 + i),
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:cali-dev-incidents",
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def fingerprinted(n: int, **kwargs: Any) -> IncidentMessage:
    return incident(fingerprint=f"{n:016x}", **kwargs)


def emitted_metrics(output: str) -> dict[str, list[float]]:
    """Powertools writes CloudWatch EMF lines to stdout; collect every metric value."""
    values: dict[str, list[float]] = {}
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        directive = blob["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "CALI" and blob["service"] == "incident_analyzer"
        for metric in directive["Metrics"]:
            value = blob[metric["Name"]]
            values.setdefault(metric["Name"], []).extend(value if isinstance(value, list) else [value])
    return values


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    return dict(analyzer.handler(event, LambdaContext(function_name="cali-dev-incident-analyzer")))


def test_batch_reports_only_the_record_slack_refused(aws: Env, capsys: pytest.CaptureFixture[str]) -> None:
    event = sqs_event(*(fingerprinted(n).model_dump_json() for n in (1, 2, 3)))
    aws.slack.fail_next(1, status=404, body="no_service")  # the first post is refused for good

    response = invoke(event)

    first = event["Records"][0]["messageId"]
    assert response == {"batchItemFailures": [{"itemIdentifier": first}]}
    assert len(aws.slack.messages) == 2 and all(m.via == "webhook" for m in aws.slack.messages)
    docs = aws.documents()
    assert sorted(d["slack_status"] for d in docs) == ["failed", "sent", "sent"]
    assert all(d["environment"] == "dev" and d["degraded"] is False for d in docs)
    assert all(d["cited_ids"] for d in docs)  # the stub cites the top retrieved runbook

    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["IncidentsAnalyzed"] == [1, 1, 1]
    assert metrics["SlackPosted"] == [1, 1] and metrics["SlackFailed"] == [1]
    assert len(metrics["LlmTokens"]) == 3 and all(t > 0 for t in metrics["LlmTokens"])
    assert all(c > 0 for c in metrics["LlmCostUsd"])  # gpt-4o-mini is in the price table
    assert len(metrics["LlmLatencyMs"]) == 3 and len(metrics["AnalysisLatencyMs"]) == 3
    assert "AnalysisDegraded" not in metrics


def test_llm_outage_degrades_but_the_alert_is_posted(aws: Env, capsys: pytest.CaptureFixture[str]) -> None:
    aws.stub.script(StubReply.server_error(503))

    response = invoke(sqs_event(fingerprinted(10).model_dump_json()))

    assert response == {"batchItemFailures": []}
    (message,) = aws.slack.messages
    assert "HTTP 503" in json.dumps(message.blocks)
    (doc,) = aws.documents()
    assert (
        doc["degraded"] is True
        and doc["degraded_reason"] == "LLM request failed with HTTP 503 after 0 retries"
    )
    assert doc["slack_status"] == "sent" and doc["similar_ids"]
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["AnalysisDegraded"] == [1] and metrics["SlackPosted"] == [1]


def test_unparseable_messages_fail_alone(aws: Env) -> None:
    broken = fingerprinted(20).model_dump(mode="json")
    broken["kind"] = "resolved"  # not an AlertKind
    event = sqs_event("not json at all", json.dumps(broken), fingerprinted(21).model_dump_json())

    response = invoke(event)

    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert failed == [event["Records"][0]["messageId"], event["Records"][1]["messageId"]]
    assert len(aws.slack.messages) == 1


def _items(env: Env, prefix: str) -> list[dict[str, Any]]:
    return env.dynamodb.scan(
        TableName=TABLE,
        FilterExpression="begins_with(pk, :p)",
        ExpressionAttributeValues={":p": {"S": prefix}},
    )["Items"]


def test_budget_and_cache_live_in_the_state_table(aws: Env) -> None:
    cached_before = len(_items(aws, "llmcache#"))
    used_before = sum(int(i["used"]["N"]) for i in _items(aws, "budget#"))

    invoke(sqs_event(fingerprinted(30).model_dump_json()))
    invoke(sqs_event(fingerprinted(30, kind="update", window_count=99).model_dump_json()))

    assert len(aws.stub.completion_requests) == 1  # the update reused the cached answer
    assert len(_items(aws, "llmcache#")) == cached_before + 1
    used = sum(int(i["used"]["N"]) for i in _items(aws, "budget#")) - used_before
    assert 0 < used < 5_000  # reconciled to real usage, not the max_tokens reservation
    docs = sorted(aws.documents(), key=lambda d: d["window_count"])
    assert [(d["kind"], d["llm_cached"]) for d in docs] == [("new", False), ("update", True)]
    assert docs[1]["total_tokens"] == 0 and docs[1]["summary"] == docs[0]["summary"]


def _queue_with_dlq(sqs: Any, name: str) -> tuple[str, str]:
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})},
    )["QueueUrl"]
    return url, dlq_url


def test_slack_down_for_good_ends_in_the_dlq_never_lost(aws: Env) -> None:
    url, dlq_url = _queue_with_dlq(aws.sqs, "incidents-slack-down")
    body = fingerprinted(40).model_dump_json()
    aws.sqs.send_message(QueueUrl=url, MessageBody=body)
    aws.slack.fail_next(10, status=404, body="no_service")
    source = SqsEventSource(aws.sqs, url, analyzer.handler, "cali-dev-incident-analyzer")

    source.drain()

    (dead,) = aws.sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert dead["Body"] == body
    assert aws.slack.messages == []
    assert [d["slack_status"] for d in aws.documents()] == ["failed", "failed"]


@pytest.mark.filterwarnings(
    "ignore:No application metrics to publish"
)  # the resumed delivery analyses nothing
def test_redelivery_after_a_sink_failure_does_not_post_twice(aws: Env) -> None:
    url, dlq_url = _queue_with_dlq(aws.sqs, "incidents-sink-down")
    aws.sqs.send_message(QueueUrl=url, MessageBody=fingerprinted(50).model_dump_json())
    source = SqsEventSource(aws.sqs, url, analyzer.handler, "cali-dev-incident-analyzer")
    aws.firehose.delete_delivery_stream(DeliveryStreamName=STREAM)  # the incidents stream is down
    try:
        assert source.poll() == 1
    finally:
        aws.create_stream()
    assert source.stats.records_succeeded == 0 and len(aws.slack.messages) == 1

    source.drain()  # redelivered: Slack already has it, only the document is recorded

    assert source.stats.records_succeeded == 1
    assert len(aws.slack.messages) == 1
    (doc,) = aws.documents()
    assert doc["slack_status"] == "sent" and doc["fingerprint"] == f"{50:016x}"
    assert "Messages" not in aws.sqs.receive_message(QueueUrl=dlq_url)


def test_records_are_handed_back_when_the_invocation_is_nearly_out_of_time(aws: Env) -> None:
    event = sqs_event(fingerprinted(60).model_dump_json(), fingerprinted(61).model_dump_json())
    # LLM_TIMEOUT_SECONDS=2 needs 17 s per incident; 10 s left: only the first one is tried.
    context = LambdaContext(function_name="cali-dev-incident-analyzer", timeout_seconds=10)

    response = dict(analyzer.handler(event, context))

    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
    assert len(aws.slack.messages) == 1 and len(aws.stub.completion_requests) == 1


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        (json.dumps({"api_key": "sk-test-123"}), "sk-test-123"),
        (json.dumps({"api_key": "  sk-test-456\n"}), "sk-test-456"),
        ("sk-plain-string-not-json", None),
        (json.dumps(["sk-in-a-list"]), None),
        (json.dumps({"key": "sk-wrong-field"}), None),
        (json.dumps({"api_key": 42}), None),
    ],
)
def test_openai_secret_of_an_unexpected_shape_disables_the_llm_not_the_alerts(
    aws: Env, secret: str, expected: str | None
) -> None:
    # A malformed secret must degrade the analysis (no key), not fail every record at wiring.
    name = f"cali/openai-{uuid.uuid4().hex[:8]}"
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(Name=name, SecretString=secret)[
        "ARN"
    ]
    settings = analyzer_settings().model_copy(update={"openai_secret_arn": arn})
    assert analyzer.openai_api_key(settings) == expected
