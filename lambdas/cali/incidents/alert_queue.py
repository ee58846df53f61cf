"""Send incident messages to the incidents queue, each alert at most once.

``SqsAlertQueue`` batches with SendMessageBatch (10 per call) and retries the entries SQS
rejects; what still fails is returned so the caller can retry the Kinesis records.

``IdempotentAlertSender`` wraps any queue with Powertools Idempotency, keyed on
``incident_id`` + ``kind`` (fingerprint, throttle window and alert kind): whatever path
leads to the same alert twice (a redelivered batch, a resend from the throttle outbox, two
containers racing) the second attempt finds the record and does not send.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS

from cali.contracts.incident import IncidentMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)

SQS_BATCH = 10
SQS_BATCH_BYTES = 256 * 1024


class AlertQueue(Protocol):
    def send(self, messages: Sequence[IncidentMessage]) -> list[IncidentMessage]:
        """Send all; return those that could not be sent (to retry the batch later)."""
        ...


def alert_key(message: IncidentMessage) -> str:
    return f"{message.incident_id}#{message.kind}"


class SqsAlertQueue:
    def __init__(self, client: SQSClient, queue_url: str, attempts: int = 3) -> None:
        self._client = client
        self._url = queue_url
        self._attempts = attempts
        self._fifo = queue_url.endswith(".fifo")

    def _entry(self, index: int, message: IncidentMessage) -> dict[str, Any]:
        entry: dict[str, Any] = {"Id": str(index), "MessageBody": message.model_dump_json()}
        if self._fifo:
            entry["MessageGroupId"] = message.fingerprint
            entry["MessageDeduplicationId"] = hashlib.sha256(alert_key(message).encode()).hexdigest()
        return entry

    def send(self, messages: Sequence[IncidentMessage]) -> list[IncidentMessage]:
        failed: list[IncidentMessage] = []
        for chunk in _chunks(messages):
            todo = list(chunk)
            for attempt in range(self._attempts):
                entries: list[Any] = [self._entry(i, m) for i, m in enumerate(todo)]
                try:
                    response = self._client.send_message_batch(QueueUrl=self._url, Entries=entries)
                except Exception:  # connection or throttling: the whole chunk is retried
                    retry = todo
                else:
                    retry = [todo[int(f["Id"])] for f in response.get("Failed", [])]
                if not retry:
                    break
                todo = retry
                if attempt + 1 < self._attempts:
                    time.sleep(0.1 * 2**attempt)
            else:
                failed += todo
        return failed


def _chunks(messages: Sequence[IncidentMessage]) -> list[list[IncidentMessage]]:
    chunks: list[list[IncidentMessage]] = []
    current: list[IncidentMessage] = []
    size = 0
    for message in messages:
        length = len(message.model_dump_json().encode())  # SQS counts UTF-8 bytes, not characters
        if current and (len(current) == SQS_BATCH or size + length > SQS_BATCH_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(message)
        size += length
    if current:
        chunks.append(current)
    return chunks


@dataclass
class SendReport:
    sent: list[IncidentMessage] = field(default_factory=list)
    already_sent: list[IncidentMessage] = field(default_factory=list)
    failed: list[IncidentMessage] = field(default_factory=list)


# Time kept in hand after waiting for a dead sender's claim: the claim, the send and the
# outcome record take a few tens of milliseconds against DynamoDB and SQS.
CLAIM_SAFETY_MS = 250
CLAIM_POLL_SECONDS = 0.2


class IdempotentAlertSender:
    """Claim each alert in the idempotency table, send the claimed ones, record the outcome.

    A claim (Powertools ``INPROGRESS`` record) expires with the invocation that took it:
    ``remaining_ms`` must be the Lambda context's ``get_remaining_time_in_millis`` (the
    handler sets it per invocation). A claim left by an invocation that died (crash,
    timeout) therefore ends at that invocation's deadline, which is always before the
    deadline of the retry that finds it: the retry waits for it and sends, instead of
    failing until Lambda's retries run out and the alert is lost in the on-failure queue.
    """

    def __init__(
        self,
        queue: AlertQueue,
        persistence: BasePersistenceLayer,
        ttl_seconds: int,
        remaining_ms: Callable[[], int] = lambda: 60_000,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sleep = sleep
        self.queue = queue
        self.persistence = persistence
        persistence.configure(
            IdempotencyConfig(
                event_key_jmespath="key", expires_after_seconds=ttl_seconds, raise_on_no_idempotency_key=True
            ),
            function_name="send_alert",
        )
        # An in-progress claim expires with the invocation, so a crashed sender's alert
        # is picked up from the throttle outbox by the next batch.
        self.remaining_ms = remaining_ms

    def send(self, messages: Sequence[IncidentMessage], *, idempotent: bool = True) -> SendReport:
        report = SendReport()
        if not idempotent:  # fail-open: the idempotency table is the unavailable store
            report.failed = self.queue.send(messages)
            report.sent = [m for m in messages if m not in report.failed]
            return report

        claimed: list[IncidentMessage] = []
        unclaimed: list[IncidentMessage] = []
        for message in messages:
            outcome = self._claim(message)
            if outcome == "claimed":
                claimed.append(message)
            elif outcome == "sent":
                report.already_sent.append(message)
            elif outcome == "unavailable":
                unclaimed.append(message)
            else:
                report.failed.append(message)
        if unclaimed:
            failed_open = self.queue.send(unclaimed)
            report.failed += failed_open
            report.sent += [m for m in unclaimed if m not in failed_open]
        failed = self.queue.send(claimed) if claimed else []
        failed_keys = {alert_key(m) for m in failed}
        for message in claimed:
            data = {"key": alert_key(message)}
            try:
                if alert_key(message) in failed_keys:
                    report.failed.append(message)
                    self.persistence.delete_record(data, RuntimeError("send failed"))
                else:
                    report.sent.append(message)
                    self.persistence.save_success(data, {"sent": True})
            except Exception:
                # The in-progress claim expires with the invocation; nothing else to do.
                logger.warning(
                    "Could not record the send outcome", extra={"incident_id": message.incident_id}
                )
        return report

    def _claim(self, message: IncidentMessage) -> str:
        """``claimed``, ``sent`` (done before), ``busy`` (retry later) or ``unavailable``."""
        try:
            self.persistence.save_inprogress({"key": alert_key(message)}, self.remaining_ms())
        except IdempotencyItemAlreadyExistsError as exc:
            old = exc.old_data_record
            if old is None or old.status != STATUS_CONSTANTS["INPROGRESS"]:
                return "sent"
            # Claimed but not known sent (a racing sender, or one that died mid-send):
            # confirming it would clear the outbox and lose the alert. Wait for the claim
            # to be settled or to expire; if it outlives us, retry later.
            return self._await_claim(message, old.in_progress_expiry_timestamp)
        except Exception:
            # The persistence layer lets boto3 errors through: the state table is failing,
            # and an alert is better than silence (fail open).
            logger.warning(
                "Idempotency store unavailable; sending without a claim",
                extra={"incident_id": message.incident_id},
            )
            return "unavailable"
        return "claimed"

    def _await_claim(self, message: IncidentMessage, expiry: Any) -> str:
        """``claimed`` (ours now), ``sent`` (the holder finished) or ``busy`` (outlives us)."""
        data = {"key": alert_key(message)}
        # DynamoDB hands the timestamp back as a Decimal.
        expiry_ms = None if expiry is None else int(expiry)
        while expiry_ms is not None:
            now_ms = int(time.time() * 1000)
            if expiry_ms - now_ms + CLAIM_SAFETY_MS > self.remaining_ms():
                break
            self.sleep(min(CLAIM_POLL_SECONDS, max(0.0, (expiry_ms - now_ms) / 1000) + 0.01))
            try:
                self.persistence.save_inprogress(data, self.remaining_ms())
            except IdempotencyItemAlreadyExistsError as exc:
                old = exc.old_data_record
                if old is None or old.status != STATUS_CONSTANTS["INPROGRESS"]:
                    return "sent"
                expiry = old.in_progress_expiry_timestamp
                expiry_ms = None if expiry is None else int(expiry)
                continue
            except Exception:
                return "busy"  # the store failed now: the records are retried
            return "claimed"
        return "busy"
