"""In-memory token budget, LLM cache, alert state and incident sink for tests."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from cali.analysis.alert_state import AlertBusyError, AlertKey, AlertProgress, Claim
from cali.analysis.incident_sink import IncidentDocument
from cali.analysis.llm.budget import Reservation
from cali.analysis.llm.cache import CachedAnalysis
from cali.contracts.clock import Clock, utc_now


class InMemoryTokenBudget:
    """Single-process budget for tests and the local demo."""

    def __init__(self, daily_limit: int, *, clock: Clock = utc_now) -> None:
        self.daily_limit = daily_limit
        self._clock = clock
        self._used: dict[date, int] = {}
        self._lock = threading.Lock()

    def used(self, day: date | None = None) -> int:
        return self._used.get(day or self._clock().date(), 0)

    def reserve(self, tokens: int) -> Reservation | None:
        day = self._clock().date()
        with self._lock:
            used = self._used.get(day, 0)
            if used + tokens > self.daily_limit:
                return None
            self._used[day] = used + tokens
        return Reservation(day=day, tokens=tokens)

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        with self._lock:
            self._used[reservation.day] = (
                self._used.get(reservation.day, 0) + actual_tokens - reservation.tokens
            )


class InMemoryLlmCache:
    def __init__(self, *, clock: Clock = utc_now) -> None:
        self._clock = clock
        self._items: dict[str, tuple[float, CachedAnalysis]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedAnalysis | None:
        with self._lock:
            entry = self._items.get(key)
        if entry is None or entry[0] <= self._clock().timestamp():
            return None
        return entry[1]

    def put(self, key: str, value: CachedAnalysis, *, ttl_seconds: int) -> None:
        with self._lock:
            self._items[key] = (self._clock().timestamp() + ttl_seconds, value)


@dataclass
class _Lease:
    owner: str
    until_ms: int
    attempts: int
    first_attempt_at: float


class InMemoryAlertState:
    """``AlertState`` in a dict, with the same lease semantics as the DynamoDB one."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.items: dict[AlertKey, AlertProgress] = {}
        self.leases: dict[AlertKey, _Lease] = {}
        self._clock = clock
        self._lock = threading.Lock()

    def claim(self, key: AlertKey, *, lease_ms: int) -> Claim | None:
        now = self._clock()
        with self._lock:
            if key in self.items:
                return None
            lease = self.leases.get(key)
            if lease is not None and lease.until_ms >= now * 1000:
                raise AlertBusyError(f"alert {key.alert_id} is leased by another invocation")
            attempts = lease.attempts if lease else 0
            first = lease.first_attempt_at if lease else now
            owner = uuid.uuid4().hex
            self.leases[key] = _Lease(owner, int(now * 1000) + lease_ms, attempts + 1, first)
            return Claim(owner, attempts, first)

    def release(self, key: AlertKey, claim: Claim) -> None:
        with self._lock:
            lease = self.leases.get(key)
            if lease is not None and lease.owner == claim.owner:
                lease.until_ms, lease.attempts = 0, lease.attempts - 1

    def get(self, key: AlertKey) -> AlertProgress | None:
        with self._lock:
            return self.items.get(key)

    def mark_posted(self, key: AlertKey, *, slack_ts: str | None, document: IncidentDocument) -> None:
        with self._lock:
            self.items[key] = AlertProgress(slack_ts=slack_ts, document=document)

    def mark_recorded(self, key: AlertKey) -> None:
        with self._lock:
            progress = self.items.get(key)
            if progress is not None:
                self.items[key] = progress.model_copy(update={"recorded": True})


class InMemoryIncidentSink:
    def __init__(self) -> None:
        self.documents: list[IncidentDocument] = []
        self._lock = threading.Lock()

    def record(self, document: IncidentDocument) -> None:
        with self._lock:
            self.documents.append(document)
