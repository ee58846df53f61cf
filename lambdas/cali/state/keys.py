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
incident lifecycle        ``lifecycle#<fingerprint>``    ``state``                        lifecycle
Slack request (replay)    ``slackreq#<signature>``       ``replay``                       interactions
quiet timer               ``timer#<fingerprint>``        ``quiet``                        analyzer
resolution (knowledge)    ``incident#<fp>:<epoch s>``    ``resolution``, status resolved  lifecycle
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


LIFECYCLE_PREFIX = "lifecycle#"
TIMER_PREFIX = "timer#"


def lifecycle(fingerprint: str) -> Key:
    """One fingerprint's incident lifecycle (open, acknowledged, resolved, muted...)."""
    return Key(f"{LIFECYCLE_PREFIX}{fingerprint}", "state")


def slack_request(signature: str) -> Key:
    """A Slack request already accepted: its replay fails the conditional put."""
    return Key(f"slackreq#{signature}", "replay")


def quiet_timer(fingerprint: str) -> Key:
    """Deleted by TTL when the incident has been quiet long enough; the stream fires it."""
    return Key(f"{TIMER_PREFIX}{fingerprint}", "quiet")


def resolution(fingerprint: str, epoch_seconds: int) -> Key:
    """A resolution entered by a person: a resolved-incident knowledge entry of its own."""
    return Key(f"{INCIDENT_PREFIX}{fingerprint}:{epoch_seconds}", "resolution")
