"""Slack interactivity and slash commands: verify, authorise, change state, answer in time.

Slack waits 3 seconds for an answer. Inside that budget a request does only what must
happen before the answer: the checks of :mod:`cali.lifecycle.slack_request`, the user
group allow-list (cached), the replay mark, one conditional state write, and for the
"Resolve…" button ``views.open`` (Slack's ``trigger_id`` is valid for 3 seconds only).
Redrawing the alert (``chat.update``) and the thread reply are handed to a
:class:`Deferrer`: in AWS an asynchronous invocation of the same function.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from cali.lifecycle import blocks
from cali.lifecycle.slack_request import (
    BlockActions,
    Rejected,
    SlackPayload,
    SlashCommand,
    ViewSubmission,
    check_team,
    parse_payload,
    verify_signature,
)
from cali.lifecycle.state import (
    Acknowledge,
    Command,
    IncidentLifecycle,
    Mute,
    Resolve,
    Transition,
    TransitionRejected,
    Unmute,
    Vote,
    new_lifecycle,
)
from cali.lifecycle.store import LifecycleStore, ReplayGuard, apply

logger = logging.getLogger(__name__)

GROUP_CACHE_SECONDS = 300
INLINE_BLOCKS_MAX = 100_000  # larger messages are re-read by the deferred job


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: str = ""
    content_type: str = "application/json"

    @staticmethod
    def json(status: int, data: Mapping[str, Any]) -> HttpResponse:
        return HttpResponse(status, json.dumps(data))


class SlackApi(Protocol):
    def open_view(self, trigger_id: str, view: Mapping[str, Any]) -> None: ...

    def message_blocks(self, channel: str, ts: str) -> list[dict[str, Any]]: ...

    def update_message(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None: ...

    def post(self, channel: str, text: str, *, thread_ts: str | None = None) -> str | None: ...

    def group_members(self, group_id: str) -> frozenset[str]: ...


class Deferrer(Protocol):
    def defer(self, job: Mapping[str, Any]) -> None: ...


class Metrics(Protocol):
    def count(self, name: str, value: float = 1.0, *, unit: str = "Count", **dimensions: str) -> None: ...


@dataclass(frozen=True)
class InteractionConfig:
    signing_secret: str
    team_ids: frozenset[str]
    allowed_groups: frozenset[str] = frozenset()
    max_body_bytes: int = 256 * 1024


@dataclass
class _GroupCache:
    members: frozenset[str] = frozenset()
    loaded_at: float = -1e18
    groups: dict[str, frozenset[str]] = field(default_factory=dict)


class Interactions:
    def __init__(
        self,
        config: InteractionConfig,
        *,
        store: LifecycleStore,
        replay: ReplayGuard,
        slack: SlackApi,
        deferrer: Deferrer,
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.store = store
        self.replay = replay
        self.slack = slack
        self.deferrer = deferrer
        self.metrics = metrics
        self.clock = clock
        self._groups = _GroupCache()

    # -- the request ------------------------------------------------------------------

    def handle(self, body: bytes, headers: Mapping[str, str]) -> HttpResponse:
        try:
            payload = self._admit(body, headers)
        except Rejected as exc:
            logger.warning("Slack request rejected: %s", exc)
            self.metrics.count("SlackRequestRejected", reason=exc.reason)
            return HttpResponse.json(exc.status, {"error": exc.reason})
        self.metrics.count("SlackRequestAccepted", kind=payload.type)
        try:
            return self._dispatch(payload)
        except TransitionRejected as exc:
            return _say(payload, f"Not done: {exc}")
        except Rejected as exc:
            self.metrics.count("SlackRequestRejected", reason=exc.reason)
            return HttpResponse.json(exc.status, {"error": exc.reason})

    def _admit(self, body: bytes, headers: Mapping[str, str]) -> SlackPayload:
        now = self.clock().timestamp()
        signed = verify_signature(
            body,
            headers,
            signing_secret=self.config.signing_secret,
            now=lambda: now,
            max_body_bytes=self.config.max_body_bytes,
        )
        payload = parse_payload(body)
        check_team(payload, self.config.team_ids)
        self._authorise(payload.user.id)
        # Last, so that a request failing any other check writes nothing at all.
        if not self.replay.claim(signed.signature, signed.timestamp):
            raise Rejected(401, "replay")
        return payload

    def _authorise(self, user_id: str) -> None:
        if not self.config.allowed_groups:
            return
        now = time.monotonic()
        if now - self._groups.loaded_at > GROUP_CACHE_SECONDS:
            members: set[str] = set()
            for group in sorted(self.config.allowed_groups):
                members |= self.slack.group_members(group)
            self._groups.members, self._groups.loaded_at = frozenset(members), now
        if user_id not in self._groups.members:
            raise Rejected(403, "not_authorised", user_id[:40])

    def _dispatch(self, payload: SlackPayload) -> HttpResponse:
        if isinstance(payload, BlockActions):
            return self._block_action(payload)
        if isinstance(payload, ViewSubmission):
            return self._view_submission(payload)
        return self._slash(payload)

    # -- buttons ----------------------------------------------------------------------

    def _block_action(self, payload: BlockActions) -> HttpResponse:
        action = payload.actions[0]
        fingerprint = (action.value or "").strip()
        if not action.action_id.startswith("cali_") or not fingerprint:
            return HttpResponse(200)  # a link button: Slack reports those clicks too
        if action.action_id == blocks.RESOLVE:
            return self._open_resolve(payload, fingerprint)
        command = self._command(action.action_id, payload.user.id)
        if command is None:
            return HttpResponse(200)
        result = self._apply(fingerprint, command)
        ref = payload.message_ref
        if ref is not None and result.changed:
            job: dict[str, Any] = {
                "job": "refresh",
                "fingerprint": fingerprint,
                "channel": ref[0],
                "ts": ref[1],
            }
            if payload.message and len(json.dumps(payload.message.blocks)) < INLINE_BLOCKS_MAX:
                job["blocks"] = payload.message.blocks
            self.deferrer.defer(job)
        return HttpResponse(200)

    def _command(self, action_id: str, user: str) -> Command | None:
        now = self.clock()
        if action_id == blocks.ACK:
            return Acknowledge(user)
        if action_id in blocks.MUTE_HOURS:
            return Mute(user, now + timedelta(hours=blocks.MUTE_HOURS[action_id]))
        if action_id in {blocks.HELPFUL_YES, blocks.HELPFUL_NO}:
            return Vote(user, action_id == blocks.HELPFUL_YES)
        return None

    def _open_resolve(self, payload: BlockActions, fingerprint: str) -> HttpResponse:
        if not payload.trigger_id:
            raise TransitionRejected("no trigger_id to open the resolve dialog")
        state = self.store.load(fingerprint) or new_lifecycle(fingerprint, self.clock())
        ref = payload.message_ref
        metadata = {"fingerprint": fingerprint}
        if ref is not None:
            metadata |= {"channel": ref[0], "ts": ref[1]}
            if payload.team.domain:
                metadata["link"] = _permalink(payload.team.domain, *ref)
        self.slack.open_view(payload.trigger_id, blocks.resolve_modal(state, metadata))
        return HttpResponse(200)

    def _view_submission(self, payload: ViewSubmission) -> HttpResponse:
        if payload.view.callback_id != blocks.RESOLVE_VIEW:
            return HttpResponse(200)
        try:
            metadata = json.loads(payload.view.private_metadata or "{}")
            fingerprint = str(metadata["fingerprint"])
        except (ValueError, KeyError, TypeError):
            raise Rejected(400, "malformed_payload", "private_metadata") from None
        command = Resolve(
            payload.user.id,
            payload.view.value(blocks.ROOT_CAUSE_BLOCK, blocks.ROOT_CAUSE_INPUT),
            payload.view.value(blocks.RESOLUTION_BLOCK, blocks.RESOLUTION_INPUT),
            link=metadata.get("link"),
        )
        try:
            result = self._apply(fingerprint, command)
        except TransitionRejected as exc:
            block = blocks.ROOT_CAUSE_BLOCK if "root cause" in str(exc) else blocks.RESOLUTION_BLOCK
            return HttpResponse.json(200, {"response_action": "errors", "errors": {block: str(exc)}})
        channel, ts = metadata.get("channel"), metadata.get("ts")
        if channel and ts and result.changed:
            self.deferrer.defer(
                {"job": "refresh", "fingerprint": fingerprint, "channel": channel, "ts": ts, "announce": True}
            )
        return HttpResponse(200)

    # -- /cali ------------------------------------------------------------------------

    def _slash(self, payload: SlashCommand) -> HttpResponse:
        try:
            words = shlex.split(payload.text)
        except ValueError:
            words = payload.text.split()
        if len(words) < 2 or words[0] not in {"ack", "resolve", "mute", "unmute", "show"}:
            return _say(payload, SLASH_HELP)
        verb, fingerprint, rest = words[0], words[1], words[2:]
        if verb == "show":
            state = self.store.load(fingerprint)
            return _say(payload, describe(state, self.clock()) if state else f"No incident {fingerprint}")
        command = slash_command(verb, payload.user_id, rest, self.clock())
        result = self._apply(fingerprint, command)
        if result.changed and result.state.message_channel and result.state.message_ts:
            channel, ts = result.state.message_channel, result.state.message_ts
            self.deferrer.defer({"job": "refresh", "fingerprint": fingerprint, "channel": channel, "ts": ts})
        return _say(payload, f"{fingerprint}: {result.note}")

    # -- state and metrics ------------------------------------------------------------

    def _apply(self, fingerprint: str, command: Command) -> Transition:
        result = apply(self.store, fingerprint, command, self.clock())
        record_metrics(self.metrics, result)
        return result

    # -- deferred work ----------------------------------------------------------------

    def run_deferred(self, job: Mapping[str, Any]) -> None:
        refresh_message(self.store, self.slack, job, self.clock())


def refresh_message(store: LifecycleStore, slack: SlackApi, job: Mapping[str, Any], now: datetime) -> None:
    """Redraw the alert for the current state (and announce a resolution in its thread)."""
    if job.get("job") != "refresh":
        raise ValueError(f"unknown deferred job {job.get('job')!r}")
    fingerprint, channel, ts = str(job["fingerprint"]), str(job["channel"]), str(job["ts"])
    state = store.load(fingerprint)
    if state is None:
        return
    current = job.get("blocks") or slack.message_blocks(channel, ts)
    redrawn = blocks.updated_blocks(current, state, now)
    slack.update_message(channel, ts, f"{state.title or fingerprint}: {state.status}", redrawn)
    if job.get("announce") and state.status == "resolved":
        text = (
            f":white_check_mark: Resolved by <@{state.resolved_by}>\n*Root cause:* {state.root_cause}\n"
            f"*Resolution:* {state.resolution}\n_Saved as knowledge for the next similar incident._"
        )
        slack.post(channel, text, thread_ts=ts)


SLASH_HELP = (
    'Usage: `/cali ack <fingerprint>` · `/cali resolve <fingerprint> "root cause" "resolution"` · '
    "`/cali mute <fingerprint> 1h|24h|30m` · `/cali unmute <fingerprint>` · `/cali show <fingerprint>`"
)


def parse_duration(text: str) -> timedelta:
    """``30m``, ``1h``, ``24h``, ``2d``."""
    units = {"m": 60, "h": 3600, "d": 86_400}
    number, unit = text[:-1], text[-1:].lower()
    if unit not in units or not number.isdigit() or int(number) <= 0:
        raise TransitionRejected(f"duration {text!r}: use a number and m, h or d, e.g. 1h")
    return timedelta(seconds=int(number) * units[unit])


def slash_command(verb: str, actor: str, rest: list[str], now: datetime) -> Command:
    """The state change of ``cali incident <verb>`` and ``/cali <verb>`` (same words)."""
    if verb == "ack":
        return Acknowledge(actor)
    if verb == "unmute":
        return Unmute(actor)
    if verb == "mute":
        return Mute(actor, now + parse_duration(rest[0] if rest else "1h"))
    if verb == "resolve":
        if len(rest) < 2:
            raise TransitionRejected('resolve needs "root cause" and "resolution"')
        return Resolve(actor, rest[0], " ".join(rest[1:]))
    raise TransitionRejected(f"unknown action {verb!r}")


def describe(state: IncidentLifecycle, now: datetime) -> str:
    lines = [f"*{state.title or state.fingerprint}* `{state.fingerprint}`: {state.status}"]
    lines += blocks.status_lines(state, now)
    if state.root_cause:
        lines.append(f"Root cause: {state.root_cause}")
    if state.resolution:
        lines.append(f"Resolution: {state.resolution}")
    lines.append(f"{state.occurrences} occurrences reported")
    return "\n".join(lines)


def record_metrics(metrics: Metrics, result: Transition) -> None:
    """Lifecycle metrics (the Incidents dashboard's panels)."""
    state = result.state
    if not result.changed:
        return
    metrics.count(f"Incident{result.event.capitalize()}")
    started = state.reopened_at or state.opened_at
    if result.event == "acknowledged" and state.acknowledged_at:
        seconds = (state.acknowledged_at - started).total_seconds()
        metrics.count("TimeToAcknowledge", max(seconds, 0.0), unit="Seconds")
    elif result.event == "resolved" and state.resolved_at:
        seconds = (state.resolved_at - started).total_seconds()
        metrics.count("TimeToResolve", max(seconds, 0.0), unit="Seconds")
    elif result.event == "voted":
        helpful = state.votes.get(state.history[-1].actor) if state.history else None
        metrics.count("AnalysisHelpful" if helpful else "AnalysisNotHelpful")


def _permalink(domain: str, channel: str, ts: str) -> str:
    return f"https://{domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"


def _say(payload: SlackPayload, text: str) -> HttpResponse:
    if isinstance(payload, SlashCommand):
        return HttpResponse.json(200, {"response_type": "ephemeral", "text": text})
    logger.info("interaction not done: %s", text)
    return HttpResponse(200)
