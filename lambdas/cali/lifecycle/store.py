"""Lifecycle records and Slack replay marks in the DynamoDB state table.

Items (single table, ``pk``/``sk``):

- ``lifecycle#<fingerprint>`` / ``state``: the :class:`IncidentLifecycle` as a JSON
  document plus ``status`` and ``version`` as attributes. Every write is conditional on
  the version read (compare-and-swap), so concurrent clicks, CLI commands and analyzers
  never overwrite each other; the loser re-runs its transition on the fresh state.
- ``incident#<fingerprint>:<epoch>`` / ``resolution``: a resolution entered by a person,
  in the shape :mod:`cali.knowledge.resolved` reads. It is written in the same
  transaction as the ``resolved`` state, so a lesson exists if and only if the incident
  was resolved; its stream record triggers the knowledge sync for that one entry.
- ``slackreq#<signature>`` / ``replay``: one per accepted Slack request, written with
  ``attribute_not_exists``: a captured request replayed within its 5-minute validity
  fails the condition and is rejected.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from cali.lifecycle.state import (
    Command,
    IncidentLifecycle,
    Transition,
    new_lifecycle,
    transition,
)
from cali.state import keys

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RETENTION_SECONDS = 180 * 86_400  # long enough to recognise a regression months later
REPLAY_TTL_SECONDS = 600  # Slack's 5-minute validity, both directions


class ConflictError(RuntimeError):
    """Too many concurrent writers in a row on one lifecycle record."""


class LifecycleStore(Protocol):
    def load(self, fingerprint: str) -> IncidentLifecycle | None: ...

    def save(
        self, state: IncidentLifecycle, expected_version: int, *, knowledge: Mapping[str, Any] | None = None
    ) -> bool:
        """Write ``state`` if the stored version is ``expected_version`` (0: absent), and the
        knowledge item with it, atomically. False when another writer won."""
        ...

    def list(self, limit: int = 100) -> list[IncidentLifecycle]: ...


class ReplayGuard(Protocol):
    def claim(self, signature: str, timestamp: int) -> bool:
        """True the first time a signature is seen, False for a replay."""
        ...


def knowledge_item(state: IncidentLifecycle) -> dict[str, Any]:
    """The resolved-incident item (see :mod:`cali.knowledge.resolved`) of the latest resolution."""
    if state.status != "resolved" or not state.resolution_id or state.resolved_at is None:
        raise ValueError("only a resolved incident has a knowledge item")
    item: dict[str, Any] = {
        "pk": state.resolution_id,
        "sk": keys.resolution(state.fingerprint, int(state.resolved_at.timestamp())).sk,
        "status": "resolved",
        "fingerprint": state.fingerprint,
        "title": state.title or f"Resolved incident {state.fingerprint}",
        "root_cause": state.root_cause,
        "resolution": state.resolution,
        "template": state.template,
        "summary": state.summary,
        "resolved_by": state.resolved_by,
        "resolved_at": int(state.resolved_at.timestamp()),
    }
    if state.service:
        item["service"] = state.service
    return {key: value for key, value in item.items() if value not in (None, "")}


def apply(
    store: LifecycleStore,
    fingerprint: str,
    command: Command,
    now: datetime,
    *,
    max_attempts: int = 6,
    sleep: Callable[[float], None] = time.sleep,
) -> Transition:
    """Load, transition, conditionally save; on a lost race re-run on the fresh state."""
    for attempt in range(max_attempts):
        current = store.load(fingerprint)
        base = current or new_lifecycle(fingerprint, now)
        result = transition(base, command, now)
        if not result.changed:
            return result
        new = result.state.model_copy(update={"version": base.version + 1})
        knowledge = knowledge_item(new) if result.event == "resolved" else None
        if store.save(new, base.version, knowledge=knowledge):
            return Transition(new, True, result.note, result.event)
        sleep(0.01 * (attempt + 1))
    raise ConflictError(f"{fingerprint}: {max_attempts} write conflicts in a row")


# ---------------------------------------------------------------------------------------
# DynamoDB
# ---------------------------------------------------------------------------------------


def _key(fingerprint: str) -> dict[str, Any]:
    return keys.lifecycle(fingerprint).item()


def _plain_to_ddb(value: Any) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    return dict(TypeSerializer().serialize(value))


def _from_item(item: Mapping[str, Any]) -> IncidentLifecycle:
    return IncidentLifecycle.model_validate_json(item["doc"]["S"])


class DynamoDbLifecycleStore:
    def __init__(
        self, table_name: str, *, client: DynamoDBClient | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        if client is None:
            import boto3

            client = boto3.client("dynamodb")
        self.table_name = table_name
        self.client = client
        self.clock = clock

    def load(self, fingerprint: str) -> IncidentLifecycle | None:
        key = _key(fingerprint)
        item = self.client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True).get("Item")
        return _from_item(item) if item else None

    def _put(self, state: IncidentLifecycle, expected_version: int) -> dict[str, Any]:
        item = {
            **_key(state.fingerprint),
            "doc": {"S": state.model_dump_json()},
            "status": {"S": state.status},
            "fingerprint": {"S": state.fingerprint},
            "version": {"N": str(state.version)},
            "expires_at": {"N": str(int(self.clock()) + RETENTION_SECONDS)},
        }
        put: dict[str, Any] = {"TableName": self.table_name, "Item": item}
        if expected_version == 0:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "#version = :expected"
            put["ExpressionAttributeNames"] = {"#version": "version"}
            put["ExpressionAttributeValues"] = {":expected": {"N": str(expected_version)}}
        return put

    def save(
        self, state: IncidentLifecycle, expected_version: int, *, knowledge: Mapping[str, Any] | None = None
    ) -> bool:
        put = self._put(state, expected_version)
        if knowledge is None:
            try:
                self.client.put_item(**put)
            except self.client.exceptions.ConditionalCheckFailedException:
                return False
            return True
        lesson: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": {key: _plain_to_ddb(value) for key, value in knowledge.items()},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        try:
            items: list[Any] = [{"Put": put}, {"Put": lesson}]
            self.client.transact_write_items(TransactItems=items)
        except self.client.exceptions.TransactionCanceledException:
            return False
        return True

    def list(self, limit: int = 100) -> list[IncidentLifecycle]:
        """Operators' listing (``cali incident list``): a filtered scan, paginated.

        Not on any hot path; the Lambdas address lifecycle items by key only.
        """
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "FilterExpression": "begins_with(pk, :prefix) AND sk = :sk",
            "ExpressionAttributeValues": {":prefix": {"S": keys.LIFECYCLE_PREFIX}, ":sk": {"S": "state"}},
        }
        found: list[IncidentLifecycle] = []
        while len(found) < limit:
            page = self.client.scan(**kwargs)
            found.extend(_from_item(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        found.sort(key=lambda s: s.last_seen or s.opened_at, reverse=True)
        return found[:limit]


class DynamoDbReplayGuard:
    def __init__(self, table_name: str, *, client: DynamoDBClient | None = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("dynamodb")
        self.table_name = table_name
        self.client = client

    def claim(self, signature: str, timestamp: int) -> bool:
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    **keys.slack_request(signature).item(),
                    "expires_at": {"N": str(timestamp + REPLAY_TTL_SECONDS)},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True


def dump(state: IncidentLifecycle) -> str:
    """A readable JSON rendering for the CLI."""
    return json.dumps(state.model_dump(mode="json"), indent=2, ensure_ascii=False)
