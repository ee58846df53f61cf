"""The validated log record every log source is normalised into.

Fluent Bit parsers, zap, pino, logrus, logback and CloudWatch Logs all name the same
things differently. ``LogRecord.model_validate`` accepts any of those shapes: a ``before``
validator resolves the aliases in one pass over the keys, Pydantic then checks the types.
Everything the record does not name is kept in ``fields`` so no information is lost on
the way to OpenSearch.

Over-long text is truncated with a visible marker rather than rejected: a 5 MB stack trace
is still an incident, only its tail is noise.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator

from cali.contracts.levels import Level

MAX_MESSAGE_CHARS: Final = 16_384
MAX_STACK_TRACE_CHARS: Final = 32_768
MAX_SHORT_FIELD_CHARS: Final = 512
MAX_EXTRA_FIELD_CHARS: Final = 4_096
UNKNOWN_SERVICE: Final = "unknown"

# First key present wins; order is "most specific first".
_TIME_KEYS: Final = ("@timestamp", "timestamp", "time", "ts", "datetime", "date", "eventTime")
_LEVEL_KEYS: Final = ("level", "severity", "lvl", "levelname", "log_level", "loglevel", "severity_text")
_MESSAGE_KEYS: Final = ("message", "msg", "log", "event", "body")
_SERVICE_KEYS: Final = ("service", "app", "service_name", "application", "serviceName")
_STACK_KEYS: Final = ("stack_trace", "stacktrace", "stack", "exception", "exc_info", "error.stack")
_TRACE_KEYS: Final = ("trace_id", "traceId", "trace.id", "dd.trace_id", "X-Amzn-Trace-Id")
_REQUEST_KEYS: Final = ("request_id", "requestId", "req_id", "reqId", "correlation_id")
_HOST_KEYS: Final = ("host", "hostname", "host.name")
_LOGGER_KEYS: Final = ("logger", "logger_name", "name", "caller")
_SINGLE: Final = {
    "environment": ("environment", "env"),
    "thread": ("thread", "thread_name"),
    "pod": ("pod", "pod_name"),
    "container": ("container", "container_name"),
    "namespace": ("namespace",),
}
_UNCLAIMED: Final[tuple[int, str, Any]] = (0, "", None)
_SHORT_SLOTS: Final = ("trace_id", "request_id", "logger", "host", *_SINGLE)
# alias -> (slot, priority): one dict lookup per key of the event instead of a scan per slot.
_SLOT_OF: Final[dict[str, tuple[str, int]]] = {
    key: (slot, priority)
    for slot, keys in (
        ("timestamp", _TIME_KEYS),
        ("level", _LEVEL_KEYS),
        ("message", _MESSAGE_KEYS),
        ("service", _SERVICE_KEYS),
        ("stack_trace", _STACK_KEYS),
        ("trace_id", _TRACE_KEYS),
        ("request_id", _REQUEST_KEYS),
        ("host", _HOST_KEYS),
        ("logger", _LOGGER_KEYS),
        *_SINGLE.items(),
    )
    for priority, key in enumerate(keys)
}

# A level word in the header of a raw line (Fluent Bit's ``log`` when no parser matched,
# CloudWatch text lines): upper case, or any case in brackets ("[error]"), in the first
# 100 characters, so "no error found" in free text does not count.
_HEADER_LEVEL = re.compile(
    r"(?<![\w.-])(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|FATAL|CRIT|CRITICAL|SEVERE|PANIC)(?![\w.-])"
    r"|\[(?i:(trace|debug|info|notice|warn|warning|error|err|fatal|crit|critical|severe|panic))\]"
)
HEADER_CHARS: Final = 100

# log4j's DATE and ABSOLUTE-with-date forms, e.g. "23 Nov 2026 10:00:00,123".
_LOG4J_DATE = re.compile(r"^(\d{1,2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2})(?:[,.](\d{1,6}))?$")


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters plus a marker saying how much was dropped."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated {len(text) - limit} chars]"


def parse_timestamp(value: object) -> datetime:
    """Parse ISO-8601, epoch s/ms/µs/ns (number or digits), logback and log4j forms; UTC if naive.

    Raises ``ValueError`` on anything else, which becomes ``invalid_field:timestamp``.
    """
    if not isinstance(value, str):
        return _parse_non_text_timestamp(value)
    text = value.strip()
    if not text:
        raise ValueError("empty timestamp")
    if text[0].isdigit() and text.replace(".", "", 1).isdigit():
        return _from_epoch(float(text))
    # logback "2026-11-23 10:00:00,123" and log4j ISO8601 "2026-11-23T10:00:00,123";
    # "2026/11/23 10:00:00" (Go's log package).
    iso = text.replace(",", ".", 1) if "," in text else text
    if len(iso) > 10 and iso[4] == "/" and iso[7] == "/":
        iso = f"{iso[:4]}-{iso[5:7]}-{iso[8:]}"
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        parsed = _parse_log4j_date(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # not a ValueError: Pydantic would let it fail the batch
        raise ValueError(f"timestamp {text[:40]!r} out of range in UTC") from exc


def _parse_non_text_timestamp(value: object) -> datetime:
    # Checked before the string path's work; bool first, since it is an int subclass.
    if isinstance(value, bool):
        raise ValueError("a boolean is not a timestamp")
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    raise ValueError(f"unsupported timestamp type {type(value).__name__}")


def _parse_log4j_date(text: str) -> datetime:
    """The fallback when ``fromisoformat`` refused ``text``: log4j's DATE form, naive."""
    match = _LOG4J_DATE.match(text)
    if match is None:
        raise ValueError(f"unrecognised timestamp {text[:40]!r}") from None
    parsed = datetime.strptime(match.group(1), "%d %b %Y %H:%M:%S")
    if match.group(2):
        parsed = parsed.replace(microsecond=int(match.group(2).ljust(6, "0")))
    return parsed


def _from_epoch(number: float) -> datetime:
    # The magnitude says the unit: seconds until year 5138, then ms, µs, ns.
    magnitude = abs(number)
    if magnitude < 1e11:
        seconds = number
    elif magnitude < 1e14:
        seconds = number / 1e3
    elif magnitude < 1e17:
        seconds = number / 1e6
    else:
        seconds = number / 1e9
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError(f"epoch {number} out of range") from exc


def parse_level(value: object) -> Level:
    """Level names/aliases via ``Level.parse``; JSON numbers use pino/bunyan's 10..60 scale.

    Loggers that write the level as a JSON number are pino and bunyan (10 trace .. 60 fatal);
    Python's logging numbers arrive as names (``levelname``) in practice, and digit strings
    keep ``Level.parse``'s Python/syslog meaning.
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not a level")
    if isinstance(value, int | float):
        number = int(value)
        if number >= 10:
            pino = {10: Level.TRACE, 20: Level.DEBUG, 30: Level.INFO, 40: Level.WARN, 50: Level.ERROR}
            return pino.get(number - number % 10, Level.FATAL)
        return Level.parse(number)
    if isinstance(value, str):
        return Level.parse(value)
    raise ValueError(f"unsupported level type {type(value).__name__}")


def _short(value: object) -> str | None:
    """Identifiers and metadata: scalars become strings, containers are a type error."""
    if value is None:
        return None
    if isinstance(value, str):
        return truncate(value, MAX_SHORT_FIELD_CHARS)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise TypeError(type(value).__name__)


class LogRecord(BaseModel):
    """One log event after alias resolution, type checks and truncation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timestamp: datetime
    level: Level
    service: str
    message: str
    stack_trace: str | None = None
    environment: str | None = None
    trace_id: str | None = None
    request_id: str | None = None
    logger: str | None = None
    thread: str | None = None
    host: str | None = None
    pod: str | None = None
    container: str | None = None
    namespace: str | None = None
    fields: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _resolve_aliases(cls, data: Any, info: ValidationInfo) -> Any:
        # ``build_record`` normalises first (to tell a missing field from a bad one) and says so.
        if not isinstance(data, dict) or (info.context or {}).get("canonical"):
            return data
        return normalise_event(data)

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> datetime:
        return value if isinstance(value, datetime) else parse_timestamp(value)

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Level:
        return value if isinstance(value, Level) else parse_level(value)


class _InvalidField(ValueError):
    def __init__(self, name: str, detail: str) -> None:
        super().__init__(detail)
        self.name = name


def normalise_event(event: dict[str, Any], arrival_time: datetime | None = None) -> dict[str, Any]:
    """Map one decoded event's keys onto ``LogRecord``'s fields (before type validation).

    One pass over the keys: each known alias claims its slot (the most specific alias wins,
    the others stay in ``fields``), everything else goes to ``fields``. A multi-line
    ``message`` without a separate stack-trace field is split: the first line is the
    message, the rest the stack trace (how Fluent Bit's multiline parser delivers Java,
    Python and Go traces).
    """
    found: dict[str, tuple[int, str, Any]] = {}
    fields: dict[str, Any] = {}
    kube = _claim(event, found, fields)

    message = found.get("message", _UNCLAIMED)[2]
    stack = found.get("stack_trace", _UNCLAIMED)[2]
    if isinstance(message, str):
        if stack is None and "\n" in message:
            head, _, tail = message.partition("\n")
            if tail.strip():
                message, stack = head, tail
        message = message.rstrip("\r\n")
        if len(message) > MAX_MESSAGE_CHARS:
            message = truncate(message, MAX_MESSAGE_CHARS)
    if stack is not None:
        stack = _clip_stack(stack)

    service = _service(found, kube)
    timestamp = found.get("timestamp", _UNCLAIMED)[2]
    level = found.get("level", _UNCLAIMED)[2]
    if level is None:
        level = _sniff_level(message)
    canonical: dict[str, Any] = {
        "timestamp": arrival_time if timestamp is None else timestamp,
        "level": Level.INFO if level is None else level,
        "service": UNKNOWN_SERVICE if service is None else service,
        "message": message,
        "stack_trace": stack,
        "fields": fields,
    }
    _add_short_slots(found, canonical)
    return canonical


def _claim(event: dict[str, Any], found: dict[str, tuple[int, str, Any]], fields: dict[str, Any]) -> Any:
    """The key pass of ``normalise_event``: fill ``found`` and ``fields``, return the kubernetes map."""
    kube: Any = None
    slot_of = _SLOT_OF
    for key, value in event.items():
        hit = slot_of.get(key)
        if hit is None:
            if key == "kubernetes" and isinstance(value, dict):
                kube = value
            elif isinstance(value, str) and len(value) > MAX_EXTRA_FIELD_CHARS:
                fields[key] = truncate(value, MAX_EXTRA_FIELD_CHARS)
            else:
                fields[key] = value
            continue
        if value is None or value == "":
            continue
        slot, priority = hit
        previous = found.get(slot)
        if previous is None:
            found[slot] = (priority, key, value)
        else:
            _contest(found, fields, slot, (priority, key, value), previous)
    return kube


def _contest(
    found: dict[str, tuple[int, str, Any]],
    fields: dict[str, Any],
    slot: str,
    claim: tuple[int, str, Any],
    previous: tuple[int, str, Any],
) -> None:
    # Two aliases for one slot (rare): the more specific keeps it, the other goes to ``fields``.
    if claim[0] < previous[0]:
        found[slot] = claim
        fields[previous[1]] = previous[2]
    else:
        fields[claim[1]] = claim[2]


def _clip_stack(stack: Any) -> Any:
    if isinstance(stack, list):
        stack = "\n".join(str(line) for line in stack)
    if isinstance(stack, str) and len(stack) > MAX_STACK_TRACE_CHARS:
        stack = truncate(stack, MAX_STACK_TRACE_CHARS)
    return stack


def _service(found: dict[str, tuple[int, str, Any]], kube: Any) -> Any:
    """The service alias, else the pod's app label, else the container; kubernetes fills pod slots too."""
    service = found.get("service", _UNCLAIMED)[2]
    if kube is not None:
        labels = kube.get("labels")
        if service is None and isinstance(labels, dict):
            service = labels.get("app") or labels.get("app.kubernetes.io/name")
        for slot, kube_key in (
            ("pod", "pod_name"),
            ("namespace", "namespace_name"),
            ("container", "container_name"),
            ("host", "host"),
        ):
            if slot not in found and kube.get(kube_key):
                found[slot] = (0, kube_key, kube[kube_key])
    service = service or found.get("container", _UNCLAIMED)[2]
    if isinstance(service, str) and len(service) > MAX_SHORT_FIELD_CHARS:
        service = truncate(service, MAX_SHORT_FIELD_CHARS)
    return service


def _sniff_level(message: Any) -> str | None:
    """No level field: a level word in the message's header, if any."""
    if not isinstance(message, str):
        return None
    sniffed = _HEADER_LEVEL.search(message, 0, HEADER_CHARS)
    if sniffed is None:
        return None
    level: str = sniffed.group(1) or sniffed.group(2)
    return level


def _add_short_slots(found: dict[str, tuple[int, str, Any]], canonical: dict[str, Any]) -> None:
    for name in _SHORT_SLOTS:
        claimed = found.get(name)
        if claimed is None:
            canonical[name] = None
            continue
        value = claimed[2]
        if type(value) is str:  # the common case, without a call
            canonical[name] = (
                value if len(value) <= MAX_SHORT_FIELD_CHARS else truncate(value, MAX_SHORT_FIELD_CHARS)
            )
            continue
        try:
            canonical[name] = _short(value)
        except TypeError as exc:
            raise _InvalidField(name, f"{name} must be a string or number, got {exc}") from None


_CANONICAL: Final = {"canonical": True}


class RecordError(Exception):
    """A log event that cannot become a ``LogRecord``; ``reason`` is the stable DLQ reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def build_record(event: object, arrival_time: datetime | None = None) -> LogRecord:
    """Validate one decoded event into a ``LogRecord`` or raise ``RecordError`` with a DLQ reason.

    ``arrival_time`` (Kinesis' approximate arrival) stands in for a missing timestamp: a
    line without a time is still worth alerting on, and arrival is seconds from the truth.
    """
    if not isinstance(event, dict):
        raise RecordError("not_an_object", f"expected a JSON object, got {type(event).__name__}")
    try:
        canonical = normalise_event(event, arrival_time)
    except _InvalidField as exc:
        raise RecordError(f"invalid_field:{exc.name}", str(exc)) from None
    if canonical["message"] is None:
        raise RecordError("missing_field:message", f"none of {', '.join(_MESSAGE_KEYS)} is present")
    if canonical["timestamp"] is None:
        raise RecordError("missing_field:timestamp", f"none of {', '.join(_TIME_KEYS)} is present")
    try:
        return LogRecord.model_validate(canonical, context=_CANONICAL)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        name = str(error["loc"][0]) if error["loc"] else "record"
        kind = "missing_field" if error["type"] == "missing" else "invalid_field"
        raise RecordError(f"{kind}:{name}", error["msg"]) from None
