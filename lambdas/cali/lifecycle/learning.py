"""Resolutions entered in Slack become knowledge within minutes, not at the next daily sync.

The resolution item (see :func:`cali.lifecycle.store.knowledge_item`) is written in the
same transaction as the ``resolved`` state. The state table's stream delivers its INSERT
to the knowledge sync Lambda (an event filter passes only ``incident#`` items), which
embeds and upserts exactly those entries into Milvus; the analyzer's retrieval then finds
them for the next similar incident.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from cali.knowledge.base import KnowledgeEntry
from cali.knowledge.resolved import RESOLVED, entry_from_item
from cali.knowledge.store import KnowledgeStore, UpsertReport
from cali.state.keys import INCIDENT_PREFIX

_deserializer = TypeDeserializer()


def is_stream_event(event: Mapping[str, Any]) -> bool:
    records = event.get("Records")
    return isinstance(records, list) and any(r.get("eventSource") == "aws:dynamodb" for r in records)


def entries_from_stream(records: Iterable[Mapping[str, Any]]) -> tuple[list[KnowledgeEntry], list[str]]:
    """Resolved-incident entries from INSERT/MODIFY stream records; one problem line per bad item."""
    entries: list[KnowledgeEntry] = []
    problems: list[str] = []
    for record in records:
        if record.get("eventName") not in {"INSERT", "MODIFY"}:
            continue
        image = (record.get("dynamodb") or {}).get("NewImage") or {}
        item = {key: _deserializer.deserialize(value) for key, value in image.items()}
        if not str(item.get("pk", "")).startswith(INCIDENT_PREFIX) or item.get("status") != RESOLVED:
            continue
        try:
            entries.append(entry_from_item(item))
        except ValueError as exc:
            problems.append(f"pk={item.get('pk')!r}: {exc}")
    return entries, problems


def index_resolutions(
    records: Iterable[Mapping[str, Any]], store: KnowledgeStore, embedder: Any
) -> tuple[UpsertReport, list[str]]:
    entries, problems = entries_from_stream(records)
    if not entries:
        return UpsertReport(), problems
    store.ensure_collection()
    return store.upsert(entries, embedder, origin="resolved_incident"), problems
