"""Retry policy for Slack calls, plugged into slack_sdk's own retry handlers.

429 waits for ``Retry-After`` (capped: a longer wait goes back to SQS), 5xx and connection
errors back off exponentially; both a bounded number of times, with an injectable ``sleep``.

Why subclasses of slack_sdk's ``RetryHandler`` and not its stock Rate-limit / Server-error /
Connection-error handlers: the stock ones sleep with ``time.sleep`` inside
``prepare_for_next_attempt`` (tests would wait in real time, and nothing caps Retry-After),
and the stock connection handler re-sends a POST after a read timeout, which posts an alert
twice (docs/reliability.md, row 3). Ours retry only a request that never reached Slack.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from urllib.error import URLError

from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

logger = logging.getLogger(__name__)


Sleep = Callable[[float], None]
DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_BASE_SECONDS = 0.5
DEFAULT_BACKOFF_MAX_SECONDS = 8.0
# A Retry-After longer than this is not waited out inside a Lambda invocation: the
# message goes back to SQS and its visibility timeout does the waiting.
DEFAULT_MAX_RETRY_AFTER_SECONDS = 30.0


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
        # Only a request that never reached Slack is safe to send again: a POST is not
        # idempotent. urllib wraps connect and send failures in URLError; a timeout or a
        # reset while waiting for the answer comes raw, and Slack may well have the post.
        return never_sent(error)


def never_sent(error: BaseException) -> bool:
    """Whether the request certainly did not reach Slack (failed to connect or to send)."""
    return isinstance(error, URLError)


def _is_retryable_status(status: int | None) -> bool:
    return status is None or status == 429 or status >= 500
