"""The single-table key schema: every kind of item CALI keeps in the state table.

One place, so that two stages can never collide on a prefix and an operator reading a
table item knows who wrote it. All items expire through the table's TTL attribute.

========================  =============================  ===============================  ==========
item                      pk                             sk                               written by
========================  =============================  ===============================  ==========
throttle window           ``throttle#<fingerprint>``     ``window``                       consumer
alert send (idempotency)  ``idempotency#<function>``     ``<alert key hash>``             consumer
alert progress            ``incident#<incident id>``     ``alert#<kind>#<window count>``  analyzer
resolved incident         ``incident#<incident id>``     anything, ``status=resolved``    people
LLM answer cache          ``llmcache#<cache key>``       ``llmcache``                     analyzer
daily token budget        ``budget#<yyyy-mm-dd>``        ``tokens``                       analyzer
Slack thread root         ``slackthread#<fingerprint>``  ``<channel id>``                 analyzer
========================  =============================  ===============================  ==========

The idempotency items are Powertools' own (``DynamoDBPersistenceLayer`` with
``key_attr=PK``, ``sort_key_attr=SK``, ``expiry_attr=TTL``); CALI only names the attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from cali.state.items import to_item

PK = "pk"
SK = "sk"
TTL = "expires_at"

INCIDENT_PREFIX = "incident#"
"""Alert progress and resolved incidents share the incident's partition."""


@dataclass(frozen=True)
class Key:
    pk: str
    sk: str

    def item(self) -> dict[str, Any]:
        """The key as DynamoDB attribute values (``Key=`` of get/update, part of ``Item=``)."""
        return to_item({PK: self.pk, SK: self.sk})


def throttle(fingerprint: str) -> Key:
    return Key(f"throttle#{fingerprint}", "window")


def alert(incident_id: str, kind: str, window_count: int) -> Key:
    return Key(f"{INCIDENT_PREFIX}{incident_id}", f"alert#{kind}#{window_count}")


def llm_cache(cache_key: str) -> Key:
    return Key(f"llmcache#{cache_key}", "llmcache")


def token_budget(day: date) -> Key:
    return Key(f"budget#{day.isoformat()}", "tokens")


def slack_thread(thread_key: str, channel: str) -> Key:
    return Key(f"slackthread#{thread_key}", channel)
