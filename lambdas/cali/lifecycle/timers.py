"""Escalation and quiet resolution: timers armed when an alert goes out, fired later.

- **Escalation**: an ERROR/FATAL incident (per-level rules, per environment through the
  configuration) still ``open`` or ``reopened`` ``after_minutes`` after its alert is
  re-posted with the on-call mention, in the alert's thread or an escalation channel, at
  most ``max_times``. The timer is an SQS message with a delivery delay (at most 15
  minutes per hop; a longer wait re-sends itself), so it fires on time without a scan.
- **Quiet resolution**: ``timer#<fingerprint>`` / ``quiet`` is written with
  ``expires_at`` = last occurrence + ``quiet_after``; DynamoDB's TTL deletes it and the
  table's stream delivers the REMOVE record to the lifecycle worker, which posts "quiet
  since ..., N occurrences in all" unless the incident fired again meanwhile (then the
  timer is re-armed for the new last occurrence). No table scan anywhere. TTL deletion is
  late by minutes to hours (AWS promises "within a few days"), which suits a courtesy
  message but not paging: that is why escalation uses SQS delays instead.

Both are idempotent under redelivery: the escalation number and ``quiet_since`` are
recorded with the conditional lifecycle write before anything is posted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from cali.lifecycle import blocks
from cali.lifecycle.config import EscalationRule
from cali.lifecycle.interactions import Metrics, SlackApi
from cali.lifecycle.state import (
    ACTIVE,
    AlertPosted,
    Escalated,
    IncidentLifecycle,
    Transition,
    WentQuiet,
    rate_per_hour,
)
from cali.lifecycle.store import LifecycleStore, apply
from cali.state import keys

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)

TIMER_PREFIX = keys.TIMER_PREFIX
MAX_SQS_DELAY = 900
Route = Literal["post", "regression", "muted", "breakthrough"]
BREAKTHROUGH_FACTOR = 2.0
SEVERE = frozenset({"ERROR", "FATAL"})


class TimerScheduler(Protocol):
    def arm_escalation(self, fingerprint: str, number: int, due_at: datetime) -> None: ...

    def arm_quiet(self, fingerprint: str, due_at: datetime) -> None: ...


@dataclass(frozen=True)
class TimerPolicy:
    escalation: Mapping[str, EscalationRule]
    quiet_after: timedelta


# ---------------------------------------------------------------------------------------
# When an alert is about to go out
# ---------------------------------------------------------------------------------------


def route_alert(state: IncidentLifecycle | None, alert: AlertPosted, now: datetime) -> Route:
    """What to do with an alert the throttle decided, given the fingerprint's lifecycle.

    A resolved fingerprint firing again is a regression. A muted one is held back (counted,
    not posted) unless it is ERROR or worse and its rate at least doubled since the mute.
    """
    if state is None:
        return "post"
    if state.status == "resolved":
        return "regression"
    if not state.muted(now):
        return "post"
    rate = rate_per_hour(alert.count, alert.first_seen, alert.last_seen)
    baseline = state.mute_baseline_per_hour
    if alert.level in SEVERE and baseline > 0 and rate >= BREAKTHROUGH_FACTOR * baseline:
        return "breakthrough"
    return "muted"


def record_alert(
    store: LifecycleStore,
    fingerprint: str,
    alert: AlertPosted,
    *,
    policy: TimerPolicy,
    scheduler: TimerScheduler,
    now: datetime,
) -> Transition:
    """Register an alert (posted or held back) and arm its escalation and quiet timers."""
    before = store.load(fingerprint)
    result = apply(store, fingerprint, alert, now)
    state = result.state
    if state.last_seen is not None:
        scheduler.arm_quiet(fingerprint, state.last_seen + policy.quiet_after)
    fresh = before is None or result.event == "reopened"
    rule = policy.escalation.get(state.level)
    if fresh and rule is not None and not alert.held_back and state.status in ACTIVE:
        scheduler.arm_escalation(fingerprint, 1, now + timedelta(minutes=rule.after_minutes))
    return result


# ---------------------------------------------------------------------------------------
# When a timer fires
# ---------------------------------------------------------------------------------------


class TimerWorker:
    def __init__(
        self,
        *,
        store: LifecycleStore,
        slack: SlackApi,
        scheduler: TimerScheduler,
        policy: TimerPolicy,
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.slack = slack
        self.scheduler = scheduler
        self.policy = policy
        self.metrics = metrics
        self.clock = clock

    def escalate(self, fingerprint: str, number: int) -> str:
        """Fire escalation ``number``; returns what happened (for logs and tests)."""
        now = self.clock()
        state = self.store.load(fingerprint)
        rule = self.policy.escalation.get(state.level) if state else None
        skip = _escalation_skip(state, rule, number, now)
        if skip or state is None or rule is None:
            return skip or "gone"
        apply(self.store, fingerprint, Escalated(number), now)
        text = blocks.escalation_text(state, rule.mention, number, rule.after_minutes * number)
        channel = rule.channel or state.message_channel
        thread = None if rule.channel else state.message_ts
        if not channel:
            logger.error("escalation %s of %s has no channel to post to", number, fingerprint)
            self.metrics.count("EscalationFailed")
            return "no channel"
        self.slack.post(channel, text, thread_ts=thread)
        self.metrics.count("IncidentEscalated", level=state.level)
        if number < rule.max_times:
            self.scheduler.arm_escalation(
                fingerprint, number + 1, now + timedelta(minutes=rule.after_minutes)
            )
        return "escalated"

    def quiet(self, fingerprint: str) -> str:
        now = self.clock()
        state = self.store.load(fingerprint)
        if state is None:
            return "gone"
        if state.status == "resolved" or state.quiet_since is not None:
            return "already closed"
        last = state.last_seen or state.opened_at
        due = last + self.policy.quiet_after
        if due > now:
            self.scheduler.arm_quiet(fingerprint, due)  # it fired again since the timer was armed
            return "rearmed"
        apply(self.store, fingerprint, WentQuiet(last), now)
        self.metrics.count("IncidentQuiet")  # Incident + event name, like record_metrics
        if state.message_channel and state.message_ts:
            text = blocks.quiet_text(state, last, state.occurrences)
            self.slack.post(state.message_channel, text, thread_ts=state.message_ts)
        return "quiet"


def _escalation_skip(
    state: IncidentLifecycle | None, rule: EscalationRule | None, number: int, now: datetime
) -> str | None:
    """Why escalation ``number`` must not go out, or None when it must."""
    if state is None:
        return "gone"
    reasons = (
        (state.status not in ACTIVE, state.status),
        (rule is None or number > rule.max_times, "no rule"),
        (state.muted(now), "muted"),
        (state.quiet_since is not None, "quiet"),
        (state.escalations >= number, "already escalated"),
    )
    return next((reason for applies, reason in reasons if applies), None)


# ---------------------------------------------------------------------------------------
# AWS schedulers and event parsing
# ---------------------------------------------------------------------------------------


class AwsTimerScheduler:
    """Escalations as delayed SQS messages, quiet timers as TTL items of the state table."""

    def __init__(
        self,
        table_name: str,
        queue_url: str,
        *,
        dynamodb: DynamoDBClient,
        sqs: SQSClient,
        max_delay_seconds: int = MAX_SQS_DELAY,
    ) -> None:
        self.max_delay_seconds = max_delay_seconds
        self.table_name = table_name
        self.queue_url = queue_url
        self.dynamodb = dynamodb
        self.sqs = sqs
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def arm_escalation(self, fingerprint: str, number: int, due_at: datetime) -> None:
        job = {"job": "escalate", "fingerprint": fingerprint, "number": number, "due_at": due_at.isoformat()}
        delay = int(max(0.0, min(self.max_delay_seconds, (due_at - self.clock()).total_seconds())))
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(job), DelaySeconds=delay)

    def arm_quiet(self, fingerprint: str, due_at: datetime) -> None:
        self.dynamodb.put_item(
            TableName=self.table_name,
            Item={
                **keys.quiet_timer(fingerprint).item(),
                "fingerprint": {"S": fingerprint},
                "due_at": {"S": due_at.isoformat()},
                "expires_at": {"N": str(int(due_at.timestamp()))},
            },
        )


def escalation_due(job: Mapping[str, Any], now: datetime) -> bool:
    """False when a long wait needs another SQS hop (each delays at most 15 minutes)."""
    return datetime.fromisoformat(str(job["due_at"])) <= now + timedelta(seconds=1)


def quiet_timer_expired(record: Mapping[str, Any]) -> str | None:
    """The fingerprint of a quiet timer that DynamoDB's TTL deleted, else None.

    TTL deletions are REMOVE records whose ``userIdentity`` is the DynamoDB service; a
    person or code deleting the item is not a timer firing.
    """
    if record.get("eventName") != "REMOVE":
        return None
    identity = record.get("userIdentity") or {}
    if identity.get("type") != "Service" or identity.get("principalId") != "dynamodb.amazonaws.com":
        return None
    keys = (record.get("dynamodb") or {}).get("Keys") or {}
    pk, sk = keys.get("pk", {}).get("S", ""), keys.get("sk", {}).get("S", "")
    if not pk.startswith(TIMER_PREFIX) or sk != "quiet":
        return None
    return str(pk.removeprefix(TIMER_PREFIX))
