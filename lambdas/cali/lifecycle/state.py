"""The lifecycle record of one incident (a fingerprint) and its transitions.

Pure code: every transition takes the old state, a command and an explicit ``now``, and
returns the new state (or says why nothing changed). Storage and concurrency live in
:mod:`cali.lifecycle.store`; the transition is re-run on the fresh state when a
conditional write loses a race, so two clicks at once end in one acknowledgement and an
"already acknowledged by ..." answer for the second.

States: ``open`` (an alert was posted) -> ``acknowledged`` -> ``resolved``; a resolved
fingerprint that fires again is ``reopened`` (a regression) and can be acknowledged and
resolved again. A mute is orthogonal to the state: ``muted_until`` holds alerts back
until that time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cali.state import keys

Status = Literal["open", "acknowledged", "resolved", "reopened"]
ACTIVE: frozenset[str] = frozenset({"open", "reopened"})
HISTORY_MAX = 50
TEXT_MAX = 3000  # a Slack modal's multiline input allows 3,000 characters
MAX_MUTE = timedelta(days=30)


class HistoryEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: datetime
    actor: str
    action: str
    detail: str = ""


class IncidentLifecycle(BaseModel):
    """One fingerprint's lifecycle (the ``lifecycle#<fingerprint>`` item)."""

    model_config = ConfigDict(frozen=True)

    fingerprint: str = Field(min_length=1, max_length=100)  # the knowledge id adds 20 of its 128
    status: Status = "open"
    title: str = ""
    service: str | None = None
    template: str = ""
    level: str = "ERROR"
    summary: str = Field("", description="The AI analysis' root cause, to prefill the resolve modal")
    suggested_fix: str = ""
    opened_at: datetime
    last_seen: datetime | None = None
    occurrences: int = Field(0, ge=0, description="Occurrences reported by alerts, in all")
    rate_per_hour: float = Field(0.0, ge=0, description="Rate of the latest alert")
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    root_cause: str | None = None
    resolution: str | None = None
    resolution_id: str | None = Field(None, description="Knowledge entry id of the latest resolution")
    resolution_link: str | None = Field(None, description="Slack permalink of the resolved alert")
    reopened_at: datetime | None = None
    reopen_count: int = 0
    muted_until: datetime | None = None
    muted_by: str | None = None
    mute_baseline_per_hour: float = 0.0
    muted_occurrences: int = 0
    escalations: int = 0
    message_channel: str | None = Field(None, description="Where the incident's alert thread lives")
    message_ts: str | None = None
    quiet_since: datetime | None = None
    votes: dict[str, bool] = Field(default_factory=dict)
    history: tuple[HistoryEntry, ...] = ()
    version: int = 0

    def muted(self, now: datetime) -> bool:
        return self.muted_until is not None and now < self.muted_until

    @property
    def helpful_votes(self) -> tuple[int, int]:
        yes = sum(1 for vote in self.votes.values() if vote)
        return yes, len(self.votes) - yes


# ---------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Acknowledge:
    actor: str


@dataclass(frozen=True, slots=True)
class Resolve:
    actor: str
    root_cause: str
    resolution: str
    link: str | None = None


@dataclass(frozen=True, slots=True)
class Mute:
    actor: str
    until: datetime


@dataclass(frozen=True, slots=True)
class Unmute:
    actor: str


@dataclass(frozen=True, slots=True)
class Vote:
    actor: str
    helpful: bool


@dataclass(frozen=True, slots=True)
class AlertPosted:
    """An alert for the fingerprint went out (or was held back by a mute)."""

    title: str
    service: str | None
    template: str
    level: str
    count: int
    first_seen: datetime
    last_seen: datetime
    summary: str = ""
    suggested_fix: str = ""
    held_back: bool = False  # muted: counted, not posted
    channel: str | None = None  # the posted message, for in-place updates and escalation threads
    ts: str | None = None


@dataclass(frozen=True, slots=True)
class Escalated:
    number: int


@dataclass(frozen=True, slots=True)
class WentQuiet:
    since: datetime


Command = Acknowledge | Resolve | Mute | Unmute | Vote | AlertPosted | Escalated | WentQuiet


class TransitionRejected(ValueError):
    """The command is not valid (empty resolution, mute in the past): nothing is written."""


@dataclass(frozen=True, slots=True)
class Transition:
    state: IncidentLifecycle
    changed: bool
    note: str  # what happened, for the person who clicked ("already acknowledged by ...")
    event: str  # acknowledged, resolved, muted, unmuted, voted, opened, reopened, ..., noop


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _with(
    state: IncidentLifecycle, now: datetime, actor: str, action: str, detail: str = "", **changes: object
) -> IncidentLifecycle:
    history = (*state.history, HistoryEntry(at=now, actor=actor, action=action, detail=detail[:200]))
    return state.model_copy(update={**changes, "history": history[-HISTORY_MAX:]})


def _clean(text: str, name: str) -> str:
    value = text.strip()
    if not value:
        raise TransitionRejected(f"{name} is required")
    return value[:TEXT_MAX]


def resolution_id(fingerprint: str, at: datetime) -> str:
    """Knowledge entry id (and ``pk``) of one resolution: every resolution is a lesson."""
    return keys.resolution(fingerprint, int(at.timestamp())).pk


def _acknowledge(state: IncidentLifecycle, cmd: Acknowledge, now: datetime) -> Transition:
    if state.status == "acknowledged":
        when = _stamp(state.acknowledged_at) if state.acknowledged_at else "earlier"
        return Transition(state, False, f"already acknowledged by {state.acknowledged_by} at {when}", "noop")
    if state.status == "resolved":
        when = _stamp(state.resolved_at) if state.resolved_at else "earlier"
        return Transition(state, False, f"already resolved by {state.resolved_by} at {when}", "noop")
    new = _with(
        state,
        now,
        cmd.actor,
        "acknowledged",
        status="acknowledged",
        acknowledged_at=now,
        acknowledged_by=cmd.actor,
    )
    return Transition(new, True, f"acknowledged by {cmd.actor} at {_stamp(now)}", "acknowledged")


def _resolve(state: IncidentLifecycle, cmd: Resolve, now: datetime) -> Transition:
    root_cause, resolution = _clean(cmd.root_cause, "root cause"), _clean(cmd.resolution, "resolution")
    if state.status == "resolved":
        when = _stamp(state.resolved_at) if state.resolved_at else "earlier"
        return Transition(state, False, f"already resolved by {state.resolved_by} at {when}", "noop")
    new = _with(
        state,
        now,
        cmd.actor,
        "resolved",
        resolution[:200],
        status="resolved",
        resolved_at=now,
        resolved_by=cmd.actor,
        root_cause=root_cause,
        resolution=resolution,
        resolution_id=resolution_id(state.fingerprint, now),
        resolution_link=cmd.link,
        acknowledged_at=state.acknowledged_at or now,
        acknowledged_by=state.acknowledged_by or cmd.actor,
    )
    return Transition(new, True, f"resolved by {cmd.actor} at {_stamp(now)}", "resolved")


def _mute(state: IncidentLifecycle, cmd: Mute, now: datetime) -> Transition:
    if cmd.until <= now:
        raise TransitionRejected("a mute must end in the future")
    if cmd.until - now > MAX_MUTE:
        raise TransitionRejected("a mute lasts at most 30 days; resolve the incident instead")
    new = _with(
        state,
        now,
        cmd.actor,
        "muted",
        f"until {_stamp(cmd.until)}",
        muted_until=cmd.until,
        muted_by=cmd.actor,
        mute_baseline_per_hour=state.rate_per_hour,
        muted_occurrences=0 if not state.muted(now) else state.muted_occurrences,
    )
    return Transition(new, True, f"muted by {cmd.actor} until {_stamp(cmd.until)}", "muted")


def _unmute(state: IncidentLifecycle, cmd: Unmute, now: datetime) -> Transition:
    if not state.muted(now):
        return Transition(state, False, "not muted", "noop")
    new = _with(state, now, cmd.actor, "unmuted", muted_until=None, muted_by=None)
    return Transition(new, True, f"unmuted by {cmd.actor} at {_stamp(now)}", "unmuted")


def _vote(state: IncidentLifecycle, cmd: Vote, now: datetime) -> Transition:
    if state.votes.get(cmd.actor) is cmd.helpful:
        return Transition(state, False, "vote already counted", "noop")
    label = "helpful" if cmd.helpful else "not helpful"
    new = _with(state, now, cmd.actor, "voted", label, votes={**state.votes, cmd.actor: cmd.helpful})
    return Transition(new, True, f"{cmd.actor} found the analysis {label}", "voted")


def rate_per_hour(count: int, first_seen: datetime, last_seen: datetime) -> float:
    # At least a minute: a burst in one second is not a rate of 3,600x its count per hour.
    seconds = max((last_seen - first_seen).total_seconds(), 60.0)
    return count * 3600.0 / seconds


def _alert_posted(state: IncidentLifecycle, cmd: AlertPosted, now: datetime) -> Transition:
    rate = rate_per_hour(cmd.count, cmd.first_seen, cmd.last_seen)
    common: dict[str, object] = {
        "title": cmd.title or state.title,
        "service": cmd.service or state.service,
        "template": cmd.template or state.template,
        "level": cmd.level,
        "summary": cmd.summary or state.summary,
        "suggested_fix": cmd.suggested_fix or state.suggested_fix,
        "last_seen": max(cmd.last_seen, state.last_seen or cmd.last_seen),
        "occurrences": state.occurrences + cmd.count,
        "rate_per_hour": rate,
        "quiet_since": None,
        "message_channel": cmd.channel or state.message_channel,
        "message_ts": cmd.ts or state.message_ts,
    }
    if cmd.held_back:
        common["muted_occurrences"] = state.muted_occurrences + cmd.count
    elif not state.muted(now):
        common["muted_occurrences"] = 0  # this alert told them (see AlertLifecycle.decorate)
    if state.status == "resolved":
        new = _with(
            state,
            now,
            "cali",
            "reopened",
            f"{cmd.count} new occurrences",
            status="reopened",
            reopened_at=now,
            reopen_count=state.reopen_count + 1,
            acknowledged_at=None,
            acknowledged_by=None,
            escalations=0,
            **common,
        )
        return Transition(new, True, "regression: fired again after it was resolved", "reopened")
    return Transition(state.model_copy(update=common), True, f"{cmd.count} occurrences", "alerted")


def _escalated(state: IncidentLifecycle, cmd: Escalated, now: datetime) -> Transition:
    new = _with(state, now, "cali", "escalated", f"#{cmd.number}", escalations=cmd.number)
    return Transition(new, True, f"escalation #{cmd.number}", "escalated")


def _went_quiet(state: IncidentLifecycle, cmd: WentQuiet, now: datetime) -> Transition:
    new = _with(state, now, "cali", "quiet", f"since {_stamp(cmd.since)}", quiet_since=cmd.since)
    return Transition(new, True, f"quiet since {_stamp(cmd.since)}", "quiet")


_RULES: dict[type, Callable[[IncidentLifecycle, Any, datetime], Transition]] = {
    Acknowledge: _acknowledge,
    Resolve: _resolve,
    Mute: _mute,
    Unmute: _unmute,
    Vote: _vote,
    AlertPosted: _alert_posted,
    Escalated: _escalated,
    WentQuiet: _went_quiet,
}


def transition(state: IncidentLifecycle, command: Command, now: datetime) -> Transition:
    """Apply ``command`` at ``now``; raises :class:`TransitionRejected` for invalid input."""
    return _RULES[type(command)](state, command, now)


def new_lifecycle(fingerprint: str, now: datetime) -> IncidentLifecycle:
    """The state a command starts from when no alert registered the fingerprint yet."""
    return IncidentLifecycle(fingerprint=fingerprint, opened_at=now)
