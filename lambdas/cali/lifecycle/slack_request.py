"""Verify and parse Slack's interactivity and slash-command requests.

Checks, in order, each failure a :class:`Rejected` with an HTTP status and a short reason
(the metric dimension) and nothing written:

1. body size (``400 body_too_large``): Slack's payloads are tens of kilobytes; anything
   far larger is not Slack and is not parsed;
2. v0 signature: ``X-Slack-Request-Timestamp`` within 5 minutes of our clock
   (``401 stale_timestamp``), then HMAC-SHA256 of ``v0:<timestamp>:<raw body>`` with the
   signing secret compared in constant time (``401 bad_signature``), by slack_sdk's
   ``SignatureVerifier`` with our clock injected;
3. payload shape (``400 malformed_payload``);
4. the workspace (``401 wrong_team``): a request signed for our app but from another
   workspace the app was installed in is not ours to act on.

The replay mark and the user-group authorisation come after these (see
:mod:`cali.lifecycle.interactions`), so a request failing here writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from slack_sdk.signature import Clock, SignatureVerifier

MAX_BODY_BYTES = 256 * 1024
MAX_SKEW_SECONDS = 300


class Rejected(Exception):
    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(f"{status} {reason}{': ' + detail if detail else ''}")
        self.status = status
        self.reason = reason


class _InjectedClock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


@dataclass(frozen=True, slots=True)
class Signed:
    timestamp: int
    signature: str


def verify_signature(
    body: bytes,
    headers: Mapping[str, str],
    *,
    signing_secret: str,
    now: Callable[[], float],
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Signed:
    if len(body) > max_body_bytes:
        raise Rejected(400, "body_too_large", f"{len(body)} bytes")
    lower = {key.lower(): value for key, value in headers.items()}
    timestamp, signature = lower.get("x-slack-request-timestamp"), lower.get("x-slack-signature")
    if not timestamp or not signature:
        raise Rejected(401, "missing_signature")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise Rejected(401, "bad_timestamp")
    if abs(now() - int(timestamp)) > MAX_SKEW_SECONDS:
        raise Rejected(401, "stale_timestamp")
    verifier = SignatureVerifier(signing_secret, clock=_InjectedClock(now))
    if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
        raise Rejected(401, "bad_signature")
    return Signed(int(timestamp), signature)


# ---------------------------------------------------------------------------------------
# Payloads (only the fields CALI uses; Slack sends many more)
# ---------------------------------------------------------------------------------------


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Team(_Loose):
    id: str
    domain: str | None = None


class _User(_Loose):
    id: str
    username: str | None = None
    name: str | None = None


class _Action(_Loose):
    action_id: str
    value: str | None = None
    block_id: str | None = None


class _Channel(_Loose):
    id: str


class _Container(_Loose):
    message_ts: str | None = None
    channel_id: str | None = None


class _Message(_Loose):
    ts: str
    blocks: list[dict[str, Any]] = Field(default_factory=list)
    text: str = ""


class BlockActions(_Loose):
    type: Literal["block_actions"]
    team: _Team
    user: _User
    actions: list[_Action] = Field(min_length=1)
    trigger_id: str | None = None
    response_url: str | None = None
    channel: _Channel | None = None
    container: _Container | None = None
    message: _Message | None = None

    @property
    def message_ref(self) -> tuple[str, str] | None:
        channel = (self.channel.id if self.channel else None) or (
            self.container.channel_id if self.container else None
        )
        ts = (self.message.ts if self.message else None) or (
            self.container.message_ts if self.container else None
        )
        return (channel, ts) if channel and ts else None


class _View(_Loose):
    callback_id: str = ""
    private_metadata: str = ""
    state: dict[str, Any] = Field(default_factory=dict)

    def value(self, block_id: str, action_id: str) -> str:
        values = self.state.get("values", {})
        entry = values.get(block_id, {}).get(action_id, {}) if isinstance(values, dict) else {}
        value = entry.get("value") if isinstance(entry, dict) else None
        return value if isinstance(value, str) else ""


class ViewSubmission(_Loose):
    type: Literal["view_submission"]
    team: _Team
    user: _User
    view: _View


class SlashCommand(_Loose):
    type: Literal["slash_command"] = "slash_command"
    team_id: str
    user_id: str
    user_name: str = ""
    command: str
    text: str = ""
    response_url: str | None = None
    channel_id: str | None = None

    @property
    def team(self) -> _Team:
        return _Team(id=self.team_id)

    @property
    def user(self) -> _User:
        return _User(id=self.user_id, username=self.user_name)


SlackPayload = BlockActions | ViewSubmission | SlashCommand


def _form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(400, "malformed_payload", "not UTF-8") from exc
    fields = parse_qs(text, keep_blank_values=True, strict_parsing=False, max_num_fields=100)
    return {key: values[0] for key, values in fields.items() if values}


def parse_payload(body: bytes) -> SlackPayload:
    """The form-encoded body Slack posts: ``payload=<json>`` or slash-command fields."""
    form = _form(body)
    try:
        if "payload" in form:
            data = json.loads(form["payload"])
            if not isinstance(data, dict):
                raise Rejected(400, "malformed_payload", "payload is not an object")
            kind = data.get("type")
            if kind == "block_actions":
                return BlockActions.model_validate(data)
            if kind == "view_submission":
                return ViewSubmission.model_validate(data)
            raise Rejected(400, "unsupported_payload", f"type {str(kind)[:40]!r}")
        if "command" in form:
            return SlashCommand.model_validate(form)
    except (json.JSONDecodeError, ValidationError) as exc:
        raise Rejected(400, "malformed_payload", str(exc)[:200]) from exc
    raise Rejected(400, "malformed_payload", "neither payload nor command")


def check_team(payload: SlackPayload, team_ids: frozenset[str]) -> None:
    if payload.team.id not in team_ids:
        raise Rejected(401, "wrong_team", payload.team.id[:40])
