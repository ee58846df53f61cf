"""Doubles for the lifecycle's boundaries (Slack's Web API, SQS hand-off, metrics) and signed requests."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T0001"
ALERT_BLOCK = {"type": "section", "block_id": "h", "text": {"type": "mrkdwn", "text": "alert"}}


def sign(body: bytes, timestamp: int, secret: str = SECRET) -> dict[str, str]:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": f"v0={digest}",
    }


def block_action(action_id: str, fingerprint: str, *, user: str = "U0ALICE", team: str = TEAM) -> bytes:
    payload = {
        "type": "block_actions",
        "team": {"id": team, "domain": "acme"},
        "user": {"id": user, "username": user.lower()},
        "trigger_id": "1337.42.abcd",
        "channel": {"id": "C0ALERTS"},
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0ALERTS"},
        "message": {"ts": "1700000000.000100", "text": "alert", "blocks": [ALERT_BLOCK]},
        "actions": [{"action_id": action_id, "value": fingerprint, "block_id": "cali_actions"}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def resolve_submission(fingerprint: str, root_cause: str, resolution: str, *, user: str = "U0BOB") -> bytes:
    payload = {
        "type": "view_submission",
        "team": {"id": TEAM},
        "user": {"id": user},
        "view": {
            "callback_id": "cali_resolve_view",
            "private_metadata": json.dumps(
                {"fingerprint": fingerprint, "channel": "C0ALERTS", "ts": "1700000000.000100"}
            ),
            "state": {
                "values": {
                    "root_cause": {"root_cause_input": {"type": "plain_text_input", "value": root_cause}},
                    "resolution": {"resolution_input": {"type": "plain_text_input", "value": resolution}},
                }
            },
        },
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def slash(text: str, *, user: str = "U0ALICE") -> bytes:
    return urlencode({"command": "/cali", "text": text, "team_id": TEAM, "user_id": user}).encode()


@dataclass
class RecordingSlack:
    """Slack's Web API as seen from CALI: records calls, returns what Slack returns."""

    views: list[Mapping[str, Any]] = field(default_factory=list)
    updates: list[tuple[str, str, list[dict[str, Any]]]] = field(default_factory=list)
    posts: list[tuple[str, str, str | None]] = field(default_factory=list)
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    group_calls: int = 0

    def open_view(self, trigger_id: str, view: Mapping[str, Any]) -> None:
        self.views.append(view)

    def message_blocks(self, channel: str, ts: str) -> list[dict[str, Any]]:
        return self.updates[-1][2] if self.updates else []

    def update_message(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        self.updates.append((channel, ts, blocks))

    def post(self, channel: str, text: str, *, thread_ts: str | None = None) -> str | None:
        self.posts.append((channel, text, thread_ts))
        return f"1700000001.{len(self.posts):06d}"

    def group_members(self, group_id: str) -> frozenset[str]:
        self.group_calls += 1
        return self.groups.get(group_id, frozenset())


@dataclass
class CollectingDeferrer:
    jobs: list[Mapping[str, Any]] = field(default_factory=list)

    def defer(self, job: Mapping[str, Any]) -> None:
        self.jobs.append(job)


@dataclass
class RecordingMetrics:
    values: list[tuple[str, float, dict[str, str]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, name: str, value: float = 1.0, *, unit: str = "Count", **dimensions: str) -> None:
        with self._lock:
            self.values.append((name, value, dimensions))

    def names(self) -> list[str]:
        return [name for name, _, _ in self.values]


@dataclass
class RecordingScheduler:
    escalations: list[tuple[str, int, datetime]] = field(default_factory=list)
    quiet: list[tuple[str, datetime]] = field(default_factory=list)

    def arm_escalation(self, fingerprint: str, number: int, due_at: datetime) -> None:
        self.escalations.append((fingerprint, number, due_at))

    def arm_quiet(self, fingerprint: str, due_at: datetime) -> None:
        self.quiet.append((fingerprint, due_at))
