"""Exact-key cache of LLM answers, so one incident is not paid for twice.

The key (built by ``cali.analysis.llm.analyzer.cache_key``) covers everything that shapes the
answer: fingerprint, prompt version, model and the retrieved knowledge ids. An ``update``
or ``surge`` alert for the same fingerprint therefore reuses the first answer for free.
Only grounded, non-degraded answers are stored. DynamoDB deletes expired items lazily
(up to days later), so expiry is also checked on read.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, Field

from cali.contracts.analysis import LlmAnalysis
from cali.contracts.clock import Clock, utc_now
from cali.state import keys
from cali.state.items import from_item, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class CachedAnalysis(BaseModel):
    """What a cache hit restores: the grounded answer and the flags it carried."""

    analysis: LlmAnalysis
    model: str
    flags: list[str] = Field(default_factory=list)
    created_at: datetime


class LlmCache(Protocol):
    def get(self, key: str) -> CachedAnalysis | None: ...

    def put(self, key: str, value: CachedAnalysis, *, ttl_seconds: int) -> None: ...


class DynamoDbLlmCache:
    """Item ``pk = llmcache#<key>`` in the state table, value as JSON, ``expires_at`` TTL."""

    def __init__(self, table_name: str, *, client: DynamoDBClient, clock: Clock = utc_now) -> None:
        self.table_name = table_name
        self._client = client
        self._clock = clock

    @staticmethod
    def item_key(key: str) -> dict[str, dict[str, str]]:
        return keys.llm_cache(key).item()

    def get(self, key: str) -> CachedAnalysis | None:
        item = self._client.get_item(TableName=self.table_name, Key=self.item_key(key)).get("Item")
        if not item or "value" not in item:
            return None
        if int(item.get("expires_at", {}).get("N", "0")) <= int(self._clock().timestamp()):
            return None
        return CachedAnalysis.model_validate_json(from_item(item)["value"])

    def put(self, key: str, value: CachedAnalysis, *, ttl_seconds: int) -> None:
        self._client.put_item(
            TableName=self.table_name,
            Item={
                **self.item_key(key),
                **to_item(
                    {"value": value.model_dump_json(), keys.TTL: int(self._clock().timestamp()) + ttl_seconds}
                ),
            },
        )
