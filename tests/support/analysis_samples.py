"""Incidents and knowledge hits shared by the analyzer tests (not a test module)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cali.analysis.embeddings import Embedder
from cali.analysis.llm.analyzer import LlmAnalyzer, LlmConfig
from cali.analysis.llm.budget import TokenBudget
from cali.analysis.llm.cache import LlmCache
from cali.contracts.analysis import SimilarIncident
from cali.contracts.incident import IncidentMessage, SampleLine
from cali.contracts.levels import Level
from cali.knowledge.base import default_knowledge_dir, load_knowledge_base
from cali.knowledge.store import KnowledgeStore
from cali_local.openai_stub import OpenAiStub
from cali_testing.analysis import InMemoryLlmCache, InMemoryTokenBudget

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

POOL_MESSAGE = "HikariPool-1 - Connection is not available, request timed out after 30000ms."
POOL_TRACE = (
    "java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available\n"
    "\tat com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:696)\n"
    "\tat com.shop.checkout.OrderRepository.save(OrderRepository.java:88)"
)


def incident(
    *,
    messages: list[str] | None = None,
    stack_trace: str | None = POOL_TRACE,
    fingerprint: str = "0123456789abcdef",
    kind: str = "new",
    window_count: int = 42,
    incident_id: str | None = None,
) -> IncidentMessage:
    lines = messages or [POOL_MESSAGE]
    samples = [
        SampleLine(
            timestamp=T0 + timedelta(seconds=i),
            service="checkout",
            level=Level.ERROR,
            message=text,
            host="ip-10-0-1-17",
            stack_trace=stack_trace,
            trace_id=f"trace-{i}",
        )
        for i, text in enumerate(lines)
    ]
    data: dict[str, Any] = {
        "incident_id": incident_id or f"{fingerprint}-20261123T0900",
        "fingerprint": fingerprint,
        "template": "HikariPool-<*> - Connection is not available, request timed out after <NUM>ms.",
        "kind": kind,
        "environment": "dev",
        "level": Level.ERROR,
        "exception_type": "java.sql.SQLTransientConnectionException",
        "services": ["checkout"],
        "hosts": ["ip-10-0-1-17"],
        "count": window_count,
        "window_count": window_count,
        "first_seen": T0,
        "last_seen": T0 + timedelta(minutes=3),
        "samples": samples,
    }
    return IncidentMessage.model_validate(data)


def similar() -> list[SimilarIncident]:
    return [
        SimilarIncident(
            id="KB-001",
            title="Database connection pool exhausted",
            source="runbook",
            score=0.83,
            service="checkout",
            root_cause="Slow queries hold connections until the pool is empty.",
            resolution="Kill long-running queries; raise pool size only after fixing the slow query.",
            runbook_url="https://runbooks.example.com/db-pool",
        ),
        SimilarIncident(
            id="INC-2041",
            title="Checkout pool exhaustion after index drop",
            source="incident",
            score=0.71,
            service="checkout",
            root_cause="A migration dropped an index; order queries took 20 s.",
            resolution="Recreated the index.",
        ),
    ]


def good_answer(**overrides: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "summary": "checkout cannot get database connections (42 errors in 3 minutes).",
        "probable_root_cause": "The Hikari pool is exhausted, probably by slow queries holding connections.",
        "confidence": "high",
        "evidence": ["Connection is not available, request timed out after 30000ms"],
        "cited_ids": ["KB-001"],
        "next_actions": ["Check pg_stat_activity for long-running queries.", "Follow runbook KB-001."],
        "unknowns": ["Whether a deploy preceded the first error."],
    }
    answer.update(overrides)
    return answer


def llm_analyzer(
    stub: OpenAiStub,
    *,
    budget: TokenBudget | None = None,
    cache: LlmCache | None = None,
    api_key: str | None = "sk-test",
    **config: Any,
) -> LlmAnalyzer:
    """The real analyzer and OpenAI SDK against the local stub; in-memory budget and cache
    unless given. ``config`` overrides the :class:`LlmConfig` fields."""
    cfg = LlmConfig(**{"model": "gpt-4o-mini", "timeout_seconds": 2.0, "max_retries": 0, **config})
    return LlmAnalyzer(
        LlmAnalyzer.create_client(cfg, api_key=api_key, base_url=stub.base_url),
        cfg,
        budget=InMemoryTokenBudget(1_000_000) if budget is None else budget,
        cache=InMemoryLlmCache() if cache is None else cache,
    )


# ------------------------------------------------------------- a small real knowledge base

KB_SUBSET = (
    "rb-db-connection-pool-exhaustion",
    "rb-upstream-timeout-504",
    "rb-java-heap-outofmemory",
    "rb-tls-certificate-expiry",
    "rb-rate-limit-429-throttling",
    "inc-2025-04-orders-hikari-pool",
)


def knowledge_store(directory: Path, embedder: Embedder, ids: tuple[str, ...] = KB_SUBSET) -> KnowledgeStore:
    """Milvus Lite with a few real knowledge-base entries (all 34 take ~4 s to embed)."""
    entries = [e for e in load_knowledge_base(default_knowledge_dir()) if e.id in ids]
    assert len(entries) == len(ids), "knowledge-base ids used by the tests changed"
    store = KnowledgeStore.connect(str(directory / "milvus.db"), collection="cali_test", dim=embedder.dim)
    store.ensure_collection()
    store.upsert(entries, embedder)
    return store
