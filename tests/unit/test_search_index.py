"""Index templates, retention policies and index names (cali.search.index)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from opensearchpy.exceptions import ConflictError, NotFoundError, RequestError
from osmem_server import OsmemServer

from cali.search import index as search_index
from tests.support.document_contracts import LOG_DOCUMENT_FIELDS

INCIDENT_FIELDS = {
    "@timestamp",
    "incident_id",
    "fingerprint",
    "template",
    "kind",
    "environment",
    "level",
    "services",
    "hosts",
    "count",
    "window_count",
    "first_seen",
    "last_seen",
    "summary",
    "root_cause",
    "confidence",
    "next_actions",
    "cited_ids",
    "degraded",
    "degraded_reason",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "llm_latency_ms",
    "analysis_latency_ms",
    "slack_status",
}


class FakeIsm:
    """Stands in for a cluster with the ISM plugin, which no local server has.

    Behaves like OpenSearch's ISM API: GET of a missing policy is 404, a PUT over an
    existing policy without ``if_seq_no``/``if_primary_term`` is a 409 version conflict,
    and a stale sequence number is a 409 too.
    """

    def __init__(self) -> None:
        self.policies: dict[str, dict[str, Any]] = {}
        self.templates: dict[str, Any] = {}
        self.writes = 0

    def perform_request(self, method: str, url: str, params: Any = None, body: Any = None) -> Any:
        if url.startswith("/_index_template/"):
            self.templates[url.rsplit("/", 1)[1]] = json.loads(json.dumps(body))
            return {"acknowledged": True}
        policy_id = url.rsplit("/", 1)[1]
        stored = self.policies.get(policy_id)
        if method == "GET":
            if stored is None:
                raise NotFoundError(404, "status_exception", {"error": "Policy not found"})
            return stored
        if stored is not None:
            params = params or {}
            if params.get("if_seq_no") != stored["_seq_no"]:
                raise ConflictError(409, "version_conflict_engine_exception", {})
        self.writes += 1
        # The server adds ids, timestamps and a schema version to what it stores.
        policy = dict(body["policy"], policy_id=policy_id, schema_version=21, last_updated_time=self.writes)
        self.policies[policy_id] = {
            "_id": policy_id,
            "_seq_no": self.writes,
            "_primary_term": 1,
            "policy": policy,
        }
        return self.policies[policy_id]


class FakeClient:
    def __init__(self) -> None:
        self.transport = FakeIsm()


def test_templates_map_every_contract_field() -> None:
    templates = search_index.index_templates()
    logs = templates["cali-logs"]
    assert logs["index_patterns"] == ["cali-logs-*"]
    props = logs["template"]["mappings"]["properties"]
    assert set(props) == LOG_DOCUMENT_FIELDS
    assert props["@timestamp"]["type"] == "date"
    assert props["message"] == {
        "type": "text",
        "fields": {"keyword": {"type": "keyword", "ignore_above": 1024}},
    }
    assert props["fields"] == {"type": "object", "enabled": False}
    assert all(props[f]["type"] == "keyword" for f in ("level", "service", "fingerprint", "trace_id", "host"))
    assert logs["template"]["settings"]["index"]["refresh_interval"]
    incidents = templates["cali-incidents"]["template"]["mappings"]["properties"]
    assert set(incidents) == INCIDENT_FIELDS
    assert incidents["degraded"]["type"] == "boolean"
    assert {incidents[f]["type"] for f in ("first_seen", "last_seen", "@timestamp")} == {"date"}
    assert incidents["cost_usd"]["type"] == "double"
    assert incidents["summary"]["type"] == "text"


def test_ism_policy_carries_the_retention() -> None:
    policy = search_index.ism_policy(7)["policy"]
    (hot, delete) = policy["states"]
    assert hot["transitions"] == [{"state_name": "delete", "conditions": {"min_index_age": "7d"}}]
    assert "delete" in delete["actions"][0]
    assert policy["ism_template"][0]["index_patterns"] == ["cali-logs-*"]
    incidents = search_index.ism_policy(365, index_pattern="cali-incidents-*")["policy"]
    assert incidents["ism_template"][0]["index_patterns"] == ["cali-incidents-*"]
    assert "365d" in json.dumps(incidents)


@pytest.mark.parametrize("bad", [0, -3, True, 1.5, "14"])
def test_ism_policy_rejects_a_bad_retention(bad: Any) -> None:
    with pytest.raises(ValueError, match="retention_days"):
        search_index.ism_policy(bad)


def test_ism_policy_only_for_cali_indices() -> None:
    with pytest.raises(ValueError, match="index pattern"):
        search_index.ism_policy(7, index_pattern="*")


def test_index_names_use_the_utc_day_and_month() -> None:
    late = datetime(2026, 11, 30, 23, 30, tzinfo=timezone(timedelta(hours=-2)))  # 01:30 UTC next day
    assert search_index.log_index_name(late) == "cali-logs-2026-12-01"
    assert search_index.incident_index_name(late) == "cali-incidents-2026-12"
    assert search_index.log_index_name("2026-01-05T10:00:00Z") == "cali-logs-2026-01-05"
    assert search_index.log_index_name(datetime(2026, 1, 5, 23, 59)) == "cali-logs-2026-01-05"
    assert search_index.incident_index_name(datetime(2026, 1, 5, tzinfo=UTC)) == "cali-incidents-2026-01"


def test_apply_creates_then_is_idempotent_then_updates() -> None:
    client = FakeClient()
    search_index.apply(client, 14)
    ism = client.transport
    assert set(ism.templates) == {"cali-logs", "cali-incidents", "cali-quality"}
    assert set(ism.policies) == {"cali-logs-retention", "cali-incidents-retention"}
    assert ism.writes == 2
    search_index.apply(client, 14)  # unchanged: no write, no conflict
    assert ism.writes == 2
    search_index.apply(client, 30)  # retention changed: update with the sequence number
    assert ism.writes == 3
    stored = ism.policies["cali-logs-retention"]["policy"]
    assert stored["states"][0]["transitions"][0]["conditions"]["min_index_age"] == "30d"
    assert "365d" in json.dumps(ism.policies["cali-incidents-retention"])


def test_apply_validates_before_touching_the_cluster() -> None:
    client = FakeClient()
    with pytest.raises(ValueError):
        search_index.apply(client, 0)
    assert client.transport.templates == {}


def test_apply_on_a_server_without_ism_applies_templates_then_says_so() -> None:
    with OsmemServer.start() as server:
        from opensearchpy import OpenSearch

        client = OpenSearch(hosts=[server.url])
        with pytest.raises(search_index.IsmUnavailableError, match="no ISM plugin"):
            search_index.apply(client, 14)
        with pytest.raises(search_index.IsmUnavailableError):
            search_index.apply(client, 14)  # second run: same outcome, templates overwritten
        stored = client.indices.get_index_template(name="cali-logs")["index_templates"][0]
        assert stored["index_template"]["index_patterns"] == ["cali-logs-*"]


def test_other_cluster_errors_are_not_mistaken_for_missing_ism() -> None:
    class Failing(FakeIsm):
        def perform_request(self, method: str, url: str, params: Any = None, body: Any = None) -> Any:
            if url.startswith("/_plugins/"):
                raise RequestError(400, "illegal_argument_exception", {"error": "bad policy"})
            return super().perform_request(method, url, params, body)

    client = FakeClient()
    client.transport = Failing()
    with pytest.raises(RequestError):
        search_index.apply(client, 14)


def test_replicas_override_every_template_and_refuse_nonsense() -> None:
    files = search_index.index_templates()
    zero = search_index.index_templates(replicas=0)
    for name, body in zero.items():
        assert body["template"]["settings"]["index"]["number_of_replicas"] == 0
        # Nothing else changes.
        files[name]["template"]["settings"]["index"]["number_of_replicas"] = 0
        assert body == files[name]
    with pytest.raises(ValueError, match="replicas"):
        search_index.index_templates(replicas=-1)
