"""What has already been done for one alert, so that SQS redelivery never posts it twice.

SQS delivers at least once, and the analyzer fails a record when the incident document
cannot be recorded, so the same alert can come back after Slack already has it. The
analyzer therefore writes down, per alert, that Slack succeeded (with the message ``ts``
and the incident document) before recording the document, and that the document was
recorded afterwards. On redelivery it skips what is done: a posted alert only retries the
document, a recorded alert is acknowledged.

Powertools Idempotency was considered: it caches a whole function's result and deletes
its record on failure, so a sink failure after a successful post would post again. The
steps here have to be remembered separately.

Before posting, an analyzer takes a lease on the alert (``claim``): a conditional write
that fails while another invocation holds a live lease, and that expires with the
invocation that took it (its remaining time). So two containers handed the same message
post once, and a redelivery after a crash knows an attempt was made and how many
(``Claim.attempts``): in bot mode it looks the post up in Slack before posting again; a
webhook cannot be looked up, so it re-posts once and after a second unknown outcome takes
the alert as delivered (at most one duplicate, docs/reliability.md). A definite failure
(Slack said no) ``release``s the lease without counting the attempt.

Item: ``pk = incident#<incident_id>``, ``sk = alert#<kind>#<window_count>`` (an ``update``
or ``surge`` of the same incident is a different alert), TTL ``expires_at`` longer than
the queue's retention so a late redelivery is still recognised.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from cali.analysis.incident_sink import IncidentDocument
from cali.contracts.incident import IncidentMessage
from cali.state import keys
from cali.state.items import from_item, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

DEFAULT_TTL_SECONDS = 15 * 86_400  # SQS keeps messages at most 14 days


@dataclass(frozen=True)
class AlertKey:
    incident_id: str
    kind: str
    window_count: int

    @classmethod
    def of(cls, incident: IncidentMessage) -> AlertKey:
        return cls(incident.incident_id, incident.kind, incident.window_count)

    @property
    def alert_id(self) -> str:
        """Tags the Slack post (message metadata) so it can be found again."""
        return f"{self.incident_id}#{self.kind}#{self.window_count}"


@dataclass(frozen=True)
class Claim:
    """A lease on one alert, held until ``release``, ``mark_posted`` or its expiry."""

    owner: str
    attempts: int  # earlier attempts whose outcome is unknown (0: this is the first)
    first_attempt_at: float  # epoch seconds: where a lookup in Slack starts


class AlertBusyError(RuntimeError):
    """Another invocation holds a live lease on this alert; SQS redelivers the message later."""


class AlertProgress(BaseModel):
    slack_ts: str | None = None
    document: IncidentDocument
    recorded: bool = False


class AlertState(Protocol):
    def get(self, key: AlertKey) -> AlertProgress | None: ...

    def mark_posted(self, key: AlertKey, *, slack_ts: str | None, document: IncidentDocument) -> None: ...

    def mark_recorded(self, key: AlertKey) -> None: ...

    def claim(self, key: AlertKey, *, lease_ms: int) -> Claim | None:
        """Take the lease for ``lease_ms``; None when the alert is already posted.
        Raises ``AlertBusyError`` while another invocation holds a live lease."""
        ...

    def release(self, key: AlertKey, claim: Claim) -> None:
        """Give the lease back after a definite failure (this attempt posted nothing)."""
        ...


class DynamoDbAlertState:
    def __init__(
        self, table_name: str, *, client: DynamoDBClient, ttl_seconds: int = DEFAULT_TTL_SECONDS
    ) -> None:
        self.table_name = table_name
        self._client = client
        self._ttl = ttl_seconds

    @staticmethod
    def item_key(key: AlertKey) -> dict[str, AttributeValueTypeDef]:
        return keys.alert(key.incident_id, key.kind, key.window_count).item()

    def get(self, key: AlertKey) -> AlertProgress | None:
        item = self._client.get_item(
            TableName=self.table_name, Key=self.item_key(key), ConsistentRead=True
        ).get("Item")
        if not item or "document" not in item:
            return None
        values = from_item(item)
        return AlertProgress(
            slack_ts=values.get("slack_ts"),
            document=IncidentDocument.model_validate_json(values["document"]),
            recorded=bool(values.get("recorded", False)),
        )

    def mark_posted(self, key: AlertKey, *, slack_ts: str | None, document: IncidentDocument) -> None:
        values: dict[str, Any] = {
            "document": document.model_dump_json(by_alias=True),
            "recorded": False,
            keys.TTL: int(time.time()) + self._ttl,
        }
        if slack_ts:
            values["slack_ts"] = slack_ts
        self._client.put_item(TableName=self.table_name, Item={**self.item_key(key), **to_item(values)})

    def claim(self, key: AlertKey, *, lease_ms: int) -> Claim | None:
        now_ms = int(time.time() * 1000)
        owner = uuid.uuid4().hex
        try:
            response = self._client.update_item(
                TableName=self.table_name,
                Key=self.item_key(key),
                UpdateExpression=(
                    "SET lease_until = :until, lease_owner = :owner, "
                    "first_attempt_at = if_not_exists(first_attempt_at, :now), expires_at = :ttl "
                    "ADD attempts :one"
                ),
                ConditionExpression=(
                    "attribute_not_exists(document) "
                    "AND (attribute_not_exists(lease_until) OR lease_until < :now)"
                ),
                ExpressionAttributeValues={
                    ":until": {"N": str(now_ms + lease_ms)},
                    ":owner": {"S": owner},
                    ":now": {"N": str(now_ms)},
                    ":ttl": {"N": str(now_ms // 1000 + self._ttl)},
                    ":one": {"N": "1"},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            old: Any = exc.response.get("Item") or {}
            if "document" in old:
                return None
            raise AlertBusyError(f"alert {key.alert_id} is leased by another invocation") from exc
        attributes: Any = response["Attributes"]
        return Claim(
            owner=owner,
            attempts=int(attributes["attempts"]["N"]) - 1,
            first_attempt_at=int(attributes["first_attempt_at"]["N"]) / 1000,
        )

    def release(self, key: AlertKey, claim: Claim) -> None:
        # A failed condition: the lease expired and another invocation took it; leave it.
        with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
            self._client.update_item(
                TableName=self.table_name,
                Key=self.item_key(key),
                UpdateExpression="REMOVE lease_until, lease_owner ADD attempts :minus_one",
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={":owner": {"S": claim.owner}, ":minus_one": {"N": "-1"}},
            )

    def mark_recorded(self, key: AlertKey) -> None:
        self._client.update_item(
            TableName=self.table_name,
            Key=self.item_key(key),
            UpdateExpression="SET recorded = :t",
            ExpressionAttributeValues=to_item({":t": True}),
        )
