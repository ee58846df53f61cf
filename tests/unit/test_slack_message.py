"""Block Kit builder: content, compact updates, degraded mode, limits and escaping."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cali.contracts.analysis import AnalysisResult, SimilarIncident
from cali.contracts.levels import Level
from cali.notify.slack.links import (
    IncidentLinks,
    build_incident_links,
    grafana_dashboard_url,
    opensearch_discover_url,
)
from cali.notify.slack.message import SlackMessage, build_incident_message
from cali.notify.slack.text import FIELD_TEXT_MAX, HEADER_TEXT_MAX, escape_mrkdwn, safe_url, truncate
from cali_local.slack_sink import BlockKitError, validate_message
from tests.support.slack_samples import LINKS, NOW, make_incident, make_result


def all_texts(message: SlackMessage) -> list[str]:
    texts: list[str] = [message.text]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                texts.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message.blocks)
    return texts


def assert_within_limits(message: SlackMessage) -> None:
    validate_message(message.text, message.blocks)  # what Slack itself would reject
    assert len(message.text) <= 3000
    for block in message.blocks:
        for field in block.get("fields") or []:
            assert len(field["text"]) <= FIELD_TEXT_MAX
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= HEADER_TEXT_MAX
    json.dumps(message.blocks)  # plain data


def test_new_incident_message_has_every_part() -> None:
    message = build_incident_message(make_incident(), make_result(), environment="prod", links=LINKS)
    assert [b["type"] for b in message.blocks] == [
        "header", "section", "section", "divider", "section", "section", "section", "section", "section",
        "actions", "context",
    ]  # fmt: skip
    header = message.blocks[0]["text"]
    assert header["type"] == "plain_text"
    assert header["text"].startswith(":red_circle: [ERROR] payments: SQLTransientConnectionException")
    fields = {f["text"].split("\n")[0]: f["text"].split("\n", 1)[1] for f in message.blocks[1]["fields"]}
    assert fields["*Severity*"] == "ERROR"
    assert fields["*Environment*"] == "prod"
    assert fields["*Occurrences*"] == "42 (window total 42)"
    assert fields["*First seen*"] == "2026-11-23 10:27:00 UTC"
    assert fields["*Kind*"] == "New incident"
    excerpt = message.blocks[2]["text"]["text"]
    assert "```\nHikariPool-1 - Connection is not available" in excerpt and excerpt.endswith("```")
    analysis = message.blocks[4]["text"]["text"]
    assert "confidence: *high*" in analysis and "Connection pool exhausted" in analysis
    assert "Check pg_stat_activity" in message.blocks[6]["text"]["text"]
    similar = message.blocks[8]["text"]["text"]
    assert "<https://wiki.example/runbooks/db-pool|Database connection pool exhaustion>" in similar
    assert "score 0.83" in similar and "Payments DB timeouts" in similar
    buttons = {e["action_id"]: e["url"] for e in message.blocks[9]["elements"]}
    assert buttons == {
        "open_logs_opensearch": LINKS.opensearch_url,
        "open_grafana": LINKS.grafana_url,
        "open_runbook": "https://wiki.example/runbooks/db-pool",
    }
    footer = " ".join(e["text"] for e in message.blocks[10]["elements"])
    for part in (
        "model gpt-4o-mini",
        "tokens 1410 (1200 in / 210 out)",
        "LLM 1.8 s",
        "$0.0003",
        "3f2a1b0c9d8e7f6a",
    ):
        assert part in footer
    assert "payments (prod)" in message.text and "Probable cause" in message.text
    assert_within_limits(message)


def test_degraded_message_says_why_and_still_shows_similar() -> None:
    result = AnalysisResult(
        similar=make_result().similar, degraded_reason="LLM timeout after 20 s", flags=["no LLM call"]
    )
    message = build_incident_message(make_incident(), result, environment="prod", links=IncidentLinks())
    texts = "\n".join(all_texts(message))
    assert "AI analysis unavailable:* LLM timeout after 20 s; showing similar incidents only." in texts
    assert "Similar incidents" in texts
    types = [b["type"] for b in message.blocks]
    assert types == ["header", "section", "section", "divider", "section", "section", "actions", "context"]
    assert "open_runbook" in json.dumps(message.blocks)  # only the runbook link without base URLs
    assert_within_limits(message)


def test_update_message_is_compact() -> None:
    incident = make_incident(kind="update", count=17, window_count=59)
    message = build_incident_message(incident, AnalysisResult(), environment="prod", links=LINKS)
    assert [b["type"] for b in message.blocks] == ["section", "actions", "context"]
    text = message.blocks[0]["text"]["text"]
    assert "*+17 more occurrences* in the last window (window total 59)" in text
    assert message.text.startswith("[ERROR] payments (prod): +17 more occurrences of")
    assert_within_limits(message)


def test_surge_and_severity_emoji() -> None:
    message = build_incident_message(
        make_incident(kind="surge", level=Level.FATAL), make_result(), environment="prod", links=LINKS
    )
    assert message.blocks[0]["text"]["text"].startswith(":rotating_light: Surge: [FATAL]")
    warn = build_incident_message(
        make_incident(level=Level.WARN), make_result(), environment="dev", links=LINKS
    )
    assert warn.blocks[0]["text"]["text"].startswith(":large_orange_circle: [WARN]")


def test_oversized_content_is_truncated_never_rejected() -> None:
    huge = "x" * 100_000
    sample = (
        make_incident()
        .samples[0]
        .model_copy(update={"message": huge, "stack_trace": "\n".join(["at f()"] * 500)})
    )
    incident = make_incident(
        exception_type="E" * 1000,
        template=huge,
        services=[f"svc-{i}" for i in range(300)],
        hosts=[f"host-{i}" * 50 for i in range(60)],
        samples=[sample],
    )
    result = make_result(
        summary="s" * 600,
        probable_root_cause="<&>" * 400,
        evidence=["&" * 2000] * 8,
        next_actions=["<" * 3000] * 8,
        unknowns=["u" * 2000] * 8,
    )
    result = result.model_copy(
        update={
            "similar": [
                SimilarIncident(
                    id=str(i),
                    title="t" * 5000,
                    source="runbook",
                    score=0.5,
                    runbook_url="https://x.example/" + "a" * 4000,
                )
                for i in range(30)
            ],
            "flags": ["flag " * 1000],
        }
    )
    message = build_incident_message(incident, result, environment="e" * 3000, links=LINKS)
    assert_within_limits(message)
    assert message.blocks[0]["text"]["text"].endswith("…")
    assert message.blocks[2]["text"]["text"].endswith("…\n```")
    # no escaped entity was cut in half
    for text in all_texts(message):
        assert not re.search(r"&(?!amp;|lt;|gt;)[a-z]{0,3}(…|$)", text), text[-40:]


def test_block_cap_keeps_footer() -> None:
    from slack_sdk.models.blocks import DividerBlock

    from cali.notify.slack.message import _cap_blocks
    from cali.notify.slack.text import MAX_BLOCKS

    capped = _cap_blocks([DividerBlock(block_id=str(i)) for i in range(80)])
    assert len(capped) == MAX_BLOCKS and capped[-1]["block_id"] == "79"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=6000), reason=st.text(max_size=3000))
def test_any_text_builds_a_valid_message(text: str, reason: str) -> None:
    sample = make_incident().samples[0].model_copy(update={"message": text or "x"})
    incident = make_incident(template=text, exception_type=text[:300] or None, samples=[sample])
    for result in (
        make_result(probable_root_cause=text[:1200], evidence=[text[:500]], next_actions=[text[:300]]),
        AnalysisResult(degraded_reason=reason),
    ):
        try:
            message = build_incident_message(incident, result, environment="prod", links=LINKS)
        except Exception as exc:  # pragma: no cover - the assertion message is the point
            pytest.fail(f"builder raised {exc!r}")
        assert_within_limits(message)


def test_sink_validator_rejects_what_slack_rejects() -> None:
    # Guard the guard: the limit checker used above must itself fail on broken messages.
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "ok"}}
    with pytest.raises(BlockKitError, match="invalid_blocks"):
        validate_message("t", [section] * 51)
    with pytest.raises(BlockKitError, match="invalid_blocks"):
        validate_message("t", [{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}])
    with pytest.raises(BlockKitError, match="invalid_blocks"):
        validate_message("t", [{"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]}])
    with pytest.raises(BlockKitError, match="no_text"):
        validate_message("", [])
    with pytest.raises(BlockKitError, match="msg_too_long"):
        validate_message("x" * 40_001, None)


# ---------------------------------------------------------------------------------------
# Escaping helpers and links
# ---------------------------------------------------------------------------------------


def test_escape_mrkdwn() -> None:
    assert escape_mrkdwn("a & <b> <!channel> @here") == "a &amp; &lt;b&gt; &lt;!channel&gt; @\u200bhere"


def test_broadcast_words_are_broken_even_when_glued_to_more_letters() -> None:
    # "@channelé" has no word boundary after "channel", yet cutting it to a limit (or a
    # client's own tokenising) leaves "@channel": every such prefix is broken.
    for text in ["@channelé", "@here_now", "@everyone2", "@Channelété"]:
        assert re.search(r"(?i)@(channel|here|everyone)", escape_mrkdwn(text)) is None, text
    assert "@channel" not in truncate(escape_mrkdwn("x @channelé"), 11)


def test_truncate() -> None:
    assert truncate("abcdef", 4) == "abc…"
    assert truncate("abc", 4) == "abc"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/x?y=1|2", "https://a.example/x?y=1%7C2"),
        ("https://a.example/<x>", "https://a.example/%3Cx%3E"),
        ("javascript:alert(1)", None),
        ("ftp://a.example/x", None),
        ("https:///nohost", None),
        ("", None),
        (None, None),
    ],
)
def test_safe_url(url: str | None, expected: str | None) -> None:
    assert safe_url(url) == expected


def test_opensearch_discover_url_filters_on_fingerprint_and_time() -> None:
    url = opensearch_discover_url("https://osd.example/", "3f2a1b0c9d8e7f6a", NOW - timedelta(hours=1), NOW)
    assert url.startswith("https://osd.example/app/discover#/?_g=")
    fragment = unquote(urlsplit(url).fragment)
    assert "time:(from:'2026-11-23T09:30:00.000Z',to:'2026-11-23T10:30:00.000Z')" in fragment
    assert "query:(language:kuery,query:'fingerprint:\"3f2a1b0c9d8e7f6a\"')" in fragment


def test_grafana_dashboard_url_sets_variable_and_range() -> None:
    url = grafana_dashboard_url("https://grafana.example", "3f2a1b0c9d8e7f6a", NOW - timedelta(hours=1), NOW)
    parts = urlsplit(url)
    assert parts.path == "/d/cali-incidents"
    query = parse_qs(parts.query)
    assert query["var-fingerprint"] == ["3f2a1b0c9d8e7f6a"]
    assert int(query["to"][0]) - int(query["from"][0]) == 3_600_000


def test_build_incident_links() -> None:
    incident = make_incident()
    links = build_incident_links(
        incident, opensearch_dashboards_url="https://osd.example", grafana_url="https://grafana.example"
    )
    assert links.opensearch_url and "3f2a1b0c9d8e7f6a" in unquote(links.opensearch_url)
    assert links.grafana_url and "var-fingerprint=3f2a1b0c9d8e7f6a" in links.grafana_url
    assert build_incident_links(incident, opensearch_dashboards_url=None, grafana_url=None) == IncidentLinks()
