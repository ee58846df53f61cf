"""The per-environment daily LLM token budget.

Tokens are reserved *before* a call (the prompt estimate plus ``max_tokens``, the most the
call can cost) and the reservation is reconciled with the usage the API reports
afterwards. Reserving first means that concurrent analyzers can never overshoot the
budget together: DynamoDB's conditional update is the arbiter. When the budget is spent
the analyzer degrades to a retrieval-only summary instead of calling the model.

The day is the UTC date; each environment has its own state table, so the item is simply
``pk = budget#<yyyy-mm-dd>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Protocol

from cali.contracts.clock import Clock, utc_now
from cali.state import keys
from cali.state.items import from_item, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


_KEEP_SECONDS = 8 * 86_400  # a week of history to look at, then DynamoDB TTL removes it


@dataclass(frozen=True)
class Reservation:
    day: date
    tokens: int


class BudgetUnavailableError(RuntimeError):
    """The budget store could not be reached: the analyzer treats it as budget spent."""


class TokenBudget(Protocol):
    def reserve(self, tokens: int) -> Reservation | None:
        """Take ``tokens`` from today's budget; ``None`` when that would exceed it."""
        ...

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Replace the reservation by what the call really used (may give tokens back)."""
        ...


class DynamoDbTokenBudget:
    """Atomic counter ``budget#<day>`` in the state table with a conditional ``ADD``."""

    def __init__(
        self,
        table_name: str,
        daily_limit: int,
        *,
        client: DynamoDBClient,
        clock: Clock = utc_now,
    ) -> None:
        self.table_name = table_name
        self.daily_limit = daily_limit
        self._client = client
        self._clock = clock

    @staticmethod
    def key(day: date) -> dict[str, dict[str, str]]:
        return keys.token_budget(day).item()

    def used(self, day: date | None = None) -> int:
        item = self._client.get_item(
            TableName=self.table_name, Key=self.key(day or self._clock().date()), ConsistentRead=True
        ).get("Item")
        return int(from_item(item)["used"]) if item and "used" in item else 0

    def reserve(self, tokens: int) -> Reservation | None:
        if tokens > self.daily_limit:
            return None
        now = self._clock()
        day = now.date()
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=self.key(day),
                UpdateExpression="ADD used :n SET expires_at = if_not_exists(expires_at, :exp)",
                # "used <= limit - n" rather than "used + n <= limit": condition expressions
                # cannot add, so the threshold is computed here.
                ConditionExpression="attribute_not_exists(used) OR used <= :threshold",
                ExpressionAttributeValues={
                    **to_item(
                        {
                            ":n": tokens,
                            ":threshold": self.daily_limit - tokens,
                            ":exp": int(now.timestamp()) + _KEEP_SECONDS,
                        }
                    ),
                },
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return None
        except Exception as exc:  # botocore errors: network, throttling, permissions
            raise BudgetUnavailableError(f"token budget table unavailable: {exc}") from exc
        return Reservation(day=day, tokens=tokens)

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        delta = actual_tokens - reservation.tokens
        if delta == 0:
            return
        # Unconditional: the tokens were spent whatever the budget says now.
        self._client.update_item(
            TableName=self.table_name,
            Key=self.key(reservation.day),
            UpdateExpression="ADD used :d",
            ExpressionAttributeValues=to_item({":d": delta}),
        )
