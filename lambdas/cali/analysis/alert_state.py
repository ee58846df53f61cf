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

Item: ``pk = incident#<incident_id>``, ``sk = alert#<kind>#<window_count>`` (an ``update``
or ``surge`` of the same incident is a different alert), TTL ``expires_at`` longer than
the queue's retention so a late redelivery is still recognised.
"""

from __future__ import annotations

import time
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


class AlertProgress(BaseModel):
    slack_ts: str | None = None
    document: IncidentDocument
    recorded: bool = False


class AlertState(Protocol):
    def get(self, key: AlertKey) -> AlertProgress | None: ...

    def mark_posted(self, key: AlertKey, *, slack_ts: str | None, document: IncidentDocument) -> None: ...

    def mark_recorded(self, key: AlertKey) -> None: ...


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

    def mark_recorded(self, key: AlertKey) -> None:
        self._client.update_item(
            TableName=self.table_name,
            Key=self.item_key(key),
            UpdateExpression="SET recorded = :t",
            ExpressionAttributeValues=to_item({":t": True}),
        )
