"""Which records are worth alerting on: a minimum level per environment, per-service overrides.

Everything is archived and indexed by Firehose regardless; this filter only decides what
the consumer fingerprints and throttles, so it is deliberately cheap (one dict lookup).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cali.contracts.levels import Level


@dataclass(frozen=True, slots=True)
class LevelFilter:
    """``keep`` is True when ``level`` reaches the service's minimum (override or default)."""

    min_level: Level = Level.WARN
    overrides: Mapping[str, Level] = field(default_factory=dict)

    def threshold(self, service: str) -> Level:
        return self.overrides.get(service, self.min_level)

    def keep(self, level: Level, service: str) -> bool:
        if self.overrides:
            return level >= self.overrides.get(service, self.min_level)
        return level >= self.min_level
