"""The incident document and where it is recorded (OpenSearch index ``cali-incidents-YYYY-MM``).

In AWS the analyzer puts the document on the incidents Firehose stream, which delivers it
to OpenSearch (and its failed documents to S3); locally it is indexed straight into
OpenSearch with opensearch-py; tests keep it in memory. All three implement
``IncidentSink``. A failure raises ``IncidentSinkError`` so that the SQS record is
redelivered: the document is the team's history and must not be silently lost.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from cali.contracts.analysis import AnalysisResult
from cali.contracts.incident import IncidentMessage
from cali.search.index import incident_index_name

if TYPE_CHECKING:
    from mypy_boto3_firehose import FirehoseClient

SlackStatus = Literal["sent", "failed", "muted"]  # muted: held back by a mute, not posted


class IncidentDocument(BaseModel):
    """The OpenSearch incident document in ``cali-incidents-YYYY-MM`` (its mapping: docs/search.md)."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    timestamp: datetime = Field(alias="@timestamp", description="Analysis time")
    incident_id: str
    fingerprint: str
    template: str
    kind: str
    environment: str
    level: str
    services: list[str]
    hosts: list[str]
    count: int
    window_count: int
    first_seen: datetime
    last_seen: datetime
    summary: str | None = None
    root_cause: str | None = None
    confidence: str | None = None
    next_actions: list[str] = Field(default_factory=list)
    cited_ids: list[str] = Field(default_factory=list)
    degraded: bool
    degraded_reason: str | None = None
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    llm_latency_ms: float = 0.0
    analysis_latency_ms: float = 0.0
    slack_status: SlackStatus
    # Kept in _source for people reading a document (the mapping does not index them).
    similar_ids: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    llm_cached: bool = False

    @property
    def document_id(self) -> str:
        """One document per alert: redelivery of the same alert overwrites, never duplicates."""
        return f"{self.incident_id}:{self.kind}:{self.window_count}:{self.slack_status}"

    def to_source(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def build_incident_document(
    incident: IncidentMessage,
    result: AnalysisResult,
    *,
    analyzed_at: datetime,
    analysis_latency_ms: float,
    slack_status: SlackStatus,
) -> IncidentDocument:
    """``incident`` is the redacted one: the document may be read by anyone with Grafana."""
    llm, usage = result.llm, result.usage
    return IncidentDocument(
        timestamp=analyzed_at,
        incident_id=incident.incident_id,
        fingerprint=incident.fingerprint,
        template=incident.template,
        kind=incident.kind,
        environment=incident.environment,
        level=incident.level.name,
        services=incident.services,
        hosts=incident.hosts,
        count=incident.count,
        window_count=incident.window_count,
        first_seen=incident.first_seen,
        last_seen=incident.last_seen,
        summary=llm.summary if llm else None,
        root_cause=llm.probable_root_cause if llm else None,
        confidence=llm.confidence if llm else None,
        next_actions=llm.next_actions if llm else [],
        cited_ids=llm.cited_ids if llm else [],
        degraded=result.degraded,
        degraded_reason=result.degraded_reason,
        model=usage.model if usage else None,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        total_tokens=(usage.prompt_tokens + usage.completion_tokens) if usage else 0,
        cost_usd=usage.cost_usd if usage else 0.0,
        llm_latency_ms=usage.latency_ms if usage else 0.0,
        analysis_latency_ms=round(analysis_latency_ms, 1),
        slack_status=slack_status,
        similar_ids=[hit.id for hit in result.similar],
        flags=result.flags,
        llm_cached=bool(usage and usage.cached),
    )


class IncidentSinkError(RuntimeError):
    """The document could not be recorded."""


class IncidentSink(Protocol):
    def record(self, document: IncidentDocument) -> None: ...


class FirehoseIncidentSink:
    """``PutRecord`` on the incidents delivery stream (newline-delimited JSON)."""

    def __init__(self, stream_name: str, *, client: FirehoseClient) -> None:
        self.stream_name = stream_name
        self._client = client

    def record(self, document: IncidentDocument) -> None:
        data = (json.dumps(document.to_source(), separators=(",", ":")) + "\n").encode()
        try:
            self._client.put_record(DeliveryStreamName=self.stream_name, Record={"Data": data})
        except Exception as exc:  # botocore ClientError, throttling, endpoint errors
            raise IncidentSinkError(
                f"Firehose {self.stream_name} rejected the incident document: {exc}"
            ) from exc


class OpenSearchIncidentSink:
    """Local pipeline: index into the monthly index directly, keyed by ``document_id``."""

    def __init__(self, client: Any, *, refresh: bool = False) -> None:
        self._client = client  # opensearchpy.OpenSearch
        self._refresh = refresh

    @classmethod
    def connect(cls, url: str, *, refresh: bool = False) -> OpenSearchIncidentSink:
        from opensearchpy import OpenSearch

        return cls(OpenSearch(hosts=[url], timeout=10), refresh=refresh)

    def record(self, document: IncidentDocument) -> None:
        try:
            self._client.index(
                index=incident_index_name(document.timestamp),
                id=document.document_id,
                body=document.to_source(),
                refresh=self._refresh,
            )
        except Exception as exc:  # opensearchpy TransportError, ConnectionError
            raise IncidentSinkError(f"OpenSearch rejected the incident document: {exc}") from exc
