"""Every OpenSearch query of the committed dashboards returns data produced by CALI itself.

What is real and what is constructed (the data the queries run over):

* Logs, real end to end: ``cali_local.loggen.generate("mixed", ...)`` writes the
  applications' log lines and runs them through the Fluent Bit emulation (the real
  configuration); its ``.data`` are the exact Kinesis record bytes. Those go, in Firehose
  transformation events, through the real ``log_indexer`` handler, and its ``Ok``
  documents are bulk-indexed into the daily ``cali-logs-*`` index of their arrival time,
  as Firehose does, on osmem-server with the real templates (``search_index.apply``).
  Two environments (prod, staging), a few malformed records (``ProcessingFailed``,
  counted, never indexed).
* Incidents, real domain code over the same records: the log consumer's
  ``BatchConsumer`` (level filter, fingerprint, aggregation, the 900 s throttle with
  its updates and surges) runs on one-minute Kinesis batches with in-memory state (the
  unit tests' boundaries), so the alerts are the ``IncidentMessage`` s the analyzer
  would receive. Each is redacted with the real ``Redactor`` and analysed by the real
  ``LlmAnalyzer`` (token budget, 30-minute answer cache, pricing) against the
  OpenAI-compatible stub over HTTP; during simulated provider outages (20 minutes of
  every hour of log time) the analyzer's client points at a closed port, so those
  analyses degrade the way they do in production ("LLM unreachable"). The document is
  built by ``build_incident_document`` and written by the local ``OpenSearchIncidentSink``.
* Constructed: retrieval is not run (no embedder or Milvus here), so ``similar`` is empty,
  as when no knowledge entry reaches the minimum score; Slack is not called: a seeded
  10 % of the alerts get ``slack_status="failed"``, the rest ``"sent"``.

Log time is simulated: the events span about 4.5 h ending about an hour ago, inside the
dashboards' default range (now-6h .. now); the start is aligned to the throttle window so
the run is the same whatever the wall clock says.

Each panel target is translated into the request the Grafana OpenSearch datasource sends
(``_msearch`` with a time-range filter, a Lucene ``query_string``, nested bucket
aggregations and metric aggregations) after Grafana-style variable interpolation, and
must return non-empty results. Variable queries (``{"find": "terms", ...}``) run the same
way.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch, helpers
from osmem_server import OsmemServer

from cali.analysis.incident_sink import OpenSearchIncidentSink, build_incident_document
from cali.analysis.llm.analyzer import LlmAnalyzer, LlmConfig
from cali.analysis.redaction import Redactor, redact_incident
from cali.contracts.incident import IncidentMessage
from cali.contracts.levels import Level
from cali.fingerprint import fingerprint
from cali.incidents.alert_queue import IdempotentAlertSender
from cali.incidents.consumer import BatchConsumer, ConsumerConfig, KinesisInput
from cali.incidents.throttle import FailOpenLimiter, Throttle, ThrottlePolicy
from cali.ingest.level_filter import LevelFilter
from cali.search import index as search_index
from cali_local.event_source import LambdaContext
from cali_local.loggen import GeneratedEvent, generate
from cali_local.openai_stub import OpenAiStub
from cali_testing.analysis import InMemoryLlmCache, InMemoryTokenBudget
from cali_testing.incidents import InMemoryAlertQueue, InMemoryPersistenceLayer, InMemoryThrottleStore
from cali_testing.ingest import InMemoryDlq

pytestmark = pytest.mark.xdist_group("dashboard_queries")  # one osmem server for the module

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = {
    p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
}
INDEX_OF_DATASOURCE = {"cali-opensearch-logs": "cali-logs-*", "cali-opensearch-incidents": "cali-incidents-*"}
NOW = datetime.now(UTC).replace(microsecond=0)
RANGE_FROM = NOW - timedelta(hours=6)  # the dashboards' default time range: now-6h .. now
INTERVAL = "5m"  # what Grafana's auto interval gives for 6 h on a typical panel width

THROTTLE_WINDOW = 900  # the deployed default
_start = NOW - timedelta(hours=5.5)
START = _start - timedelta(seconds=_start.timestamp() % THROTTLE_WINDOW)
EVENTS = 2000  # per environment
LOG_SPAN = timedelta(hours=4.5)  # mean span of the generated log time
ENVIRONMENTS = {"prod": (11, "gpt-4o-mini"), "staging": (12, "gpt-4o")}  # seed, LLM model
BAD_FRACTION = 0.01
BATCH = timedelta(seconds=60)  # one consumer invocation per minute of log time
FIREHOSE_BATCH = 500
LLM_CACHE_TTL = 1800
SLACK_FAILURE_RATE = 0.1


def _arrival(event: GeneratedEvent) -> datetime:
    return event.time + timedelta(seconds=1)  # Fluent Bit's flush interval


def _generated(environment: str, seed: int) -> list[GeneratedEvent]:
    events = list(
        generate(
            "mixed",
            seed=seed,
            count=EVENTS,
            start=START,
            environment=environment,
            events_per_second=EVENTS / LOG_SPAN.total_seconds(),
            bad_fraction=BAD_FRACTION,
        )
    )
    assert events[0].time > RANGE_FROM
    assert _arrival(events[-1]) + BATCH < NOW - timedelta(minutes=10)  # all analysed before now
    return events


# ------------------------------------------------------------------- logs: log_indexer
def indexed_log_actions(events: list[GeneratedEvent], environment: str) -> list[dict[str, Any]]:
    """Firehose: transformation events of up to 500 records through ``log_indexer``."""
    from log_indexer import handler as log_indexer

    actions: list[dict[str, Any]] = []
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CALI_ENV", environment)
        log_indexer.dependencies.cache_clear()  # CALI_ENV is read once per execution environment
        for first in range(0, len(events), FIREHOSE_BATCH):
            chunk = events[first : first + FIREHOSE_BATCH]
            event: dict[str, Any] = {
                "invocationId": f"{environment}-{first}",
                "deliveryStreamArn": "arn:aws:firehose:us-east-1:000000000000:deliverystream/cali-search",
                "region": "us-east-1",
                "records": [
                    {
                        "recordId": f"{environment}-{e.seq}",
                        "approximateArrivalTimestamp": int(_arrival(e).timestamp() * 1000),
                        "data": base64.b64encode(e.data).decode(),
                    }
                    for e in chunk
                ],
            }
            response = log_indexer.handler(event, LambdaContext(function_name="log_indexer"))
            results = response["records"]
            assert [r["recordId"] for r in results] == [r["recordId"] for r in event["records"]]
            for source, result in zip(chunk, results, strict=True):
                # Records in == out: valid ones indexed, malformed ones to the error prefix.
                assert result["result"] == ("ProcessingFailed" if source.malformed else "Ok"), source
                if result["result"] == "Ok":
                    doc = json.loads(base64.b64decode(result["data"]))
                    actions.append({"_index": search_index.log_index_name(_arrival(source)), "_source": doc})
    log_indexer.dependencies.cache_clear()
    return actions


# ------------------------------------------------------ incidents: consumer + analyzer
@dataclass
class SimClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Consumer:
    """The log consumer's domain code with in-memory state (as tests/unit/consumer_support)."""

    environment: str
    clock: SimClock
    consumer: BatchConsumer = field(init=False)

    def __post_init__(self) -> None:
        self.consumer = BatchConsumer(
            config=ConsumerConfig(environment=self.environment),
            level_filter=LevelFilter(Level.WARN),
            fingerprint=fingerprint,
            throttle=Throttle(
                InMemoryThrottleStore(), ThrottlePolicy(window_seconds=THROTTLE_WINDOW), self.clock
            ),
            sender=IdempotentAlertSender(InMemoryAlertQueue(), InMemoryPersistenceLayer(), 86_400),
            dlq=InMemoryDlq(),
            fail_open=FailOpenLimiter(30, self.clock),
        )

    def batches(self, events: list[GeneratedEvent]) -> Iterator[tuple[datetime, list[IncidentMessage]]]:
        """Per batch of one minute of arrivals: its invocation time and the alerts it sent."""
        batch_end = START + BATCH
        pending: list[GeneratedEvent] = []
        for event in [*events, None]:
            while event is None or _arrival(event) >= batch_end:
                if pending:
                    self.clock.now = batch_end
                    for e in pending:
                        self.consumer.add(
                            KinesisInput(
                                base64.b64encode(e.data).decode(),
                                f"{49590000000000000000 + e.seq}",
                                f"pk-{e.seq}",
                                "shardId-000000000000",
                                _arrival(e),
                            )
                        )
                    result = self.consumer.finish()
                    assert result.counts.conserved and not result.failed_sequence_numbers
                    yield batch_end, result.alerts
                    pending = []
                if event is None:
                    return
                batch_end += BATCH
            pending.append(event)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens: connection refused at once


def record_incidents(
    events: list[GeneratedEvent], environment: str, model: str, stub: OpenAiStub, sink: OpenSearchIncidentSink
) -> int:
    clock = SimClock(START)
    config = LlmConfig(model=model, timeout_seconds=5, max_retries=0, cache_ttl_seconds=LLM_CACHE_TTL)
    budget, cache = InMemoryTokenBudget(5_000_000, clock=clock), InMemoryLlmCache(clock=clock)
    analyzers = {
        up: LlmAnalyzer(
            LlmAnalyzer.create_client(
                config, api_key=None, base_url=stub.base_url if up else _closed_port_url()
            ),
            config,
            budget=budget,
            cache=cache,
        )
        for up in (True, False)
    }
    redactor = Redactor()
    slack = random.Random(f"slack:{environment}")
    recorded = 0
    for invoked, alerts in Consumer(environment, clock).batches(events):
        for alert in alerts:
            started = time.perf_counter()
            provider_up = (invoked - START).total_seconds() % 3600 >= 1200
            redacted = redact_incident(alert, redactor)
            result = analyzers[provider_up].analyze(redacted, [])
            latency_ms = (time.perf_counter() - started) * 1000
            document = build_incident_document(
                redacted,
                result,
                analyzed_at=invoked + timedelta(milliseconds=latency_ms + 500),  # SQS hop
                analysis_latency_ms=latency_ms,
                slack_status="failed" if slack.random() < SLACK_FAILURE_RATE else "sent",
            )
            sink.record(document)
            recorded += 1
    return recorded


@pytest.fixture(scope="module")
def client() -> Iterator[OpenSearch]:
    with OsmemServer.start() as server, OpenAiStub() as stub:
        os_client = OpenSearch(hosts=[server.url], timeout=30)
        # osmem has no ISM plugin; apply() puts the templates in place before it says so.
        with contextlib.suppress(search_index.IsmUnavailableError):
            search_index.apply(os_client, retention_days=14)
        templates = search_index.index_templates()
        log_fields = set(templates["cali-logs"]["template"]["mappings"]["properties"])
        incident_fields = set(templates["cali-incidents"]["template"]["mappings"]["properties"])
        sink = OpenSearchIncidentSink(os_client)
        incidents = 0
        for environment, (seed, model) in ENVIRONMENTS.items():
            events = _generated(environment, seed)
            actions = indexed_log_actions(events, environment)
            assert len(actions) == sum(1 for e in events if not e.malformed)
            for action in actions:
                assert set(action["_source"]) == log_fields  # the indexer follows the contract exactly
            indexed, errors = helpers.bulk(os_client, actions, raise_on_error=False)
            assert indexed == len(actions) and not errors
            incidents += record_incidents(events, environment, model, stub, sink)
        os_client.indices.refresh(index="cali-*")
        assert os_client.count(index="cali-incidents-*")["count"] == incidents > 0
        for hit in os_client.search(index="cali-incidents-*", body={"size": 1000})["hits"]["hits"]:
            assert incident_fields <= set(hit["_source"])
            assert RANGE_FROM < datetime.fromisoformat(hit["_source"]["@timestamp"]) < NOW
        yield os_client


# ------------------------------------------------------------- Grafana query translation
def interpolate(text: str, variables: dict[str, list[str]]) -> str:
    """Grafana's Lucene formatting: one value as is, several as ("a" OR "b"), All as *."""

    def value(match: re.Match[str]) -> str:
        values = variables[match.group(1)]
        if values == ["*"]:
            return "*"
        if len(values) == 1:
            return re.sub(r'([+\-=&|><!(){}\[\]^"~*?:\\/ ])', r"\\\1", values[0])
        return "(" + " OR ".join(f'"{v}"' for v in values) + ")"

    return re.sub(r"\$(\w+)", value, text)


def _time_filter() -> dict[str, Any]:
    return {
        "range": {
            "@timestamp": {
                "gte": int(RANGE_FROM.timestamp() * 1000),
                "lte": int(NOW.timestamp() * 1000),
                "format": "epoch_millis",
            }
        }
    }


def _metric_aggs(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    aggs: dict[str, Any] = {}
    for metric in metrics:
        kind = metric["type"]
        if kind == "count":
            continue
        if kind in ("avg", "sum", "max", "min"):
            aggs[metric["id"]] = {kind: {"field": metric["field"]}}
        elif kind == "cardinality":
            aggs[metric["id"]] = {"cardinality": {"field": metric["field"]}}
        elif kind == "percentiles":
            percents = [float(p) for p in metric["settings"]["percents"]]
            aggs[metric["id"]] = {"percentiles": {"field": metric["field"], "percents": percents}}
        else:
            raise AssertionError(f"metric type {kind} has no translation: add one")
    return aggs


def _bucket_agg(agg: dict[str, Any]) -> dict[str, Any]:
    settings = agg.get("settings", {})
    if agg["type"] == "date_histogram":
        interval = settings.get("interval", "auto")
        return {
            "date_histogram": {
                "field": agg["field"],
                "fixed_interval": INTERVAL if interval == "auto" else interval,
                "min_doc_count": int(settings.get("min_doc_count", 0)),
                "extended_bounds": {
                    "min": int(RANGE_FROM.timestamp() * 1000),
                    "max": int(NOW.timestamp() * 1000),
                },
                "format": "epoch_millis",
            }
        }
    if agg["type"] == "terms":
        order_by = settings.get("orderBy", "_count")
        return {
            "terms": {
                "field": agg["field"],
                "size": int(settings.get("size", 10)),
                "order": {order_by: settings.get("order", "desc")},
                "min_doc_count": int(settings.get("min_doc_count", 1)),
            }
        }
    raise AssertionError(f"bucket aggregation {agg['type']} has no translation: add one")


def build_request(target: dict[str, Any], variables: dict[str, list[str]]) -> dict[str, Any]:
    """The search body the OpenSearch datasource's backend builds for one panel target.

    Mirrors grafana/opensearch-datasource pkg/opensearch/lucene_handler.go, including its
    validation: only raw data/document queries may have no bucket aggregation.
    """
    query = interpolate(target.get("query") or "*", variables)
    body: dict[str, Any] = {
        "size": 0,
        "query": {
            "bool": {"filter": [_time_filter(), {"query_string": {"analyze_wildcard": True, "query": query}}]}
        },
    }
    metrics = target["metrics"]
    first = metrics[0]["type"]
    if not target["bucketAggs"] and first not in ("raw_data", "raw_document"):
        raise AssertionError("the plugin rejects this: invalid query, missing metrics and aggregations")
    settings = metrics[0].get("settings", {})
    if first in ("raw_data", "raw_document"):
        assert settings.get("order") in ("asc", "desc"), "raw data needs settings.order"
        body["size"] = int(settings.get("size", 500))
        body["sort"] = [
            {"@timestamp": {"order": settings["order"], "unmapped_type": "boolean"}},
            {"_doc": {"order": settings["order"]}},
        ]
        return body
    if first == "logs":
        body["size"] = int(settings.get("size", 500))  # the plugin reads size, not limit
        body["sort"] = [
            {"@timestamp": {"order": "desc", "unmapped_type": "boolean"}},
            {"_doc": {"order": "desc"}},
        ]
        body["aggs"] = {"1": _bucket_agg({"type": "date_histogram", "field": "@timestamp", "settings": {}})}
        return body
    aggs: dict[str, Any] = {}
    cursor = aggs
    for agg in target["bucketAggs"]:
        cursor[agg["id"]] = _bucket_agg(agg)
        cursor[agg["id"]]["aggs"] = {}
        cursor = cursor[agg["id"]]["aggs"]
    cursor.update(_metric_aggs(metrics))
    body["aggs"] = aggs
    return body


def msearch(client: OpenSearch, index: str, body: dict[str, Any]) -> dict[str, Any]:
    header = {"index": index, "ignore_unavailable": True, "search_type": "query_then_fetch"}
    payload = json.dumps(header) + "\n" + json.dumps(body) + "\n"
    response = client.transport.perform_request("POST", "/_msearch", body=payload)
    (result,) = response["responses"]
    assert "error" not in result, result
    return dict(result)


def _has_values(aggs: dict[str, Any], metric_ids: set[str]) -> bool:
    """True when some leaf bucket has documents and every requested metric a value."""
    for key, agg in aggs.items():
        if not isinstance(agg, dict) or "buckets" not in agg:
            continue
        buckets = agg["buckets"]
        for bucket in buckets.values() if isinstance(buckets, dict) else buckets:
            nested = {k: v for k, v in bucket.items() if isinstance(v, dict) and "buckets" in v}
            if nested:
                if _has_values(nested, metric_ids):
                    return True
            elif bucket["doc_count"] > 0 and all(_metric_value(bucket[m]) is not None for m in metric_ids):
                return True
        del key
    return False


def _metric_value(agg: dict[str, Any]) -> Any:
    return agg.get("value", next(iter(agg.get("values", {}).values()), None))


def _epoch_ms(timestamp: str) -> int:
    return (datetime.fromisoformat(timestamp) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def run_target(client: OpenSearch, target: dict[str, Any], variables: dict[str, list[str]]) -> dict[str, Any]:
    body = build_request(target, variables)
    result = msearch(client, INDEX_OF_DATASOURCE[target["datasource"]["uid"]], body)
    metric_ids = {m["id"] for m in target["metrics"] if m["type"] not in ("count", "logs", "raw_data")}
    first = target["metrics"][0]["type"]
    if first in ("logs", "raw_data"):
        hits = result["hits"]["hits"]
        assert hits, "no documents"
        assert len(hits) <= int(target["metrics"][0]["settings"]["size"])
        # A `date` field keeps milliseconds: documents within one millisecond tie (the
        # analyzer's timestamps have microseconds), so compare at the precision sorted on.
        times = [_epoch_ms(hit["_source"]["@timestamp"]) for hit in hits]
        assert times == sorted(times, reverse=True), "newest first"
    else:
        assert _has_values(result["aggregations"], metric_ids), json.dumps(result)[:2000]
    return result


def variable_values(
    client: OpenSearch, variable: dict[str, Any], variables: dict[str, list[str]]
) -> list[str]:
    """The values a {"find": "terms"} variable query lists (terms aggregation over the time range)."""
    query = json.loads(variable["query"])  # the plugin JSON.parses the variable query
    body = {
        "size": 0,
        "query": {
            "bool": {
                "filter": [
                    _time_filter(),
                    {
                        "query_string": {
                            "analyze_wildcard": True,
                            "query": interpolate(query.get("query", "*"), variables),
                        }
                    },
                ]
            }
        },
        "aggs": {
            "1": {
                "terms": {"field": query["field"], "size": query.get("size", 500), "order": {"_key": "asc"}}
            }
        },
    }
    result = msearch(client, INDEX_OF_DATASOURCE[variable["datasource"]["uid"]], body)
    return [str(b["key"]) for b in result["aggregations"]["1"]["buckets"]]


def opensearch_targets(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for panel in dashboard["panels"]:
        for inner in panel.get("panels", [panel]):
            for target in inner.get("targets", []):
                if target["datasource"]["uid"] in INDEX_OF_DATASOURCE:
                    found.append((f"{inner['title']} [{target['refId']}]", target))
    return found


OPENSEARCH_DASHBOARDS = [name for name, board in DASHBOARDS.items() if opensearch_targets(board)]


@pytest.mark.parametrize("name", OPENSEARCH_DASHBOARDS)
def test_every_panel_query_returns_data_with_all_values(client: OpenSearch, name: str) -> None:
    board = DASHBOARDS[name]
    variables = {v["name"]: ["*"] for v in board["templating"]["list"]}
    for title, target in opensearch_targets(board):
        try:
            run_target(client, target, variables)
        except AssertionError as error:
            raise AssertionError(f"{name}: panel {title}: {error}") from error


@pytest.mark.parametrize("name", OPENSEARCH_DASHBOARDS)
def test_variable_queries_and_panels_with_selected_values(client: OpenSearch, name: str) -> None:
    """Pick values the way a user does, variable by variable (each narrows the next)."""
    board = DASHBOARDS[name]
    variables: dict[str, list[str]] = {v["name"]: ["*"] for v in board["templating"]["list"]}
    for variable in board["templating"]["list"]:
        if variable["datasource"]["uid"] not in INDEX_OF_DATASOURCE:
            continue  # CloudWatch dimension variables: no AWS account here
        values = variable_values(client, variable, variables)
        assert values, f"variable {variable['name']} lists nothing"
        if variable["name"] == "level":
            assert {"ERROR", "INFO"} <= set(values)  # the error panels need ERROR selected
            variables["level"] = ["ERROR", "FATAL", "INFO"]
        elif variable["name"] == "service":
            variables["service"] = values[:2]  # multi-value selection
        else:
            variables[variable["name"]] = [values[0]]
    for title, target in opensearch_targets(board):
        try:
            run_target(client, target, variables)
        except AssertionError as error:
            raise AssertionError(f"{name}: panel {title} with {variables}: {error}") from error


def test_translation_rejects_what_the_plugin_rejects(client: OpenSearch) -> None:
    target = {
        "datasource": {"uid": "cali-opensearch-logs"},
        "query": "level:ERROR",
        "metrics": [{"id": "1", "type": "cardinality", "field": "service"}],
        "bucketAggs": [],
    }
    with pytest.raises(AssertionError, match="missing metrics and aggregations"):
        run_target(client, target, {})


def test_translation_catches_a_wrong_field(client: OpenSearch) -> None:
    # A panel on a field that is not in the mapping must fail, or the tests above prove nothing.
    target = {
        "datasource": {"uid": "cali-opensearch-logs"},
        "query": "level:ERROR",
        "metrics": [{"id": "1", "type": "count"}],
        "bucketAggs": [{"id": "2", "type": "terms", "field": "servce", "settings": {}}],
    }
    with pytest.raises(AssertionError):
        run_target(client, target, {})


def test_templates_shape_the_stored_documents(client: OpenSearch) -> None:
    mapping = client.indices.get_mapping(index="cali-logs-*")
    for index in mapping.values():
        props = index["mappings"]["properties"]
        assert props["message"]["fields"]["keyword"]["ignore_above"] == 1024
        assert props["fields"]["enabled"] is False
    incidents = client.indices.get_mapping(index="cali-incidents-*")
    for index in incidents.values():
        assert index["mappings"]["properties"]["degraded"]["type"] == "boolean"
    # `fields` is kept in _source but not searchable: arbitrary keys cannot blow up the mapping.
    stored = client.search(index="cali-logs-*", body={"size": 1})["hits"]["hits"][0]["_source"]
    cluster = stored["fields"]["cluster"]  # the Fluent Bit config adds it to every record
    assert cluster == "cali-local"
    assert (
        client.count(index="cali-logs-*", body={"query": {"term": {"fields.cluster": cluster}}})["count"] == 0
    )
    assert (
        client.count(index="cali-logs-*", body={"query": {"term": {"service": stored["service"]}}})["count"]
        > 0
    )
