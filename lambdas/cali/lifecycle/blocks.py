"""Block Kit for the lifecycle: the buttons on an alert, its status line, the resolve modal.

Buttons carry the fingerprint as their value (the lifecycle key). The status line is
rendered from the stored state, never from the click that triggered the update, so two
updates racing each other both show the latest state.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
)

from cali.lifecycle.state import IncidentLifecycle

ACK = "cali_ack"
RESOLVE = "cali_resolve"
MUTE_1H = "cali_mute_1h"
MUTE_24H = "cali_mute_24h"
HELPFUL_YES = "cali_helpful_yes"
HELPFUL_NO = "cali_helpful_no"
MUTE_HOURS = {MUTE_1H: 1, MUTE_24H: 24}
ACTIONS_BLOCK = "cali_actions"
FEEDBACK_BLOCK = "cali_feedback"
STATUS_BLOCK = "cali_status"
RESOLVE_VIEW = "cali_resolve_view"
ROOT_CAUSE_BLOCK, ROOT_CAUSE_INPUT = "root_cause", "root_cause_input"
RESOLUTION_BLOCK, RESOLUTION_INPUT = "resolution", "resolution_input"
WEBHOOK_NOTE = (
    "Acknowledge, resolve and mute need CALI's Slack app (bot token + interactivity); "
    "an incoming webhook can only post. Use `cali incident ack|resolve|mute` meanwhile."
)


def _when(moment: datetime) -> str:
    epoch = int(moment.timestamp())
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{fallback}>"


def _who(actor: str | None) -> str:
    if not actor:
        return "someone"
    # Slack user ids render as mentions; CLI actors (cli:alice) as plain text.
    return f"<@{actor}>" if actor[:1] in {"U", "W"} and actor.isalnum() else actor


def _button(text: str, action_id: str, value: str, style: str | None = None) -> ButtonElement:
    return ButtonElement(text=text, action_id=action_id, value=value, style=style)


def action_blocks(state: IncidentLifecycle | None, fingerprint: str) -> list[dict[str, Any]]:
    """The buttons an alert carries for its current state."""
    status = state.status if state else "open"
    buttons: list[ButtonElement] = []
    if status in {"open", "reopened"}:
        buttons.append(_button("Acknowledge", ACK, fingerprint, "primary"))
    if status != "resolved":
        buttons.append(_button("Resolve…", RESOLVE, fingerprint))
    buttons += [_button("Mute 1 h", MUTE_1H, fingerprint), _button("Mute 24 h", MUTE_24H, fingerprint)]
    feedback = [
        _button("Helpful :+1:", HELPFUL_YES, fingerprint),
        _button("Not helpful :-1:", HELPFUL_NO, fingerprint),
    ]
    return [
        ActionsBlock(block_id=ACTIONS_BLOCK, elements=list(buttons)).to_dict(),
        ContextBlock(
            block_id=f"{FEEDBACK_BLOCK}_label",
            elements=[MarkdownTextObject(text="Was this analysis helpful?")],
        ).to_dict(),
        ActionsBlock(block_id=FEEDBACK_BLOCK, elements=list(feedback)).to_dict(),
    ]


def status_lines(state: IncidentLifecycle, now: datetime) -> list[str]:
    lines: list[str] = []
    if state.status == "reopened" and state.reopened_at:
        lines.append(f":leftwards_arrow_with_hook: *Regression* {_when(state.reopened_at)}")
    if state.acknowledged_at and state.status != "resolved":
        lines.append(f":eyes: Acknowledged by {_who(state.acknowledged_by)} {_when(state.acknowledged_at)}")
    if state.status == "resolved" and state.resolved_at:
        lines.append(f":white_check_mark: Resolved by {_who(state.resolved_by)} {_when(state.resolved_at)}")
    if state.muted(now) and state.muted_until:
        lines.append(f":no_bell: Muted by {_who(state.muted_by)} until {_when(state.muted_until)}")
    if state.escalations:
        lines.append(f":rotating_light: Escalated {state.escalations}×")
    yes, no = state.helpful_votes
    if yes or no:
        lines.append(f"Analysis helpful: {yes} yes, {no} no")
    return lines


def status_block(state: IncidentLifecycle, now: datetime) -> dict[str, Any] | None:
    lines = status_lines(state, now)
    if not lines:
        return None
    elements = [MarkdownTextObject(text=line[:3000]) for line in lines[:10]]
    return ContextBlock(block_id=STATUS_BLOCK, elements=list(elements)).to_dict()


_OURS = {ACTIONS_BLOCK, FEEDBACK_BLOCK, f"{FEEDBACK_BLOCK}_label", STATUS_BLOCK}


def updated_blocks(
    blocks: Sequence[dict[str, Any]], state: IncidentLifecycle, now: datetime
) -> list[dict[str, Any]]:
    """The alert's blocks with the status line and buttons redrawn for ``state``."""
    kept = [block for block in blocks if block.get("block_id") not in _OURS]
    status = status_block(state, now)
    extra = ([status] if status else []) + action_blocks(state, state.fingerprint)
    return (kept + extra)[:50]


def resolve_modal(state: IncidentLifecycle, metadata: dict[str, str]) -> dict[str, Any]:
    """The "Resolve…" modal, prefilled from the AI analysis when there is one."""
    root_cause = InputBlock(
        block_id=ROOT_CAUSE_BLOCK,
        label="Root cause",
        element=PlainTextInputElement(
            action_id=ROOT_CAUSE_INPUT,
            multiline=True,
            max_length=3000,
            initial_value=(state.root_cause or state.summary or "")[:3000] or None,
        ),
    )
    resolution = InputBlock(
        block_id=RESOLUTION_BLOCK,
        label="Resolution (what fixed it)",
        element=PlainTextInputElement(
            action_id=RESOLUTION_INPUT,
            multiline=True,
            max_length=3000,
            initial_value=(state.resolution or state.suggested_fix or "")[:3000] or None,
        ),
    )
    return {
        "type": "modal",
        "callback_id": RESOLVE_VIEW,
        "title": PlainTextObject(text="Resolve incident").to_dict(),
        "submit": PlainTextObject(text="Resolve").to_dict(),
        "close": PlainTextObject(text="Cancel").to_dict(),
        "private_metadata": json.dumps(metadata)[:3000],
        "blocks": [root_cause.to_dict(), resolution.to_dict()],
    }


def escalation_text(state: IncidentLifecycle, mention: str, number: int, minutes: int) -> str:
    title = state.title or state.fingerprint
    return (
        f":rotating_light: {mention} *{title}* ({state.level}) has not been acknowledged for "
        f"{minutes} min (escalation {number})."
    )


def quiet_text(state: IncidentLifecycle, since: datetime, total: int) -> str:
    return f":zzz: Quiet since {_when(since)}, {total} occurrences in all."


def regression_text(state: IncidentLifecycle) -> str:
    link = f" (<{state.resolution_link}|resolution>)" if state.resolution_link else ""
    who = _who(state.resolved_by)
    when = _when(state.resolved_at) if state.resolved_at else "earlier"
    return f":leftwards_arrow_with_hook: Regression: resolved by {who} {when}{link}, firing again."
