"""Every OpenSearch query of the committed dashboards returns data from CALI documents.

An in-memory OpenSearch-compatible server (osmem-server) gets the real index templates via
``search_index.apply``, then a few thousand log and incident documents following the
document contracts. Each panel target is translated into the request the Grafana
OpenSearch datasource sends (``_msearch`` with a time-range filter, a Lucene
``query_string``, nested bucket aggregations and metric aggregations) after Grafana-style
variable interpolation, and must return non-empty results. Variable queries
(``{"find": "terms", ...}``) run the same way.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch, helpers
from osmem_server import OsmemServer

from cali import search_index
from cali.fingerprint import fingerprint

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = {
    p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
}
INDEX_OF_DATASOURCE = {"cali-opensearch-logs": "cali-logs-*", "cali-opensearch-incidents": "cali-incidents-*"}
NOW = datetime.now(UTC).replace(microsecond=0)
RANGE_FROM = NOW - timedelta(hours=6)  # the dashboards' default time range: now-6h .. now
INTERVAL = "5m"  # what Grafana's auto interval gives for 6 h on a typical panel width

SERVICES = ["checkout", "payments", "inventory", "auth", "search", "notifications"]
ENVIRONMENTS = ["prod", "staging"]
LEVEL_WEIGHTS = {"DEBUG": 8, "INFO": 70, "WARN": 12, "ERROR": 9, "FATAL": 1}
INFO_MESSAGES = [
    "GET /api/v1/orders/{n} 200 in {ms} ms",
    "user {user} logged in from 10.0.{a}.{b}",
    "cache refreshed: {n} keys in {ms} ms",
    "published event order.created id={uuid}",
]
WARN_MESSAGES = [
    "slow query on orders took {ms} ms",
    "retrying request to inventory (attempt {a} of 3)",
    "connection pool at {a}0% capacity",
]
ERRORS = [
    ("Payment {n} failed: card declined by issuer", "com.acme.pay.CardDeclinedException"),
    ("Timeout after {ms} ms calling inventory-service", "java.net.SocketTimeoutException"),
    ("could not acquire lock order-{n}", None),
    ("NullPointerException while building invoice {n}", "java.lang.NullPointerException"),
    ("database connection refused: postgres-{a}.internal:5432", "org.postgresql.util.PSQLException"),
]
DEGRADED_REASONS = ["llm_timeout", "token_budget_exhausted", "invalid_llm_output", "milvus_unavailable"]


def _fill(template: str, rng: random.Random) -> str:
    return template.format(
        n=rng.randint(1000, 99999),
        ms=rng.randint(5, 9000),
        user=f"user{rng.randint(1, 500)}",
        a=rng.randint(1, 9),
        b=rng.randint(1, 254),
        uuid=f"{rng.getrandbits(64):016x}",
    )


def _stack(exception: str, rng: random.Random) -> str:
    frames = [
        f"    at com.acme.{rng.choice(['svc', 'core', 'db'])}.Worker.run(Worker.java:{rng.randint(10, 400)})"
        for _ in range(rng.randint(2, 6))
    ]
    return f"{exception}: failure\n" + "\n".join(frames)


def log_documents(count: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    """Log documents as the log_indexer builds them (see the contract in docs/dashboards.md)."""
    levels, weights = zip(*LEVEL_WEIGHTS.items(), strict=True)
    for _ in range(count):
        ts = RANGE_FROM + timedelta(seconds=rng.uniform(60, 6 * 3600 - 60))
        level = rng.choices(levels, weights)[0]
        service = rng.choice(SERVICES)
        stack_trace = exception_type = None
        if level in ("ERROR", "FATAL"):
            template, exception_type = rng.choice(ERRORS)
            message = _fill(template, rng)
            stack_trace = _stack(exception_type, rng) if exception_type else None
        else:
            message = _fill(rng.choice(WARN_MESSAGES if level == "WARN" else INFO_MESSAGES), rng)
        fp = fingerprint(message, stack_trace)
        pod = f"{service}-{rng.getrandbits(20):05x}"
        yield {
            "@timestamp": ts.isoformat().replace("+00:00", "Z"),
            "level": level,
            "service": service,
            "environment": rng.choice(ENVIRONMENTS),
            "message": message,
            "fingerprint": fp.id,
            "template": fp.template,
            "exception_type": fp.exception_type or exception_type,
            "stack_trace": stack_trace,
            "trace_id": f"{rng.getrandbits(128):032x}",
            "request_id": f"req-{rng.getrandbits(32):08x}",
            "host": f"ip-10-0-{rng.randint(0, 3)}-{rng.randint(1, 254)}",
            "pod": pod,
            "container": service,
            "namespace": "shop",
            "logger": f"com.acme.{service}.Handler",
            "fields": {"thread": f"worker-{rng.randint(1, 16)}", "http": {"status": 500}},
        }


def incident_documents(count: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    """Incident documents as the analyzer writes them to cali-incidents."""
    for i in range(count):
        ts = RANGE_FROM + timedelta(seconds=rng.uniform(120, 6 * 3600 - 60))
        template, exception_type = rng.choice(ERRORS)
        message = _fill(template, rng)
        fp = fingerprint(message)
        degraded = rng.random() < 0.2
        prompt, completion = rng.randint(600, 2500), rng.randint(80, 400)
        services = rng.sample(SERVICES, rng.choice([1, 1, 2]))
        llm_ms = 0.0 if degraded else rng.uniform(800, 9000)
        yield {
            "@timestamp": ts.isoformat().replace("+00:00", "Z"),
            "incident_id": f"inc-{i:05d}",
            "fingerprint": fp.id,
            "template": fp.template,
            "kind": rng.choice(["new", "surge", "recurring"]),
            "environment": rng.choice(ENVIRONMENTS),
            "level": rng.choice(["ERROR", "ERROR", "FATAL"]),
            "services": services,
            "hosts": [f"ip-10-0-1-{rng.randint(1, 254)}"],
            "count": rng.randint(1, 500),
            "window_count": rng.randint(1, 50),
            "first_seen": (ts - timedelta(minutes=rng.randint(1, 30))).isoformat(),
            "last_seen": ts.isoformat(),
            "summary": f"{services[0]} fails with {exception_type or 'lock contention'}",
            "root_cause": None if degraded else "Upstream dependency saturated after deploy",
            "confidence": None if degraded else rng.choice(["low", "medium", "high"]),
            "next_actions": [] if degraded else ["Check the recent deploy", "Scale the pool"],
            "cited_ids": [] if degraded else [f"runbook-{rng.randint(1, 9)}"],
            "degraded": degraded,
            "degraded_reason": rng.choice(DEGRADED_REASONS) if degraded else None,
            "model": "gpt-4o-mini" if rng.random() < 0.8 else "gpt-4o",
            "prompt_tokens": 0 if degraded else prompt,
            "completion_tokens": 0 if degraded else completion,
            "total_tokens": 0 if degraded else prompt + completion,
            "cost_usd": 0.0 if degraded else round((prompt * 0.15 + completion * 0.6) / 1e6, 6),
            "llm_latency_ms": llm_ms,
            "analysis_latency_ms": llm_ms + rng.uniform(150, 900),
            "slack_status": "failed" if rng.random() < 0.05 else "sent",
        }


@pytest.fixture(scope="module")
def client() -> Iterator[OpenSearch]:
    with OsmemServer.start() as server:
        os_client = OpenSearch(hosts=[server.url], timeout=30)
        # osmem has no ISM plugin; apply() puts the templates in place before it says so.
        with contextlib.suppress(search_index.IsmUnavailableError):
            search_index.apply(os_client, retention_days=14)
        rng = random.Random(20261123)
        actions: list[dict[str, Any]] = []
        templates = search_index.index_templates()
        log_fields = set(templates["cali-logs"]["template"]["mappings"]["properties"])
        incident_fields = set(templates["cali-incidents"]["template"]["mappings"]["properties"])
        for doc in log_documents(3000, rng):
            assert set(doc) == log_fields  # the generator follows the document contract exactly
            actions.append({"_index": search_index.log_index_name(doc["@timestamp"]), "_source": doc})
        for doc in incident_documents(200, rng):
            assert set(doc) == incident_fields
            actions.append({"_index": search_index.incident_index_name(doc["@timestamp"]), "_source": doc})
        indexed, errors = helpers.bulk(os_client, actions, refresh=True, raise_on_error=False)
        assert indexed == len(actions) and not errors
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


def run_target(client: OpenSearch, target: dict[str, Any], variables: dict[str, list[str]]) -> dict[str, Any]:
    body = build_request(target, variables)
    result = msearch(client, INDEX_OF_DATASOURCE[target["datasource"]["uid"]], body)
    metric_ids = {m["id"] for m in target["metrics"] if m["type"] not in ("count", "logs", "raw_data")}
    first = target["metrics"][0]["type"]
    if first in ("logs", "raw_data"):
        hits = result["hits"]["hits"]
        assert hits, "no documents"
        assert len(hits) <= int(target["metrics"][0]["settings"]["size"])
        times = [hit["_source"]["@timestamp"] for hit in hits]
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
    assert (
        client.count(index="cali-logs-*", body={"query": {"term": {"fields.thread": "worker-1"}}})["count"]
        == 0
    )
