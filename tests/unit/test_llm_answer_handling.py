"""What real servers send back, and how far the shown confidence may trust the model."""

from __future__ import annotations

import json

import pytest

from cali.analysis.llm.confidence import Support, calibrated_confidence, copied_from
from cali.analysis.llm.endpoint import (
    HOSTED_TIMEOUT_SECONDS,
    SELF_HOSTED_TIMEOUT_SECONDS,
    endpoint_limits,
    is_self_hosted,
    rejects_response_format,
)
from cali.analysis.llm.extract import NoAnswerObjectError, coerce_answer, extract_answer

ANSWER = {
    "summary": "checkout fails",
    "probable_root_cause": "the pool is exhausted",
    "confidence": "high",
    "evidence": ["Connection is not available"],
}


@pytest.mark.parametrize(
    "content",
    [
        json.dumps(ANSWER),
        "```json\n" + json.dumps(ANSWER, indent=2) + "\n```",
        "Here is the analysis:\n```\n" + json.dumps(ANSWER) + "\n```\nLet me know if you need more.",
        "Sure! " + json.dumps(ANSWER) + " Hope it helps.",
        # a small model nesting its answer in a copy of the shape it was shown
        json.dumps({"type": "object", "properties": ANSWER}),
        json.dumps({"analysis": ANSWER}),
    ],
)
def test_the_answer_is_found_in_what_servers_really_send(content: str) -> None:
    assert extract_answer(content) == ANSWER


def test_an_echoed_schema_is_not_taken_for_the_answer() -> None:
    schema = {
        "properties": {
            "summary": {"type": "string", "maxLength": 300},
            "probable_root_cause": {"type": "string", "description": "cause"},
        }
    }
    with pytest.raises(NoAnswerObjectError, match="none of the 1"):
        extract_answer(json.dumps(schema))
    assert extract_answer(json.dumps(schema) + "\n" + json.dumps(ANSWER)) == ANSWER


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("I cannot analyse this.", "no JSON object"),
        ('{"summary": "x"}', "has summary and probable_root_cause"),
    ],
)
def test_no_answer_is_an_error_that_says_what_was_seen(content: str, message: str) -> None:
    with pytest.raises(NoAnswerObjectError, match=message):
        extract_answer(content)


def test_coercion_fits_a_sloppy_answer_and_says_what_it_changed() -> None:
    data, notes = coerce_answer(
        {**ANSWER, "evidence": "one quote", "confidence": "Moderate", "title": "extra", "summary": "s" * 700}
    )
    assert data["evidence"] == ["one quote"]
    assert data["confidence"] == "medium"
    assert len(data["summary"]) == 600
    assert "title" not in data
    assert notes == ["answer_extra_keys_dropped:1"]
    assert coerce_answer({**ANSWER, "confidence": "very"})[0]["confidence"] == "low"
    assert coerce_answer({**ANSWER, "cause_known": "false"})[0]["cause_known"] is False


def _support(**overrides: object) -> Support:
    values: dict[str, object] = {
        "claimed": "high",
        "cause_known": True,
        "quotes_written": 2,
        "quotes_kept": 2,
        "cited_relevant": ["rb-disk-full-enospc"],
    }
    values.update(overrides)
    return Support(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "expected", "reason"),
    [
        ({}, "high", None),
        ({"claimed": "medium"}, "medium", None),  # never raised above the claim
        ({"cited_relevant": []}, "medium", "no_relevant_entry_cited"),
        ({"quotes_kept": 1}, "medium", "some_evidence_not_in_logs"),
        ({"quotes_kept": 1, "quotes_written": 3}, "low", "most_evidence_not_in_logs"),
        ({"quotes_kept": 0}, "low", "no_evidence_in_logs"),
        ({"cause_known": False}, "low", "cause_unknown"),
    ],
)
def test_confidence_is_the_claim_capped_by_its_support(
    overrides: dict[str, object], expected: str, reason: str | None
) -> None:
    confidence, flags = calibrated_confidence(_support(**overrides))
    assert confidence == expected
    if reason is None:
        assert flags == []
    else:
        assert any(flag.endswith(reason) for flag in flags), flags


def test_a_fully_fabricated_high_answer_is_shown_as_low() -> None:
    confidence, flags = calibrated_confidence(_support(quotes_kept=0, quotes_written=3))
    assert confidence == "low"
    assert flags == ["confidence_capped:high->low:no_evidence_in_logs"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8089/v1", True),
        ("http://localhost:11434/v1", True),
        ("http://10.0.3.7:8000/v1", True),
        ("http://vllm.ml.svc.cluster.local/v1", True),
        ("http://llm-box/v1", True),
        ("https://api.openai.com/v1", False),
        ("https://my-resource.openai.azure.com/openai", False),
        (None, False),
    ],
)
def test_self_hosted_endpoints_are_recognised_by_address(url: str | None, expected: bool) -> None:
    assert is_self_hosted(url) is expected


def test_limits_follow_the_endpoint_kind_unless_set() -> None:
    local = endpoint_limits("http://127.0.0.1:8089/v1")
    assert (local.timeout_seconds, local.max_retries) == (SELF_HOSTED_TIMEOUT_SECONDS, 0)
    hosted = endpoint_limits(None)
    assert (hosted.timeout_seconds, hosted.max_retries) == (HOSTED_TIMEOUT_SECONDS, 2)
    forced = endpoint_limits(
        "https://llm.example.com/v1", self_hosted=True, timeout_seconds=90, max_retries=1
    )
    assert (forced.self_hosted, forced.timeout_seconds, forced.max_retries) == (True, 90, 1)


def test_response_format_rejections_are_recognised() -> None:
    assert rejects_response_format(500, "Internal Server Error", sent_json_schema=True)
    assert not rejects_response_format(500, "Internal Server Error", sent_json_schema=False)
    assert rejects_response_format(
        400, "'response_format' of type 'json_object' unsupported", sent_json_schema=False
    )
    assert not rejects_response_format(400, "maximum context length exceeded", sent_json_schema=True)
    assert not rejects_response_format(503, "overloaded", sent_json_schema=True)


def test_a_cause_pasted_from_a_runbook_is_a_hypothesis_not_a_diagnosis() -> None:
    runbook = (
        "Every connection in the pool is checked out and not returned fast enough: a slow query "
        "holding connections, a connection leak, or a pool too small for the request threads."
    )
    pasted = "Every connection in the pool is checked out and not returned fast enough (slow query)."
    read = "Postgres at payments-db.internal:5432 refused the connections, so the pool could not open any."
    assert copied_from(pasted, [runbook])
    assert not copied_from(read, [runbook])
    confidence, flags = calibrated_confidence(_support(cause_copied=True))
    assert confidence == "medium" and flags == ["confidence_capped:high->medium:cause_copied_from_knowledge"]
