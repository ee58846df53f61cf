"""The local services behind ``make demo``: AWS endpoint, OpenSearch, Slack, Milvus Lite.

Each starts on a free loopback port and stops with the context. A service given by the
environment is used instead of starting one: ``AWS_ENDPOINT_URL`` (e.g. LocalStack),
``SLACK_WEBHOOK_URL`` (a real Slack channel), ``OPENAI_API_KEY``/``OPENAI_BASE_URL`` (a
real LLM; without them the analyzer degrades to retrieval-only summaries and says so).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3

from cali_local.slack_sink import SlackSink

DEFAULT_REGION = "us-east-1"


class NotALocalEndpointError(ValueError):
    """AWS_ENDPOINT_URL points at AWS itself, where the local pipeline must never run."""


@dataclass(frozen=True)
class AwsClients:
    kinesis: Any
    s3: Any
    sqs: Any
    dynamodb: Any

    @classmethod
    def for_endpoint(cls, endpoint_url: str, region: str) -> AwsClients:
        session = boto3.session.Session(region_name=region)

        def client(name: str) -> Any:
            return session.client(name, endpoint_url=endpoint_url)  # type: ignore[call-overload]

        return cls(client("kinesis"), client("s3"), client("sqs"), client("dynamodb"))


@dataclass(frozen=True)
class LocalServices:
    aws_endpoint_url: str
    aws_endpoint_kind: str
    region: str
    opensearch_url: str
    slack_webhook_url: str
    slack_sink: SlackSink | None
    milvus_uri: str
    llm_description: str
    clients: AwsClients
    search: Any


@contextlib.contextmanager
def local_services(workdir: Path, *, region: str = DEFAULT_REGION) -> Iterator[LocalServices]:
    from opensearchpy import OpenSearch
    from osmem_server import OsmemServer

    from cali_local.aws_endpoint import start_moto

    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        kind = "AWS_ENDPOINT_URL"
        if endpoint and "amazonaws.com" in (urlparse(endpoint).hostname or ""):
            # The local pipeline deletes and recreates the cali-dev-* resources it uses.
            raise NotALocalEndpointError(
                f"AWS_ENDPOINT_URL={endpoint} is a real AWS endpoint; the local pipeline only "
                "runs against a local one (moto, LocalStack). Deploy with `cdk deploy` instead."
            )
        if not endpoint:
            moto = start_moto()
            stack.callback(moto.stop)
            endpoint, kind = moto.url, "moto server"
        # Credentials only matter to the local endpoint, which accepts any; never real ones.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

        search_server = OsmemServer.start(japanese=False)
        stack.callback(search_server.close)

        webhook = os.environ.get("SLACK_WEBHOOK_URL", "")
        sink: SlackSink | None = None
        if not webhook:
            sink = SlackSink().start()
            stack.callback(sink.stop)
            webhook = sink.webhook_url

        if os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY"):
            llm = f"OpenAI-compatible API at {os.environ.get('OPENAI_BASE_URL') or 'api.openai.com'}"
        else:
            llm = "none configured (set OPENAI_API_KEY or OPENAI_BASE_URL): retrieval-only summaries"

        yield LocalServices(
            aws_endpoint_url=endpoint,
            aws_endpoint_kind=kind,
            region=region,
            opensearch_url=search_server.url,
            slack_webhook_url=webhook,
            slack_sink=sink,
            milvus_uri=str(workdir / "milvus.db"),
            llm_description=llm,
            clients=AwsClients.for_endpoint(endpoint, region),
            search=OpenSearch(hosts=[search_server.url], timeout=30),
        )
