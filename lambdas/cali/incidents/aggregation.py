"""Fold a batch's kept records into one incident per fingerprint.

An error storm of 3,000 identical lines becomes one message with ``count=3000``, the
services and hosts it touched and a few representative samples: the most severe first,
those with a stack trace before those without, distinct messages before repeats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from cali.contracts.incident import AlertKind, IncidentMessage, SampleLine
from cali.contracts.levels import Level
from cali.contracts.records import LogRecord, truncate
from cali.fingerprint import Fingerprint

# Samples travel in SQS messages (256 KiB) and wait in the throttle outbox (DynamoDB items
# are at most 400 KiB): bounded so that even 20 samples with stack traces fit.
SAMPLE_MESSAGE_CHARS = 2_000
SAMPLE_STACK_TRACE_CHARS = 4_000
# Services and hosts listed per message (alphabetically first): a fleet-wide error from
# thousands of hosts would otherwise outgrow both limits, and no retry fixes that.
MAX_LISTED = 50


@dataclass(slots=True)
class Occurrence:
    record: LogRecord
    sequence_number: str  # padded (``throttle.pad_sequence``), sorts in stream order


@dataclass(slots=True)
class IncidentAggregate:
    """Everything one batch saw of one fingerprint."""

    fingerprint: Fingerprint
    occurrences: list[Occurrence] = field(default_factory=list)

    def add(self, record: LogRecord, sequence_number: str) -> None:
        self.occurrences.append(Occurrence(record, sequence_number))

    @property
    def count(self) -> int:
        return len(self.occurrences)

    @property
    def sequence_numbers(self) -> list[str]:
        return [o.sequence_number for o in self.occurrences]

    @property
    def level(self) -> Level:
        return max(o.record.level for o in self.occurrences)

    @property
    def first_seen(self) -> datetime:
        return min(o.record.timestamp for o in self.occurrences)

    @property
    def last_seen(self) -> datetime:
        return max(o.record.timestamp for o in self.occurrences)

    @property
    def services(self) -> list[str]:
        return sorted({o.record.service for o in self.occurrences})[:MAX_LISTED]

    @property
    def hosts(self) -> list[str]:
        return sorted({o.record.host for o in self.occurrences if o.record.host})[:MAX_LISTED]

    def samples(self, limit: int) -> list[SampleLine]:
        ranked = sorted(
            self.occurrences,
            key=lambda o: (-o.record.level, o.record.stack_trace is None, o.record.timestamp),
        )
        chosen: list[LogRecord] = []
        seen: set[str] = set()
        for occurrence in ranked:  # distinct messages first, then fill with repeats
            if occurrence.record.message not in seen:
                seen.add(occurrence.record.message)
                chosen.append(occurrence.record)
                if len(chosen) == limit:
                    break
        if len(chosen) < limit:
            ids = {id(r) for r in chosen}
            chosen += [o.record for o in ranked if id(o.record) not in ids][: limit - len(chosen)]
        return [
            SampleLine(
                timestamp=r.timestamp,
                service=r.service,
                level=r.level,
                message=truncate(r.message, SAMPLE_MESSAGE_CHARS),
                host=r.host,
                stack_trace=truncate(r.stack_trace, SAMPLE_STACK_TRACE_CHARS) if r.stack_trace else None,
                trace_id=r.trace_id,
                level_source=_level_source(r),
            )
            for r in chosen
        ]


def _level_source(record: LogRecord) -> str | None:
    source = record.fields.get("level_source")
    return source if isinstance(source, str) else None


def aggregate(items: list[tuple[LogRecord, Fingerprint, str]]) -> dict[str, IncidentAggregate]:
    """Group ``(record, fingerprint, padded sequence number)`` by fingerprint id, in batch order."""
    groups: dict[str, IncidentAggregate] = {}
    for record, fingerprint, sequence_number in items:
        group = groups.get(fingerprint.id)
        if group is None:
            group = groups[fingerprint.id] = IncidentAggregate(fingerprint)
        group.add(record, sequence_number)
    return groups


def incident_id(fingerprint: str, window_start_ms: int) -> str:
    start = datetime.fromtimestamp(window_start_ms / 1000, tz=UTC)
    return f"{fingerprint}-{start:%Y%m%dT%H%M%SZ}"


def incident_message(
    aggregate: IncidentAggregate,
    *,
    kind: AlertKind,
    window_start_ms: int,
    count: int,
    window_count: int,
    environment: str,
    max_samples: int,
) -> IncidentMessage:
    """The message for one throttle decision. ``count`` is what this alert reports (for an
    ``update``, the repeats since the window's last alert), ``window_count`` the window total."""
    return IncidentMessage(
        incident_id=incident_id(aggregate.fingerprint.id, window_start_ms),
        fingerprint=aggregate.fingerprint.id,
        template=aggregate.fingerprint.template,
        kind=kind,
        environment=environment,
        level=aggregate.level,
        exception_type=aggregate.fingerprint.exception_type,
        services=aggregate.services,
        hosts=aggregate.hosts,
        count=max(count, 1),
        window_count=max(window_count, count, 1),
        first_seen=aggregate.first_seen,
        last_seen=aggregate.last_seen,
        samples=aggregate.samples(max_samples),
    )
