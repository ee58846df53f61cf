"""Decoded events whose text still carries its header -> events with their own time and level.

The consumer, the log indexer and ``cali demo`` call ``prepare_event`` between decoding and
validation (``build_record``), so the three read a raw line the same way:

- an event is *raw* when its text is Fluent Bit's unparsed ``log`` key, or a ``message``
  with neither a level nor a time key (CloudWatch Logs text lines arrive as ``log`` too,
  see ``cali.ingest.decoding``); a JSON object that names its own level is left as it is;
- the header's time, level, logger, thread, host and pid become the event's keys (the
  event's own keys win: Kubernetes metadata says more about the service than a syslog tag);
- the level's origin is kept as ``level_source`` (``line``, ``inferred`` or ``default``)
  and the recognised header as ``log_format``;
- the time the record will carry passes the skew rule (``EventTimeRule``).

The skew rule: a record's time is the line's own time when it lies within
``[arrival - max_age, arrival + max_ahead]`` (defaults 14 days and 2 hours, the window in
which CloudWatch Logs itself accepts events). Outside it, the clock that wrote the line is
wrong or the line is a replay of old logs: the record takes the arrival time and keeps the
line's time in ``fields.line_time`` with ``fields.time_skew`` = ``ahead`` or ``old``. A
replay that *means* old times (``cali demo --input``) turns the rule off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from cali.contracts.levels import Level
from cali.contracts.records import parse_timestamp
from cali.contracts.settings import IngestSettings
from cali.ingest.normalise import DEFAULT_NORMALISER, HttpLevels, ImpliedSeverity, LineNormaliser

_LEVEL_KEYS: Final = frozenset(
    ("level", "severity", "lvl", "levelname", "log_level", "loglevel", "severity_text")
)
_TIME_KEYS: Final = ("@timestamp", "timestamp", "time", "ts", "datetime", "date", "eventTime")
_TIME_KEY_SET: Final = frozenset(_TIME_KEYS)
# Header fields the record has a slot for; every other header field keeps its own name.
_SLOTS: Final = {"logger": "logger", "thread": "thread", "host": "host", "request_id": "request_id"}
_HEADER_PREFIX: Final = "header_"
_RESERVED: Final = frozenset(("level", "level_source", "log_format", "message", "timestamp", "received_time"))
_RESERVED_OR_TIME: Final = _RESERVED | _TIME_KEY_SET


@dataclass(frozen=True, slots=True)
class EventTimeRule:
    """How far a line's own time may be from its arrival before the arrival wins."""

    max_ahead: timedelta = timedelta(hours=2)
    max_age: timedelta = timedelta(days=14)
    enabled: bool = True

    def choose(self, line_time: datetime, arrival: datetime | None) -> tuple[datetime, str | None]:
        """(the record's time, None or "ahead"/"old" when the line's time was refused)."""
        if not self.enabled or arrival is None:
            return line_time, None
        ahead = line_time - arrival  # one subtraction, compared with both bounds
        if ahead > self.max_ahead:
            return arrival, "ahead"
        if -ahead > self.max_age:
            return arrival, "old"
        return line_time, None


DEFAULT_TIME_RULE: Final = EventTimeRule()
REPLAY_TIME_RULE: Final = EventTimeRule(enabled=False)


@dataclass(frozen=True, slots=True)
class EventPreparer:
    """``prepare_event`` with one configuration (per environment, from ``IngestSettings``).

    ``infer_by_service`` turns implied levels off (or on) for single services: a service
    whose level-less lines are noisy by nature keeps its lines at INFO.
    """

    normaliser: LineNormaliser = DEFAULT_NORMALISER
    time_rule: EventTimeRule = DEFAULT_TIME_RULE
    infer_by_service: Mapping[str, bool] = field(default_factory=dict)

    def __call__(self, event: object, arrival: datetime | None) -> object:
        prepared = prepare_event(event, arrival, self.normaliser, self.time_rule)
        if not self.infer_by_service or not isinstance(prepared, dict):
            return prepared
        if prepared.get("level_source") == "inferred":
            service = prepared.get("service") or prepared.get("app")
            if self.infer_by_service.get(str(service), True) is False:
                prepared["level"] = Level.INFO
                prepared["level_source"] = "default"
        return prepared

    @classmethod
    def from_settings(cls, settings: IngestSettings) -> EventPreparer:
        implied = ImpliedSeverity(
            enabled=settings.infer_levels,
            extra_error=tuple(settings.infer_extra_error),
            extra_warn=tuple(settings.infer_extra_warn),
        )
        normaliser = LineNormaliser(implied, HttpLevels(settings.http_error_from, settings.http_warn_from))
        rule = EventTimeRule(
            max_ahead=timedelta(seconds=settings.max_event_ahead_seconds),
            max_age=timedelta(seconds=settings.max_event_age_seconds),
        )
        return cls(normaliser, rule, dict(settings.infer_levels_services))


def raw_text(event: dict[str, Any]) -> tuple[str, str] | None:
    """(key, text) when ``event`` is a raw line still carrying its header, else None."""
    if not _LEVEL_KEYS.isdisjoint(event):
        return None
    log = event.get("log")
    if isinstance(log, str):
        return "log", log
    message = event.get("message")
    if isinstance(message, str) and not any(key in event for key in _TIME_KEYS):
        return "message", message
    return None


def prepare_event(
    event: object,
    arrival: datetime | None,
    normaliser: LineNormaliser = DEFAULT_NORMALISER,
    time_rule: EventTimeRule = DEFAULT_TIME_RULE,
) -> object:
    """The event ``build_record`` should validate (a new dict; ``event`` is not changed)."""
    if not isinstance(event, dict):
        return event
    # The consumer calls this for every event: the common case (Fluent Bit's ``log``) is
    # read here without a call to ``raw_text``, and the header fields merge with one
    # ``update`` when no name clashes.
    text = event.get("log")
    if type(text) is str:
        if not _LEVEL_KEYS.isdisjoint(event):  # no set built: most events have no level key
            return _bounded_time(event, arrival, time_rule)
        key = "log"
    else:
        raw = raw_text(event)
        if raw is None:
            return _bounded_time(event, arrival, time_rule)
        key, text = raw
    head, newline, tail = text.rstrip("\r\n").partition("\n")  # Fluent Bit keeps the line's newline
    name, line_time, level, source, message, fields = normaliser.parts(head, arrival)
    prepared = dict(event)
    del prepared[key]
    prepared["message"] = message + newline + tail if newline else message
    # The Level itself, not its name: validation takes a Level as it is (``parse_level`` on
    # the name it would have to read again costs as much as the rest of this function).
    prepared["level"] = Level.INFO if level is None else level  # no level means INFO
    prepared["level_source"] = source
    prepared["log_format"] = name
    if _RESERVED_OR_TIME.isdisjoint(fields) and prepared.keys().isdisjoint(fields):
        prepared.update(fields)  # nothing to displace, nothing reserved, no time key added
    else:
        _merge_fields(prepared, fields)
    if line_time is None:
        return _bounded_time(prepared, arrival, time_rule)
    return _with_line_time(prepared, line_time, arrival, time_rule)


def _with_line_time(
    prepared: dict[str, Any], line_time: datetime, arrival: datetime | None, time_rule: EventTimeRule
) -> dict[str, Any]:
    """The line's own time becomes the record's (within the skew rule); the agent's is kept."""
    for name in _TIME_KEYS:  # when Fluent Bit read it / CloudWatch received it: kept for audit
        if name in prepared:
            prepared.setdefault("received_time", prepared.pop(name))
    prepared["timestamp"] = line_time
    # What ``_bounded_time`` would do with the one time key left, without looking for it.
    if arrival is not None and time_rule.enabled:
        ahead = line_time - arrival  # ``choose``, inline for the common case: the line's time stands
        if ahead <= time_rule.max_ahead and -ahead <= time_rule.max_age:
            return prepared
        chosen, skew = time_rule.choose(line_time, arrival)
        if skew is not None:
            prepared["timestamp"] = chosen
            prepared["line_time"] = line_time.isoformat()
            prepared["time_skew"] = skew
    return prepared


def _merge_fields(prepared: dict[str, Any], fields: dict[str, Any]) -> None:
    """The line's header fields into the event when some name is taken already."""
    for name, value in fields.items():
        slot = _SLOTS.get(name, name)
        if slot in _RESERVED:
            prepared.setdefault(f"{_HEADER_PREFIX}{name}", value)
            continue
        # What the line says about itself wins over what the agent added (Fluent Bit's
        # service from the file path, its host); the agent's value is kept beside it.
        displaced = prepared.get(slot)
        if displaced is not None and displaced != value:
            prepared.setdefault(f"agent_{slot}", displaced)
        prepared[slot] = value


def _bounded_time(event: dict[str, Any], arrival: datetime | None, rule: EventTimeRule) -> dict[str, Any]:
    if arrival is None or not rule.enabled:
        return event
    original = event
    for key in _TIME_KEYS:
        value = event.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, datetime):
            line_time = value
        else:
            try:
                line_time = parse_timestamp(value)
            except ValueError:
                return event  # build_record reports the bad timestamp with its DLQ reason
            if event is original:
                event = dict(event)
            event[key] = line_time  # parsed once: validation takes the datetime as it is
        chosen, skew = rule.choose(line_time, arrival)
        if skew is None:
            return event
        bounded = event if event is not original else dict(event)
        bounded[key] = chosen
        bounded["line_time"] = line_time.isoformat()
        bounded["time_skew"] = skew
        return bounded
    return event
