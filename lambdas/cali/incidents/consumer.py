"""One batch of Kinesis records through the log consumer: plain domain code, no Lambda types.

``add`` runs per record (the Powertools BatchProcessor record handler calls it): decode,
validate, filter, fingerprint. Bad data never raises: it is queued for the DLQ with its
reason. ``finish`` runs once per batch: it writes the DLQ, aggregates incidents, asks the
throttle and sends the alerts. It returns the sequence numbers that hit a *retryable*
error (DLQ write failed, SQS rejected, DynamoDB throttling); the handler reports those as
partial batch failures so Lambda redelivers them. With one batch per shard at a time
(ParallelizationFactor 1) the throttle's per-shard high-water marks make the redelivery
count nothing twice; with more, a redelivered record is counted again, but no alert is
ever sent twice (outbox + idempotent send).

Counting (``BatchCounts``), per log event: ``records_in == kept + filtered + invalid +
control_messages``; an undecodable Kinesis record counts as one invalid event.
"""

from __future__ import annotations

import binascii
import functools
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cali.contracts.incident import IncidentMessage
from cali.contracts.levels import Level
from cali.contracts.records import LogRecord, RecordError, build_record
from cali.fingerprint import Fingerprint
from cali.incidents.aggregation import IncidentAggregate, aggregate, incident_message
from cali.incidents.alert_queue import IdempotentAlertSender, SendReport, alert_key
from cali.incidents.throttle import (
    AlertDecision,
    FailOpenLimiter,
    Observation,
    Outcome,
    StoreThrottled,
    StoreUnavailable,
    Throttle,
    pad_sequence,
)
from cali.ingest.decoding import DecodedPayload, decode_payload
from cali.ingest.dlq import DlqEntry, DlqWriter
from cali.ingest.events import EventPreparer
from cali.ingest.level_filter import LevelFilter

logger = logging.getLogger(__name__)

Fingerprinter = Callable[[str, str | None], Fingerprint]


@dataclass(frozen=True, slots=True)
class KinesisInput:
    """The parts of a Kinesis event record the consumer needs."""

    data_base64: str
    sequence_number: str
    partition_key: str
    shard_id: str
    arrival_time: datetime
    stream_arn: str | None = None


@dataclass
class BatchCounts:
    kinesis_records: int = 0
    records_in: int = 0
    kept: int = 0
    filtered: int = 0
    invalid: int = 0
    control_messages: int = 0
    duplicates: int = 0
    incidents_opened: int = 0
    alerts_sent: int = 0
    alerts_suppressed: int = 0
    alerts_fail_open: int = 0
    per_level: Counter[str] = field(default_factory=Counter)
    invalid_reasons: Counter[str] = field(default_factory=Counter)

    @property
    def conserved(self) -> bool:
        return self.records_in == self.kept + self.filtered + self.invalid + self.control_messages


@dataclass
class BatchResult:
    counts: BatchCounts
    failed_sequence_numbers: set[str]
    alerts: list[IncidentMessage]


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    environment: str
    max_samples: int = 5
    max_record_bytes: int = 1_048_576


class BatchConsumer:
    """Collect one batch with ``add``, then ``finish`` it. Not thread-safe; one per container."""

    def __init__(
        self,
        *,
        config: ConsumerConfig,
        level_filter: LevelFilter,
        fingerprint: Fingerprinter,
        throttle: Throttle,
        sender: IdempotentAlertSender,
        dlq: DlqWriter,
        fail_open: FailOpenLimiter,
        prepare: EventPreparer | None = None,
    ) -> None:
        self.config = config
        # Raw lines (Fluent Bit's ``log``, CloudWatch text) get their own time and level here.
        self.prepare = prepare if prepare is not None else EventPreparer()
        self.level_filter = level_filter
        self.fingerprint = fingerprint
        self.throttle = throttle
        self.sender = sender
        self.dlq = dlq
        self.fail_open = fail_open
        self._reset()

    def _reset(self) -> None:
        self.counts = BatchCounts()
        self._dlq: list[tuple[DlqEntry, str]] = []
        self._kept: list[tuple[LogRecord, Fingerprint, str]] = []
        self._sequence: dict[str, str] = {}  # padded -> as Kinesis wrote it
        self._shard = ""

    # -- per record -------------------------------------------------------------------------

    def add(self, record: KinesisInput) -> None:
        counts = self.counts
        counts.kinesis_records += 1
        self._shard = record.shard_id
        try:
            data = binascii.a2b_base64(record.data_base64, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            self._reject(record, "invalid_base64", str(exc), None, 0)
            return
        decoded = decode_payload(data, self.config.max_record_bytes)
        counts.control_messages += decoded.control_messages
        counts.records_in += decoded.total
        for error in decoded.errors:
            self._reject(
                record,
                error.reason,
                error.detail,
                error.raw if error.raw is not None else data,
                error.index,
                counted=True,
                events=error.count,
            )
        if decoded.events:
            self._add_events(record, data, decoded)

    def _add_events(self, record: KinesisInput, data: bytes, decoded: DecodedPayload) -> None:
        counts = self.counts
        padded = pad_sequence(record.sequence_number)
        keep = self.level_filter.keep
        rejected: list[tuple[int, str, str]] = []  # event index, reason, detail
        prepare = self.prepare
        for index, event in enumerate(decoded.events):
            try:
                log = build_record(prepare(event, record.arrival_time), record.arrival_time)
                kept = keep(log.level, log.service)
                fp = self.fingerprint(log.message, log.stack_trace) if kept else None
            except Exception as exc:
                # RecordError is bad data. Anything else is a bug, but a deterministic one: a
                # retry fails the same way, so the event waits in the DLQ for the fix instead.
                if isinstance(exc, RecordError):
                    reason, detail = exc.reason, exc.detail
                else:
                    logger.exception("Unexpected error on one event; sent to the DLQ")
                    reason, detail = f"internal_error:{type(exc).__name__}", str(exc)
                rejected.append((index, reason, detail))
                continue
            counts.per_level[log.level.name] += 1
            if fp is None:
                counts.filtered += 1
                continue
            counts.kept += 1
            self._kept.append((log, fp, padded))
            self._sequence[padded] = record.sequence_number
        if rejected:
            self._reject_events(record, data, decoded, rejected)

    def _reject_events(
        self, record: KinesisInput, data: bytes, decoded: DecodedPayload, rejected: list[tuple[int, str, str]]
    ) -> None:
        """The rejected events of one record as ONE DLQ entry, replayable as one record."""
        first_index, reason, detail = rejected[0]
        if len(rejected) > 1:
            reasons = Counter(r for _, r, _ in rejected)
            reason = reasons.most_common(1)[0][0]
            detail = f"{len(rejected)} events rejected {dict(reasons)}; first, event {first_index}: {detail}"
        raw = decoded.raw_for_all([index for index, _, _ in rejected])
        self._reject(
            record,
            reason,
            detail,
            data if raw is None else raw,
            decoded.positions[first_index],
            counted=True,
            events=len(rejected),
        )

    def _reject(
        self,
        record: KinesisInput,
        reason: str,
        detail: str,
        raw: bytes | None,
        index: int,
        *,
        counted: bool = False,
        events: int = 1,
    ) -> None:
        if not counted:
            self.counts.records_in += events
        self.counts.invalid += events
        self.counts.invalid_reasons[reason] += events
        payload = binascii.b2a_base64(raw, newline=False).decode() if raw is not None else record.data_base64
        entry = DlqEntry(
            reason=reason,
            error=detail[:1000],
            shard_id=record.shard_id,
            sequence_number=record.sequence_number,
            partition_key=record.partition_key,
            arrival_time=record.arrival_time,
            dlq_time=datetime.now(UTC),
            data_base64=payload,
            event_index=index,
            events=events,
            stream_arn=record.stream_arn,
        )
        self._dlq.append((entry, record.sequence_number))

    # -- per batch --------------------------------------------------------------------------

    def finish(self) -> BatchResult:
        try:
            return self._finish()
        finally:
            self._reset()

    def _finish(self) -> BatchResult:
        failed: set[str] = set()  # sequence numbers Lambda must redeliver
        self._write_dlq(failed)
        groups = aggregate(self._kept)
        outgoing = self._decide_alerts(groups, failed)
        if outgoing.to_send:
            self._send_alerts(outgoing, groups, failed)
        self._log_batch(len(groups), len(failed))
        return BatchResult(self.counts, failed, outgoing.to_send)

    def _write_dlq(self, failed: set[str]) -> None:
        if not self._dlq:
            return
        try:
            self.dlq.write([entry for entry, _ in self._dlq])
        except Exception:
            # Bad data must be findable: without the DLQ write the records are retried.
            logger.exception("DLQ write failed; will retry", extra={"entries": len(self._dlq)})
            failed.update(seq for _, seq in self._dlq)
        else:
            logger.info("Bad records sent to the DLQ", extra={"reasons": dict(self.counts.invalid_reasons)})

    def _decide_alerts(self, groups: dict[str, IncidentAggregate], failed: set[str]) -> _Outgoing:
        """Ask the throttle about each fingerprint; fall back to fail-open alerts when it cannot answer."""
        outgoing = _Outgoing()
        store_down = False
        for fp_id, group in groups.items():
            # Windows follow the events' own time (bounded by the skew rule), not the batch's.
            obs = Observation(fp_id, self._shard, group.sequence_numbers, _epoch_ms(group.last_seen))
            outcome: Outcome | None = None
            if not store_down:
                try:
                    outcome = self.throttle.observe(obs, functools.partial(self._render, group))
                except StoreThrottled:
                    logger.warning("State store throttled; will retry", extra={"fingerprint": fp_id})
                    failed.update(self._sequence[s] for s in group.sequence_numbers)
                    continue
                except StoreUnavailable:
                    logger.exception("State store unavailable: alerting fails open under the rate limit")
                    store_down = True
                except Exception:
                    # A bug or an unreadable state item for this fingerprint only: a retry
                    # would fail the same way and take the whole batch (good records too)
                    # to the on-failure queue. Alert without the throttle for it instead.
                    logger.exception(
                        "Throttle failed for one fingerprint; it alerts fail-open",
                        extra={"fingerprint": fp_id},
                    )
            if outcome is None:
                self._queue_fail_open(fp_id, group, outgoing)
            else:
                self._queue_decided(fp_id, outcome, outgoing)
        return outgoing

    def _queue_fail_open(self, fp_id: str, group: IncidentAggregate, outgoing: _Outgoing) -> None:
        message = self._fail_open(group)
        if message is not None:
            outgoing.to_send.append(message)
            outgoing.open_owner[alert_key(message)] = fp_id

    def _queue_decided(self, fp_id: str, outcome: Outcome, outgoing: _Outgoing) -> None:
        """The throttle's alerts, after the outbox entries an earlier attempt left unsent."""
        counts = self.counts
        counts.duplicates += outcome.duplicates
        for key, body in outcome.pending.items():
            message = IncidentMessage.model_validate_json(body)
            outgoing.to_send.append(message)
            outgoing.owner[alert_key(message)] = (fp_id, key)
        if not outcome.alerts:
            counts.alerts_suppressed += 1
            return
        for alert in outcome.alerts:
            message = IncidentMessage.model_validate_json(outcome.written[alert.key])
            if message.kind == "new":
                counts.incidents_opened += 1
            outgoing.to_send.append(message)
            outgoing.owner[alert_key(message)] = (fp_id, alert.key)

    def _send_alerts(
        self, outgoing: _Outgoing, groups: dict[str, IncidentAggregate], failed: set[str]
    ) -> None:
        owner = outgoing.owner
        fail_open = [m for m in outgoing.to_send if alert_key(m) not in owner]
        tracked = _unique([m for m in outgoing.to_send if alert_key(m) in owner])
        report = self.sender.send(tracked) if tracked else None
        if fail_open:
            open_report = self.sender.send(fail_open, idempotent=False)
            self.counts.alerts_sent += len(open_report.sent)
            for message in open_report.failed:
                # Nothing else remembers a fail-open alert: its records must come back.
                fp_id = outgoing.open_owner[alert_key(message)]
                failed.update(self._sequence[s] for s in groups[fp_id].sequence_numbers)
        if report is not None:
            self._settle_tracked(report, owner, groups, failed)

    def _settle_tracked(
        self,
        report: SendReport,
        owner: dict[str, tuple[str, str]],
        groups: dict[str, IncidentAggregate],
        failed: set[str],
    ) -> None:
        """Clear the outbox of what was sent; the records behind an unsent alert come back."""
        self.counts.alerts_sent += len(report.sent)
        confirmed: dict[str, list[str]] = {}
        for message in [*report.sent, *report.already_sent]:
            fp_id, key = owner[alert_key(message)]
            confirmed.setdefault(fp_id, []).append(key)
        for fp_id, keys in confirmed.items():
            try:
                self.throttle.store.confirm_sent(fp_id, keys)
            except (StoreThrottled, StoreUnavailable):
                logger.warning("Outbox not cleared; the idempotency record prevents a resend")
        for message in report.failed:
            owning = groups.get(owner[alert_key(message)][0])
            if owning is not None:
                failed.update(self._sequence[s] for s in owning.sequence_numbers)

    def _log_batch(self, incidents: int, retry_records: int) -> None:
        counts = self.counts
        logger.info(
            "Batch processed",
            extra={
                "records_in": counts.records_in,
                "kept": counts.kept,
                "filtered": counts.filtered,
                "invalid": counts.invalid,
                "control_messages": counts.control_messages,
                "incidents": incidents,
                "alerts_sent": counts.alerts_sent,
                "retry_records": retry_records,
            },
        )

    def _render(self, group: IncidentAggregate, alerts: Sequence[AlertDecision]) -> dict[str, str]:
        rendered: dict[str, str] = {}
        for alert in alerts:
            message = incident_message(
                group,
                kind=alert.kind,
                window_start_ms=alert.window_start,
                count=alert.count,
                window_count=alert.window_count,
                environment=self.config.environment,
                max_samples=self.config.max_samples,
            )
            if alert.reports_window is not None:
                # An update reports the window that just ended: its occurrences began then,
                # and this batch's samples are only the latest evidence.
                start = datetime.fromtimestamp(alert.reports_window / 1000, tz=UTC)
                message = message.model_copy(update={"first_seen": min(start, message.first_seen)})
            rendered[alert.key] = message.model_dump_json()
        return rendered

    def _fail_open(self, group: IncidentAggregate) -> IncidentMessage | None:
        if not self.fail_open.allow():
            self.counts.alerts_suppressed += 1
            return None
        window_ms = self.throttle.policy.window_seconds * 1000
        now_ms = _epoch_ms(group.last_seen)
        self.counts.alerts_fail_open += 1
        self.counts.incidents_opened += 1
        return incident_message(
            group,
            kind="new",
            window_start_ms=now_ms - now_ms % window_ms,
            count=group.count,
            window_count=group.count,
            environment=self.config.environment,
            max_samples=self.config.max_samples,
        )


@dataclass(slots=True)
class _Outgoing:
    """The alerts one batch will send, and who owns each (to clear its outbox or retry its records)."""

    to_send: list[IncidentMessage] = field(default_factory=list)
    owner: dict[str, tuple[str, str]] = field(default_factory=dict)  # alert key -> (fingerprint, outbox key)
    open_owner: dict[str, str] = field(default_factory=dict)  # fail-open alert key -> fingerprint


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000


def _unique(messages: list[IncidentMessage]) -> list[IncidentMessage]:
    seen: dict[str, IncidentMessage] = {}
    for message in messages:
        seen.setdefault(alert_key(message), message)
    return list(seen.values())


__all__ = ["BatchConsumer", "BatchCounts", "BatchResult", "ConsumerConfig", "KinesisInput", "Level"]
