"""Log content (and LLM output echoing it) cannot change the Slack message or mention anyone.

Every line of ``data/prompt_injection_slack.jsonl`` is planted in every untrusted field of
an incident and of its analysis. The message must keep exactly the block structure of a
benign incident, carry no ``<`` except in the links the builder itself writes (so no
``<!channel>``, ``<@U…>``, ``<#C…>`` or ``<http…|…>``), no live broadcast word, and a
single intact code fence around the excerpt.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cali.contracts.analysis import AnalysisResult, LlmAnalysis, LlmUsage, SimilarIncident
from cali.contracts.incident import AlertKind, IncidentMessage, SampleLine
from cali.contracts.levels import Level
from cali.notify.slack.links import IncidentLinks
from cali.notify.slack.message import SlackMessage, build_incident_message
from cali_local.slack_sink import validate_message

CORPUS = Path(__file__).parent / "data" / "prompt_injection_slack.jsonl"
CASES = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
RUNBOOK = "https://wiki.example/runbooks/db-pool"
OUR_LINK_PREFIXES = (f"<{RUNBOOK}|",)
LINKS = IncidentLinks(
    opensearch_url="https://osd.example/app/discover#/", grafana_url="https://grafana.example/d/x"
)
LIVE_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)


def incident(text: str, kind: AlertKind = "new") -> IncidentMessage:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
    sample = SampleLine(
        timestamp=now, service=f"svc {text}", level=Level.ERROR, message=text, host=text, stack_trace=text
    )
    return IncidentMessage(
        incident_id=f"id {text}"[:200],
        fingerprint="3f2a1b0c9d8e7f6a",
        template=text,
        kind=kind,
        environment="prod",
        level=Level.ERROR,
        exception_type=text[:500],
        services=[f"payments {text}"],
        hosts=[text],
        count=3,
        window_count=3,
        first_seen=now,
        last_seen=now,
        samples=[sample, sample],
    )


def analysis(text: str, degraded: bool = False) -> AnalysisResult:
    similar = [
        SimilarIncident(
            id="rb-db-pool", title=f"Pool {text}"[:300], source="runbook", score=0.8, runbook_url=RUNBOOK,
            resolution=text,
        ),
        SimilarIncident(id="inc-1", title=text[:300] or "x", source="incident", score=0.7),
    ]  # fmt: skip
    if degraded:
        return AnalysisResult(similar=similar, degraded_reason=f"invalid output: {text}", flags=[text])
    return AnalysisResult(
        llm=LlmAnalysis(
            summary=text[:600],
            probable_root_cause=text[:1200],
            confidence="medium",
            evidence=[text[:400]] * 3,
            cited_ids=["rb-db-pool"],
            next_actions=[text[:400]] * 2,
            unknowns=[text[:400]],
        ),
        similar=similar,
        usage=LlmUsage(model=f"m {text}"[:100], prompt_tokens=1, completion_tokens=1),
        flags=[text[:300]],
    )


def texts(message: SlackMessage) -> list[tuple[str, str]]:
    """(kind, text) for every text in the message: mrkdwn, plain_text or the fallback."""
    found: list[tuple[str, str]] = [("mrkdwn", message.text)]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in {"mrkdwn", "plain_text"} and isinstance(node.get("text"), str):
                found.append((node["type"], node["text"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message.blocks)
    return found


def structure(message: SlackMessage) -> list[tuple[str, int]]:
    shape = []
    for block in message.blocks:
        size = len(block.get("fields") or block.get("elements") or [])
        shape.append((block["type"], size))
    return shape


def assert_inert(message: SlackMessage) -> None:
    validate_message(message.text, message.blocks)
    for kind, text in texts(message):
        stripped = text
        for prefix in OUR_LINK_PREFIXES:
            stripped = stripped.replace(prefix, "")
        assert "<" not in stripped, f"{kind}: {text[:200]!r}"
        if kind == "plain_text":
            assert ">" not in text
        assert not LIVE_BROADCAST.search(text), f"{kind}: {text[:200]!r}"
    excerpt = next(b for b in message.blocks if "Log excerpt" in (b.get("text") or {}).get("text", ""))
    assert excerpt["text"]["text"].count("```") == 2
    buttons = [e["url"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert buttons == [LINKS.opensearch_url, LINKS.grafana_url, RUNBOOK]


BENIGN = "connection refused"


@pytest.mark.parametrize("degraded", [False, True], ids=["llm", "degraded"])
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_injected_content_cannot_change_structure_or_mention(case: dict[str, str], degraded: bool) -> None:
    baseline = build_incident_message(
        incident(BENIGN), analysis(BENIGN, degraded), environment="prod", links=LINKS
    )
    attacked = build_incident_message(
        incident(case["text"]), analysis(case["text"], degraded), environment="prod", links=LINKS
    )
    assert structure(attacked) == structure(baseline)
    assert_inert(attacked)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_update_messages_are_inert_too(case: dict[str, str]) -> None:
    baseline = build_incident_message(
        incident(BENIGN, "update"), AnalysisResult(), environment="prod", links=LINKS
    )
    attacked = build_incident_message(
        incident(case["text"], "update"), AnalysisResult(), environment="prod", links=LINKS
    )
    assert structure(attacked) == structure(baseline)
    for _, text in texts(attacked):
        assert "<" not in text and not LIVE_BROADCAST.search(text)


def test_corpus_covers_the_attack_kinds() -> None:
    joined = " ".join(c["text"] for c in CASES)
    for needle in (
        "<!channel>",
        "<!here",
        "<!everyone>",
        "<@U",
        "<#C",
        "<http",
        "```",
        "@channel",
        "<!subteam",
    ):
        assert needle in joined
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/x|<!channel>",
        "https://evil.example/x><!here",
        "javascript:alert(1)",
        "https://a b",
    ],
)
def test_knowledge_base_urls_cannot_break_link_syntax(url: str) -> None:
    result = analysis(BENIGN).model_copy(
        update={"similar": [SimilarIncident(id="x", title="t", source="runbook", score=0.5, runbook_url=url)]}
    )
    message = build_incident_message(incident(BENIGN), result, environment="prod", links=IncidentLinks())
    similar = next(b for b in message.blocks if "Similar incidents" in (b.get("text") or {}).get("text", ""))
    text = similar["text"]["text"]
    assert "<!" not in text and text.count("<") <= 1 and text.count(">") <= 1 and text.count("|") <= 1
