"""In-memory throttle store, alert queue and idempotency persistence for tests and the benchmark."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from cali.contracts.incident import IncidentMessage
from cali.incidents.throttle import ABSENT, Observation, ThrottleState


class InMemoryThrottleStore:
    """Same contract as the DynamoDB store, in a dict (tests, benchmark, local runs)."""

    def __init__(self) -> None:
        self.items: dict[str, ThrottleState] = {}
        self.expires: dict[str, int] = {}
        self._lock = threading.Lock()

    def increment_if_quiet(
        self, obs: Observation, now_ms: int, expires_at: int, *, track_sequence: bool = True
    ) -> ThrottleState | None:
        with self._lock:
            state = self.items.get(obs.fingerprint)
            if state is None:
                return ABSENT
            mark = state.hw.get(obs.shard_id) if track_sequence else None
            n = len(obs.sequence_numbers)
            if (
                state.window_end > now_ms
                and state.headroom > n
                and not state.outbox
                and (mark is None or mark < obs.min_seq)
            ):
                hw = {**state.hw, obs.shard_id: obs.max_seq} if track_sequence else state.hw
                self.items[obs.fingerprint] = replace(
                    state, count=state.count + n, version=state.version + 1, hw=hw
                )
                return None
            return state

    def save(self, fingerprint: str, state: ThrottleState, expected_version: int, expires_at: int) -> bool:
        with self._lock:
            current = self.items.get(fingerprint)
            if (current.version if current else 0) != expected_version:
                return False
            self.items[fingerprint] = state
            self.expires[fingerprint] = expires_at
            return True

    def load(self, fingerprint: str) -> ThrottleState | None:
        return self.items.get(fingerprint)

    def confirm_sent(self, fingerprint: str, keys: Sequence[str]) -> None:
        with self._lock:
            state = self.items.get(fingerprint)
            if state is not None:
                outbox = {k: v for k, v in state.outbox.items() if k not in keys}
                self.items[fingerprint] = replace(state, outbox=outbox, version=state.version + 1)


@dataclass
class InMemoryAlertQueue:
    """The incidents queue as a list; ``fail_next`` makes the next N sends fail (retry tests)."""

    sent: list[IncidentMessage] = field(default_factory=list)
    fail_next: int = 0

    def send(self, messages: Sequence[IncidentMessage]) -> list[IncidentMessage]:
        if self.fail_next > 0:
            self.fail_next -= 1
            return list(messages)
        self.sent += messages
        return []


class InMemoryPersistenceLayer(BasePersistenceLayer):
    """Powertools idempotency records in a dict, with DynamoDB's put semantics (tests, bench)."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.records: dict[str, DataRecord] = {}

    def _get_record(self, idempotency_key: str) -> DataRecord:
        try:
            return self.records[idempotency_key]
        except KeyError:
            raise IdempotencyItemNotFoundError from None

    def _put_record(self, data_record: DataRecord) -> None:
        old = self.records.get(data_record.idempotency_key)
        now_ms = int(time.time() * 1000)
        if (
            old is not None
            and not old.is_expired
            and not (
                old.status == "INPROGRESS"
                and old.in_progress_expiry_timestamp is not None
                and old.in_progress_expiry_timestamp < now_ms
            )
        ):
            raise IdempotencyItemAlreadyExistsError(old_data_record=old)
        self.records[data_record.idempotency_key] = data_record

    def _update_record(self, data_record: DataRecord) -> None:
        self.records[data_record.idempotency_key] = data_record

    def _delete_record(self, data_record: DataRecord) -> None:
        self.records.pop(data_record.idempotency_key, None)
