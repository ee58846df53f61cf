"""In-memory resolved-incident source for tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cali.knowledge.base import KnowledgeEntry
from cali.knowledge.resolved import (
    RESOLVED,
    _convert,
)
from cali.state.keys import INCIDENT_PREFIX


class InMemoryResolvedIncidentSource:
    """Items as plain dicts, exactly as the DynamoDB resource API returns them."""

    def __init__(self, items: Iterable[Mapping[str, Any]] = ()) -> None:
        self.items = list(items)

    def resolved_incidents(self) -> tuple[list[KnowledgeEntry], list[str]]:
        matching = (
            item
            for item in self.items
            if str(item.get("pk", "")).startswith(INCIDENT_PREFIX) and item.get("status") == RESOLVED
        )
        return _convert(matching)
