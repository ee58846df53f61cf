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
from cali.contracts.records import LogRecord
from cali.fingerprint import Fingerprint

# Samples travel in SQS messages (256 KiB) and wait in the throttle outbox (DynamoDB items
# are at most 400 KB): both count UTF-8 bytes, so the bounds are bytes, not characters (2,000
# emoji are 8,000 bytes). 20 samples with stack traces are at most 120 KB of text.
SAMPLE_MESSAGE_BYTES = 2_000
SAMPLE_STACK_TRACE_BYTES = 4_000
# The whole message as JSON. An outbox may hold a few pending messages of one fingerprint
# (new, update, surge), so one message stays well under both limits; past it the
# least representative samples are dropped (``samples`` ranks them).
MESSAGE_MAX_BYTES = 96 * 1024
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
                message=truncate_utf8(r.message, SAMPLE_MESSAGE_BYTES),
                host=r.host,
                stack_trace=truncate_utf8(r.stack_trace, SAMPLE_STACK_TRACE_BYTES) if r.stack_trace else None,
                trace_id=r.trace_id,
                level_source=_level_source(r),
            )
            for r in chosen
        ]


def truncate_utf8(text: str, max_bytes: int) -> str:
    """Cut ``text`` to at most ``max_bytes`` UTF-8 bytes (never inside a character), marker included."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    marker = f"…[truncated {len(encoded)} bytes]"
    keep = max(0, max_bytes - len(marker.encode("utf-8")))
    return encoded[:keep].decode("utf-8", "ignore") + marker


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
    message = IncidentMessage(
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
    return fit_message(message)


def fit_message(message: IncidentMessage, max_bytes: int = MESSAGE_MAX_BYTES) -> IncidentMessage:
    """Drop the last (least representative) samples until the JSON fits ``max_bytes``."""
    samples = list(message.samples)
    while len(message.model_dump_json().encode("utf-8")) > max_bytes and samples:
        samples.pop()
        message = message.model_copy(update={"samples": samples})
    return message
