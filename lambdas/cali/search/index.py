"""OpenSearch index design: templates for logs and incidents, and their retention (ISM) policies.

The templates and the policy live as JSON files in ``cali/search/opensearch/`` so that operators can
read and diff them, and so that the same files are applied by the stack (a custom resource
calls :func:`apply`), by ``make demo`` and by the tests. Index names are one index per day
for logs and one per month for incidents: retention then deletes whole indices, which is
cheap, instead of deleting documents.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from string import Template
from typing import Any, Protocol

LOGS_TEMPLATE = "cali-logs"
INCIDENTS_TEMPLATE = "cali-incidents"
QUALITY_TEMPLATE = "cali-quality"
LOGS_INDEX_PATTERN = "cali-logs-*"
INCIDENTS_INDEX_PATTERN = "cali-incidents-*"
QUALITY_INDEX_PATTERN = "cali-quality-*"
LOGS_POLICY_ID = "cali-logs-retention"
INCIDENTS_POLICY_ID = "cali-incidents-retention"

#: Incidents are small and are the team's memory of what went wrong: keep them a year by
#: default, whatever the (much shorter) log retention of the environment is.
DEFAULT_INCIDENT_RETENTION_DAYS = 365

_PACKAGE_DIR = "opensearch"
_TEMPLATE_FILES = {
    LOGS_TEMPLATE: "cali-logs.template.json",
    INCIDENTS_TEMPLATE: "cali-incidents.template.json",
    QUALITY_TEMPLATE: "cali-quality.template.json",
}
_POLICY_FILE = "retention.ism-policy.json"


class IsmUnavailableError(RuntimeError):
    """The cluster has no Index State Management plugin, so retention cannot be applied.

    Raised by :func:`apply` after the index templates are in place. Callers that run
    against a server without ISM (the local demo's in-memory server, OpenSearch Serverless,
    which manages retention itself) may catch it and carry on; the stack must not.
    """


class SearchTransport(Protocol):
    def perform_request(self, method: str, url: str, params: Any = None, body: Any = None) -> Any: ...


class SearchClient(Protocol):
    """The part of ``opensearchpy.OpenSearch`` this module uses."""

    @property
    def transport(self) -> SearchTransport: ...


def _read_json(name: str) -> str:
    return resources.files("cali.search").joinpath(_PACKAGE_DIR, name).read_text(encoding="utf-8")


def index_templates(
    *, replicas: int | None = None, log_shards: int | None = None
) -> dict[str, dict[str, Any]]:
    """Composable index templates by name (``PUT _index_template/<name>`` bodies).

    ``replicas`` overrides the files' ``number_of_replicas``: a one-node domain cannot
    place a replica, and an index waiting for one keeps the cluster yellow forever.
    ``log_shards`` overrides the primary shards of each daily ``cali-logs-*`` index (one
    per data node spreads the day's writes over every node; the small monthly incident
    index keeps one).
    """
    if replicas is not None and (isinstance(replicas, bool) or replicas < 0):
        raise ValueError(f"replicas must be 0 or more, got {replicas!r}")
    if log_shards is not None and (isinstance(log_shards, bool) or log_shards < 1):
        raise ValueError(f"log_shards must be 1 or more, got {log_shards!r}")
    templates = {name: json.loads(_read_json(file)) for name, file in _TEMPLATE_FILES.items()}
    for body in templates.values():
        settings = body["template"]["settings"]["index"]
        if replicas is not None:
            settings["number_of_replicas"] = replicas
        if log_shards is not None and LOGS_INDEX_PATTERN in body["index_patterns"]:
            settings["number_of_shards"] = log_shards
    return templates


def ism_policy(retention_days: int, *, index_pattern: str = LOGS_INDEX_PATTERN) -> dict[str, Any]:
    """The ISM policy body that deletes indices matching ``index_pattern`` after N days.

    The ``ism_template`` in the policy attaches it to every new index of the pattern, so
    nothing else has to remember to set a policy when Firehose creates tomorrow's index.
    """
    if isinstance(retention_days, bool) or not isinstance(retention_days, int) or retention_days < 1:
        raise ValueError(f"retention_days must be a positive number of days, got {retention_days!r}")
    if index_pattern not in (LOGS_INDEX_PATTERN, INCIDENTS_INDEX_PATTERN):
        raise ValueError(f"no retention policy is defined for index pattern {index_pattern!r}")
    text = Template(_read_json(_POLICY_FILE)).substitute(
        retention_days=retention_days, index_pattern=index_pattern
    )
    policy: dict[str, Any] = json.loads(text)
    return policy


def log_index_name(ts: datetime | str) -> str:
    """``cali-logs-YYYY-MM-DD`` for the UTC day of ``ts``, as Firehose's OneDay index rotation
    names it (naive datetimes are taken as UTC)."""
    return f"cali-logs-{_utc(ts):%Y-%m-%d}"


def incident_index_name(ts: datetime | str) -> str:
    """``cali-incidents-YYYY-MM`` for the UTC month of ``ts`` (Firehose's OneMonth rotation)."""
    return f"cali-incidents-{_utc(ts):%Y-%m}"


def _utc(ts: datetime | str) -> datetime:
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def apply(
    client: SearchClient,
    retention_days: int,
    *,
    incident_retention_days: int = DEFAULT_INCIDENT_RETENTION_DAYS,
    replicas: int | None = None,
    log_shards: int | None = None,
) -> None:
    """Create or update both index templates and both retention policies (idempotent).

    Templates are applied first: they matter for every document, while retention only
    matters days later, so a cluster without ISM still gets correct mappings before
    :class:`IsmUnavailableError` is raised.
    """
    # Validate before touching the cluster so that a bad config changes nothing.
    policies = {
        LOGS_POLICY_ID: ism_policy(retention_days, index_pattern=LOGS_INDEX_PATTERN),
        INCIDENTS_POLICY_ID: ism_policy(incident_retention_days, index_pattern=INCIDENTS_INDEX_PATTERN),
    }
    for name, body in index_templates(replicas=replicas, log_shards=log_shards).items():
        client.transport.perform_request("PUT", f"/_index_template/{name}", body=body)
    for policy_id, body in policies.items():
        _put_policy(client, policy_id, body)


def _put_policy(client: SearchClient, policy_id: str, body: dict[str, Any]) -> None:
    from opensearchpy.exceptions import NotFoundError, TransportError

    url = f"/_plugins/_ism/policies/{policy_id}"
    try:
        current = client.transport.perform_request("GET", url)
    except NotFoundError:
        current = None
    except TransportError as error:
        if _is_missing_plugin(error):
            raise IsmUnavailableError(
                f"the OpenSearch cluster has no ISM plugin ({error.error}); index templates were "
                f"applied but retention policy {policy_id!r} was not"
            ) from error
        raise
    if current is None:
        client.transport.perform_request("PUT", url, body=body)
        return
    if _comparable(current.get("policy", {})) == _comparable(body["policy"]):
        return
    # ISM refuses a blind overwrite; optimistic concurrency makes concurrent deploys safe.
    client.transport.perform_request(
        "PUT",
        url,
        params={"if_seq_no": current["_seq_no"], "if_primary_term": current["_primary_term"]},
        body=body,
    )


def _is_missing_plugin(error: Any) -> bool:
    text = json.dumps(getattr(error, "info", None), default=str) + str(getattr(error, "error", ""))
    return error.status_code in (400, 405) and "no handler found" in text.lower()


def _comparable(policy: dict[str, Any]) -> dict[str, Any]:
    """The parts of a policy we own; the server adds ids, timestamps and schema versions."""
    return {
        "description": policy.get("description"),
        "default_state": policy.get("default_state"),
        "states": policy.get("states"),
        "ism_template": [
            {"index_patterns": t.get("index_patterns"), "priority": t.get("priority")}
            for t in policy.get("ism_template") or []
        ],
    }
