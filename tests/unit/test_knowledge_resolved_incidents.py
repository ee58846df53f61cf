"""Resolved incidents from the state table become knowledge entries; bad items are reported."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from cali.knowledge.resolved import DynamoDbResolvedIncidentSource, entry_from_item
from cali_testing.knowledge import InMemoryResolvedIncidentSource

if TYPE_CHECKING:
    from tests.conftest import StateTable

RESOLVED: dict[str, Any] = {
    "pk": "incident#7ed6a5162d82c1cb-20260301T1000",
    "sk": "meta",
    "status": "resolved",
    "title": "cart-web 500s for guests after 4.19.0",
    "fingerprint": "7ed6a5162d82c1cb",
    "services": ["cart-web"],
    "template": "TypeError: Cannot read properties of undefined (reading <*>)",
    "summary": "Guest carts failed to render after the release.",
    "root_cause": "promotion was undefined for guest carts",
    "resolution": "rolled back, then added optional chaining",
    "tags": {"deploy", "regression"},
    "resolved_at": "2026-03-01T11:30:00Z",
}


def test_item_maps_to_an_incident_entry() -> None:
    entry = entry_from_item(RESOLVED)
    assert entry.id == RESOLVED["pk"]
    assert entry.source == "incident"
    assert entry.service == "cart-web"
    assert entry.fingerprint == "7ed6a5162d82c1cb"
    assert entry.tags == ("deploy", "regression")
    assert entry.created_at == datetime(2026, 3, 1, 11, 30, tzinfo=UTC)
    assert "Guest carts failed" in entry.symptoms and "reading <*>" in entry.symptoms


def test_epoch_timestamps_and_minimal_items() -> None:
    item = {
        "pk": "incident#abc",
        "status": "resolved",
        "root_cause": "disk full",
        "resolution": "grew the volume",
        "last_seen": Decimal(1767225600),
    }
    entry = entry_from_item(item)
    assert entry.title == "Resolved incident abc"
    assert entry.symptoms == "disk full"
    assert entry.created_at == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"root_cause": "  "}, "needs both root_cause and resolution"),
        ({"resolution": None}, "needs both root_cause and resolution"),
        ({"resolved_at": None}, "no resolved_at"),
        ({"resolved_at": "last tuesday"}, "Invalid isoformat"),
        ({"fingerprint": "not-hex"}, "fingerprint"),
    ],
)
def test_unusable_items_are_reported_with_their_key(change: dict[str, Any], reason: str) -> None:
    source = InMemoryResolvedIncidentSource([{**RESOLVED, **change}])
    entries, problems = source.resolved_incidents()
    assert entries == []
    assert len(problems) == 1
    assert RESOLVED["pk"] in problems[0] and reason in problems[0]


def test_in_memory_source_keeps_only_resolved_incident_items_and_the_latest_resolution() -> None:
    later = {**RESOLVED, "sk": "window#2", "resolution": "final fix", "resolved_at": "2026-03-02T00:00:00Z"}
    source = InMemoryResolvedIncidentSource(
        [
            RESOLVED,
            later,
            {**RESOLVED, "pk": "incident#open-one", "status": "open"},
            {**RESOLVED, "pk": "throttle#7ed6a5162d82c1cb"},
        ]
    )
    entries, problems = source.resolved_incidents()
    assert problems == []
    assert [(e.id, e.resolution) for e in entries] == [(RESOLVED["pk"], "final fix")]


def test_dynamodb_source_scans_every_page(state_table: StateTable) -> None:
    table = boto3.resource("dynamodb", region_name=state_table.region).Table(state_table.name)
    with table.batch_writer() as batch:
        for i in range(60):
            batch.put_item(Item={**RESOLVED, "pk": f"incident#{i:03d}", "symptoms": "x" * 20_000})
        batch.put_item(Item={**RESOLVED, "pk": "incident#open", "status": "open"})
        batch.put_item(Item={"pk": "throttle#abc", "sk": "w", "status": "resolved"})
        batch.put_item(Item={**RESOLVED, "pk": "incident#bad", "resolution": ""})
    assert "LastEvaluatedKey" in table.scan()  # 1.2 MB of items: more than one 1 MB page
    source = DynamoDbResolvedIncidentSource(
        state_table.name, dynamodb=boto3.resource("dynamodb", region_name=state_table.region)
    )
    entries, problems = source.resolved_incidents()
    assert len(entries) == 60
    assert all(len(entry.symptoms) <= 20_000 and entry.symptoms.startswith("xxx") for entry in entries)
    assert len(problems) == 1 and "incident#bad" in problems[0]
