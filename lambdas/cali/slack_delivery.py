"""Post incident messages to Slack: incoming webhook or bot token, with retries and threads.

Both modes go through slack_sdk with our own retry handlers (subclasses of slack_sdk's
``RetryHandler``): 429 waits for ``Retry-After``, 5xx and connection errors back off
exponentially, both a bounded number of times and with an injectable ``sleep`` so tests
do not wait. Other 4xx answers (``invalid_blocks``, ``no_text``, ``invalid_auth``) are our
fault or the configuration's and are not retried. When delivery finally fails the caller
gets :class:`SlackDeliveryError`; the analyzer then reports the SQS message as a batch
item failure, so SQS redelivers it and finally moves it to the DLQ: no alert is lost
without a trace.

Bot mode threads: the first message for a ``thread_key`` (the fingerprint), or one posted
with ``new_thread``, is posted to the channel and its ``ts`` stored in a
:class:`ThreadStore`; later messages for the same key become replies in that thread.
Webhooks cannot thread, so there every message is a new post.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.error import URLError

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from cali.slack_message import SlackMessage

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from cali.settings import AnalyzerSettings

logger = logging.getLogger(__name__)

Sleep = Callable[[float], None]
SecretFetcher = Callable[[str], "Mapping[str, Any] | str"]

DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_BASE_SECONDS = 0.5
DEFAULT_BACKOFF_MAX_SECONDS = 8.0
# A Retry-After longer than this is not waited out inside a Lambda invocation: the
# message goes back to SQS and its visibility timeout does the waiting.
DEFAULT_MAX_RETRY_AFTER_SECONDS = 30.0
THREAD_TTL_SECONDS = 14 * 86_400


class SlackDeliveryError(Exception):
    """The message was not delivered; ``retryable`` says whether a later redelivery may succeed."""

    def __init__(
        self, message: str, *, error: str, status: int | None, attempts: int, retryable: bool
    ) -> None:
        super().__init__(message)
        self.error = error
        self.status = status
        self.attempts = attempts
        self.retryable = retryable


class SlackConfigurationError(ValueError):
    """Neither a webhook nor a bot token/channel is configured, or the secret is malformed."""


@dataclass(frozen=True)
class SlackPostResult:
    ts: str | None
    channel: str | None
    thread_ts: str | None
    attempts: int


class SlackNotifier(Protocol):
    def post(
        self, message: SlackMessage, *, thread_key: str | None = None, new_thread: bool = False
    ) -> SlackPostResult:
        """Post; with a bot token, messages sharing ``thread_key`` reply in one thread.

        ``new_thread`` starts a fresh thread for the key (an incident that stopped and came
        back is a new conversation), which later messages with that key then join.
        """
        ...


# ---------------------------------------------------------------------------------------
# Retries
# ---------------------------------------------------------------------------------------


class RetryPolicy:
    """Shared by the three handlers: bounded attempts, capped backoff, injectable sleep.

    It also counts the retries of the current post, which slack_sdk does not expose, so a
    notifier (and its policy) serves one post at a time, as in a Lambda invocation.
    """

    def __init__(
        self,
        *,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff_base: float = DEFAULT_BACKOFF_BASE_SECONDS,
        backoff_max: float = DEFAULT_BACKOFF_MAX_SECONDS,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER_SECONDS,
        sleep: Sleep = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.sleep = sleep
        self.jitter = jitter
        self.retries = 0

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff: uniform in [base*2^n / 2, base*2^n], capped."""
        ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
        return float(ceiling / 2 + ceiling / 2 * self.jitter())

    def wait(self, seconds: float, state: RetryState) -> None:
        self.retries += 1
        self.sleep(seconds)
        state.increment_current_attempt()
        state.next_attempt_requested = True

    def handlers(self) -> list[RetryHandler]:
        return [_RateLimitRetry(self), _ServerErrorRetry(self), _ConnectionRetry(self)]


def retry_after_seconds(response: HttpResponse | None) -> float | None:
    if response is None:
        return None
    for name, values in response.headers.items():
        if name.lower() == "retry-after":
            raw = values[0] if isinstance(values, list) else values
            try:
                return max(float(raw), 0.0)
            except (TypeError, ValueError):
                return None
    return None


class _PolicyRetry(RetryHandler):
    def __init__(self, policy: RetryPolicy) -> None:
        super().__init__(max_retry_count=policy.max_retries)
        self.policy = policy

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        self.policy.wait(self._delay(state, response), state)

    def _delay(self, state: RetryState, response: HttpResponse | None) -> float:
        return self.policy.backoff(state.current_attempt)


class _RateLimitRetry(_PolicyRetry):
    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        delay = retry_after_seconds(response)
        return delay is None or delay <= self.policy.max_retry_after

    def _delay(self, state: RetryState, response: HttpResponse | None) -> float:
        # Slack says how long to wait; our backoff only when it does not.
        delay = retry_after_seconds(response)
        return delay if delay is not None else super()._delay(state, response)


class _ServerErrorRetry(_PolicyRetry):
    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and 500 <= response.status_code <= 599


class _ConnectionRetry(_PolicyRetry):
    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is not None or error is None:
            return False
        return isinstance(error, URLError | ConnectionError | TimeoutError)


def _is_retryable_status(status: int | None) -> bool:
    return status is None or status == 429 or status >= 500


# ---------------------------------------------------------------------------------------
# Thread store
# ---------------------------------------------------------------------------------------


class ThreadStore(Protocol):
    """Remembers the ``ts`` of the first message per (thread key, channel)."""

    def get(self, key: str, channel: str) -> str | None: ...

    def put(self, key: str, channel: str, ts: str, *, replacing: str | None = None) -> None:
        """Store the root unless one exists; ``replacing`` overwrites that (dead) root only."""
        ...


class InMemoryThreadStore:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], str] = {}

    def get(self, key: str, channel: str) -> str | None:
        return self._items.get((key, channel))

    def put(self, key: str, channel: str, ts: str, *, replacing: str | None = None) -> None:
        current = self._items.get((key, channel))
        if current is None or current == replacing:
            self._items[(key, channel)] = ts


class DynamoDbThreadStore:
    """Thread roots in the state table: ``pk = slackthread#<key>``, ``sk = <channel>``, TTL.

    The first writer wins (conditional put), so two analyzers racing on one fingerprint
    still agree on a single thread.
    """

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        ttl_seconds: int = THREAD_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if client is None:
            import boto3

            client = boto3.client("dynamodb")
        self.table_name = table_name
        self.client = client
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    @staticmethod
    def _key(key: str, channel: str) -> dict[str, Any]:
        return {"pk": {"S": f"slackthread#{key}"}, "sk": {"S": channel}}

    def get(self, key: str, channel: str) -> str | None:
        item = self.client.get_item(
            TableName=self.table_name, Key=self._key(key, channel), ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        # DynamoDB deletes expired items lazily (up to days later): check the TTL ourselves.
        expires_at = int(item.get("expires_at", {}).get("N", "0"))
        if expires_at and expires_at < self.clock():
            return None
        return item["ts"]["S"]

    def put(self, key: str, channel: str, ts: str, *, replacing: str | None = None) -> None:
        now = self.clock()
        item = {
            **self._key(key, channel),
            "ts": {"S": ts},
            "expires_at": {"N": str(int(now + self.ttl_seconds))},
        }
        condition = "attribute_not_exists(pk) OR expires_at < :now"
        values: dict[str, Any] = {":now": {"N": str(int(now))}}
        if replacing is not None:
            condition += " OR ts = :old"
            values[":old"] = {"S": replacing}
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            logger.info("thread root for %s already stored by another invocation", key)


# ---------------------------------------------------------------------------------------
# Notifiers
# ---------------------------------------------------------------------------------------


class WebhookNotifier:
    """Incoming webhook: one channel fixed by the webhook, no threads, no ``ts`` back."""

    def __init__(self, url: str, *, policy: RetryPolicy | None = None, timeout: int = 10) -> None:
        self.policy = policy or RetryPolicy()
        self.client = WebhookClient(url, timeout=timeout, retry_handlers=self.policy.handlers())

    def post(
        self, message: SlackMessage, *, thread_key: str | None = None, new_thread: bool = False
    ) -> SlackPostResult:
        # Incoming webhooks cannot thread: every message is a top-level post.
        self.policy.retries = 0
        try:
            response = self.client.send(text=message.text, blocks=message.blocks)
        except OSError as exc:  # URLError, connection reset, timeout: after the retries
            attempts = self.policy.retries + 1
            raise SlackDeliveryError(
                f"Slack webhook unreachable after {attempts} attempts: {exc}",
                error="connection_error",
                status=None,
                attempts=attempts,
                retryable=True,
            ) from exc
        attempts = self.policy.retries + 1
        if response.status_code != 200:
            raise SlackDeliveryError(
                f"Slack webhook answered {response.status_code} {response.body!r} after {attempts} attempts",
                error=str(response.body or response.status_code),
                status=response.status_code,
                attempts=attempts,
                retryable=_is_retryable_status(response.status_code),
            )
        return SlackPostResult(ts=None, channel=None, thread_ts=None, attempts=attempts)


class BotNotifier:
    """``chat.postMessage`` with a bot token; messages sharing a ``thread_key`` form a thread."""

    def __init__(
        self,
        token: str,
        channel: str,
        thread_store: ThreadStore,
        *,
        base_url: str | None = None,
        policy: RetryPolicy | None = None,
        timeout: int = 10,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.channel = channel
        self.thread_store = thread_store
        kwargs: dict[str, Any] = {
            "token": token,
            "timeout": timeout,
            "retry_handlers": self.policy.handlers(),
        }
        if base_url:
            kwargs["base_url"] = base_url if base_url.endswith("/") else base_url + "/"
        self.client = WebClient(**kwargs)

    def post(
        self, message: SlackMessage, *, thread_key: str | None = None, new_thread: bool = False
    ) -> SlackPostResult:
        self.policy.retries = 0
        current_root = self._thread_root(thread_key) if thread_key else None
        thread_ts = None if new_thread else current_root
        dead_root: str | None = current_root if new_thread else None
        try:
            data = self._post(message, thread_ts)
        except SlackDeliveryError as exc:
            if thread_ts is None or exc.error not in {"thread_not_found", "invalid_thread_ts"}:
                raise
            # The thread root was deleted: start a new thread rather than lose the alert.
            dead_root, thread_ts = thread_ts, None
            data = self._post(message, None)
        ts = str(data["ts"])
        channel = str(data.get("channel") or self.channel)
        if thread_key and thread_ts is None:
            try:
                self.thread_store.put(thread_key, self.channel, ts, replacing=dead_root)
            except Exception:
                # Slack has the message: failing now would make SQS redeliver and post it
                # twice. Later updates become top-level posts instead of thread replies.
                logger.exception("could not store the thread root for %s", thread_key)
        return SlackPostResult(ts=ts, channel=channel, thread_ts=thread_ts, attempts=self.policy.retries + 1)

    def _thread_root(self, thread_key: str) -> str | None:
        try:
            return self.thread_store.get(thread_key, self.channel)
        except Exception:
            # Threading is a nicety; the alert is not. Post it top-level.
            logger.exception("thread store unavailable; posting %s outside its thread", thread_key)
            return None

    def _post(self, message: SlackMessage, thread_ts: str | None) -> dict[str, Any]:
        try:
            response = self.client.chat_postMessage(
                channel=self.channel,
                text=message.text,
                blocks=message.blocks,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            status = exc.response.status_code
            error = _api_error(exc.response.data)
            attempts = self.policy.retries + 1
            raise SlackDeliveryError(
                f"chat.postMessage failed: HTTP {status} {error} after {attempts} attempts",
                error=error,
                status=status,
                attempts=attempts,
                retryable=_is_retryable_status(status),
            ) from exc
        except OSError as exc:  # URLError, connection reset, timeout: after the retries
            attempts = self.policy.retries + 1
            raise SlackDeliveryError(
                f"Slack API unreachable after {attempts} attempts: {exc}",
                error="connection_error",
                status=None,
                attempts=attempts,
                retryable=True,
            ) from exc
        return dict(response.data) if isinstance(response.data, dict) else {}


def _api_error(data: Any) -> str:
    if isinstance(data, dict):
        return str(data.get("error", "unknown_error"))
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return str(data)[:200] or "unknown_error"


# ---------------------------------------------------------------------------------------
# Construction from settings
# ---------------------------------------------------------------------------------------


def powertools_secret_fetcher(secret_id: str) -> Mapping[str, Any] | str:
    """Secrets Manager through Powertools Parameters (cached for 5 minutes per container)."""
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(secret_id, max_age=300)
    return value if isinstance(value, str) else bytes(value).decode("utf-8")


def _secret_mapping(raw: Mapping[str, Any] | str, secret_id: str) -> Mapping[str, Any]:
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SlackConfigurationError(f"Slack secret {secret_id} is not JSON") from exc
        if not isinstance(parsed, dict):
            raise SlackConfigurationError(f"Slack secret {secret_id} must be a JSON object")
        return parsed
    return raw


def _secret_text(secret: Mapping[str, Any], key: str, secret_id: str) -> str | None:
    """A text value, stripped: a newline pasted with it would break every post."""
    value = secret.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SlackConfigurationError(f"Slack secret {secret_id}: {key} must be a string")
    return value.strip() or None


def make_notifier(
    settings: AnalyzerSettings,
    secret_fetcher: SecretFetcher = powertools_secret_fetcher,
    *,
    thread_store: ThreadStore | None = None,
    policy: RetryPolicy | None = None,
) -> SlackNotifier:
    """The notifier the settings ask for.

    Locally ``slack_webhook_url`` (or ``slack_bot_token`` + ``slack_channel``) point at the
    local sink; in AWS ``slack_secret_arn`` names a secret holding ``{"webhook_url"}`` or
    ``{"bot_token", "channel"}``. Bot mode keeps thread roots in the state table.
    """
    base_url = settings.slack_api_base_url or None
    if settings.slack_webhook_url:
        return WebhookNotifier(settings.slack_webhook_url, policy=policy)
    if settings.slack_bot_token and settings.slack_channel:
        store = thread_store or DynamoDbThreadStore(settings.state_table_name)
        return BotNotifier(
            settings.slack_bot_token, settings.slack_channel, store, base_url=base_url, policy=policy
        )
    if not settings.slack_secret_arn:
        raise SlackConfigurationError(
            "Slack is not configured: set SLACK_SECRET_ARN (AWS) or SLACK_WEBHOOK_URL (local)"
        )
    arn = settings.slack_secret_arn
    secret = _secret_mapping(secret_fetcher(arn), arn)
    webhook_url = _secret_text(secret, "webhook_url", arn)
    if webhook_url:
        return WebhookNotifier(webhook_url, policy=policy)
    bot_token, channel = _secret_text(secret, "bot_token", arn), _secret_text(secret, "channel", arn)
    if bot_token and channel:
        store = thread_store or DynamoDbThreadStore(settings.state_table_name)
        return BotNotifier(bot_token, channel, store, base_url=base_url, policy=policy)
    raise SlackConfigurationError(
        f"Slack secret {settings.slack_secret_arn} needs either webhook_url or bot_token and channel"
    )
