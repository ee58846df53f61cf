"""The relevance check's parts: code meanings, example lines, terms, the line matcher and the
decision rule (the whole check is scored on labelled data by tests/functional/test_analysis_bench.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from cali.contracts.analysis import SimilarIncident
from cali.knowledge.codes import code_meanings
from cali.knowledge.relevance import (
    LineMatcher,
    RelevancePolicy,
    TermStats,
    example_lines,
    judge,
    query_terms,
    terms,
    without_frames,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '10.0.0.1 - - [14/May/2026:02:11:09 +0000] "POST /api HTTP/1.1" 504 167 "-"',
            ["HTTP 504 Gateway Timeout"],
        ),
        ('request completed {"res": {"statusCode": 503}}', ["HTTP 503 Service Unavailable"]),
        ("upstream answered HTTP 429", ["HTTP 429 Too Many Requests"]),
        ("Error: connect ECONNREFUSED 10.0.0.1:587", ["ECONNREFUSED Connection refused"]),
        ("getaddrinfo EAI_AGAIN orders-db", ["EAI_AGAIN Temporary failure in name resolution"]),
        ("[signal SIGSEGV: segmentation violation]", ["SIGSEGV Segmentation fault"]),
        # Not codes: a bare number (a port, a size), a word in capitals, a 2xx status.
        ("listening on 504 workers, ERROR EOF", []),
        ('"GET / HTTP/1.1" 200 612', []),
    ],
)
def test_code_meanings_come_from_the_standard_tables(text: str, expected: list[str]) -> None:
    assert code_meanings(text) == expected


def test_each_code_is_explained_once() -> None:
    assert code_meanings("ENOSPC here, ENOSPC there") == ["ENOSPC No space left on device"]


def test_example_lines_are_the_fenced_log_lines_without_frames() -> None:
    symptoms = (
        "Writes fail on one host.\n\n```\n"
        "java.io.IOException: No space left on device\n"
        "\tat java.io.FileOutputStream.writeBytes(Native Method)\n"
        "ok\n"
        "ERROR [main] disk /var is 100% full\n```\n"
    )
    assert example_lines(symptoms) == (
        "java.io.IOException: No space left on device",
        "ERROR [main] disk /var is 100% full",
    )


def test_an_entry_without_a_fence_offers_its_lines() -> None:
    assert example_lines("Payments timed out calling the ledger\nshort\n") == (
        "Payments timed out calling the ledger",
    )


@pytest.mark.parametrize(
    "frame",
    [
        "\tat com.acme.shop.Cart.total(Cart.java:12)",
        '  File "/app/main.py", line 3, in <module>',
        "\t/src/internal/token/signer.go:77 +0x2c",
        "github.com/acme/auth/internal/token.(*Signer).Sign(0x0, {0xc0001a2b3c, 0x24})",
        "goroutine 211 [running]:",
        "\t... 3 more",
    ],
)
def test_stack_frames_are_left_out(frame: str) -> None:
    assert without_frames(f"panic: boom\n{frame}") == "panic: boom"


def test_a_package_path_counts_as_its_last_name_only() -> None:
    # Two apps of one company share "com.acme.shop"; that is not the same failure.
    assert terms("java.lang.IllegalStateException in com.acme.shop.CartFragment") == {
        "illegalstateexception",
        "cartfragment",
    }


def test_query_terms_leave_out_the_service_line_and_frames() -> None:
    query = 'KeyError: order\n  File "/app/x.py", line 3, in handler\nService: payments'
    assert query_terms(query) == frozenset({"keyerror", "order"})


def test_term_weight_does_not_grow_with_the_size_of_the_knowledge_base() -> None:
    small = TermStats(documents=30, frequency={"x509": 1})
    large = TermStats(documents=3000, frequency={"x509": 1})
    assert small.weight("x509") == pytest.approx(large.weight("x509"), abs=0.15)
    assert TermStats(documents=30, frequency={"error": 30}).weight("error") < 0.01


class CountingEmbedder:
    """Unit vectors by the first letter, so cosines are 1 (same letter) or 0."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [
            [1.0 if text[0].lower() == letter else 0.0 for letter in "abcdefghijklmnopqrstuvwxyz"]
            for text in texts
        ]


def hit(
    entry_id: str, *, examples: tuple[str, ...] = (), lexicon: tuple[str, ...] = (), score: float = 0.5
) -> SimilarIncident:
    return SimilarIncident(
        id=entry_id, title=entry_id, source="runbook", score=score, examples=examples, lexicon=lexicon
    )


def test_the_line_matcher_takes_the_best_pair_and_embeds_each_example_once() -> None:
    embedder = CountingEmbedder()
    matcher = LineMatcher(embedder)
    candidates = [hit("rb-a", examples=("apple", "zebra")), hit("rb-b", examples=("banana",))]

    assert matcher.scores(["avocado", "kiwi"], candidates) == {"rb-a": 1.0, "rb-b": 0.0}
    matcher.scores(["avocado"], candidates)

    # The lines, then the examples not embedded yet; the second time, the line only.
    assert embedder.calls == [["avocado", "kiwi"], ["apple", "zebra", "banana"], ["avocado"]]


def test_no_lines_or_no_examples_means_no_line_match() -> None:
    matcher = LineMatcher(CountingEmbedder())
    assert matcher.scores([], [hit("rb-a", examples=("apple",))]) == {}
    assert matcher.scores(["apple"], [hit("rb-a")]) == {}


STATS = TermStats(documents=40, frequency={"clienterror": 4, "operation": 4, "signature": 1, "expired": 1})
POLICY = RelevancePolicy(line_alone=0.94, min_line=0.38, min_agreement=1.0, max_gap=0.2, min_share=0.6)
SDK_ERROR = (
    "ClientError: An error occurred (InvalidSignatureException) when calling the PutRecord operation: "
    "Signature expired"
)


def verdicts(
    candidates: list[SimilarIncident], lines: dict[str, float], policy: RelevancePolicy = POLICY
) -> dict[str, bool]:
    return {j.hit.id: j.relevant for j in judge(SDK_ERROR, candidates, STATS, policy, line_scores=lines)}


def test_an_entry_sharing_only_the_sdk_boilerplate_yields_to_one_sharing_the_failure() -> None:
    boilerplate = hit("rb-throttling", lexicon=("clienterror", "operation"))
    failure = hit("rb-clock-skew", lexicon=("clienterror", "operation", "signature", "expir"))
    lines = {"rb-throttling": 0.65, "rb-clock-skew": 0.51}

    assert verdicts([boilerplate, failure], lines) == {"rb-throttling": False, "rb-clock-skew": True}
    # Without the share rule the boilerplate match would lead.
    assert verdicts(
        [boilerplate, failure],
        lines,
        RelevancePolicy(min_line=0.38, min_agreement=1.0, max_gap=0.2, min_share=0.0),
    )["rb-throttling"]


def test_lexical_agreement_alone_is_not_enough_without_a_matching_line() -> None:
    failure = hit("rb-clock-skew", lexicon=("signature", "expir"))
    assert verdicts([failure], {"rb-clock-skew": 0.2}) == {"rb-clock-skew": False}
    assert verdicts([failure], {"rb-clock-skew": 0.95}) == {"rb-clock-skew": True}


def test_an_entry_recorded_for_the_same_fingerprint_is_always_shown() -> None:
    judged = judge(
        SDK_ERROR, [hit("inc-1")], STATS, POLICY, line_scores={}, fingerprint_ids=frozenset({"inc-1"})
    )
    assert judged[0].relevant


def test_weights_are_finite_for_an_empty_knowledge_base() -> None:
    assert math.isfinite(TermStats(documents=0, frequency={}).weight("x"))


def test_the_incident_offers_its_message_exception_lines_and_code_meanings() -> None:
    from cali.analysis.analyzer import incident_lines, incident_query_text
    from tests.support.analysis_samples import incident

    trace = "Error: connect ECONNREFUSED 10.0.0.9:587\n    at TCPConnectWrap.afterConnect (node:net:1607:16)"
    message = incident(messages=["SMTP send failed"], stack_trace=trace)

    assert incident_lines(message) == [
        "SMTP send failed",
        "Error: connect ECONNREFUSED 10.0.0.9:587",
        "ECONNREFUSED Connection refused",
    ]
    assert "Meaning: ECONNREFUSED Connection refused\nService: checkout" in incident_query_text(message)
