"""What Slack sends to CALI when a person clicks a button, submits a modal or types ``/cali``.

The local Slack stand-in (:mod:`cali_local.slack_sink`) records CALI's messages and the
modals it opens; this module builds the requests Slack would send back for them: the
form-encoded ``payload=`` body of ``block_actions`` and ``view_submission``, or the fields
of a slash command, signed with the app's signing secret exactly as Slack signs (v0,
HMAC-SHA256 over ``v0:<timestamp>:<body>``), wrapped in the API Gateway HTTP API event
the ``slack_interactions`` handler receives.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from cali_local.slack_sink import RecordedMessage

_trigger_ids = itertools.count(1)


class NoSuchButton(LookupError):
    pass


def sign(body: bytes, signing_secret: str, timestamp: int) -> dict[str, str]:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": str(timestamp),
        "x-slack-signature": f"v0={digest}",
    }


def api_gateway_event(body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """The HTTP API (payload format 2.0) event for one request, body base64-encoded as API Gateway does."""
    return {
        "version": "2.0",
        "routeKey": "POST /slack/events",
        "rawPath": "/slack/events",
        "headers": dict(headers),
        "body": base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": True,
        "requestContext": {"http": {"method": "POST", "path": "/slack/events"}},
    }


class SlackClient:
    """One workspace's Slack, sending signed interactivity requests."""

    def __init__(
        self,
        signing_secret: str,
        *,
        team_id: str,
        team_domain: str = "cali-demo",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signing_secret = signing_secret
        self.team_id = team_id
        self.team_domain = team_domain
        self.clock = clock

    def _signed(self, body: bytes) -> dict[str, Any]:
        return api_gateway_event(body, sign(body, self.signing_secret, int(self.clock())))

    def click(self, message: RecordedMessage, action_id: str, user_id: str) -> dict[str, Any]:
        """``block_actions`` for the button ``action_id`` on ``message``."""
        block_id, value = _button(message.blocks, action_id)
        payload = {
            "type": "block_actions",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": {"id": user_id, "username": user_id.lower(), "team_id": self.team_id},
            "api_app_id": "A0CALI",
            "trigger_id": f"{next(_trigger_ids)}.{int(self.clock())}.cali",
            "container": {"type": "message", "message_ts": message.ts, "channel_id": message.channel},
            "channel": {"id": message.channel},
            "message": {"type": "message", "ts": message.ts, "text": message.text, "blocks": message.blocks},
            "response_url": "https://hooks.slack.com/actions/T0/1/x",
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": block_id,
                    "value": value,
                    "action_ts": f"{self.clock():.6f}",
                },
            ],
        }
        return self._signed(urlencode({"payload": json.dumps(payload)}).encode())

    def submit(self, view: Mapping[str, Any], user_id: str, overrides: Mapping[str, str]) -> dict[str, Any]:
        """``view_submission`` of a modal CALI opened: its prefilled values, ``overrides`` by block id."""
        values: dict[str, dict[str, Any]] = {}
        for block in view.get("blocks", []):
            element = block.get("element") or {}
            if block.get("type") != "input" or "action_id" not in element:
                continue
            value = overrides.get(block["block_id"], element.get("initial_value", ""))
            values[block["block_id"]] = {element["action_id"]: {"type": element["type"], "value": value}}
        payload = {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": {"id": user_id, "username": user_id.lower(), "team_id": self.team_id},
            "view": {**view, "state": {"values": values}},
        }
        return self._signed(urlencode({"payload": json.dumps(payload)}).encode())

    def slash(self, text: str, user_id: str) -> dict[str, Any]:
        fields = {
            "command": "/cali",
            "text": text,
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "user_id": user_id,
            "user_name": user_id.lower(),
            "channel_id": "C0CALIDEMO",
        }
        return self._signed(urlencode(fields).encode())


def _button(blocks: list[dict[str, Any]], action_id: str) -> tuple[str, str]:
    for block in blocks:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id:
                return str(block.get("block_id", "")), str(element.get("value", ""))
    raise NoSuchButton(f"no button {action_id} on the message")
