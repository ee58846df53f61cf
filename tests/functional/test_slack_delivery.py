"""Slack delivery over real HTTP against the local Slack sink.

The sink and the notifiers share a fake clock: the notifier's injectable ``sleep``
advances it, so the sink's per-channel rate limit sees the wait a real client would make,
and the tests do not actually sleep.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from cali.contracts.settings import AnalyzerSettings
from cali.notify.slack.delivery import (
    BotNotifier,
    SlackDeliveryError,
    WebhookNotifier,
    make_notifier,
)
from cali.notify.slack.message import SlackMessage
from cali.notify.slack.retry import RetryPolicy
from cali.notify.slack.secret import SlackConfigurationError
from cali.notify.slack.threads import DynamoDbThreadStore
from cali_local.slack_sink import SlackSink
from cali_testing.notify import InMemoryThreadStore

if TYPE_CHECKING:
    from tests.conftest import StateTable

CHANNEL = "C0CALIALERTS"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sink(clock: FakeClock) -> Iterator[SlackSink]:
    with SlackSink(rate_limit_per_channel=1.0, burst=3, clock=clock) as running:
        yield running


def policy(clock: FakeClock, **kwargs: Any) -> RetryPolicy:
    return RetryPolicy(sleep=clock.sleep, jitter=lambda: 1.0, **kwargs)


def message(text: str = "[ERROR] payments: pool exhausted", blocks: int = 1) -> SlackMessage:
    return SlackMessage(
        text=text,
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": f"block {i}"}} for i in range(blocks)],
    )


def bot(sink: SlackSink, clock: FakeClock, store: Any = None, **kwargs: Any) -> BotNotifier:
    return BotNotifier(
        sink.token,
        CHANNEL,
        store or InMemoryThreadStore(),
        base_url=sink.api_base_url,
        policy=policy(clock, **kwargs),
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------
# Webhook
# ---------------------------------------------------------------------------------------


def test_webhook_posts_text_and_blocks(sink: SlackSink, clock: FakeClock) -> None:
    result = WebhookNotifier(sink.webhook_url, policy=policy(clock)).post(message(), thread_key="ignored")
    assert result.attempts == 1 and result.ts is None
    [recorded] = sink.messages
    assert recorded.via == "webhook"
    assert recorded.text == "[ERROR] payments: pool exhausted"
    assert recorded.blocks == message().blocks


def test_webhook_retries_5xx_with_bounded_backoff(sink: SlackSink, clock: FakeClock) -> None:
    sink.fail_next(3, status=502, body="bad_gateway")
    result = WebhookNotifier(sink.webhook_url, policy=policy(clock)).post(message())
    assert result.attempts == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]  # base 0.5 s doubling (jitter pinned to its maximum)
    assert len(sink.messages) == 1


def test_webhook_honours_retry_after(sink: SlackSink, clock: FakeClock) -> None:
    sink.rate_limit_next(1, retry_after=7)
    result = WebhookNotifier(sink.webhook_url, policy=policy(clock)).post(message())
    assert result.attempts == 2 and clock.sleeps == [7.0]


def test_webhook_gives_up_after_retries(sink: SlackSink, clock: FakeClock) -> None:
    sink.fail_next(10, status=503)
    with pytest.raises(SlackDeliveryError) as info:
        WebhookNotifier(sink.webhook_url, policy=policy(clock, max_retries=2)).post(message())
    assert info.value.retryable and info.value.status == 503 and info.value.attempts == 3
    assert sink.messages == []


def test_webhook_does_not_wait_out_a_huge_retry_after(sink: SlackSink, clock: FakeClock) -> None:
    sink.rate_limit_next(1, retry_after=3600)
    with pytest.raises(SlackDeliveryError) as info:
        WebhookNotifier(sink.webhook_url, policy=policy(clock)).post(message())
    # back to SQS at once: its visibility timeout does the waiting, not the Lambda
    assert info.value.retryable and info.value.status == 429 and clock.sleeps == []


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (SlackMessage(text=""), "no_text"),
        (message("x" * 40_001), "msg_too_long"),
    ],
)
def test_webhook_client_errors_are_not_retried(
    sink: SlackSink, clock: FakeClock, bad: SlackMessage, error: str
) -> None:
    with pytest.raises(SlackDeliveryError) as info:
        WebhookNotifier(sink.webhook_url, policy=policy(clock)).post(bad)
    assert info.value.error == error and info.value.status == 400
    assert not info.value.retryable and info.value.attempts == 1
    assert sink.requests == 1 and clock.sleeps == []


def test_webhook_connection_errors_are_retried_then_raised(clock: FakeClock) -> None:
    url = f"http://127.0.0.1:{closed_port()}/services/T/B/X"
    with pytest.raises(SlackDeliveryError) as info:
        WebhookNotifier(url, policy=policy(clock)).post(message())
    assert info.value.retryable and info.value.error == "connection_error" and info.value.attempts == 4


# ---------------------------------------------------------------------------------------
# Bot token
# ---------------------------------------------------------------------------------------


def test_bot_threads_messages_by_key(sink: SlackSink, clock: FakeClock) -> None:
    notifier = bot(sink, clock)
    first = notifier.post(message("first"), thread_key="fp-a")
    second = notifier.post(message("update"), thread_key="fp-a")
    other = notifier.post(message("other"), thread_key="fp-b")
    loose = notifier.post(message("no key"))
    assert first.thread_ts is None and first.channel == CHANNEL and first.ts
    assert second.thread_ts == first.ts
    assert other.thread_ts is None and other.ts != first.ts
    assert loose.thread_ts is None
    assert [m.text for m in sink.replies(first.ts)] == ["update"]
    assert [m.text for m in sink.in_channel(CHANNEL) if m.thread_ts is None] == ["first", "other", "no key"]


def test_bot_new_thread_starts_a_fresh_thread_that_later_messages_join(
    sink: SlackSink, clock: FakeClock
) -> None:
    notifier = bot(sink, clock)
    first = notifier.post(message("outage"), thread_key="fp", new_thread=True)
    update = notifier.post(message("update 1"), thread_key="fp")
    # The problem stopped and came back: a new episode is a new conversation.
    again = notifier.post(message("outage again"), thread_key="fp", new_thread=True)
    later = notifier.post(message("update 2"), thread_key="fp")
    assert update.thread_ts == first.ts
    assert again.thread_ts is None and again.ts != first.ts
    assert later.thread_ts == again.ts
    assert first.ts is not None and again.ts is not None
    assert [m.text for m in sink.replies(first.ts)] == ["update 1"]
    assert [m.text for m in sink.replies(again.ts)] == ["update 2"]


def test_bot_rate_limit_is_waited_out(sink: SlackSink, clock: FakeClock) -> None:
    notifier = bot(sink, clock)
    results = [notifier.post(message(f"m{i}"), thread_key="fp") for i in range(6)]
    assert len(sink.in_channel(CHANNEL)) == 6
    assert sum(r.attempts for r in results) > 6  # the burst of 3 ran out: some were 429'd
    assert clock.sleeps and all(s >= 1.0 for s in clock.sleeps)  # Retry-After, not backoff
    assert (429, "ratelimited") not in sink.rejected  # 429s are not API errors


def test_bot_retries_5xx(sink: SlackSink, clock: FakeClock) -> None:
    sink.fail_next(2, status=500)
    result = bot(sink, clock).post(message())
    assert result.attempts == 3 and len(sink.messages) == 1


@pytest.mark.parametrize("mode", ["webhook", "bot"])
def test_refused_blocks_fall_back_to_the_text_alone(sink: SlackSink, clock: FakeClock, mode: str) -> None:
    """Issue 11 row 9: Slack refusing the Block Kit message for good must not lose the alert."""
    bad = message(blocks=51)
    notifier = (
        WebhookNotifier(sink.webhook_url, policy=policy(clock)) if mode == "webhook" else bot(sink, clock)
    )
    notifier.post(bad)
    (posted,) = sink.messages
    assert posted.blocks == [] and posted.text.startswith(bad.text) and "refused the blocks" in posted.text
    assert sink.rejected == [(400 if mode == "webhook" else 200, "invalid_blocks")] and clock.sleeps == []


def test_bot_api_errors_are_not_retried(sink: SlackSink, clock: FakeClock) -> None:
    wrong = BotNotifier(
        "xoxb-wrong", CHANNEL, InMemoryThreadStore(), base_url=sink.api_base_url, policy=policy(clock)
    )
    with pytest.raises(SlackDeliveryError) as info:
        wrong.post(message())
    assert info.value.error == "invalid_auth" and not info.value.retryable
    assert sink.messages == []


def test_bot_starts_a_new_thread_when_the_root_is_gone(sink: SlackSink, clock: FakeClock) -> None:
    store = InMemoryThreadStore()
    store.put("fp", CHANNEL, "1700000000.000001")  # a root Slack no longer has
    result = bot(sink, clock, store).post(message(), thread_key="fp")
    assert result.thread_ts is None
    assert store.get("fp", CHANNEL) == result.ts


def test_bot_gives_up_after_retries(sink: SlackSink, clock: FakeClock) -> None:
    sink.fail_next(10, status=503)
    with pytest.raises(SlackDeliveryError) as info:
        bot(sink, clock, max_retries=1).post(message(), thread_key="fp")
    assert info.value.retryable and info.value.attempts == 2


def test_latency_and_client_timeout(clock: FakeClock) -> None:
    with SlackSink(rate_limit_per_channel=None, latency_seconds=0.3) as slow:
        started = time.monotonic()
        bot(slow, clock).post(message())
        assert time.monotonic() - started >= 0.3
        impatient = BotNotifier(
            slow.token,
            CHANNEL,
            InMemoryThreadStore(),
            base_url=slow.api_base_url,
            policy=policy(clock, max_retries=1),
            timeout=0.1,  # type: ignore[arg-type]  # urllib takes float seconds
        )
        with pytest.raises(SlackDeliveryError) as info:
            impatient.post(message())
        # Issue 11 row 3: the POST reached Slack; re-sending it blindly could post it twice.
        assert info.value.retryable and info.value.outcome_unknown and info.value.attempts == 1
        assert slow.requests == 2  # the first post, then this one: no blind retry


def test_end_to_end_incident_message_is_accepted(sink: SlackSink, clock: FakeClock) -> None:
    from cali.notify.slack.message import build_incident_message
    from tests.support.slack_samples import LINKS, make_incident, make_result

    built = build_incident_message(make_incident(), make_result(), environment="prod", links=LINKS)
    bot(sink, clock).post(built, thread_key="3f2a1b0c9d8e7f6a")
    assert sink.messages[0].blocks == built.blocks


# ---------------------------------------------------------------------------------------
# Thread store in DynamoDB (moto stands in for the state table)
# ---------------------------------------------------------------------------------------


def test_dynamodb_thread_store(state_table: StateTable) -> None:
    now = [1_800_000_000.0]
    dynamodb = state_table.client
    store = DynamoDbThreadStore(state_table.name, client=dynamodb, ttl_seconds=100, clock=lambda: now[0])
    assert store.get("fp", CHANNEL) is None
    store.put("fp", CHANNEL, "1.000001")
    store.put("fp", CHANNEL, "2.000002")  # a racing writer loses
    assert store.get("fp", CHANNEL) == "1.000001"
    assert store.get("fp", "C0OTHER") is None
    item = dynamodb.get_item(
        TableName=state_table.name, Key={"pk": {"S": "slackthread#fp"}, "sk": {"S": CHANNEL}}
    )
    assert item["Item"]["expires_at"]["N"] == str(1_800_000_100)
    store.put("fp", CHANNEL, "3.000003", replacing="1.000001")  # dead root replaced
    assert store.get("fp", CHANNEL) == "3.000003"
    now[0] += 101  # expired (DynamoDB deletes lazily; the store checks)
    assert store.get("fp", CHANNEL) is None
    store.put("fp", CHANNEL, "4.000004")
    assert store.get("fp", CHANNEL) == "4.000004"


# ---------------------------------------------------------------------------------------
# make_notifier
# ---------------------------------------------------------------------------------------


def settings(**values: Any) -> AnalyzerSettings:
    return AnalyzerSettings(**values)


def no_secret(arn: str) -> str:
    raise AssertionError(f"secret {arn} should not be fetched")


def test_make_notifier_local_modes() -> None:
    assert isinstance(
        make_notifier(settings(slack_webhook_url="http://localhost:1/services/x"), no_secret), WebhookNotifier
    )
    store = InMemoryThreadStore()
    notifier = make_notifier(
        settings(
            slack_bot_token="xoxb-local", slack_channel="C1", slack_api_base_url="http://localhost:1/api"
        ),
        no_secret,
        thread_store=store,
    )
    assert isinstance(notifier, BotNotifier)
    assert notifier.client.base_url == "http://localhost:1/api/" and notifier.thread_store is store


def test_make_notifier_from_secret() -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:000000000000:secret:cali/slack"
    webhook = make_notifier(
        settings(slack_secret_arn=arn), lambda _: {"webhook_url": "https://hooks.example/x"}
    )
    assert isinstance(webhook, WebhookNotifier)
    secret = json.dumps({"bot_token": "xoxb-1", "channel": "C1"})
    store = InMemoryThreadStore()
    bot_notifier = make_notifier(settings(slack_secret_arn=arn), lambda _: secret, thread_store=store)
    assert isinstance(bot_notifier, BotNotifier) and bot_notifier.channel == "C1"


@pytest.mark.parametrize("secret", ["not json", "[1]", json.dumps({"bot_token": "xoxb-1"}), json.dumps({})])
def test_make_notifier_rejects_bad_secrets(secret: str) -> None:
    with pytest.raises(SlackConfigurationError):
        make_notifier(settings(slack_secret_arn="arn:x"), lambda _: secret)


def test_make_notifier_strips_pasted_whitespace_from_the_secret() -> None:
    # A newline pasted with the value would make every post fail (invalid URL or header).
    webhook = make_notifier(
        settings(slack_secret_arn="arn:x"), lambda _: {"webhook_url": " https://hooks.example/x\n"}
    )
    assert isinstance(webhook, WebhookNotifier) and webhook.client.url == "https://hooks.example/x"
    bot_notifier = make_notifier(
        settings(slack_secret_arn="arn:x"),
        lambda _: json.dumps({"bot_token": "xoxb-1\n", "channel": " C1 "}),
        thread_store=InMemoryThreadStore(),
    )
    assert isinstance(bot_notifier, BotNotifier) and bot_notifier.channel == "C1"
    assert bot_notifier.client.token == "xoxb-1"


@pytest.mark.parametrize(
    "secret", [{"webhook_url": 42}, {"webhook_url": "  "}, {"bot_token": ["xoxb-1"], "channel": "C1"}]
)
def test_make_notifier_rejects_secret_values_that_are_not_text(secret: dict[str, Any]) -> None:
    with pytest.raises(SlackConfigurationError):
        make_notifier(settings(slack_secret_arn="arn:x"), lambda _: secret)


def test_make_notifier_requires_configuration() -> None:
    with pytest.raises(SlackConfigurationError, match="SLACK_SECRET_ARN"):
        make_notifier(settings(), no_secret)


# ---------------------------------------------------------------------------------------
# The sink itself answers like Slack
# ---------------------------------------------------------------------------------------


def test_sink_chat_update_and_form_encoded_posts(sink: SlackSink) -> None:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web import WebClient

    client = WebClient(token=sink.token, base_url=sink.api_base_url, retry_handlers=[])
    posted = client.api_call(
        "chat.postMessage", data={"channel": CHANNEL, "text": "first", "blocks": json.dumps(message().blocks)}
    )
    assert posted["ok"] and sink.messages[0].blocks == message().blocks  # form body, blocks as JSON string
    client.chat_update(channel=CHANNEL, ts=posted["ts"], text="edited", blocks=message(blocks=2).blocks)
    assert sink.messages[0].text == "edited" and sink.messages[0].edited and len(sink.messages[0].blocks) == 2
    with pytest.raises(SlackApiError) as info:
        client.chat_update(channel=CHANNEL, ts="1.000000", text="x")
    assert info.value.response["error"] == "message_not_found"
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel=CHANNEL, text="reply", thread_ts="1.000000")
    assert info.value.response["error"] == "thread_not_found"
    with pytest.raises(SlackApiError) as info:
        WebClient(base_url=sink.api_base_url, retry_handlers=[]).chat_postMessage(channel=CHANNEL, text="x")
    assert info.value.response["error"] == "not_authed"


def test_sink_webhook_rejects_malformed_payloads(sink: SlackSink) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(sink.webhook_url, data=b"{not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 400 and info.value.read() == b"invalid_payload"
    assert sink.rejected == [(400, "invalid_payload")]


def test_sink_rate_limit_is_per_channel(sink: SlackSink, clock: FakeClock) -> None:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web import WebClient

    client = WebClient(token=sink.token, base_url=sink.api_base_url, retry_handlers=[])
    for _ in range(3):  # the burst
        client.chat_postMessage(channel="C1", text="x")
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="C1", text="x")
    assert info.value.response.status_code == 429 and info.value.response.headers["Retry-After"] == "1"
    client.chat_postMessage(channel="C2", text="other channel is not limited")
    clock.now += 1.0
    client.chat_postMessage(channel="C1", text="one token refilled after a second")
    assert len(sink.messages) == 5


class BrokenThreadStore:
    """A thread store whose table is unreachable (DynamoDB throttled or down)."""

    def get(self, key: str, channel: str) -> str | None:
        raise RuntimeError("ProvisionedThroughputExceededException")

    def put(self, key: str, channel: str, ts: str, *, replacing: str | None = None) -> None:
        raise RuntimeError("ProvisionedThroughputExceededException")


def test_bot_posts_once_when_the_thread_store_is_down(sink: SlackSink, clock: FakeClock) -> None:
    # Slack accepted the message: a failing thread store must not turn that into a delivery
    # failure, or SQS redelivers the alert and it is posted a second time.
    result = bot(sink, clock, BrokenThreadStore()).post(message(), thread_key="fp", new_thread=True)
    assert result.ts and result.thread_ts is None
    update = bot(sink, clock, BrokenThreadStore()).post(message("update"), thread_key="fp")
    assert update.ts and update.thread_ts is None  # no thread known: a top-level post
    assert [m.text for m in sink.messages] == ["[ERROR] payments: pool exhausted", "update"]
