"""Bot-mode thread roots: the ``ts`` of the first message per (thread key, channel)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from cali.state import keys
from cali.state.items import from_item, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


logger = logging.getLogger(__name__)


THREAD_TTL_SECONDS = 14 * 86_400


class ThreadStore(Protocol):
    """Remembers the ``ts`` of the first message per (thread key, channel)."""

    def get(self, key: str, channel: str) -> str | None: ...

    def put(self, key: str, channel: str, ts: str, *, replacing: str | None = None) -> None:
        """Store the root unless one exists; ``replacing`` overwrites that (dead) root only."""
        ...


class DynamoDbThreadStore:
    """Thread roots in the state table: ``pk = slackthread#<key>``, ``sk = <channel>``, TTL.

    The first writer wins (conditional put), so two analyzers racing on one fingerprint
    still agree on a single thread.
    """

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        ttl_seconds: int = THREAD_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if client is None:
            import boto3

            client = boto3.client("dynamodb")
        self.table_name = table_name
        self.client = client
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    @staticmethod
    def _key(key: str, channel: str) -> dict[str, Any]:
        return keys.slack_thread(key, channel).item()

    def get(self, key: str, channel: str) -> str | None:
        item = self.client.get_item(
            TableName=self.table_name, Key=self._key(key, channel), ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        # DynamoDB deletes expired items lazily (up to days later): check the TTL ourselves.
        expires_at = int(item.get("expires_at", {}).get("N", "0"))
        if expires_at and expires_at < self.clock():
            return None
        return str(from_item(item)["ts"])

    def put(self, key: str, channel: str, ts: str, *, replacing: str | None = None) -> None:
        now = self.clock()
        item = {
            **self._key(key, channel),
            **to_item({"ts": ts, keys.TTL: int(now + self.ttl_seconds)}),
        }
        condition = "attribute_not_exists(pk) OR expires_at < :now"
        values: dict[str, Any] = {":now": int(now)}
        if replacing is not None:
            condition += " OR ts = :old"
            values[":old"] = replacing
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeValues=to_item(values),
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            logger.info("thread root for %s already stored by another invocation", key)
