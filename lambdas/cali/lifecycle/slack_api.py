"""The Slack Web API calls the lifecycle makes, through slack_sdk's ``WebClient``.

Scopes (docs/slack.md): ``chat:write`` (update the alert, thread replies),
``channels:history`` (re-read an alert before redrawing it), ``usergroups:read`` (the
allow-list). ``views.open`` needs no scope, only the click's ``trigger_id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.web import WebClient

# Slack answers views.open only within 3 s of the click: never wait longer than that.
TIMEOUT_SECONDS = 2


class WebClientSlackApi:
    def __init__(self, token: str, *, base_url: str | None = None) -> None:
        # Slack's per-channel rate limit (about 1 message/s): wait out its Retry-After twice
        # at most; the worker's SQS retry takes over after that.
        retry = RateLimitErrorRetryHandler(max_retry_count=2)
        kwargs: dict[str, Any] = {"token": token, "timeout": TIMEOUT_SECONDS, "retry_handlers": [retry]}
        if base_url:
            kwargs["base_url"] = base_url if base_url.endswith("/") else base_url + "/"
        self.client = WebClient(**kwargs)

    def open_view(self, trigger_id: str, view: Mapping[str, Any]) -> None:
        self.client.views_open(trigger_id=trigger_id, view=dict(view))

    def message_blocks(self, channel: str, ts: str) -> list[dict[str, Any]]:
        response = self.client.conversations_history(channel=channel, latest=ts, inclusive=True, limit=1)
        messages = response.get("messages") or []
        if not messages:
            return []
        found = messages[0].get("blocks") or []
        return [dict(block) for block in found]

    def update_message(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)

    def post(self, channel: str, text: str, *, thread_ts: str | None = None) -> str | None:
        response = self.client.chat_postMessage(
            channel=channel, text=text, thread_ts=thread_ts, unfurl_links=False, unfurl_media=False
        )
        ts = response.get("ts")
        return str(ts) if ts else None

    def group_members(self, group_id: str) -> frozenset[str]:
        response = self.client.usergroups_users_list(usergroup=group_id)
        return frozenset(str(user) for user in response.get("users") or [])
