"""In-memory DLQ for tests and the benchmark."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from cali.ingest.dlq import DlqEntry, _reason_matches


class InMemoryDlq:
    """DLQ kept in a dict: the benchmark and unit tests use it in place of S3."""

    def __init__(self) -> None:
        self.entries: dict[str, DlqEntry] = {}

    def write(self, entries: Sequence[DlqEntry]) -> None:
        for entry in entries:
            self.entries[entry.entry_id] = entry

    def list(self, since: datetime, until: datetime, reason: str | None = None) -> Iterator[DlqEntry]:
        for entry in sorted(self.entries.values(), key=lambda e: e.arrival_time):
            if since <= entry.arrival_time < until and _reason_matches(entry, reason):
                yield entry

    def get(self, entry_id: str) -> DlqEntry:
        return self.entries[entry_id]

    def mark_replayed(self, entry: DlqEntry, when: datetime) -> None:
        self.entries[entry.entry_id] = entry.model_copy(update={"replayed_at": when})
