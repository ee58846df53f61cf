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

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from cali.notify.slack.message import SlackMessage
from cali.notify.slack.retry import RetryPolicy, _is_retryable_status, never_sent
from cali.notify.slack.secret import (
    SecretFetcher,
    SlackConfigurationError,
    _secret_mapping,
    _secret_text,
    powertools_secret_fetcher,
)
from cali.notify.slack.threads import DynamoDbThreadStore, ThreadStore

if TYPE_CHECKING:
    from cali.contracts.settings import AnalyzerSettings

logger = logging.getLogger(__name__)


class SlackDeliveryError(Exception):
    """The message was not delivered; ``retryable`` says whether a later redelivery may succeed."""

    def __init__(
        self,
        message: str,
        *,
        error: str,
        status: int | None,
        attempts: int,
        retryable: bool,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.error = error
        self.status = status
        self.attempts = attempts
        self.retryable = retryable
        #: The request reached Slack but no answer came back (a timeout, a reset): the
        #: message may be in the channel. Re-sending it blindly could post it twice.
        self.outcome_unknown = outcome_unknown


# Slack's answers for Block Kit it will not render: the same message as text still informs.
BLOCK_ERRORS = frozenset({"invalid_blocks", "invalid_blocks_format"})
# Message metadata (bot mode) that lets a post be found again after an unknown outcome.
ALERT_EVENT_TYPE = "cali_alert"


def text_only(message: SlackMessage) -> SlackMessage:
    """The fallback when Slack refuses the blocks: the notification text alone."""
    return SlackMessage(text=message.text + " (details could not be shown: Slack refused the blocks)")


def _connection_error(kind: str, attempts: int, exc: OSError) -> SlackDeliveryError:
    unknown = not never_sent(exc)
    what = "no answer (the post may have landed)" if unknown else "unreachable"
    return SlackDeliveryError(
        f"Slack {kind} {what} after {attempts} attempts: {exc!r}",
        error="no_answer" if unknown else "connection_error",
        status=None,
        attempts=attempts,
        retryable=True,
        outcome_unknown=unknown,
    )


@dataclass(frozen=True)
class SlackPostResult:
    ts: str | None
    channel: str | None
    thread_ts: str | None
    attempts: int


class SlackNotifier(Protocol):
    #: Whether ``find`` can see the channel (bot token) or never finds anything (webhook).
    searchable: bool

    def post(
        self,
        message: SlackMessage,
        *,
        thread_key: str | None = None,
        new_thread: bool = False,
        alert_id: str | None = None,
    ) -> SlackPostResult:
        """Post; with a bot token, messages sharing ``thread_key`` reply in one thread.

        ``new_thread`` starts a fresh thread for the key (an incident that stopped and came
        back is a new conversation), which later messages with that key then join.
        ``alert_id`` tags the post (bot mode: message metadata) so ``find`` can see it.
        """
        ...

    def find(self, alert_id: str, *, since: float, thread_key: str | None = None) -> SlackPostResult | None:
        """The post tagged ``alert_id`` since epoch ``since``, if Slack has it; None when it
        has not or cannot tell (incoming webhooks cannot read the channel)."""
        ...


class WebhookNotifier:
    """Incoming webhook: one channel fixed by the webhook, no threads, no ``ts`` back."""

    searchable = False
    interactive = False  # no buttons: Slack sends their clicks to an app, a webhook has none

    def __init__(self, url: str, *, policy: RetryPolicy | None = None, timeout: int = 10) -> None:
        self.policy = policy or RetryPolicy()
        self.client = WebhookClient(url, timeout=timeout, retry_handlers=self.policy.handlers())

    def post(
        self,
        message: SlackMessage,
        *,
        thread_key: str | None = None,
        new_thread: bool = False,
        alert_id: str | None = None,
    ) -> SlackPostResult:
        # Incoming webhooks cannot thread: every message is a top-level post.
        self.policy.retries = 0
        try:
            return self._send(message)
        except SlackDeliveryError as exc:
            if exc.error not in BLOCK_ERRORS or not message.blocks:
                raise
            logger.warning("Slack refused the blocks (%s); posting the text alone", exc.error)
            return self._send(text_only(message))

    def find(self, alert_id: str, *, since: float, thread_key: str | None = None) -> SlackPostResult | None:
        return None  # an incoming webhook cannot read the channel

    def _send(self, message: SlackMessage) -> SlackPostResult:
        try:
            response = self.client.send(text=message.text, blocks=message.blocks or None)
        except OSError as exc:  # after the retries (only of requests that never reached Slack)
            raise _connection_error("webhook", self.policy.retries + 1, exc) from exc
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

    searchable = True
    interactive = True  # the Slack app's interactivity URL receives the button clicks

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
        self,
        message: SlackMessage,
        *,
        thread_key: str | None = None,
        new_thread: bool = False,
        alert_id: str | None = None,
    ) -> SlackPostResult:
        self.policy.retries = 0
        current_root = self._thread_root(thread_key) if thread_key else None
        thread_ts = None if new_thread else current_root
        dead_root: str | None = current_root if new_thread else None
        started = time.time() - 1
        try:
            data = self._post_or_text(message, thread_ts, alert_id)
        except SlackDeliveryError as exc:
            if exc.outcome_unknown and alert_id:
                # Slack may have the post: look before anyone sends it again.
                found = self.find(alert_id, since=started, thread_key=thread_key)
                if found is not None:
                    return found
            if thread_ts is None or exc.error not in {"thread_not_found", "invalid_thread_ts"}:
                raise
            # The thread root was deleted: start a new thread rather than lose the alert.
            dead_root, thread_ts = thread_ts, None
            data = self._post_or_text(message, None, alert_id)
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

    def find(self, alert_id: str, *, since: float, thread_key: str | None = None) -> SlackPostResult | None:
        """Look the post up by its metadata: top-level messages, then the thread's replies."""
        root = self._thread_root(thread_key) if thread_key else None
        try:
            found = self._search(alert_id, since, None)
            if found is None and root is not None:
                found = self._search(alert_id, since, root)
        except (SlackApiError, OSError):
            logger.exception("could not look up alert %s in Slack", alert_id)
            raise
        return found

    def _search(self, alert_id: str, since: float, root: str | None) -> SlackPostResult | None:
        common: dict[str, Any] = {
            "channel": self.channel,
            "oldest": f"{since:.6f}",
            "include_all_metadata": True,
            "limit": 200,
        }
        if root is None:
            response = self.client.conversations_history(**common)
        else:
            response = self.client.conversations_replies(ts=root, **common)
        for item in response.get("messages") or []:
            metadata = item.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == ALERT_EVENT_TYPE and payload.get("alert_id") == alert_id:
                ts = str(item["ts"])
                thread = item.get("thread_ts")
                return SlackPostResult(
                    ts=ts,
                    channel=self.channel,
                    thread_ts=str(thread) if thread and thread != ts else None,
                    attempts=self.policy.retries + 1,
                )
        return None

    def _post_or_text(
        self, message: SlackMessage, thread_ts: str | None, alert_id: str | None
    ) -> dict[str, Any]:
        try:
            return self._post(message, thread_ts, alert_id)
        except SlackDeliveryError as exc:
            if exc.error not in BLOCK_ERRORS or not message.blocks:
                raise
            logger.warning("Slack refused the blocks (%s); posting the text alone", exc.error)
            return self._post(text_only(message), thread_ts, alert_id)

    def _post(
        self, message: SlackMessage, thread_ts: str | None, alert_id: str | None = None
    ) -> dict[str, Any]:
        metadata = (
            {"event_type": ALERT_EVENT_TYPE, "event_payload": {"alert_id": alert_id}} if alert_id else None
        )
        try:
            response = self.client.chat_postMessage(
                channel=self.channel,
                text=message.text,
                blocks=message.blocks or None,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
                metadata=metadata,
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
        except OSError as exc:  # after the retries (only of requests that never reached Slack)
            raise _connection_error("API", self.policy.retries + 1, exc) from exc
        return dict(response.data) if isinstance(response.data, dict) else {}


def _api_error(data: Any) -> str:
    if isinstance(data, dict):
        return str(data.get("error", "unknown_error"))
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return str(data)[:200] or "unknown_error"


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
        return WebhookNotifier(
            settings.slack_webhook_url, policy=policy, timeout=settings.slack_timeout_seconds
        )
    if settings.slack_bot_token and settings.slack_channel:
        store = thread_store or DynamoDbThreadStore(settings.state_table_name)
        return BotNotifier(
            settings.slack_bot_token,
            settings.slack_channel,
            store,
            base_url=base_url,
            policy=policy,
            timeout=settings.slack_timeout_seconds,
        )
    if not settings.slack_secret_arn:
        raise SlackConfigurationError(
            "Slack is not configured: set SLACK_SECRET_ARN (AWS) or SLACK_WEBHOOK_URL (local)"
        )
    arn = settings.slack_secret_arn
    secret = _secret_mapping(secret_fetcher(arn), arn)
    webhook_url = _secret_text(secret, "webhook_url", arn)
    if webhook_url:
        return WebhookNotifier(webhook_url, policy=policy, timeout=settings.slack_timeout_seconds)
    bot_token, channel = _secret_text(secret, "bot_token", arn), _secret_text(secret, "channel", arn)
    if bot_token and channel:
        store = thread_store or DynamoDbThreadStore(settings.state_table_name)
        return BotNotifier(
            bot_token,
            channel,
            store,
            base_url=base_url,
            policy=policy,
            timeout=settings.slack_timeout_seconds,
        )
    raise SlackConfigurationError(
        f"Slack secret {settings.slack_secret_arn} needs either webhook_url or bot_token and channel"
    )
