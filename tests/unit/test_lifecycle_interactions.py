"""The Slack interactivity endpoint through the real handler and state table (moto DynamoDB)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_interactions import handler as endpoint

from cali.lifecycle import blocks
from cali.lifecycle.interactions import InteractionConfig, Interactions
from cali.lifecycle.state import IncidentLifecycle
from cali.lifecycle.store import DynamoDbLifecycleStore, DynamoDbReplayGuard
from tests.conftest import StateTable
from tests.support.lifecycle_support import (
    SECRET,
    TEAM,
    CollectingDeferrer,
    RecordingMetrics,
    RecordingSlack,
    block_action,
    resolve_submission,
    sign,
    slash,
)

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
FP = "fp-payments-jdbc"


@dataclass
class Rig:
    app: Interactions
    table: StateTable
    slack: RecordingSlack
    deferrer: CollectingDeferrer
    metrics: RecordingMetrics
    now: list[datetime]

    def call(self, body: bytes, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Through the Lambda handler, exactly as API Gateway's payload v2 delivers the request."""
        ts = int(self.now[0].timestamp())
        event = {
            "version": "2.0",
            "headers": {k.lower(): v for k, v in (headers or sign(body, ts)).items()},
            "body": base64.b64encode(body).decode(),
            "isBase64Encoded": True,
        }
        return endpoint.handler(event, _Context())  # type: ignore[arg-type]  # the fields Powertools reads

    def items(self) -> list[dict[str, Any]]:
        return self.table.client.scan(TableName=self.table.name)["Items"]

    def state(self) -> IncidentLifecycle | None:
        return DynamoDbLifecycleStore(self.table.name, client=self.table.client).load(FP)


class _Context:
    function_name = "slack_interactions"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-1:000000000000:function:slack_interactions"
    aws_request_id = "req-1"


@pytest.fixture
def rig(state_table: StateTable, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    now = [T0]
    slack, deferrer, metrics = RecordingSlack(), CollectingDeferrer(), RecordingMetrics()
    app = Interactions(
        InteractionConfig(signing_secret=SECRET, team_ids=frozenset({TEAM}), max_body_bytes=64 * 1024),
        store=DynamoDbLifecycleStore(state_table.name, client=state_table.client),
        replay=DynamoDbReplayGuard(state_table.name, client=state_table.client),
        slack=slack,
        deferrer=deferrer,
        metrics=metrics,
        clock=lambda: now[0],
    )
    monkeypatch.setattr(endpoint, "dependencies", lambda: app)
    yield Rig(app, state_table, slack, deferrer, metrics, now)


# -- rejected requests: 401/400, nothing written, counted ---------------------------------


def _rejected(rig: Rig, response: dict[str, Any], status: int, reason: str) -> None:
    assert response["statusCode"] == status
    assert json.loads(response["body"]) == {"error": reason}
    assert rig.items() == []
    assert ("SlackRequestRejected", 1.0, {"reason": reason}) in rig.metrics.values


def test_bad_signature(rig: Rig) -> None:
    body = block_action(blocks.ACK, FP)
    headers = sign(body, int(T0.timestamp()), secret="not-the-secret")
    _rejected(rig, rig.call(body, headers), 401, "bad_signature")


def test_tampered_body(rig: Rig) -> None:
    body = block_action(blocks.ACK, FP)
    headers = sign(body, int(T0.timestamp()))
    _rejected(rig, rig.call(body.replace(b"U0ALICE", b"U0MALLORY"), headers), 401, "bad_signature")


def test_stale_timestamp(rig: Rig) -> None:
    body = block_action(blocks.ACK, FP)
    headers = sign(body, int((T0 - timedelta(minutes=5, seconds=1)).timestamp()))
    _rejected(rig, rig.call(body, headers), 401, "stale_timestamp")


def test_missing_signature(rig: Rig) -> None:
    _rejected(rig, rig.call(block_action(blocks.ACK, FP), {"Content-Type": "x"}), 401, "missing_signature")


def test_wrong_team(rig: Rig) -> None:
    _rejected(rig, rig.call(block_action(blocks.ACK, FP, team="T0OTHER")), 401, "wrong_team")


def test_oversized_body(rig: Rig) -> None:
    body = block_action(blocks.ACK, FP) + b"&pad=" + b"x" * (64 * 1024)
    _rejected(rig, rig.call(body), 400, "body_too_large")


@pytest.mark.parametrize(
    "body",
    [b"payload=%7Bnot-json", b"payload=%5B1%5D", b"payload=%7B%22type%22%3A%22block_actions%22%7D", b"x=1"],
)
def test_malformed_payload(rig: Rig, body: bytes) -> None:
    _rejected(rig, rig.call(body), 400, "malformed_payload")


def test_replay_is_rejected_and_changes_nothing(rig: Rig) -> None:
    body = block_action(blocks.MUTE_1H, FP)
    headers = sign(body, int(T0.timestamp()))
    assert rig.call(body, headers)["statusCode"] == 200
    before = rig.items()
    rig.now[0] = T0 + timedelta(minutes=2)  # still inside the 5-minute validity
    response = rig.call(body, headers)
    assert response["statusCode"] == 401 and json.loads(response["body"]) == {"error": "replay"}
    assert rig.items() == before


def test_user_group_allow_list(rig: Rig) -> None:
    rig.app.config = InteractionConfig(SECRET, frozenset({TEAM}), allowed_groups=frozenset({"S0ONCALL"}))
    rig.slack.groups["S0ONCALL"] = frozenset({"U0ALICE"})
    response = rig.call(block_action(blocks.ACK, FP, user="U0EVE"))
    _rejected(rig, response, 403, "not_authorised")
    assert rig.call(block_action(blocks.ACK, FP))["statusCode"] == 200
    assert rig.state() is not None and rig.state().status == "acknowledged"  # type: ignore[union-attr]
    assert rig.slack.group_calls == 1  # cached between requests


# -- accepted requests ---------------------------------------------------------------------


def test_acknowledge_answers_at_once_and_redraws_later(rig: Rig) -> None:
    response = rig.call(block_action(blocks.ACK, FP))
    assert response["statusCode"] == 200 and response["body"] == ""
    state = rig.state()
    assert state is not None and state.status == "acknowledged" and state.acknowledged_by == "U0ALICE"
    assert rig.slack.updates == []  # nothing slow before the answer
    [job] = rig.deferrer.jobs
    rig.app.run_deferred(job)
    [(channel, ts, redrawn)] = rig.slack.updates
    assert (channel, ts) == ("C0ALERTS", "1700000000.000100")
    status = next(b for b in redrawn if b.get("block_id") == blocks.STATUS_BLOCK)
    assert "Acknowledged by <@U0ALICE>" in json.dumps(status)
    actions = next(b for b in redrawn if b.get("block_id") == blocks.ACTIONS_BLOCK)
    assert blocks.ACK not in json.dumps(actions)  # no second acknowledge button
    assert redrawn[0]["block_id"] == "h"  # the alert itself is kept


def test_resolve_opens_a_prefilled_modal_then_stores_a_lesson(rig: Rig) -> None:
    store = DynamoDbLifecycleStore(rig.table.name, client=rig.table.client)
    seeded = IncidentLifecycle(
        fingerprint=FP, opened_at=T0, summary="Pool exhausted", suggested_fix="Raise it"
    )
    assert store.save(seeded.model_copy(update={"version": 1}), 0)
    rig.now[0] = T0 + timedelta(minutes=20)
    assert rig.call(block_action(blocks.RESOLVE, FP))["statusCode"] == 200
    [view] = rig.slack.views
    assert "Pool exhausted" in json.dumps(view) and "Raise it" in json.dumps(view)
    metadata = json.loads(view["private_metadata"])
    assert metadata["link"] == "https://acme.slack.com/archives/C0ALERTS/p1700000000000100"

    empty = rig.call(resolve_submission(FP, "  ", "restart"))
    assert json.loads(empty["body"])["response_action"] == "errors"
    assert rig.state().status == "open"  # type: ignore[union-attr]

    done = rig.call(resolve_submission(FP, "Pool too small for the batch job", "Raised pool to 50"))
    assert done["statusCode"] == 200
    state = rig.state()
    assert state is not None and state.status == "resolved" and state.resolved_by == "U0BOB"
    lesson = [i for i in rig.items() if i["pk"]["S"].startswith("incident#")]
    assert len(lesson) == 1 and lesson[0]["resolution"]["S"] == "Raised pool to 50"
    assert ("TimeToResolve", 1200.0, {}) in rig.metrics.values
    rig.app.run_deferred(rig.deferrer.jobs[-1])
    assert "Raised pool to 50" in rig.slack.posts[-1][1]  # announced in the alert's thread


def test_mute_vote_and_slash_commands(rig: Rig) -> None:
    rig.call(block_action(blocks.MUTE_24H, FP))
    state = rig.state()
    assert state is not None and state.muted_until == T0 + timedelta(hours=24)
    rig.now[0] += timedelta(seconds=1)
    rig.call(block_action(blocks.HELPFUL_NO, FP, user="U0CAROL"))
    assert rig.state().votes == {"U0CAROL": False}  # type: ignore[union-attr]
    assert ("AnalysisNotHelpful", 1.0, {}) in rig.metrics.values
    rig.now[0] += timedelta(seconds=1)
    answer = json.loads(rig.call(slash(f"ack {FP}"))["body"])
    assert answer["response_type"] == "ephemeral" and "acknowledged by U0ALICE" in answer["text"]
    rig.now[0] += timedelta(seconds=1)
    answer = json.loads(rig.call(slash(f"ack {FP}", user="U0BOB"))["body"])
    assert "already acknowledged by U0ALICE" in answer["text"]
    rig.now[0] += timedelta(seconds=1)
    answer = json.loads(rig.call(slash(f"mute {FP} 0h"))["body"])
    assert answer["text"].startswith("Not done: duration")
    rig.now[0] += timedelta(seconds=1)
    assert "Usage" in json.loads(rig.call(slash("help"))["body"])["text"]


def test_two_clicks_at_once_acknowledge_once(rig: Rig) -> None:
    """Both requests read the record before either writes; the conditional write decides."""
    store = rig.app.store
    barrier, write_lock = threading.Barrier(2), threading.Lock()
    load, save = store.load, store.save

    def racing_load(fingerprint: str) -> IncidentLifecycle | None:
        state = load(fingerprint)
        if state is None:
            barrier.wait(timeout=5)  # first round only: both saw "absent"
        return state

    def serialised_save(*args: Any, **kwargs: Any) -> bool:
        with write_lock:  # DynamoDB serialises writes to one item
            return save(*args, **kwargs)

    store.load = racing_load  # type: ignore[method-assign]
    store.save = serialised_save  # type: ignore[method-assign]
    results: list[int] = []
    bodies = [block_action(blocks.ACK, FP, user=user) for user in ("U0ALICE", "U0BOB")]
    threads = [threading.Thread(target=lambda b=b: results.append(rig.call(b)["statusCode"])) for b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200, 200]
    state = rig.state()
    assert state is not None and state.status == "acknowledged" and state.version == 1
    assert [h.action for h in state.history] == ["acknowledged"]
    assert rig.metrics.names().count("IncidentAcknowledged") == 1
    assert len(rig.deferrer.jobs) == 1  # one redraw; the loser changed nothing


def test_link_buttons_are_acknowledged_without_effect(rig: Rig) -> None:
    response = rig.call(block_action("open_opensearch", "https://example.org"))
    assert response["statusCode"] == 200
    assert [i["pk"]["S"][:9] for i in rig.items()] == ["slackreq#"]
