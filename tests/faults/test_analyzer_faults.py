"""Fault scenarios of the analyzer stage (issue 11, rows 3, 4, 5 and 9).

Incidents come from the real consumer; the analyzer handler posts to the Slack stand-in
in webhook mode (no ts, no lookup possible) or bot mode (``chat.postMessage`` with
message metadata, ``conversations.history`` to look a post up). The only duplicate
allowed anywhere is the webhook window: a post that Slack accepted but whose answer never
came back (a timeout, a crash) is re-sent at most once.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cali_local.event_source import RuntimeExit
from tests.faults.harness import Tally, World, log_line

MakeWorld = Callable[..., World]
CLIENT_TIMEOUT = 1  # SLACK_TIMEOUT_SECONDS for the late-answer scenario


def assert_no_loss(tally: Tally, *, duplicates: int = 0) -> None:
    assert tally.on_failure == 0 and tally.lost_records == 0
    assert tally.lost_alerts == 0, f"{tally.lost_alerts} alerts never reached Slack"
    assert tally.duplicates <= duplicates, f"{tally.duplicates} duplicate posts"
    assert tally.incidents_dlq == 0, "an incident was dead-lettered"


@pytest.mark.parametrize(
    ("mode", "allowed"),
    [
        pytest.param("webhook", 1),
        pytest.param("bot", 0),
    ],
)
def test_row3_slack_answers_after_the_client_timeout(world: MakeWorld, mode: str, allowed: int) -> None:
    w = world(slack_mode=mode, env={"SLACK_TIMEOUT_SECONDS": str(CLIENT_TIMEOUT)})
    w.slack.answer_late(CLIENT_TIMEOUT + 0.5)  # every post lands, every answer is too late
    w.put(log_line("lima"))
    w.run()
    assert_no_loss(w.tally(f"row 3 ({mode}): Slack answers after the timeout", ["lima"]), duplicates=allowed)


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param("webhook"),
        pytest.param("bot"),
    ],
)
def test_row4_two_containers_with_the_same_incident_post_once(world: MakeWorld, mode: str) -> None:
    w = world(slack_mode=mode)
    w.put(log_line("mike"))
    w.run(analyzer=False)
    w.slack.latency_seconds = 0.6  # both containers are inside the post at the same time
    w.race(containers=2)
    w.slack.latency_seconds = 0.0
    w.run()
    assert_no_loss(w.tally(f"row 4 ({mode}): two containers, one incident", ["mike"]))


@pytest.mark.parametrize(
    ("mode", "allowed"),
    [
        ("webhook", 1),  # the documented window: Slack gives no way to look a webhook post up
        pytest.param("bot", 0),
    ],
)
def test_row5_crash_between_the_post_and_mark_posted(world: MakeWorld, mode: str, allowed: int) -> None:
    w = world(slack_mode=mode)
    w.put(log_line("november"))
    w.run(analyzer=False)
    crashed = [False]

    def crash_on_mark_posted(call: Callable[..., object], kwargs: dict[str, object]) -> object:
        item = kwargs.get("Item") or {}
        if not crashed[0] and isinstance(item, dict) and "document" in item:
            crashed[0] = True
            raise RuntimeExit("killed after Slack accepted the post")
        return call(**kwargs)

    for operation in ("put_item", "update_item"):
        w.fault("dynamodb", operation, crash_on_mark_posted)
    w.run()
    assert crashed[0], "the scenario never reached mark_posted"
    assert_no_loss(w.tally(f"row 5 ({mode}): crash after the post", ["november"]), duplicates=allowed)


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param("webhook"),
        pytest.param("bot"),
    ],
)
def test_row9_slack_refusing_blocks_gets_the_text_version(world: MakeWorld, mode: str) -> None:
    w = world(slack_mode=mode)
    w.slack.refuse_blocks = True
    w.put(log_line("oscar"))
    w.run()
    tally = w.tally(f"row 9 ({mode}): invalid_blocks for good", ["oscar"])
    assert_no_loss(tally)
    (message,) = w.slack.messages
    assert message.blocks == [] and "oscar" in message.text
