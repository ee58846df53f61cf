"""In-memory Slack thread store for tests and the benchmark."""

from __future__ import annotations


class InMemoryThreadStore:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], str] = {}

    def get(self, key: str, channel: str) -> str | None:
        return self._items.get((key, channel))

    def put(self, key: str, channel: str, ts: str, *, replacing: str | None = None) -> None:
        current = self._items.get((key, channel))
        if current is None or current == replacing:
            self._items[(key, channel)] = ts
