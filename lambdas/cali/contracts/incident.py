"""The incident message: the contract between the log consumer and the incident analyzer.

The consumer sends one message per fingerprint and throttle decision to the incidents
queue; the analyzer parses it with Powertools Parser. Bump ``schema_version`` on any
incompatible change: in-flight messages of the old shape must still be readable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cali.contracts.levels import Level

AlertKind = Literal["new", "update", "surge"]
"""``new``: a fingerprint with no recent history fired (first time, or after a whole quiet
window). ``update``: a throttle window ended with occurrences not yet reported; one message
carries their count and the next window opens. ``surge``: the rate rose by the configured
factor inside a window, so it re-alerts early (once per window)."""


class SampleLine(BaseModel):
    """One representative log line of the incident (not yet redacted)."""

    model_config = ConfigDict(frozen=True)

    timestamp: datetime
    service: str
    level: Level
    message: str
    host: str | None = None
    stack_trace: str | None = None
    trace_id: str | None = None
    # "line" (the line said it), "inferred" (implied by its words), "default"; None: a JSON
    # event's own level field. Older readers ignore it.
    level_source: str | None = None


class IncidentMessage(BaseModel):
    """One incident, aggregated over a batch of log records sharing a fingerprint."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    incident_id: str = Field(description="Stable id: fingerprint plus throttle window start")
    fingerprint: str
    template: str = Field(description="The log template, variables masked")
    kind: AlertKind
    environment: str
    level: Level = Field(description="Highest level seen")
    exception_type: str | None = None
    services: list[str]
    hosts: list[str] = Field(default_factory=list)
    count: int = Field(ge=1, description="Occurrences this message reports")
    window_count: int = Field(ge=1, description="Occurrences in the whole throttle window so far")
    first_seen: datetime
    last_seen: datetime
    samples: list[SampleLine] = Field(default_factory=list)
