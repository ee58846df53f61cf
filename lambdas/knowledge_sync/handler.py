"""Knowledge sync Lambda: scheduled by EventBridge, (re)indexes runbooks and resolved incidents.

The event carries nothing we need (a scheduled event); everything comes from the
configuration. The embedder (a 23 MB model) and the Milvus connection are built once per
execution environment and reused by later invocations.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from cali.analysis.embeddings import Embedder, make_embedder
from cali.contracts.settings import KnowledgeSyncSettings, knowledge_sync_settings
from cali.knowledge.resolved import DynamoDbResolvedIncidentSource, ResolvedIncidentSource
from cali.knowledge.store import KnowledgeStore
from cali.knowledge.sync import SyncReport, sync_knowledge
from cali.lifecycle.learning import index_resolutions, is_stream_event

logger = Logger(service="knowledge_sync")
metrics = Metrics(namespace="CALI", service="knowledge_sync")
# The domain modules log through stdlib loggers under "cali": give them this JSON format
# and service name (Powertools copies only to top-level loggers, hence "cali", not a module).
copy_config_to_registered_loggers(source_logger=logger, include={"cali"})

ASSET_ROOT = Path(__file__).resolve().parent.parent


def knowledge_dir(settings: KnowledgeSyncSettings) -> Path:
    """``KNOWLEDGE_DIR`` is relative to the asset root (``/var/task`` in Lambda)."""
    path = Path(settings.knowledge_dir)
    return path if path.is_absolute() else ASSET_ROOT / path


def openai_api_key(settings: KnowledgeSyncSettings) -> str | None:
    if settings.embedding_provider != "openai" or not settings.openai_secret_arn:
        return None
    from aws_lambda_powertools.utilities import parameters

    secret = parameters.get_secret(settings.openai_secret_arn, transform="json", max_age=300)
    return str(secret["api_key"]) if isinstance(secret, dict) and secret.get("api_key") else None


def incident_source(settings: KnowledgeSyncSettings) -> ResolvedIncidentSource:
    return DynamoDbResolvedIncidentSource(settings.state_table_name)


@dataclass
class Dependencies:
    """What survives between invocations of one execution environment."""

    store: KnowledgeStore
    embedder: Embedder
    incidents: ResolvedIncidentSource
    kb_dir: Path

    def close(self) -> None:
        # The connection is being dropped anyway; its server may already be gone.
        with contextlib.suppress(Exception):
            self.store.close()


def compose(settings: KnowledgeSyncSettings) -> Dependencies:
    return Dependencies(
        store=KnowledgeStore.from_settings(settings),
        embedder=make_embedder(settings, openai_api_key(settings)),
        incidents=incident_source(settings),
        kb_dir=knowledge_dir(settings),
    )


@cache
def dependencies() -> Dependencies:
    """Built on the first invocation: the embedder (a 23 MB model) and the Milvus connection."""
    return compose(knowledge_sync_settings())


def run_sync(deps: Dependencies) -> SyncReport:
    return sync_knowledge(deps.store, deps.embedder, kb_dir=deps.kb_dir, incidents=deps.incidents)


def index_stream(event: dict[str, Any], deps: Dependencies) -> dict[str, Any]:
    """A resolution entered in Slack, from the state table's stream: index just that entry."""
    report, problems = index_resolutions(event["Records"], deps.store, deps.embedder)
    metrics.add_metric("ResolvedIncidentsIndexed", MetricUnit.Count, report.inserted + report.updated)
    metrics.add_metric("ResolvedIncidentsInvalid", MetricUnit.Count, len(problems))
    for problem in problems:
        logger.warning("resolved incident skipped", extra={"problem": problem})
    return {"indexed": report.inserted + report.updated, "problems": problems}


def record(report: SyncReport) -> None:
    metrics.add_metric("KnowledgeEntriesUpserted", MetricUnit.Count, report.kb.inserted + report.kb.updated)
    metrics.add_metric("KnowledgeEntriesUnchanged", MetricUnit.Count, report.kb.unchanged)
    metrics.add_metric("KnowledgeFilesInvalid", MetricUnit.Count, report.kb_invalid)
    metrics.add_metric("KnowledgeEntriesPruned", MetricUnit.Count, report.pruned)
    metrics.add_metric(
        "ResolvedIncidentsIndexed", MetricUnit.Count, report.incidents.inserted + report.incidents.updated
    )
    metrics.add_metric("ResolvedIncidentsInvalid", MetricUnit.Count, report.incidents_invalid)
    for problem in report.problems:
        logger.warning("knowledge input skipped", extra={"problem": problem})
    logger.info("knowledge sync done", extra={"report": report.model_dump(exclude={"problems"})})


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_stream_event(event):
        return index_stream(event, dependencies())
    logger.info("knowledge sync started", extra={"trigger": event.get("source", "manual")})
    report = run_sync(dependencies())
    record(report)
    return report.model_dump()
