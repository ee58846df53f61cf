"""A small CALI deployment for fault injection: the real handlers behind emulated triggers.

``World`` creates a fresh set of resources on the session's moto server (stream, archive
bucket, incidents queue with its DLQ, the consumer's on-failure queue, the state table,
the incidents Firehose), points the handlers' settings at them and at the Slack and LLM
stand-ins, and drives:

* ``log_consumer.handler`` through ``KinesisEventSource`` with the mapping ``cdk.json``
  deploys for ``dev`` (retries, bisect, record age, timeout, on-failure queue);
* ``incident_analyzer.handler`` through ``SqsEventSource`` (redelivery, then the DLQ).

Faults are injected at the boundaries only: ``Boundary`` wraps every boto3 client the
handlers create (``world.fault("sqs", "send_message_batch", behaviour)``) and the Slack
stand-in is told how to misbehave. Domain code is never patched.

``World.tally`` counts what a reliability review asks for: records in, records accounted
for (kept + filtered + DLQ), records in the on-failure queue, alerts expected, alerts
posted and duplicates, and prints them.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import importlib
import importlib.util
import json
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from cali_local.event_source import KinesisEventSource, LambdaContext, SqsEventSource, StreamMapping
from cali_local.openai_stub import OpenAiStub
from cali_local.resources import LocalResources, ResourceNames, create_resources
from cali_local.slack_sink import SlackSink

Behaviour = Callable[[Callable[..., Any], dict[str, Any]], Any]
REGION = "eu-west-1"
ANALYZER_TIMEOUT_SECONDS = 3.0
RETRY_VISIBILITY_SECONDS = 4
RACE_TIMEOUT_SECONDS = 30.0


_DYNAMODB_WRITES = threading.Lock()
_ATOMIC_WRITES = frozenset(
    {("dynamodb", "put_item"), ("dynamodb", "update_item"), ("dynamodb", "delete_item")}
)


class Boundary:
    """Fault rules per (service, operation), applied by every client the handlers create."""

    def __init__(self) -> None:
        self.rules: dict[tuple[str, str], Behaviour] = {}
        self.calls: Counter[tuple[str, str]] = Counter()

    def client(self, real: Any, service: str) -> Any:
        return _FaultyClient(real, service, self)


class _FaultyClient:
    def __init__(self, real: Any, service: str, boundary: Boundary) -> None:
        self._real = real
        self._service = service
        self._boundary = boundary

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        key = (self._service, name)
        if not callable(attr) or name.startswith("_") or name in {"exceptions", "meta", "get_paginator"}:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._boundary.calls[key] += 1
            enforce_aws_limits(self._service, name, kwargs)
            rule = self._boundary.rules.get(key)
            if key in _ATOMIC_WRITES:
                # DynamoDB applies a conditional write atomically; moto server checks the
                # condition and writes in two steps, so two threads could both pass it.
                with _DYNAMODB_WRITES:
                    return attr(*args, **kwargs) if rule is None else rule(attr, kwargs)
            if rule is None:
                return attr(*args, **kwargs)
            return rule(attr, kwargs)

        return call


SQS_MAX_BYTES = 262_144  # one message, and one SendMessageBatch call in total
DYNAMODB_ITEM_MAX_BYTES = 400_000


def _attribute_bytes(value: Any) -> int:
    """DynamoDB's item size: UTF-8 lengths of names and string/binary values (numbers ~21)."""
    if isinstance(value, dict) and len(value) == 1:
        ((kind, inner),) = value.items()
        if kind in {"S", "B"}:
            return len(inner.encode("utf-8") if isinstance(inner, str) else inner)
        if kind == "N":
            return 21
        if kind == "M":
            return sum(len(k.encode()) + _attribute_bytes(v) for k, v in inner.items()) + 3
        if kind == "L":
            return sum(_attribute_bytes(v) for v in inner) + 3
    return 1


def enforce_aws_limits(service: str, operation: str, kwargs: dict[str, Any]) -> None:
    """Refuse what AWS refuses and moto accepts: SQS payloads over 256 KiB (bytes, not
    characters) and DynamoDB items over 400 KB."""
    if service == "sqs" and operation == "send_message_batch":
        sizes = [len(str(e.get("MessageBody", "")).encode("utf-8")) for e in kwargs.get("Entries", [])]
        if sum(sizes) > SQS_MAX_BYTES:
            raise client_error("AWS.SimpleQueueService.BatchRequestTooLong", "SendMessageBatch", 400)
    body = str(kwargs.get("MessageBody", ""))
    if service == "sqs" and operation == "send_message" and len(body.encode("utf-8")) > SQS_MAX_BYTES:
        raise client_error("InvalidParameterValue", "SendMessage", 400)
    if service == "dynamodb" and operation == "put_item":
        item = kwargs.get("Item", {})
        if sum(len(k.encode()) + _attribute_bytes(v) for k, v in item.items()) > DYNAMODB_ITEM_MAX_BYTES:
            raise client_error("ValidationException", "PutItem", 400)


def client_error(code: str, operation: str, status: int = 500) -> Exception:
    from botocore.exceptions import ClientError

    response: Any = {
        "Error": {"Code": code, "Message": f"injected {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


def always(error: Exception) -> Behaviour:
    def behaviour(call: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        raise error

    return behaviour


def after_call(effect: Callable[[], None], *, times: int = 1) -> Behaviour:
    """Make the real call, then run ``effect`` (e.g. a crash) the first ``times`` times."""
    left = [times]

    def behaviour(call: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        result = call(**kwargs)
        if left[0] > 0:
            left[0] -= 1
            effect()
        return result

    return behaviour


def before_call(effect: Callable[[], None], *, times: int = 1) -> Behaviour:
    """Run ``effect`` instead of the call the first ``times`` times, then call through."""
    left = [times]

    def behaviour(call: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        if left[0] > 0:
            left[0] -= 1
            effect()
        return call(**kwargs)

    return behaviour


def log_line(token: str, *, level: str = "ERROR", service: str = "checkout", **extra: Any) -> bytes:
    """One app log line; ``token`` (letters only) names the alert it should raise."""
    return json.dumps(
        {
            "level": level,
            "service": service,
            "message": f"Payment backend {token} refused the charge",
            **extra,
        },
        ensure_ascii=False,  # UTF-8 on the wire, as Fluent Bit sends it
    ).encode()


def cloudwatch_record(messages: list[str], *, group: str = "/aws/lambda/orders-api") -> bytes:
    envelope = {
        "messageType": "DATA_MESSAGE",
        "owner": "000000000000",
        "logGroup": group,
        "logStream": "2026/12/03/[$LATEST]fault",
        "subscriptionFilters": ["cali"],
        "logEvents": [
            {"id": str(i), "timestamp": 1796295600000 + i, "message": m} for i, m in enumerate(messages)
        ],
    }
    return gzip.compress(json.dumps(envelope).encode())


@dataclass
class Tally:
    records_in: int
    kept_filtered: int
    dlq: int
    on_failure: int
    alerts_expected: int
    alerts_posted: int
    duplicates: int
    incidents_dlq: int
    posts: list[str] = field(default_factory=list)

    @property
    def accounted(self) -> int:
        return self.kept_filtered + self.dlq

    @property
    def lost_records(self) -> int:
        return self.records_in - self.accounted

    @property
    def lost_alerts(self) -> int:
        return self.alerts_expected - self.alerts_posted

    def line(self, name: str) -> str:
        return (
            f"[{name}] records in {self.records_in}, accounted {self.accounted} "
            f"(kept+filtered {self.kept_filtered} + DLQ {self.dlq}), on-failure queue {self.on_failure}; "
            f"alerts expected {self.alerts_expected}, posted {self.alerts_posted}, "
            f"duplicates {self.duplicates}, incidents DLQ {self.incidents_dlq}"
        )


class World:
    def __init__(
        self,
        *,
        endpoint_url: str,
        slack: SlackSink,
        llm: OpenAiStub,
        monkeypatch: pytest.MonkeyPatch,
        slack_mode: str = "webhook",
        mapping: StreamMapping | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.slack = slack
        self.boundary = Boundary()
        self.clients = _Clients(endpoint_url)
        names = ResourceNames(f"f{uuid.uuid4().hex[:10]}")
        self.resources: LocalResources = create_resources(self.clients, names, shards=1)
        self.incidents_stream = f"{names.stream}-incidents"
        self.clients.firehose.create_delivery_stream(
            DeliveryStreamName=self.incidents_stream,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::000000000000:role/firehose",
                "BucketARN": f"arn:aws:s3:::{names.bucket}",
                "Prefix": "incidents/",
            },
        )
        self.lines: dict[str, int] = {}  # Kinesis sequence number -> log lines it holds
        self.acknowledged: set[str] = set()
        variables = {
            "CALI_ENV": "fault",
            "STATE_TABLE_NAME": names.state_table,
            "DLQ_BUCKET_NAME": names.bucket,
            "DLQ_PREFIX": "dlq/",
            "INCIDENTS_QUEUE_URL": self.resources.incidents_queue_url,
            "INCIDENTS_STREAM_NAME": self.incidents_stream,
            "LLM_BASE_URL": llm.base_url,
            "OPENAI_API_KEY": "sk-local-stub",
            "EMBEDDING_PROVIDER": "openai",  # the stub serves no embeddings: analysis degrades fast
            "EMBEDDING_BASE_URL": llm.base_url,
            "LLM_MAX_RETRIES": "0",
            # Generous for a loaded machine: a slow answer must not pass for a lost one.
            "SLACK_TIMEOUT_SECONDS": "2",
            "POWERTOOLS_METRICS_NAMESPACE": "CALI",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
        }
        if slack_mode == "webhook":
            variables["SLACK_WEBHOOK_URL"] = slack.webhook_url
        else:
            variables.update(
                SLACK_BOT_TOKEN=slack.token, SLACK_CHANNEL="#alerts", SLACK_API_BASE_URL=slack.api_base_url
            )
        variables.update(env or {})
        for name in ("SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN", "SLACK_CHANNEL", "SLACK_SECRET_ARN"):
            monkeypatch.delenv(name, raising=False)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        real_client: Any = boto3.client

        def faulty_client(service_name: str, *args: Any, **kwargs: Any) -> Any:
            return self.boundary.client(real_client(service_name, *args, **kwargs), service_name)

        monkeypatch.setattr(boto3, "client", faulty_client)
        self.consumer_handler, self.analyzer_handler = _fresh_handlers()
        self.consumer = KinesisEventSource(
            self.clients.kinesis,
            self.clients.sqs,
            names.stream,
            self._consumer,
            "log_consumer",
            on_failure_queue_url=self.resources.consumer_failures_queue_url,
            mapping=mapping or StreamMapping.deployed("dev"),
            region=REGION,
        )
        # The analyzer's timeout and the queue's visibility timeout, scaled down from the
        # stack's 120 s and 6 x 120 s: a failed or crashed delivery comes back only after
        # the invocation that held it is over, as in AWS.
        self.analyzer = SqsEventSource(
            self.clients.sqs,
            self.resources.incidents_queue_url,
            self.analyzer_handler,
            "incident_analyzer",
            region=REGION,
            timeout_seconds=ANALYZER_TIMEOUT_SECONDS,
            retry_visibility_seconds=RETRY_VISIBILITY_SECONDS,
        )

    # -- input and pumping ----------------------------------------------------------------

    def put(self, *records: bytes | list[bytes]) -> None:
        """Put Kinesis records; a list is newline-joined into one record, as Fluent Bit does."""
        for record in records:
            data = b"\n".join(record) if isinstance(record, list) else record
            lines = len(record) if isinstance(record, list) else 1
            answer = self.clients.kinesis.put_record(
                StreamName=self.resources.names.stream, Data=data, PartitionKey=uuid.uuid4().hex
            )
            self.lines[answer["SequenceNumber"]] = lines

    def fault(self, service: str, operation: str, behaviour: Behaviour) -> None:
        self.boundary.rules[(service, operation)] = behaviour

    def heal(self) -> None:
        self.boundary.rules.clear()

    def _consumer(self, event: dict[str, Any], context: Any) -> Any:
        with _quiet():
            result = self.consumer_handler(event, context)
        failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        for record in event["Records"]:  # Lambda checkpoints before the first failure
            sequence = record["kinesis"]["sequenceNumber"]
            if sequence in failed:
                break
            self.acknowledged.add(sequence)
        return result

    def run(self, *, consumer: bool = True, analyzer: bool = True) -> None:
        """Pump until the stream is drained and no incident is left in flight."""
        idle = 0
        while idle < 2:
            moved = (self.consumer.poll() if consumer else 0) + (self.analyze_once() if analyzer else 0)
            if moved:
                idle = 0
            elif analyzer and self.queue_depth(self.resources.incidents_queue_url):
                time.sleep(0.2)  # a failed delivery waits out its visibility timeout
            else:
                idle += 1

    def race(self, containers: int = 2) -> None:
        """Hand the next incident to ``containers`` analyzer containers at the same time
        (SQS delivers at least once: the same message can be in two invocations at once)."""
        messages = self.clients.sqs.receive_message(
            QueueUrl=self.resources.incidents_queue_url,
            MaxNumberOfMessages=1,
            AttributeNames=["All"],
            VisibilityTimeout=RETRY_VISIBILITY_SECONDS,
        )["Messages"]
        self.analyzer.poll()  # learns the queue ARN for the event records (nothing visible now)
        event = {"Records": [self.analyzer._event_record(m) for m in messages]}
        modules = [importlib.import_module("incident_analyzer.handler")]
        modules += [_second_container() for _ in range(containers - 1)]
        for module in modules:  # warm containers: the race is between two posts, not cold starts
            module.dependencies()
        handlers = [module.handler for module in modules]
        results: list[Any] = [None] * containers

        def invoke(index: int) -> None:
            # Not the scaled-down timeout: on a loaded machine one thread may start seconds
            # after the other, and a lease that ended meanwhile would no longer model two
            # containers running at the same time.
            context = LambdaContext("incident_analyzer", timeout_seconds=RACE_TIMEOUT_SECONDS)
            try:
                results[index] = handlers[index](event, context)
            except Exception as error:  # a function error: SQS redelivers
                results[index] = error

        with _quiet():
            threads = [threading.Thread(target=invoke, args=(i,)) for i in range(containers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        self.race_results = results
        if any(isinstance(r, dict) and not r.get("batchItemFailures") for r in results):
            for message in messages:
                self.clients.sqs.delete_message(
                    QueueUrl=self.resources.incidents_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def analyze_once(self) -> int:
        with _quiet():
            return self.analyzer.poll()

    # -- accounting -----------------------------------------------------------------------

    def dlq_events(self) -> int:
        s3, bucket = self.clients.s3, self.resources.names.bucket
        total = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="dlq/"):
            for obj in page.get("Contents", []):
                body = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                total += int(body.get("events", 1))
        return total

    def dlq_objects(self) -> list[dict[str, Any]]:
        s3, bucket = self.clients.s3, self.resources.names.bucket
        keys = [
            obj["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="dlq/")
            for obj in page.get("Contents", [])
        ]
        return [json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys]

    def on_failure_records(self) -> int:
        total = 0
        sqs, url = self.clients.sqs, self.resources.consumer_failures_queue_url
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages", []
        ):
            for message in messages:
                total += json.loads(message["Body"])["KinesisBatchInfo"]["batchSize"]
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return total

    def queue_depth(self, url: str) -> int:
        attributes = self.clients.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def tally(self, name: str, expected_alerts: list[str]) -> Tally:
        posts = [m.text for m in self.slack.messages]
        per_alert = {token: sum(token in text for text in posts) for token in expected_alerts}
        dlq = self.dlq_events()
        acknowledged_lines = sum(self.lines.get(s, 0) for s in self.acknowledged)
        tally = Tally(
            records_in=sum(self.lines.values()),
            kept_filtered=acknowledged_lines - dlq,
            dlq=dlq,
            on_failure=self.on_failure_records(),
            alerts_expected=len(expected_alerts),
            alerts_posted=sum(1 for n in per_alert.values() if n > 0),
            duplicates=sum(max(0, n - 1) for n in per_alert.values()),
            incidents_dlq=self.queue_depth(self.resources.incidents_dlq_url),
            posts=posts,
        )
        print(tally.line(name))
        return tally


class _Clients:
    """The harness's own clients (never faulty), straight at the moto endpoint."""

    def __init__(self, endpoint_url: str) -> None:
        def client(name: str) -> Any:
            return boto3.client(name, endpoint_url=endpoint_url, region_name=REGION)  # type: ignore[call-overload]

        self.kinesis = client("kinesis")
        self.s3 = client("s3")
        self.sqs = client("sqs")
        self.dynamodb = client("dynamodb")
        self.firehose = client("firehose")


def _second_container() -> Any:
    """Another execution environment of the analyzer: its own module state and wiring."""

    origin = importlib.import_module("incident_analyzer.handler").__file__
    assert origin is not None
    spec = importlib.util.spec_from_file_location(f"incident_analyzer_container_{uuid.uuid4().hex}", origin)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the models' annotations through it
    spec.loader.exec_module(module)
    return module


def _fresh_handlers() -> tuple[Any, Any]:
    """Import the handlers and forget their wiring, as a cold start with these settings would."""

    from cali.contracts import settings

    for cached in (settings.consumer_settings, settings.analyzer_settings):
        cached.cache_clear()
    consumer = importlib.import_module("log_consumer.handler")
    analyzer = importlib.import_module("incident_analyzer.handler")
    consumer.dependencies.cache_clear()
    analyzer.dependencies.cache_clear()
    return consumer.handler, analyzer.handler


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Handlers print EMF metrics to stdout; keep the scenario output to the tallies."""
    with Path(os.devnull).open("w") as sink, contextlib.redirect_stdout(sink):
        yield


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
