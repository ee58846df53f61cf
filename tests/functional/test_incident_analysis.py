"""The analysis path end to end in-process: real redactor, local embedder, Milvus Lite, the
LLM through the OpenAI-compatible stub over HTTP. Only the Slack notifier is a test double
here; the handler tests drive the real notifier against the local Slack server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws
from osmem_server import OsmemServer

from cali.analysis.alert_state import AlertKey, DynamoDbAlertState
from cali.analysis.analyzer import AlertNotPostedError, IncidentAnalysis, incident_query_text
from cali.analysis.embeddings import LocalOnnxEmbedder, OpenAIEmbedder
from cali.analysis.incident_sink import (
    FirehoseIncidentSink,
    IncidentDocument,
    IncidentSinkError,
    OpenSearchIncidentSink,
    build_incident_document,
)
from cali.analysis.llm.analyzer import NOT_CALLED_FOR_UPDATE
from cali.analysis.redaction import Redactor
from cali.contracts.analysis import AnalysisResult
from cali.contracts.incident import IncidentMessage
from cali.knowledge.store import KnowledgeStore
from cali.notify.slack.delivery import SlackDeliveryError, SlackPostResult
from cali.notify.slack.links import IncidentLinks
from cali.notify.slack.message import SlackMessage
from cali_local.openai_stub import OpenAiStub, StubReply
from cali_testing.analysis import InMemoryAlertState, InMemoryIncidentSink, InMemoryTokenBudget
from tests.support.analysis_samples import POOL_MESSAGE, incident, knowledge_store, llm_analyzer

if TYPE_CHECKING:
    from tests.conftest import StateTable

# One worker runs the whole module, so its module-scoped servers start once under -n 2.
pytestmark = pytest.mark.xdist_group("test_incident_analysis")


SECRET_LINE = (
    "Order failed for alice.smith@example.com from 203.0.113.77 "
    "(db url postgres://app:S3cr3tPassw0rd@db.internal:5432/orders): " + POOL_MESSAGE
)


class RecordingNotifier:
    """Stands in for Slack (a boundary): keeps what was posted, can refuse."""

    searchable = False

    def __init__(self) -> None:
        self.posted: list[tuple[SlackMessage, str | None]] = []
        self.new_threads: list[bool] = []
        self.fail_next = 0

    def post(
        self,
        message: SlackMessage,
        *,
        thread_key: str | None = None,
        new_thread: bool = False,
        alert_id: str | None = None,
    ) -> SlackPostResult:
        if self.fail_next:
            self.fail_next -= 1
            raise SlackDeliveryError(
                "Slack answered 503 after 4 attempts",
                error="http_503",
                status=503,
                attempts=4,
                retryable=True,
            )
        self.posted.append((message, thread_key))
        self.new_threads.append(new_thread)
        return SlackPostResult(
            ts=f"1732352400.{len(self.posted):06d}", channel="C1", thread_ts=None, attempts=1
        )

    def find(self, alert_id: str, *, since: float, thread_key: str | None = None) -> SlackPostResult | None:
        return None  # like a webhook: cannot look a post up


class FlakySink(InMemoryIncidentSink):
    def __init__(self) -> None:
        super().__init__()
        self.fail_next = 0

    def record(self, document: IncidentDocument) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise IncidentSinkError("Firehose throttled the put")
        super().record(document)


@pytest.fixture(scope="module")
def embedder() -> LocalOnnxEmbedder:
    return LocalOnnxEmbedder()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, embedder: LocalOnnxEmbedder) -> Iterator[KnowledgeStore]:
    store = knowledge_store(tmp_path_factory.mktemp("milvus"), embedder)
    yield store
    store.close()


def make_analysis(
    stub: OpenAiStub,
    embedder: object,
    store: object,
    *,
    notifier: RecordingNotifier | None = None,
    sink: InMemoryIncidentSink | None = None,
    state: InMemoryAlertState | None = None,
    max_retries: int = 0,
) -> IncidentAnalysis:
    llm = llm_analyzer(stub, budget=InMemoryTokenBudget(100_000), max_retries=max_retries)
    return IncidentAnalysis(
        redactor=Redactor(),
        embedder=embedder,  # type: ignore[arg-type]
        knowledge=store,  # type: ignore[arg-type]
        llm=llm,
        notifier=notifier or RecordingNotifier(),
        sink=sink or InMemoryIncidentSink(),
        state=state or InMemoryAlertState(),
        environment="dev",
        links_for=lambda _: IncidentLinks(
            opensearch_url="https://search.example.com/_dashboards/app/discover"
        ),
    )


def _all_text(message: SlackMessage) -> str:
    return json.dumps(message.payload())


def test_incident_is_redacted_retrieved_analysed_posted_and_recorded(
    stub: OpenAiStub, embedder: LocalOnnxEmbedder, store: KnowledgeStore
) -> None:
    notifier, sink, state = RecordingNotifier(), InMemoryIncidentSink(), InMemoryAlertState()
    analysis = make_analysis(stub, embedder, store, notifier=notifier, sink=sink, state=state)
    original = incident(messages=[SECRET_LINE])

    outcome = analysis.process(original)

    assert outcome.disposition == "posted"
    result = outcome.result
    assert result is not None and result.llm is not None and result.degraded_reason is None
    assert result.similar[0].id in {"rb-db-connection-pool-exhaustion", "inc-2025-04-orders-hikari-pool"}
    assert result.llm.cited_ids == [result.similar[0].id]  # the stub cites the top hit; grounding kept it
    assert result.llm.evidence and result.flags == []

    # No original secret left the process: not to the LLM, not to Slack, not to OpenSearch.
    (request,) = stub.completion_requests
    (message, thread_key) = notifier.posted[0]
    (document,) = sink.documents
    for leaked in ("alice.smith@example.com", "203.0.113.77", "S3cr3tPassw0rd"):
        assert leaked not in json.dumps(request.body)
        assert leaked not in _all_text(message)
        assert leaked not in document.model_dump_json()
    assert "<EMAIL_1>" in json.dumps(request.body)
    assert thread_key == original.fingerprint

    assert document.slack_status == "sent" and not document.degraded
    assert document.cited_ids == result.llm.cited_ids and document.total_tokens > 0
    assert document.analysis_latency_ms > 0 and document.llm_latency_ms > 0
    source = document.to_source()
    assert source["@timestamp"] and source["level"] == "ERROR" and source["model"] == "gpt-4o-mini"
    progress = state.get(AlertKey.of(original))
    assert progress is not None and progress.recorded and progress.slack_ts == "1732352400.000001"


def test_llm_failure_still_posts_a_retrieval_only_alert(
    stub: OpenAiStub, embedder: LocalOnnxEmbedder, store: KnowledgeStore
) -> None:
    stub.script(StubReply.server_error(500), StubReply.server_error(500))  # json_schema, then json_object
    notifier, sink = RecordingNotifier(), InMemoryIncidentSink()
    analysis = make_analysis(stub, embedder, store, notifier=notifier, sink=sink)

    outcome = analysis.process(incident())

    assert outcome.disposition == "posted" and len(notifier.posted) == 1
    result = outcome.result
    assert result is not None and result.llm is None and result.similar
    assert result.degraded_reason == "LLM request failed with HTTP 500 after 0 retries"
    assert "LLM request failed with HTTP 500" in _all_text(notifier.posted[0][0])
    assert sink.documents[0].degraded and sink.documents[0].degraded_reason == result.degraded_reason


def test_milvus_down_posts_without_similar_incidents_and_without_calling_the_llm(
    stub: OpenAiStub, embedder: LocalOnnxEmbedder, tmp_path: Path
) -> None:
    broken = KnowledgeStore.connect(str(tmp_path / "gone.db"), collection="cali_test", dim=384)
    broken.close()  # the client is gone, as when the Milvus endpoint stops answering
    notifier = RecordingNotifier()
    analysis = make_analysis(stub, embedder, broken, notifier=notifier)

    outcome = analysis.process(incident())

    result = outcome.result
    assert result is not None and result.similar == [] and result.llm is None
    assert result.degraded_reason is not None
    assert result.degraded_reason.startswith("knowledge base (Milvus) unavailable")
    assert stub.completion_requests == []
    assert len(notifier.posted) == 1


def test_embedder_down_posts_a_degraded_alert(stub: OpenAiStub, store: KnowledgeStore) -> None:
    # The OpenAI embedder against a server without /embeddings: a real API failure.
    remote = OpenAIEmbedder(api_key="sk-test", dim=384, base_url=stub.base_url, max_retries=0)
    notifier = RecordingNotifier()
    analysis = make_analysis(stub, remote, store, notifier=notifier)

    outcome = analysis.process(incident())

    assert outcome.result is not None and outcome.result.degraded_reason is not None
    assert outcome.result.degraded_reason.startswith("embedder unavailable")
    assert len(notifier.posted) == 1 and stub.completion_requests == []


def test_slack_failure_fails_the_message_and_redelivery_posts_once(
    stub: OpenAiStub, embedder: LocalOnnxEmbedder, store: KnowledgeStore
) -> None:
    notifier, sink, state = RecordingNotifier(), InMemoryIncidentSink(), InMemoryAlertState()
    analysis = make_analysis(stub, embedder, store, notifier=notifier, sink=sink, state=state)
    notifier.fail_next = 1
    message = incident()

    with pytest.raises(AlertNotPostedError) as failure:
        analysis.process(message)

    assert failure.value.outcome.disposition == "failed"
    assert [d.slack_status for d in sink.documents] == ["failed"]
    assert state.get(AlertKey.of(message)) is None

    assert analysis.process(message).disposition == "posted"  # SQS redelivers
    assert len(notifier.posted) == 1
    assert [d.slack_status for d in sink.documents] == ["failed", "sent"]
    # The second analysis came from the LLM cache: the incident was paid for once.
    assert len(stub.completion_requests) == 1


def test_sink_failure_after_slack_is_retried_without_posting_twice(
    stub: OpenAiStub, embedder: LocalOnnxEmbedder, store: KnowledgeStore
) -> None:
    notifier, sink, state = RecordingNotifier(), FlakySink(), InMemoryAlertState()
    analysis = make_analysis(stub, embedder, store, notifier=notifier, sink=sink, state=state)
    sink.fail_next = 2
    message = incident()

    with pytest.raises(IncidentSinkError):
        analysis.process(message)
    with pytest.raises(IncidentSinkError):
        analysis.process(message)  # redelivered while the sink is still down
    resumed = analysis.process(message)
    again = analysis.process(message)

    assert len(notifier.posted) == 1
    assert resumed.disposition == "resumed" and again.disposition == "duplicate"
    assert len(sink.documents) == 1 and sink.documents[0].slack_status == "sent"
    assert len(stub.completion_requests) == 1


def test_update_of_the_same_incident_is_a_new_alert_in_the_same_thread(
    stub: OpenAiStub, embedder: LocalOnnxEmbedder, store: KnowledgeStore
) -> None:
    notifier = RecordingNotifier()
    analysis = make_analysis(stub, embedder, store, notifier=notifier)

    analysis.process(incident(window_count=10))
    # The rollover update names the next window: another incident id, the same fingerprint.
    analysis.process(incident(kind="update", window_count=250, incident_id="fp-next-window"))

    keys = [thread_key for _, thread_key in notifier.posted]
    assert len(keys) == 2 and keys[0] == keys[1] == incident().fingerprint
    assert notifier.new_threads == [True, False]  # `new` opens the thread, the update joins it
    assert len(stub.completion_requests) == 1  # same fingerprint and knowledge: cached answer


def test_query_text_leads_with_the_symptoms() -> None:
    text = incident_query_text(incident())
    lines = text.splitlines()
    assert lines[0] == "java.sql.SQLTransientConnectionException"
    assert lines[1].startswith("HikariPool-<*>") and POOL_MESSAGE in lines
    assert lines[-1] == "Service: checkout" and len(text) <= 1_000


# ----------------------------------------------------------------- state and sinks on AWS APIs


def _document(message: IncidentMessage | None = None) -> IncidentDocument:
    return build_incident_document(
        message or incident(),
        AnalysisResult(degraded_reason="LLM not configured (no API key and no base URL)"),
        analyzed_at=datetime(2026, 11, 23, 9, 5, tzinfo=UTC),
        analysis_latency_ms=12.3,
        slack_status="sent",
    )


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def test_dynamodb_alert_state_round_trip(state_table: StateTable) -> None:
    client = state_table.client
    state = DynamoDbAlertState(state_table.name, client=client)
    key = AlertKey.of(incident())

    assert state.get(key) is None
    state.mark_posted(key, slack_ts="1732352400.000100", document=_document())
    progress = state.get(key)
    assert progress is not None and not progress.recorded and progress.document == _document()
    state.mark_recorded(key)
    progress = state.get(key)
    assert progress is not None and progress.recorded and progress.slack_ts == "1732352400.000100"
    item = client.get_item(TableName=state_table.name, Key=DynamoDbAlertState.item_key(key))["Item"]
    assert item["pk"]["S"] == "incident#0123456789abcdef-20261123T0900"
    assert item["sk"]["S"] == "alert#new#42" and "expires_at" in item


@pytest.mark.parametrize("backend", ["dynamodb", "memory"])
def test_alert_lease_is_exclusive_expires_and_counts_unknown_attempts(
    state_table: StateTable, backend: str
) -> None:
    """Issue 11 rows 4-5: one lease per alert, ending with the invocation that took it."""
    import time

    from cali.analysis.alert_state import AlertBusyError

    state = (
        DynamoDbAlertState(state_table.name, client=state_table.client)
        if backend == "dynamodb"
        else InMemoryAlertState()
    )
    key = AlertKey.of(incident())
    first = state.claim(key, lease_ms=60_000)
    assert first is not None and first.attempts == 0
    with pytest.raises(AlertBusyError):  # a second container while the first is alive
        state.claim(key, lease_ms=60_000)
    state.release(key, first)  # Slack said no: this attempt does not count
    second = state.claim(key, lease_ms=50)
    assert second is not None and second.attempts == 0
    time.sleep(0.1)  # the holder died; its lease ended with its invocation
    third = state.claim(key, lease_ms=60_000)
    assert third is not None and third.attempts == 1  # one attempt of unknown outcome
    assert third.first_attempt_at <= second.first_attempt_at + 1
    state.mark_posted(key, slack_ts="1.2", document=_document())
    assert state.claim(key, lease_ms=60_000) is None  # posted: nothing to claim


def test_firehose_sink_puts_one_json_line(aws: None) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="archive")
    firehose = boto3.client("firehose", region_name="us-east-1")
    firehose.create_delivery_stream(
        DeliveryStreamName="cali-incidents",
        S3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": "arn:aws:s3:::archive",
        },
    )
    FirehoseIncidentSink("cali-incidents", client=firehose).record(_document())

    (obj,) = s3.list_objects_v2(Bucket="archive")["Contents"]
    body = s3.get_object(Bucket="archive", Key=obj["Key"])["Body"].read().decode()
    assert body.endswith("\n")
    doc = json.loads(body)
    assert doc["@timestamp"] == "2026-11-23T09:05:00Z" and doc["degraded"] is True
    assert doc["slack_status"] == "sent" and doc["incident_id"] == "0123456789abcdef-20261123T0900"

    with pytest.raises(IncidentSinkError, match="cali-missing"):
        FirehoseIncidentSink("cali-missing", client=firehose).record(_document())


def test_opensearch_sink_indexes_monthly_and_overwrites_on_redelivery() -> None:
    from opensearchpy import OpenSearch

    with OsmemServer.start() as server:
        client = OpenSearch(hosts=[server.url])
        sink = OpenSearchIncidentSink(client, refresh=True)
        sink.record(_document())
        sink.record(_document())  # the same alert again
        hits = client.search(index="cali-incidents-2026-11", body={"query": {"match_all": {}}})["hits"]
        assert hits["total"]["value"] == 1
        assert hits["hits"][0]["_source"]["template"].startswith("HikariPool")

    with pytest.raises(IncidentSinkError):
        OpenSearchIncidentSink.connect("http://127.0.0.1:9").record(_document())


def test_an_update_alert_never_calls_the_llm(
    stub: OpenAiStub, embedder: LocalOnnxEmbedder, store: KnowledgeStore
) -> None:
    # Slack's update message shows counts, not an analysis: it reuses a cached answer for
    # its document when there is one, and otherwise costs no LLM call.
    notifier = RecordingNotifier()
    analysis = make_analysis(stub, embedder, store, notifier=notifier)

    outcome = analysis.process(incident(kind="update", fingerprint="00000000000000aa"))

    assert outcome.disposition == "posted" and stub.completion_requests == []
    assert outcome.result is not None and outcome.result.degraded_reason == NOT_CALLED_FOR_UPDATE
