"""Deep links from an alert to the logs of its fingerprint (OpenSearch Discover, Grafana)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

from cali.contracts.incident import IncidentMessage

DEFAULT_GRAFANA_DASHBOARD_UID = "cali-incidents"


@dataclass(frozen=True)
class IncidentLinks:
    """Deep links to the logs of one fingerprint (absent when the base URL is not configured)."""

    opensearch_url: str | None = None
    grafana_url: str | None = None


def _rison_string(value: str) -> str:
    return "'" + value.replace("!", "!!").replace("'", "!'") + "'"


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def opensearch_discover_url(
    base_url: str,
    fingerprint: str,
    start: datetime,
    end: datetime,
    *,
    index_pattern_id: str | None = None,
) -> str:
    """OpenSearch Dashboards Discover, filtered on ``fingerprint:"<id>"`` over the time range."""
    query = f'fingerprint:"{fingerprint}"'
    global_state = f"(time:(from:{_rison_string(_iso(start))},to:{_rison_string(_iso(end))}))"
    app_parts = [f"query:(language:kuery,query:{_rison_string(query)})"]
    if index_pattern_id:
        app_parts.insert(0, f"index:{_rison_string(index_pattern_id)}")
    app_state = "(" + ",".join(app_parts) + ")"
    fragment = "/?_g=" + quote(global_state, safe="():,'!") + "&_a=" + quote(app_state, safe="():,'!")
    return base_url.rstrip("/") + "/app/discover#" + fragment


def grafana_dashboard_url(
    base_url: str,
    fingerprint: str,
    start: datetime,
    end: datetime,
    *,
    dashboard_uid: str = DEFAULT_GRAFANA_DASHBOARD_UID,
) -> str:
    """A Grafana dashboard with ``var-fingerprint`` set and the time range in epoch ms."""
    params = {
        "var-fingerprint": fingerprint,
        "from": str(int(start.timestamp() * 1000)),
        "to": str(int(end.timestamp() * 1000)),
    }
    return f"{base_url.rstrip('/')}/d/{quote(dashboard_uid)}?{urlencode(params)}"


def build_incident_links(
    incident: IncidentMessage,
    *,
    opensearch_dashboards_url: str | None,
    grafana_url: str | None,
    margin: timedelta = timedelta(minutes=15),
    grafana_dashboard_uid: str = DEFAULT_GRAFANA_DASHBOARD_UID,
) -> IncidentLinks:
    """Links around the incident's time range, with a margin for context before and after."""
    start, end = incident.first_seen - margin, incident.last_seen + margin
    return IncidentLinks(
        opensearch_url=(
            opensearch_discover_url(str(opensearch_dashboards_url), incident.fingerprint, start, end)
            if opensearch_dashboards_url
            else None
        ),
        grafana_url=(
            grafana_dashboard_url(
                str(grafana_url), incident.fingerprint, start, end, dashboard_uid=grafana_dashboard_uid
            )
            if grafana_url
            else None
        ),
    )
