"""(Re)index the knowledge base folder and the resolved incidents into Milvus.

Run on a schedule by the ``knowledge_sync`` Lambda and by ``cali knowledge sync``. Safe to
run any number of times: unchanged entries are skipped without embedding, entries whose
file was deleted from the folder are removed, and every file or item that could not be
used is reported by name.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from cali.analysis.embeddings import Embedder
from cali.knowledge.base import scan_knowledge_base
from cali.knowledge.resolved import ResolvedIncidentSource
from cali.knowledge.store import KnowledgeStore, UpsertReport


class SyncReport(BaseModel):
    kb_entries: int = 0
    kb_invalid: int = 0
    kb: UpsertReport = Field(default_factory=UpsertReport)
    incidents_read: int = 0
    incidents_invalid: int = 0
    incidents: UpsertReport = Field(default_factory=UpsertReport)
    pruned: int = 0
    problems: list[str] = Field(default_factory=list)


def sync_knowledge(
    store: KnowledgeStore,
    embedder: Embedder,
    *,
    kb_dir: Path,
    incidents: ResolvedIncidentSource | None = None,
    prune: bool = True,
) -> SyncReport:
    store.ensure_collection()
    report = SyncReport()

    entries, problems = scan_knowledge_base(kb_dir)
    report.kb_entries, report.kb_invalid = len(entries), len(problems)
    report.problems.extend(problems)
    # An empty folder is a packaging or path mistake far more often than a wish to delete
    # every runbook: say so, and prune nothing.
    empty = not entries and not problems
    if empty:
        report.problems.append(f"{kb_dir}: no knowledge file found; nothing pruned")
    report.kb = store.upsert(entries, embedder, origin="kb_folder")

    if incidents is not None:
        resolved, incident_problems = incidents.resolved_incidents()
        kb_ids = {entry.id for entry in entries}
        clashing = [entry for entry in resolved if entry.id in kb_ids]
        incident_problems += [f"{entry.id}: id already used by a knowledge-base file" for entry in clashing]
        resolved = [entry for entry in resolved if entry.id not in kb_ids]
        report.incidents_read = len(resolved)
        report.incidents_invalid = len(incident_problems)
        report.problems.extend(incident_problems)
        report.incidents = store.upsert(resolved, embedder, origin="resolved_incident")

    # Only prune when the folder read cleanly: a file that fails to parse must not make
    # its entry vanish from retrieval until someone fixes it.
    if prune and not problems and not empty:
        current = {entry.id for entry in entries}
        stale = [str(row["id"]) for row in store.list_rows(origin="kb_folder") if row["id"] not in current]
        report.pruned = store.delete(stale)
    return report
