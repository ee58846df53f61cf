"""A complete incident and analysis for the Slack message and delivery tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cali.contracts.analysis import AnalysisResult, LlmAnalysis, LlmUsage, SimilarIncident
from cali.contracts.incident import IncidentMessage, SampleLine
from cali.contracts.levels import Level
from cali.notify.slack.links import IncidentLinks

NOW = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
LINKS = IncidentLinks(
    opensearch_url="https://osd.example/app/discover#/x", grafana_url="https://grafana.example/d/x"
)


def make_incident(**changes: Any) -> IncidentMessage:
    sample = SampleLine(
        timestamp=NOW,
        service="payments",
        level=Level.ERROR,
        message="HikariPool-1 - Connection is not available, request timed out after 30000ms.",
        host="payments-7d9f8b6c5-x2k4p",
        stack_trace="java.sql.SQLTransientConnectionException: timeout\n\tat com.zaxxer.hikari.HikariPool",
    )
    base: dict[str, Any] = {
        "incident_id": "3f2a1b0c9d8e7f6a-1732357800",
        "fingerprint": "3f2a1b0c9d8e7f6a",
        "template": "HikariPool-<*> - Connection is not available, request timed out after <*>ms.",
        "kind": "new",
        "environment": "prod",
        "level": Level.ERROR,
        "exception_type": "SQLTransientConnectionException",
        "services": ["payments"],
        "hosts": ["payments-7d9f8b6c5-x2k4p"],
        "count": 42,
        "window_count": 42,
        "first_seen": NOW - timedelta(minutes=3),
        "last_seen": NOW,
        "samples": [sample],
    }
    base.update(changes)
    return IncidentMessage(**base)


def make_result(**llm_changes: Any) -> AnalysisResult:
    llm: dict[str, Any] = {
        "summary": "The payments service cannot get database connections.",
        "probable_root_cause": "Connection pool exhausted: long-running queries hold all 10 connections.",
        "confidence": "high",
        "evidence": ["Connection is not available, request timed out after 30000ms"],
        "cited_ids": ["rb-db-pool"],
        "next_actions": ["Check pg_stat_activity for long queries", "Raise maximumPoolSize temporarily"],
        "unknowns": ["Whether a deploy changed query plans"],
    }
    llm.update(llm_changes)
    return AnalysisResult(
        llm=LlmAnalysis(**llm),
        similar=[
            SimilarIncident(
                id="rb-db-pool",
                title="Database connection pool exhaustion",
                source="runbook",
                score=0.83,
                runbook_url="https://wiki.example/runbooks/db-pool",
                resolution="Kill idle-in-transaction sessions, then raise the pool size.",
            ),
            SimilarIncident(id="inc-2026-031", title="Payments DB timeouts", source="incident", score=0.71),
        ],
        usage=LlmUsage(
            model="gpt-4o-mini", prompt_tokens=1200, completion_tokens=210, latency_ms=1840, cost_usd=0.0003
        ),
    )
