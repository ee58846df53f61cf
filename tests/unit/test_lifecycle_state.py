"""Every lifecycle transition, escalation and quiet-resolution timing, with an explicit clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from incident_lifecycle.handler import handle_records

from cali.lifecycle.config import EscalationRule
from cali.lifecycle.state import (
    Acknowledge,
    AlertPosted,
    IncidentLifecycle,
    Mute,
    Resolve,
    TransitionRejected,
    Unmute,
    Vote,
    new_lifecycle,
    transition,
)
from cali.lifecycle.store import DynamoDbLifecycleStore, apply
from cali.lifecycle.timers import (
    AwsTimerScheduler,
    TimerPolicy,
    TimerWorker,
    quiet_timer_expired,
    record_alert,
    route_alert,
)
from tests.conftest import StateTable
from tests.support.lifecycle_support import RecordingMetrics, RecordingScheduler, RecordingSlack

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
FP = "fp-orders-timeout"


def alert(
    level: str = "ERROR", count: int = 60, minutes: int = 15, start: datetime = T0, **kw: object
) -> AlertPosted:
    return AlertPosted(
        title="Upstream timeout",
        service="orders",
        template="timeout after <*> ms",
        level=level,
        count=count,
        first_seen=start,
        last_seen=start + timedelta(minutes=minutes),
        channel="C0ALERTS",
        ts="1.1",
        **kw,  # type: ignore[arg-type]
    )


def opened() -> IncidentLifecycle:
    return transition(new_lifecycle(FP, T0), alert(), T0).state


def test_acknowledge_then_resolve_then_regression() -> None:
    state = opened()
    assert state.status == "open" and state.occurrences == 60 and state.rate_per_hour == 240.0
    acked = transition(state, Acknowledge("U1"), T0 + timedelta(minutes=3))
    assert acked.changed and acked.state.status == "acknowledged"
    assert acked.state.acknowledged_at == T0 + timedelta(minutes=3)
    again = transition(acked.state, Acknowledge("U2"), T0 + timedelta(minutes=4))
    assert not again.changed and again.note == "already acknowledged by U1 at 2026-12-03 09:03 UTC"
    resolved = transition(acked.state, Resolve("U2", "pool", "raised pool"), T0 + timedelta(hours=1))
    assert (
        resolved.state.status == "resolved"
        and resolved.state.resolution_id == f"incident#{FP}:{int((T0 + timedelta(hours=1)).timestamp())}"
    )
    assert transition(resolved.state, Acknowledge("U3"), T0).note.startswith("already resolved by U2")
    back = transition(resolved.state, alert(start=T0 + timedelta(days=2)), T0 + timedelta(days=2))
    assert back.event == "reopened" and back.state.status == "reopened" and back.state.reopen_count == 1
    assert back.state.acknowledged_by is None and back.state.resolution == "raised pool"
    assert transition(back.state, Acknowledge("U1"), T0 + timedelta(days=2, minutes=1)).state.status == (
        "acknowledged"
    )


def test_resolve_straight_from_open_counts_as_acknowledged() -> None:
    result = transition(opened(), Resolve("U1", "cause", "fix"), T0 + timedelta(minutes=5))
    assert result.state.acknowledged_by == "U1" and result.state.acknowledged_at == T0 + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (Resolve("U1", " ", "fix"), "root cause is required"),
        (Resolve("U1", "cause", ""), "resolution is required"),
        (Mute("U1", T0), "must end in the future"),
        (Mute("U1", T0 + timedelta(days=31)), "at most 30 days"),
    ],
)
def test_invalid_commands_are_rejected(command: Resolve | Mute, message: str) -> None:
    with pytest.raises(TransitionRejected, match=message):
        transition(opened(), command, T0)


def test_mute_unmute_and_votes() -> None:
    muted = transition(opened(), Mute("U1", T0 + timedelta(hours=1)), T0).state
    assert muted.muted(T0 + timedelta(minutes=59)) and not muted.muted(T0 + timedelta(hours=1))
    assert muted.mute_baseline_per_hour == 240.0
    assert transition(muted, Unmute("U1"), T0 + timedelta(minutes=1)).state.muted_until is None
    assert not transition(muted, Unmute("U1"), T0 + timedelta(hours=2)).changed  # already over
    voted = transition(muted, Vote("U2", True), T0).state
    assert voted.helpful_votes == (1, 0)
    assert not transition(voted, Vote("U2", True), T0).changed
    assert transition(voted, Vote("U2", False), T0).state.helpful_votes == (0, 1)


def test_route_alert_holds_back_muted_alerts_unless_an_error_doubles() -> None:
    assert route_alert(None, alert(), T0) == "post"
    muted = transition(opened(), Mute("U1", T0 + timedelta(hours=1)), T0).state
    later = T0 + timedelta(minutes=30)
    assert route_alert(muted, alert(count=60, start=later), later) == "muted"  # same rate
    assert route_alert(muted, alert(count=119, start=later), later) == "muted"  # just under 2x
    assert route_alert(muted, alert(count=120, start=later), later) == "breakthrough"
    assert route_alert(muted, alert("WARN", count=600, start=later), later) == "muted"
    assert route_alert(muted, alert(start=T0 + timedelta(hours=2)), T0 + timedelta(hours=2)) == "post"
    resolved = transition(opened(), Resolve("U1", "c", "r"), T0).state
    assert route_alert(resolved, alert(), T0 + timedelta(days=1)) == "regression"


def test_held_back_occurrences_are_counted() -> None:
    muted = transition(opened(), Mute("U1", T0 + timedelta(hours=1)), T0).state
    held = transition(muted, alert(count=7, held_back=True), T0 + timedelta(minutes=20)).state
    assert held.muted_occurrences == 7 and held.occurrences == 67


# -- escalation and quiet resolution ---------------------------------------------------------


RULES = {"ERROR": EscalationRule(after_minutes=10, max_times=2, mention="<!subteam^S0ONCALL>")}
POLICY = TimerPolicy(escalation=RULES, quiet_after=timedelta(minutes=60))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _worker(table: StateTable) -> tuple[TimerWorker, RecordingScheduler, RecordingSlack, Clock]:
    clock, scheduler, slack = Clock(), RecordingScheduler(), RecordingSlack()
    store = DynamoDbLifecycleStore(table.name, client=table.client)
    worker = TimerWorker(
        store=store, slack=slack, scheduler=scheduler, policy=POLICY, metrics=RecordingMetrics(), clock=clock
    )
    return worker, scheduler, slack, clock


def test_unacknowledged_error_escalates_at_most_k_times(state_table: StateTable) -> None:
    worker, scheduler, slack, clock = _worker(state_table)
    record_alert(worker.store, FP, alert(), policy=POLICY, scheduler=scheduler, now=T0)
    assert scheduler.escalations == [(FP, 1, T0 + timedelta(minutes=10))]
    record_alert(
        worker.store,
        FP,
        alert(start=T0 + timedelta(minutes=15)),
        policy=POLICY,
        scheduler=scheduler,
        now=T0 + timedelta(minutes=15),
    )
    assert len(scheduler.escalations) == 1  # an update does not re-arm

    clock.now = T0 + timedelta(minutes=10)
    assert worker.escalate(FP, 1) == "escalated"
    assert worker.escalate(FP, 1) == "already escalated"  # SQS redelivery
    assert (
        slack.posts
        == [
            ("C0ALERTS", slack.posts[0][1], "1.1"),
        ]
        and "<!subteam^S0ONCALL>" in slack.posts[0][1]
    )
    assert scheduler.escalations[-1] == (FP, 2, T0 + timedelta(minutes=20))
    clock.now = T0 + timedelta(minutes=20)
    assert worker.escalate(FP, 2) == "escalated"
    assert len(scheduler.escalations) == 2  # K = 2: no third timer
    assert worker.escalate(FP, 3) == "no rule"


def test_acknowledged_or_warn_incidents_do_not_escalate(state_table: StateTable) -> None:
    worker, scheduler, slack, clock = _worker(state_table)
    record_alert(worker.store, FP, alert(), policy=POLICY, scheduler=scheduler, now=T0)
    apply(worker.store, FP, Acknowledge("U1"), T0 + timedelta(minutes=9))
    clock.now = T0 + timedelta(minutes=10)
    assert worker.escalate(FP, 1) == "acknowledged" and slack.posts == []
    record_alert(worker.store, "fp-warn", alert("WARN"), policy=POLICY, scheduler=scheduler, now=T0)
    assert [e[0] for e in scheduler.escalations] == [FP]


def test_quiet_resolution_waits_for_the_last_occurrence(state_table: StateTable) -> None:
    worker, scheduler, slack, clock = _worker(state_table)
    record_alert(worker.store, FP, alert(minutes=15), policy=POLICY, scheduler=scheduler, now=T0)
    assert scheduler.quiet == [(FP, T0 + timedelta(minutes=75))]
    # It fired again before the timer: the TTL deletion comes, but the incident is not quiet.
    later = T0 + timedelta(minutes=30)
    record_alert(
        worker.store,
        FP,
        alert(count=5, start=later, minutes=10),
        policy=POLICY,
        scheduler=scheduler,
        now=later,
    )
    clock.now = T0 + timedelta(minutes=76)
    assert worker.quiet(FP) == "rearmed"
    assert scheduler.quiet[-1] == (FP, T0 + timedelta(minutes=100))
    clock.now = T0 + timedelta(minutes=100)
    assert worker.quiet(FP) == "quiet"
    assert "65 occurrences in all" in slack.posts[-1][1] and slack.posts[-1][2] == "1.1"
    assert worker.quiet(FP) == "already closed"
    state = worker.store.load(FP)
    assert state is not None and state.quiet_since == T0 + timedelta(minutes=40)


def test_stream_records_fire_only_ttl_deletions_of_quiet_timers(state_table: StateTable) -> None:
    def removal(pk: str, sk: str, by_ttl: bool) -> dict[str, object]:
        record: dict[str, object] = {
            "eventSource": "aws:dynamodb",
            "eventName": "REMOVE",
            "dynamodb": {"Keys": {"pk": {"S": pk}, "sk": {"S": sk}}, "SequenceNumber": "1"},
        }
        if by_ttl:
            record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
        return record

    assert quiet_timer_expired(removal(f"timer#{FP}", "quiet", True)) == FP
    assert quiet_timer_expired(removal(f"timer#{FP}", "quiet", False)) is None  # a person deleted it
    assert quiet_timer_expired(removal(f"throttle#{FP}", "window", True)) is None

    worker, scheduler, slack, clock = _worker(state_table)
    record_alert(worker.store, FP, alert(minutes=15), policy=POLICY, scheduler=scheduler, now=T0)
    clock.now = T0 + timedelta(hours=3)
    escalate = {
        "eventSource": "aws:sqs",
        "messageId": "m1",
        "body": json.dumps(
            {
                "job": "escalate",
                "fingerprint": FP,
                "number": 1,
                "due_at": (T0 + timedelta(minutes=10)).isoformat(),
            }
        ),
    }
    broken = {"eventSource": "aws:sqs", "messageId": "m2", "body": "{not json"}
    # Escalation first (still open), then the quiet timer; after quiet, escalation would skip.
    result = handle_records([escalate, removal(f"timer#{FP}", "quiet", True), broken], worker)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert [text[:8] for _, text, _ in slack.posts] == [":rotatin", ":zzz: Qu"]
    assert worker.escalate(FP, 2) == "quiet"


def test_aws_scheduler_uses_sqs_delays_and_ttl_items(state_table: StateTable) -> None:
    import boto3

    sqs = boto3.client("sqs", region_name=state_table.region)
    queue = sqs.create_queue(QueueName="lifecycle")["QueueUrl"]
    scheduler = AwsTimerScheduler(state_table.name, queue, dynamodb=state_table.client, sqs=sqs)
    scheduler.clock = lambda: T0
    scheduler.arm_escalation(FP, 1, T0 + timedelta(minutes=40))  # longer than one SQS delay
    scheduler.arm_quiet(FP, T0 + timedelta(minutes=60))
    item = state_table.client.get_item(
        TableName=state_table.name, Key={"pk": {"S": f"timer#{FP}"}, "sk": {"S": "quiet"}}
    )["Item"]
    assert item["expires_at"]["N"] == str(int((T0 + timedelta(minutes=60)).timestamp()))
    assert (
        sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessagesDelayed"])[
            "Attributes"
        ]["ApproximateNumberOfMessagesDelayed"]
        == "1"
    )
