"""Build the Slack Block Kit message for one analysed incident.

Everything that comes from a log line or from the LLM is untrusted text. It is escaped
for mrkdwn (``&``, ``<``, ``>``), broadcast words (``@channel``, ``@here``, ``@everyone``)
are broken with a zero-width space, and code blocks are protected from a ```````` in the
content, so a log line cannot mention anyone, inject a link or change the message layout.
Only this module writes ``<url|label>`` links, from URLs it has checked.

Slack rejects a whole message (``invalid_blocks``) when one limit is broken, and slack_sdk
checks only some of them, so every text is cut to its limit here with an ellipsis and the
block list is capped: building a message never fails because of its content.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from cali.contracts.analysis import AnalysisResult
from cali.contracts.incident import IncidentMessage
from cali.contracts.levels import Level
from cali.notify.slack.links import IncidentLinks
from cali.notify.slack.text import (
    BUTTON_TEXT_MAX,
    CONTEXT_TEXT_MAX,
    ELLIPSIS,
    FALLBACK_TEXT_MAX,
    FIELD_TEXT_MAX,
    HEADER_TEXT_MAX,
    MAX_ACTIONS,
    MAX_BLOCKS,
    MAX_CONTEXT_ELEMENTS,
    MAX_FIELDS,
    SECTION_TEXT_MAX,
    _code_block,
    _fit_escaped,
    _inline_code,
    _link,
    plain,
    safe_url,
    truncate,
)

EXCERPT_MAX_CHARS = 1500
EXCERPT_MAX_LINES = 25
MAX_SIMILAR = 5

SEVERITY_EMOJI = {
    Level.FATAL: ":rotating_light:",
    Level.ERROR: ":red_circle:",
    Level.WARN: ":large_orange_circle:",
}
KIND_LABEL = {"new": "New incident", "update": "Update", "surge": "Surge"}


@dataclass(frozen=True)
class SlackMessage:
    """What gets posted: notification text plus Block Kit blocks (already plain dicts)."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def incident_title(incident: IncidentMessage) -> str:
    """A short human title: exception type, else the first line of the template."""
    first_line = next((line.strip() for line in incident.template.splitlines() if line.strip()), "")
    if incident.exception_type:
        return f"{incident.exception_type}: {first_line}" if first_line else incident.exception_type
    return first_line or incident.fingerprint


def _when(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _services(incident: IncidentMessage) -> str:
    return ", ".join(incident.services) or "unknown"


def _header(incident: IncidentMessage) -> HeaderBlock:
    emoji = SEVERITY_EMOJI.get(incident.level, ":large_blue_circle:")
    prefix = "Surge: " if incident.kind == "surge" else ""
    text = f"{emoji} {prefix}[{incident.level.name}] {_services(incident)}: {incident_title(incident)}"
    return HeaderBlock(text=PlainTextObject(text=truncate(plain(text), HEADER_TEXT_MAX), emoji=True))


def _field(label: str, value: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=f"*{label}*\n" + _fit_escaped(value, FIELD_TEXT_MAX - len(label) - 3))


def level_inferred(incident: IncidentMessage) -> bool:
    """The incident's level was implied by the words of lines that carry none (not said by them)."""
    top = [s for s in incident.samples if s.level == incident.level]
    return bool(top) and all(s.level_source == "inferred" for s in top)


def _severity(incident: IncidentMessage) -> str:
    if level_inferred(incident):
        return f"{incident.level.name} (inferred: the lines carry no level)"
    return incident.level.name


def _facts(incident: IncidentMessage, environment: str) -> SectionBlock:
    fields = [
        _field("Severity", _severity(incident)),
        _field("Service", _services(incident)),
        _field("Environment", environment),
        _field("Occurrences", f"{incident.count} (window total {incident.window_count})"),
        _field("First seen", _when(incident.first_seen)),
        _field("Last seen", _when(incident.last_seen)),
        _field("Kind", KIND_LABEL.get(incident.kind, incident.kind)),
    ]
    if incident.hosts:
        shown = incident.hosts[:5]
        more = f" (+{len(incident.hosts) - len(shown)} more)" if len(incident.hosts) > len(shown) else ""
        fields.append(_field("Hosts", ", ".join(shown) + more))
    return SectionBlock(fields=fields[:MAX_FIELDS])


def _excerpt_text(incident: IncidentMessage) -> str:
    if incident.samples:
        sample = incident.samples[0]
        text = sample.message
        if sample.stack_trace:
            text = f"{text}\n{sample.stack_trace}"
    else:
        text = incident.template
    lines = text.splitlines()
    if len(lines) > EXCERPT_MAX_LINES:
        lines = [*lines[:EXCERPT_MAX_LINES], f"{ELLIPSIS} {len(lines) - EXCERPT_MAX_LINES} more lines"]
    return truncate("\n".join(lines), EXCERPT_MAX_CHARS)


def _excerpt(incident: IncidentMessage) -> SectionBlock:
    label = "*Log excerpt* (redacted)\n"
    return SectionBlock(
        text=MarkdownTextObject(
            text=label + _code_block(_excerpt_text(incident), SECTION_TEXT_MAX - len(label))
        )
    )


_CAP_REASONS = {
    "no_evidence_in_logs": "no quoted line was found in the logs",
    "most_evidence_not_in_logs": "most quoted lines were not found in the logs",
    "some_evidence_not_in_logs": "a quoted line was not found in the logs",
    "no_relevant_entry_cited": "no matching runbook or past incident",
    "cause_unknown": "the logs do not show the cause",
    "cause_copied_from_knowledge": "the cause is the runbook's, not read in the logs",
}


def _why(result: AnalysisResult) -> str:
    """Why the shown confidence is below the model's claim (``cali.analysis.llm.confidence``)."""
    reasons = [
        _CAP_REASONS.get(flag.rsplit(":", 1)[1], "")
        for flag in result.flags
        if flag.startswith("confidence_capped:")
    ]
    reasons = [reason for reason in reasons if reason]
    return f": {'; '.join(reasons)}" if reasons else ""


def _analysis_blocks(result: AnalysisResult) -> list[Block]:
    llm = result.llm
    if llm is None:
        reason = result.degraded_reason or "unknown reason"
        text = (
            ":warning: *AI analysis unavailable:* "
            + _fit_escaped(reason, 500)
            + "; showing similar incidents only."
        )
        return [SectionBlock(text=MarkdownTextObject(text=text))]

    blocks: list[Block] = []
    if llm.cause_known:
        head = f"*Probable root cause* (confidence: *{llm.confidence}*{_why(result)})\n"
    else:
        # "Unknown" is an answer: say plainly that the logs do not show the cause, then
        # what is known and (below) what would tell.
        head = ":grey_question: *Root cause not determined from these logs*\n"
    body = _fit_escaped(llm.probable_root_cause, 1500) + "\n\n" + _fit_escaped(llm.summary, 1000)
    blocks.append(SectionBlock(text=MarkdownTextObject(text=truncate(head + body, SECTION_TEXT_MAX))))

    if llm.evidence:
        per_item = (SECTION_TEXT_MAX - 20) // len(llm.evidence) - 4
        lines = [f"• {_inline_code(quote_, min(per_item, 400))}" for quote_ in llm.evidence]
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(text=truncate("*Evidence*\n" + "\n".join(lines), SECTION_TEXT_MAX))
            )
        )

    if llm.next_actions:
        per_item = (SECTION_TEXT_MAX - 20) // len(llm.next_actions) - 6
        lines = [
            f"{n}. {_fit_escaped(action, min(per_item, 500))}" for n, action in enumerate(llm.next_actions, 1)
        ]
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=truncate("*Next actions*\n" + "\n".join(lines), SECTION_TEXT_MAX)
                )
            )
        )

    if llm.unknowns:
        lines = [f"• {_fit_escaped(item, 300)}" for item in llm.unknowns]
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=truncate("*Still unknown*\n" + "\n".join(lines), SECTION_TEXT_MAX)
                )
            )
        )
    return blocks


def _similar(result: AnalysisResult) -> Block | None:
    if not result.similar:
        return None
    lines = []
    for hit in result.similar[:MAX_SIMILAR]:
        kind = "runbook" if hit.source == "runbook" else "past incident"
        line = f"• {_link(hit.runbook_url, hit.title, 200)} ({kind}, score {hit.score:.2f})"
        if hit.resolution:
            line += "\n    " + _fit_escaped(hit.resolution, 250)
        lines.append(line)
    return SectionBlock(
        text=MarkdownTextObject(text=truncate("*Similar incidents*\n" + "\n".join(lines), SECTION_TEXT_MAX))
    )


def _buttons(links: IncidentLinks, result: AnalysisResult) -> ActionsBlock | None:
    buttons: list[ButtonElement] = []
    candidates = [
        ("open_logs_opensearch", "Logs in OpenSearch", links.opensearch_url),
        ("open_grafana", "Grafana dashboard", links.grafana_url),
    ]
    top_runbook = next((hit for hit in result.similar if hit.runbook_url), None)
    if top_runbook is not None:
        candidates.append(("open_runbook", f"Runbook: {top_runbook.title}", top_runbook.runbook_url))
    for action_id, label, url in candidates:
        checked = safe_url(url)
        if checked:
            buttons.append(
                ButtonElement(
                    text=PlainTextObject(text=truncate(plain(label), BUTTON_TEXT_MAX)),
                    url=checked,
                    action_id=action_id,
                )
            )
    return ActionsBlock(elements=buttons[:MAX_ACTIONS]) if buttons else None


def _footer(incident: IncidentMessage, result: AnalysisResult) -> ContextBlock:
    parts: list[str] = []
    usage = result.usage
    if usage is not None:
        tokens = usage.prompt_tokens + usage.completion_tokens
        parts.append(f"model {usage.model}")
        parts.append(f"tokens {tokens} ({usage.prompt_tokens} in / {usage.completion_tokens} out)")
        parts.append(f"LLM {usage.latency_ms / 1000:.1f} s")
        parts.append(f"${usage.cost_usd:.4f}")
        if usage.cached:
            parts.append("cached answer")
    elif result.degraded:
        parts.append("no LLM call")
    elements = [MarkdownTextObject(text=_fit_escaped(" · ".join(parts), CONTEXT_TEXT_MAX))] if parts else []
    if result.flags:
        flags = "⚠ flags: " + "; ".join(result.flags)
        elements.append(MarkdownTextObject(text=_fit_escaped(flags, CONTEXT_TEXT_MAX)))
    ids = f"incident {incident.incident_id} · fingerprint {incident.fingerprint}"
    elements.append(MarkdownTextObject(text=_fit_escaped(ids, CONTEXT_TEXT_MAX)))
    return ContextBlock(elements=elements[:MAX_CONTEXT_ELEMENTS])


def _fallback_text(incident: IncidentMessage, environment: str, result: AnalysisResult) -> str:
    if incident.kind == "update":
        text = (
            f"[{incident.level.name}] {_services(incident)} ({environment}): "
            f"+{incident.count} more occurrences of {incident_title(incident)}"
        )
    else:
        text = (
            f"[{incident.level.name}] {_services(incident)} ({environment}): {incident_title(incident)} "
            f"({incident.count} occurrences)"
        )
        if result.llm is not None:
            cause = (
                result.llm.probable_root_cause if result.llm.cause_known else "not determined from the logs"
            )
            text += f". Probable cause: {cause}"
    return _fit_escaped(" ".join(text.split()), FALLBACK_TEXT_MAX)


def _update_blocks(
    incident: IncidentMessage, result: AnalysisResult, environment: str, links: IncidentLinks
) -> list[Block]:
    emoji = SEVERITY_EMOJI.get(incident.level, ":large_blue_circle:")
    line = (
        f"{emoji} :repeat: *+{incident.count} more occurrences* in the last window "
        f"(window total {incident.window_count}) · last seen {_when(incident.last_seen)}\n"
    )
    title = _fit_escaped(
        f"[{incident.level.name}] {_services(incident)} ({environment}): {incident_title(incident)}", 600
    )
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=truncate(line + title, SECTION_TEXT_MAX)))
    ]
    buttons = _buttons(links, AnalysisResult())
    if buttons is not None:
        blocks.append(buttons)
    blocks.append(_footer(incident, result))
    return blocks


def build_incident_message(
    incident: IncidentMessage,
    result: AnalysisResult,
    *,
    environment: str,
    links: IncidentLinks,
) -> SlackMessage:
    """The message for one incident; ``incident`` must already be redacted."""
    if incident.kind == "update":
        blocks = _update_blocks(incident, result, environment, links)
    else:
        blocks = [_header(incident), _facts(incident, environment), _excerpt(incident), DividerBlock()]
        blocks.extend(_analysis_blocks(result))
        similar = _similar(result)
        if similar is not None:
            blocks.append(similar)
        buttons = _buttons(links, result)
        if buttons is not None:
            blocks.append(buttons)
        blocks.append(_footer(incident, result))
    return SlackMessage(text=_fallback_text(incident, environment, result), blocks=_cap_blocks(blocks))


def _cap_blocks(blocks: Sequence[Block]) -> list[dict[str, Any]]:
    """Serialise (slack_sdk validates its own limits here) and keep at most 50 blocks."""
    dicts = [block.to_dict() for block in blocks]
    if len(dicts) > MAX_BLOCKS:
        # Keep the footer: it says which incident this is.
        dicts = [*dicts[: MAX_BLOCKS - 1], dicts[-1]]
    return dicts


def message_size(message: SlackMessage) -> int:
    """Size of the JSON payload in characters (for logs and the sink's checks)."""
    return len(json.dumps(message.payload(), ensure_ascii=False))
