"""The analyzer honours the lifecycle: buttons on every bot-mode alert, a note in webhook mode,
muted alerts held back (no embedding, no LLM, no post), regressions in the old thread.

Slack is a recording double (a boundary); the lifecycle store is the real DynamoDB one on moto.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta

from cali.analysis.analyzer import IncidentAnalysis
from cali.analysis.redaction import Redactor
from cali.contracts.analysis import AnalysisResult, SimilarIncident
from cali.contracts.incident import IncidentMessage
from cali.contracts.settings import EscalationRule
from cali.knowledge.relevance import TermStats
from cali.lifecycle import blocks
from cali.lifecycle.alerts import AlertLifecycle
from cali.lifecycle.state import Mute, Resolve
from cali.lifecycle.store import DynamoDbLifecycleStore, apply
from cali.lifecycle.timers import TimerPolicy
from cali.notify.slack.delivery import SlackPostResult
from cali.notify.slack.links import IncidentLinks
from cali.notify.slack.message import SlackMessage
from cali_testing.analysis import InMemoryAlertState, InMemoryIncidentSink
from tests.conftest import StateTable
from tests.support.analysis_samples import T0, incident
from tests.support.lifecycle_support import RecordingScheduler

FP = "0123456789abcdef"


class Notifier:
    searchable = False

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive
        self.posted: list[tuple[SlackMessage, bool]] = []

    def find(self, alert_id: str, *, since: float, thread_key: str | None = None) -> SlackPostResult | None:
        return None

    def post(
        self,
        message: SlackMessage,
        *,
        thread_key: str | None = None,
        new_thread: bool = False,
        alert_id: str | None = None,
    ) -> SlackPostResult:
        self.posted.append((message, new_thread))
        return SlackPostResult(ts=f"1.{len(self.posted)}", channel="C1", thread_ts=None, attempts=1)


class CountingEmbedder:
    model_name, dim = "none", 384

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        raise RuntimeError("no embedder in this test")  # the alert goes out degraded


class NoKnowledge:
    def search(
        self,
        vector: Sequence[float],
        *,
        top_k: int,
        min_score: float,
        service: str | None = None,
        source: str | None = None,
        fingerprint: str | None = None,
    ) -> list[SimilarIncident]:
        return []

    def term_stats(self) -> TermStats:
        raise AssertionError("not reached: the embedder fails first")


class NoLlm:
    def analyze(
        self, incident: IncidentMessage, similar: Sequence[SimilarIncident], *, cache_only: bool = False
    ) -> AnalysisResult:
        raise AssertionError("not reached: the embedder fails first")


def _analysis(
    table: StateTable, interactive: bool = True
) -> tuple[IncidentAnalysis, Notifier, CountingEmbedder]:
    now = [T0 + timedelta(minutes=5)]
    store = DynamoDbLifecycleStore(table.name, client=table.client)
    lifecycle = AlertLifecycle(
        store,
        scheduler=RecordingScheduler(),
        policy=TimerPolicy({"ERROR": EscalationRule(after_minutes=30)}, timedelta(minutes=60)),
        clock=lambda: now[0],
    )
    notifier, embedder = Notifier(interactive), CountingEmbedder()
    analysis = IncidentAnalysis(
        redactor=Redactor(),
        embedder=embedder,
        knowledge=NoKnowledge(),
        llm=NoLlm(),
        notifier=notifier,
        sink=InMemoryIncidentSink(),
        state=InMemoryAlertState(),
        environment="dev",
        links_for=lambda _: IncidentLinks(),
        lifecycle=lifecycle,
        clock=lambda: now[0],
    )
    return analysis, notifier, embedder


def _ids(message: SlackMessage) -> list[str]:
    return [str(b.get("block_id")) for b in message.blocks]


def test_bot_alerts_carry_buttons_and_register_the_incident(state_table: StateTable) -> None:
    analysis, notifier, _ = _analysis(state_table)
    assert analysis.process(incident(fingerprint=FP)).disposition == "posted"
    [(message, new_thread)] = notifier.posted
    assert new_thread and blocks.ACTIONS_BLOCK in _ids(message) and blocks.FEEDBACK_BLOCK in _ids(message)
    actions = next(b for b in message.blocks if b.get("block_id") == blocks.ACTIONS_BLOCK)
    assert [e["action_id"] for e in actions["elements"]] == [
        blocks.ACK,
        blocks.RESOLVE,
        blocks.MUTE_1H,
        blocks.MUTE_24H,
    ]
    assert {e["value"] for e in actions["elements"]} == {FP}
    state = DynamoDbLifecycleStore(state_table.name, client=state_table.client).load(FP)
    assert state is not None and state.status == "open" and state.message_ts == "1.1"
    assert state.occurrences == 42


def test_webhook_alerts_say_what_they_cannot_do(state_table: StateTable) -> None:
    analysis, notifier, _ = _analysis(state_table, interactive=False)
    analysis.process(incident(fingerprint=FP))
    [(message, _)] = notifier.posted
    assert blocks.ACTIONS_BLOCK not in _ids(message)
    assert "incoming webhook can only post" in json.dumps(message.blocks)


def test_muted_alert_is_held_back_without_analysis(state_table: StateTable) -> None:
    analysis, notifier, embedder = _analysis(state_table)
    analysis.process(incident(fingerprint=FP, incident_id=f"{FP}-1"))
    apply(analysis.lifecycle.store, FP, Mute("U1", T0 + timedelta(hours=1)), T0 + timedelta(minutes=5))  # type: ignore[union-attr]
    calls = embedder.calls
    outcome = analysis.process(
        incident(fingerprint=FP, kind="update", incident_id=f"{FP}-2", window_count=40)
    )
    assert outcome.disposition == "muted" and len(notifier.posted) == 1 and embedder.calls == calls
    assert outcome.document is not None and outcome.document.slack_status == "muted"
    state = analysis.lifecycle.store.load(FP)  # type: ignore[union-attr]
    assert state is not None and state.muted_occurrences == 40 and state.occurrences == 82
    # An ERROR at more than twice the rate it had when muted breaks through.
    loud = analysis.process(incident(fingerprint=FP, kind="surge", incident_id=f"{FP}-3", window_count=400))
    assert loud.disposition == "posted" and "breaking through" in json.dumps(notifier.posted[-1][0].blocks)


def test_regression_is_posted_in_the_old_thread_and_reopens(state_table: StateTable) -> None:
    analysis, notifier, _ = _analysis(state_table)
    analysis.process(incident(fingerprint=FP, incident_id=f"{FP}-1"))
    store = analysis.lifecycle.store  # type: ignore[union-attr]
    apply(store, FP, Resolve("U1", "pool too small", "raised to 50", link="https://x.slack.com/p1"), T0)
    analysis.process(incident(fingerprint=FP, kind="new", incident_id=f"{FP}-2"))
    message, new_thread = notifier.posted[-1]
    assert not new_thread  # same thread as the incident it reopens
    text = json.dumps(message.blocks)
    assert "Regression" in text and "https://x.slack.com/p1" in text
    state = store.load(FP)
    assert state is not None and state.status == "reopened" and state.reopen_count == 1


def test_the_first_alert_after_a_mute_says_what_was_held_back(state_table: StateTable) -> None:
    analysis, notifier, _ = _analysis(state_table)
    analysis.process(incident(fingerprint=FP, incident_id=f"{FP}-1"))
    store = analysis.lifecycle.store  # type: ignore[union-attr]
    apply(store, FP, Mute("U1", T0 + timedelta(minutes=10)), T0 + timedelta(minutes=5))
    analysis.process(incident(fingerprint=FP, kind="update", incident_id=f"{FP}-2", window_count=40))
    assert len(notifier.posted) == 1
    later = T0 + timedelta(minutes=20)
    analysis.lifecycle.clock = lambda: later  # type: ignore[union-attr]
    analysis.process(incident(fingerprint=FP, kind="update", incident_id=f"{FP}-3", window_count=30))
    assert "40 occurrences were held back while muted" in json.dumps(notifier.posted[-1][0].blocks)
    state = store.load(FP)
    assert state is not None and state.muted_occurrences == 0
