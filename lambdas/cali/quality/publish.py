"""Where the day's report goes: S3 (JSON + HTML), OpenSearch (one document per check), Slack on failure.

Every sink is a small Protocol so the job's logic is tested without AWS; the real ones are
thin boto3/opensearch-py/slack-sdk calls. A rerun of the same day overwrites the S3 objects
and the OpenSearch documents (ids are ``<env>-<day>-<check>``) and does not post to Slack
again: a marker object is created with S3's conditional write (``If-None-Match: *``)
before posting, and only the run that creates it posts.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from cali.notify.slack.message import SlackMessage
from cali.quality.report import QualityReport, quality_index_name

logger = logging.getLogger(__name__)


class ReportStore(Protocol):
    def put(self, key: str, body: bytes, content_type: str) -> str:
        """Store one object; returns its URI."""
        ...

    def create_once(self, key: str) -> bool:
        """Create an empty marker; False when it already exists."""
        ...


class DocumentIndex(Protocol):
    def index(self, index: str, documents: list[tuple[str, dict[str, Any]]]) -> int:
        """Write documents by id; returns how many were written."""
        ...


class Notifier(Protocol):
    def post(self, message: SlackMessage) -> object: ...


@dataclass(frozen=True)
class Published:
    json_uri: str
    html_uri: str
    documents: int
    slack_posted: bool


def publish(
    report: QualityReport,
    *,
    store: ReportStore,
    index: DocumentIndex | None,
    notifier: Notifier | None,
    prefix: str = "quality-reports/",
) -> Published:
    base = report.s3_prefix(prefix)
    json_uri = store.put(f"{base}report.json", report.model_dump_json(indent=2).encode(), "application/json")
    html_uri = store.put(f"{base}report.html", report.to_html().encode(), "text/html; charset=utf-8")
    documents = index.index(quality_index_name(report.day), report.opensearch_documents()) if index else 0
    posted = False
    if not report.passed and notifier is not None:
        if store.create_once(f"{base}slack-posted"):
            text = report.slack_text(report_url=html_uri)
            notifier.post(SlackMessage(text=text, blocks=[_section(text)]))
            posted = True
        else:
            logger.info("quality: Slack summary for %s already posted, not again", report.day)
    return Published(json_uri, html_uri, documents, posted)


def _section(text: str) -> dict[str, Any]:
    # Slack caps a section's text at 3000 characters.
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2990]}}


@dataclass
class S3ReportStore:
    client: Any
    bucket: str

    def put(self, key: str, body: bytes, content_type: str) -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        return f"s3://{self.bucket}/{key}"

    def create_once(self, key: str) -> bool:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"", IfNoneMatch="*")
        except self.client.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in (
                "PreconditionFailed",
                "ConditionalRequestConflict",
            ):
                return False
            raise
        return True


@dataclass
class OpenSearchIndex:
    client: Any

    def index(self, index: str, documents: list[tuple[str, dict[str, Any]]]) -> int:
        lines: list[str] = []
        for doc_id, document in documents:
            lines += [json.dumps({"index": {"_index": index, "_id": doc_id}}), json.dumps(document)]
        response = self.client.bulk(body="\n".join(lines) + "\n")
        failed = [
            item["index"] for item in response.get("items", []) if item["index"].get("status", 500) >= 300
        ]
        if failed:
            raise RuntimeError(f"OpenSearch refused {len(failed)} quality documents: {failed[0]}")
        return len(documents)
