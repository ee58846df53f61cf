"""Incidents that people marked resolved, as knowledge entries for the next time.

The item shape in the DynamoDB state table (see docs/knowledge.md): ``pk`` =
``incident#<incident_id>``, any ``sk``, ``status = "resolved"``, ``root_cause`` and
``resolution`` (both required), and optionally ``title``, ``fingerprint``, ``service`` or
``services``, ``template``, ``symptoms``, ``summary``, ``runbook_url``, ``tags`` and
``resolved_at`` (ISO-8601 or epoch seconds). An item that does not fit is reported with
its key and reason, never silently skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from pydantic import ValidationError

from cali.knowledge.base import KnowledgeEntry
from cali.state.keys import INCIDENT_PREFIX

RESOLVED = "resolved"


class ResolvedIncidentSource(Protocol):
    def resolved_incidents(self) -> tuple[list[KnowledgeEntry], list[str]]:
        """Valid entries, and one problem line per item that could not be used."""
        ...


def _text(value: Any, limit: int = 300) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    # Items are written by people and tools without our length limits: keep the start of
    # an over-long text rather than losing the whole lesson.
    return (text[: limit - 1] + "…" if len(text) > limit else text) or None


def _created_at(item: Mapping[str, Any]) -> datetime:
    for key in ("resolved_at", "last_seen", "first_seen"):
        value = item.get(key)
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value), tz=UTC)
        if isinstance(value, str) and value.strip():
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError("no resolved_at, last_seen or first_seen")


def entry_from_item(item: Mapping[str, Any]) -> KnowledgeEntry:
    """One state-table item as a knowledge entry (raises ``ValueError`` with the reason)."""
    pk = str(item.get("pk", ""))
    if not pk.startswith(INCIDENT_PREFIX):
        raise ValueError(f"pk {pk!r} is not an {INCIDENT_PREFIX} item")
    incident_id = pk.removeprefix(INCIDENT_PREFIX)
    root_cause, resolution = _text(item.get("root_cause"), 6000), _text(item.get("resolution"), 6000)
    if not root_cause or not resolution:
        raise ValueError("a resolved incident needs both root_cause and resolution")
    services = item.get("services")
    service = _text(item.get("service")) or (
        _text(sorted(services)[0]) if isinstance(services, list | set) and services else None
    )
    symptoms = "\n".join(
        text
        for text in (
            _text(item.get("symptoms"), 12_000),
            _text(item.get("summary"), 4_000),
            _text(item.get("template"), 2_000),
        )
        if text
    )
    tags = item.get("tags") or ()
    try:
        return KnowledgeEntry(
            id=pk,
            source="incident",
            title=_text(item.get("title")) or f"Resolved incident {incident_id}",
            service=service,
            fingerprint=_text(item.get("fingerprint")),
            symptoms=symptoms or root_cause,
            root_cause=root_cause,
            resolution=resolution,
            runbook_url=_text(item.get("runbook_url"), 500),
            tags=tuple(str(tag) for tag in tags) if isinstance(tags, list | set | tuple) else (str(tags),),
            created_at=_created_at(item),
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(problems) from exc


def _convert(items: Iterable[Mapping[str, Any]]) -> tuple[list[KnowledgeEntry], list[str]]:
    entries: dict[str, KnowledgeEntry] = {}
    problems: list[str] = []
    for item in items:
        key = f"pk={item.get('pk')!r} sk={item.get('sk')!r}"
        try:
            entry = entry_from_item(item)
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
            continue
        previous = entries.get(entry.id)
        # Several resolved items under one incident (e.g. one per alert window): the
        # latest resolution is the one people settled on.
        if previous is None or entry.created_at >= previous.created_at:
            entries[entry.id] = entry
    return [entries[key] for key in sorted(entries)], problems


class DynamoDbResolvedIncidentSource:
    """Scans the state table for resolved incidents (paginated, filtered server-side).

    A scan reads the whole table; the sync runs on a schedule (hourly by default) and the
    table holds short-lived throttle and cache items, so this stays cheap at CALI's scale.
    """

    def __init__(self, table_name: str, *, dynamodb: Any = None) -> None:
        if dynamodb is None:
            import boto3

            dynamodb = boto3.resource("dynamodb")
        self._table = dynamodb.Table(table_name)

    def _items(self) -> Iterable[Mapping[str, Any]]:
        from boto3.dynamodb.conditions import Attr

        kwargs: dict[str, Any] = {
            "FilterExpression": Attr("pk").begins_with(INCIDENT_PREFIX) & Attr("status").eq(RESOLVED)
        }
        while True:
            page = self._table.scan(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def resolved_incidents(self) -> tuple[list[KnowledgeEntry], list[str]]:
        return _convert(self._items())
