"""Throttle and dedupe alerts across Lambda containers: one state item per fingerprint.

Semantics (docs/incidents.md compares them with Alertmanager):

- the first occurrence of a fingerprint opens a window of ``window_seconds`` and alerts
  ``new`` at once (Alertmanager's ``group_wait`` = 0);
- repeats inside the window are counted, not alerted;
- when the window has ended, the first batch that sees the fingerprint again rolls it
  over, with at most one message (Alertmanager's ``repeat_interval``: a still-firing
  incident is re-notified, never re-opened):

  - the old window has occurrences no alert reported yet: one ``update`` carrying them
    (``count``) and the old window's total (``window_count``); it opens the next window,
    so its incident id names that window and every rollover's update is distinct;
  - nothing unreported, but the fingerprint came back within a window of the old one's
    end: the next window opens silently (the incident is still firing; its occurrences
    are reported by the next rollover or a surge);
  - nothing unreported and a whole window passed without an occurrence: it had stopped
    and now recurs, so ``new``;

  in every case this batch's occurrences are counted in the new window. An incident that
  goes quiet gets its final update with its next occurrence, or never: silence after an
  alert means it stopped;
- inside a window, once the count reaches ``surge_factor`` × the baseline (the previous
  window's count, or the count that opened this window, at least ``surge_min_baseline``)
  a ``surge`` alert goes out early, once per window.

Exactly-once across containers and redeliveries, with DynamoDB conditional writes:

- every write is conditional on the item's ``version`` (compare-and-swap), so two
  containers can never both open a window or both send a surge;
- the common case (a repeat inside a quiet window) is a single atomic ``ADD`` whose
  condition proves nothing else has to happen; any other case falls back to the CAS path
  with the old item returned by the failed condition, no extra read;
- with ``parallelization_factor`` 1 (Lambda reads each shard one batch at a time, in
  order) the item keeps, per shard, the highest Kinesis sequence number counted (``hw``):
  records redelivered after a partial failure or a retry are recognised and neither
  counted nor alerted again. With more than one concurrent batch per shard, sequence
  numbers of different batches interleave and such a mark would drop real occurrences, so
  it is not kept: counts become at-least-once under redelivery (a redelivered record is
  counted again), while every alert decided is still sent exactly once;
- alerts decided are written in the same conditional write (an outbox) and removed once
  sent; a batch that fails between the two leaves them in the item, and whoever sees the
  fingerprint next sends them (the send itself is idempotent on ``incident_id`` + kind).

If the store is unavailable the caller fails open (see ``FailOpenLimiter``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from cali.contracts.clock import Clock, utc_now
from cali.contracts.incident import AlertKind
from cali.state import keys
from cali.state.items import from_item, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SEQ_WIDTH = 64  # Kinesis sequence numbers are up to 56 digits; padded they compare as strings
_NO_SURGE = 10**15


def pad_sequence(sequence_number: str) -> str:
    return sequence_number.rjust(SEQ_WIDTH, "0")


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    window_seconds: int = 900
    surge_factor: float = 5.0
    surge_min_baseline: int = 10
    retention_seconds: int = 86_400  # how long the item (and its redelivery marks) outlives the window
    parallelization_factor: int = 1  # the event source mapping's concurrent batches per shard

    @property
    def tracks_sequence_numbers(self) -> bool:
        """Whether per-shard high-water marks can recognise redelivered records: only when
        one batch per shard runs at a time, so a shard's records arrive in order."""
        return self.parallelization_factor == 1


@dataclass(frozen=True, slots=True)
class ThrottleState:
    """The DynamoDB item of one fingerprint (times are epoch milliseconds)."""

    window_start: int
    window_end: int
    count: int
    reported: int
    surge_at: int  # window count that triggers a surge (baseline × surge_factor)
    surge_sent: bool
    version: int
    hw: dict[str, str] = field(default_factory=dict)
    outbox: dict[str, str] = field(default_factory=dict)

    @property
    def headroom(self) -> int:
        """Occurrences left before a surge (what the one-call fast path checks)."""
        return _NO_SURGE if self.surge_sent else self.surge_at - self.count


@dataclass(frozen=True, slots=True)
class Observation:
    """A fingerprint's occurrences in one batch, from one shard."""

    fingerprint: str
    shard_id: str
    sequence_numbers: Sequence[str]  # padded with ``pad_sequence``
    # The occurrences' own time (epoch ms, the latest of them): windows follow event time,
    # so a replayed or delayed burst is throttled as it happened. None: the clock's time.
    event_time_ms: int | None = None

    @property
    def min_seq(self) -> str:
        return min(self.sequence_numbers)

    @property
    def max_seq(self) -> str:
        return max(self.sequence_numbers)


@dataclass(frozen=True, slots=True)
class AlertDecision:
    kind: AlertKind
    window_start: int  # epoch ms; with the fingerprint it is the incident id
    count: int
    window_count: int
    reports_window: int | None = None  # an update: start of the finished window it reports

    @property
    def key(self) -> str:
        return f"{self.kind}#{self.window_start}"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do for one observation; ``state`` None means nothing to write."""

    alerts: tuple[AlertDecision, ...]
    counted: int
    duplicates: int
    state: ThrottleState | None


def decide(state: ThrottleState | None, obs: Observation, now_ms: int, policy: ThrottlePolicy) -> Decision:
    """The pure throttle rule: old state + this batch's occurrences -> alerts and new state."""
    hw = dict(state.hw) if state else {}
    if policy.tracks_sequence_numbers:
        mark = hw.get(obs.shard_id)
        fresh = [seq for seq in obs.sequence_numbers if mark is None or seq > mark]
        if fresh:
            hw[obs.shard_id] = max(fresh)
    else:
        fresh = list(obs.sequence_numbers)
    duplicates = len(obs.sequence_numbers) - len(fresh)
    if not fresh:
        return Decision((), 0, duplicates, None)
    n = len(fresh)
    version = state.version + 1 if state else 1
    if state is None or now_ms >= state.window_end:
        window_ms = policy.window_seconds * 1000
        alerts: tuple[AlertDecision, ...] = ()
        reported = 0  # this batch's occurrences wait for the next rollover or a surge
        unreported = state.count - state.reported if state else 0
        if state is not None and unreported > 0:
            alerts = (AlertDecision("update", now_ms, unreported, state.count, state.window_start),)
        elif state is None or now_ms >= state.window_end + window_ms:
            alerts = (AlertDecision("new", now_ms, n, n),)
            reported = n
        baseline = max(state.count if state else 0, n, policy.surge_min_baseline)
        new_state = ThrottleState(
            window_start=now_ms,
            window_end=now_ms + window_ms,
            count=n,
            reported=reported,
            surge_at=_surge_threshold(baseline, policy),
            surge_sent=False,
            version=version,
            hw=hw,
            outbox=dict(state.outbox) if state else {},
        )
        return Decision(alerts, n, duplicates, new_state)
    count = state.count + n
    if not state.surge_sent and count >= state.surge_at:
        surge = AlertDecision("surge", state.window_start, count - state.reported, count)
        new_state = replace(state, count=count, reported=count, surge_sent=True, version=version, hw=hw)
        return Decision((surge,), n, duplicates, new_state)
    return Decision((), n, duplicates, replace(state, count=count, version=version, hw=hw))


def _surge_threshold(baseline: int, policy: ThrottlePolicy) -> int:
    # Stored pre-multiplied so the fast path's condition is a plain comparison.
    return max(math.ceil(baseline * policy.surge_factor), baseline + 1)


class StoreUnavailable(Exception):
    """The state store cannot be reached or refused for a non-retryable reason: fail open."""


class StoreThrottled(Exception):
    """The state store is throttling: retry the batch later (the records stay in Kinesis)."""


class ThrottleStore(Protocol):
    def increment_if_quiet(
        self, obs: Observation, now_ms: int, expires_at: int, *, track_sequence: bool = True
    ) -> ThrottleState | None:
        """Fast path: count ``obs`` atomically if its window is open, no surge is due, nothing is
        pending and (``track_sequence``) none of its records were counted before, moving the
        shard's high-water mark. Returns None when that worked, otherwise the current state
        (a ``ThrottleState`` with version 0 if there is none)."""
        ...

    def save(self, fingerprint: str, state: ThrottleState, expected_version: int, expires_at: int) -> bool:
        """Write ``state`` if the stored version is still ``expected_version`` (0: absent)."""
        ...

    def load(self, fingerprint: str) -> ThrottleState | None: ...

    def confirm_sent(self, fingerprint: str, keys: Sequence[str]) -> None:
        """Remove alerts from the outbox after they were sent."""
        ...


ABSENT = ThrottleState(0, 0, 0, 0, 0, False, 0)


@dataclass(frozen=True, slots=True)
class Outcome:
    fingerprint: str
    alerts: tuple[AlertDecision, ...]
    pending: dict[str, str]  # outbox entries left by an earlier batch: resend these
    counted: int
    duplicates: int
    written: dict[str, str] = field(default_factory=dict)  # outbox entries of ``alerts``


class Throttle:
    """Runs ``decide`` against a store with optimistic concurrency."""

    def __init__(
        self, store: ThrottleStore, policy: ThrottlePolicy, clock: Clock = utc_now, max_conflicts: int = 8
    ) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock
        self.max_conflicts = max_conflicts

    def observe(
        self, obs: Observation, outbox_for: Callable[[Sequence[AlertDecision]], dict[str, str]]
    ) -> Outcome:
        """Count ``obs``; ``outbox_for(alerts)`` renders the messages to persist with the decision."""
        # Whole seconds: the window start is part of the incident id, which has second resolution.
        wall_ms = int(self.clock().timestamp()) * 1000
        now_ms = wall_ms if obs.event_time_ms is None else obs.event_time_ms // 1000 * 1000
        # Expiry follows the wall clock: DynamoDB's TTL deletes by real time, and a replay of
        # old events must not write state that is already expired.
        expires_at = max(now_ms, wall_ms) // 1000 + self.policy.window_seconds + self.policy.retention_seconds
        current = self.store.increment_if_quiet(
            obs, now_ms, expires_at, track_sequence=self.policy.tracks_sequence_numbers
        )
        if current is None:
            return Outcome(obs.fingerprint, (), {}, len(obs.sequence_numbers), 0)
        for attempt in range(self.max_conflicts):
            state = None if current.version == 0 else current
            decision = decide(state, obs, now_ms, self.policy)
            pending = dict(state.outbox) if state else {}
            if decision.state is None:
                return Outcome(obs.fingerprint, (), pending, 0, decision.duplicates)
            new_state = decision.state
            written = outbox_for(decision.alerts) if decision.alerts else {}
            if written:
                new_state = replace(new_state, outbox={**new_state.outbox, **written})
            if self.store.save(obs.fingerprint, new_state, current.version, expires_at):
                return Outcome(
                    obs.fingerprint, decision.alerts, pending, decision.counted, decision.duplicates, written
                )
            time.sleep(0.005 * (attempt + 1))
            current = self.store.load(obs.fingerprint) or ABSENT
        raise StoreThrottled(f"{obs.fingerprint}: {self.max_conflicts} write conflicts in a row")


class FailOpenLimiter:
    """Token bucket for alerts sent while the state store is down (per container).

    An alert is better than silence, but a DynamoDB outage during an error storm must not
    turn every fingerprint of every batch into a Slack message.
    """

    def __init__(self, per_minute: int, clock: Clock = utc_now) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.tokens = float(per_minute)
        self.clock = clock
        self.updated = clock().timestamp()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = self.clock().timestamp()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False


_THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TransactionConflictException",
    }
)


class DynamoDbThrottleStore:
    """The state table item ``pk=throttle#<fingerprint>``, ``sk=window``."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    @staticmethod
    def _key(fingerprint: str) -> dict[str, Any]:
        return keys.throttle(fingerprint).item()

    def _call(self, operation: Callable[..., Any], **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return operation(TableName=self._table, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise
            if code in _THROTTLING_CODES:
                raise StoreThrottled(code) from exc
            raise StoreUnavailable(code or str(exc)) from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(str(exc)) from exc

    def increment_if_quiet(
        self, obs: Observation, now_ms: int, expires_at: int, *, track_sequence: bool = True
    ) -> ThrottleState | None:
        from botocore.exceptions import ClientError

        n = len(obs.sequence_numbers)
        update = "ADD #count :n, headroom :minus_n, #version :one"
        condition = "attribute_exists(pk) AND window_end > :now AND headroom > :n AND outbox_size = :zero"
        names = {"#count": "count", "#version": "version"}
        values: dict[str, Any] = {":n": n, ":minus_n": -n, ":one": 1, ":zero": 0, ":now": now_ms}
        if track_sequence:
            update += " SET hw.#shard = :max_seq"
            condition += " AND (attribute_not_exists(hw.#shard) OR hw.#shard < :min_seq)"
            names["#shard"] = obs.shard_id
            values[":min_seq"] = obs.min_seq
            values[":max_seq"] = obs.max_seq
        try:
            self._call(
                self._client.update_item,
                Key=self._key(obs.fingerprint),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_item(values),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            item: Any = exc.response.get("Item")
            return _from_item(item) if item else ABSENT
        return None

    def save(self, fingerprint: str, state: ThrottleState, expected_version: int, expires_at: int) -> bool:
        from botocore.exceptions import ClientError

        values: dict[str, Any] = {}
        if expected_version == 0:
            condition = "attribute_not_exists(pk)"
        else:
            condition = "#version = :expected"
            values = {
                "ExpressionAttributeNames": {"#version": "version"},
                "ExpressionAttributeValues": to_item({":expected": expected_version}),
            }
        try:
            self._call(
                self._client.put_item,
                Item={**self._key(fingerprint), **_to_item(state, expires_at)},
                ConditionExpression=condition,
                **values,
            )
        except ClientError:
            return False
        return True

    def load(self, fingerprint: str) -> ThrottleState | None:
        response = self._call(self._client.get_item, Key=self._key(fingerprint), ConsistentRead=True)
        item = response.get("Item")
        return _from_item(item) if item else None

    def confirm_sent(self, fingerprint: str, keys: Sequence[str]) -> None:
        from botocore.exceptions import ClientError

        for key in keys:
            try:
                self._call(
                    self._client.update_item,
                    Key=self._key(fingerprint),
                    UpdateExpression="REMOVE outbox.#k ADD outbox_size :minus_one, #version :one",
                    ConditionExpression="attribute_exists(outbox.#k)",
                    ExpressionAttributeNames={"#k": key, "#version": "version"},
                    ExpressionAttributeValues=to_item({":minus_one": -1, ":one": 1}),
                )
            except ClientError:
                continue  # someone else confirmed it first


def _to_item(state: ThrottleState, expires_at: int) -> dict[str, Any]:
    return to_item(
        {
            "window_start": state.window_start,
            "window_end": state.window_end,
            "count": state.count,
            "reported": state.reported,
            "surge_at": state.surge_at,
            "headroom": state.headroom,
            "surge_sent": state.surge_sent,
            "version": state.version,
            "hw": dict(state.hw),
            "outbox": dict(state.outbox),
            "outbox_size": len(state.outbox),
            keys.TTL: expires_at,
        }
    )


def _from_item(item: dict[str, Any]) -> ThrottleState:
    values = from_item(item)
    return ThrottleState(
        window_start=values["window_start"],
        window_end=values["window_end"],
        count=values["count"],
        reported=values["reported"],
        surge_at=values["surge_at"],
        surge_sent=bool(values["surge_sent"]),
        version=values["version"],
        hw=values.get("hw", {}),
        outbox=values.get("outbox", {}),
    )
