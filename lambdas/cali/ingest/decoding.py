"""Turn the bytes of one Kinesis record into log events.

What users put into the stream, all accepted:

- Fluent Bit ``kinesis_streams``: one JSON object per record, or several newline-joined;
- the same, gzip-compressed;
- CloudWatch Logs subscription filters: gzip JSON envelopes whose ``logEvents`` carry the
  lines (``CONTROL_MESSAGE`` envelopes are the service checking the destination: skipped
  and counted, never an error).

- plain text lines (an agent with a raw-text output, ``aws kinesis put-record`` by hand).

A readable line is never bad data: a line that is not JSON becomes a raw event
``{"log": line}``, exactly like Fluent Bit's unparsed ``log`` and like CloudWatch Logs
text lines (Lambda's default format), and ``cali.ingest.events.prepare_event`` reads its
header. What remains bad data (DLQ with a reason): bytes that are not UTF-8, JSON that is
broken (a line that opens with ``{`` or ``[`` but does not parse: a truncated record),
broken gzip, oversized records.

A JSON object is a CloudWatch Logs envelope only when it carries the envelope's own
fields (``messageType``, ``owner``, ``logGroup``, ``logStream``, ``subscriptionFilters``):
an application's JSON line that happens to have ``messageType`` and ``logEvents`` keys is
that application's event.

Errors are reported per event so one bad line never takes its neighbours to the DLQ; each
carries the smallest bytes that can be replayed on their own (the line, or a one-event
envelope), so ``cali dlq replay`` never duplicates the good events. The bad lines of one
record are reported as ONE error holding them all (``count`` lines): a 1 MiB record of
half a million bad lines is one DLQ object, not half a million.

Nesting is bounded before any work: orjson parses 1,024 levels but writes only 255, so an
event nested deeper than ``MAX_NESTING`` is bad data (``too_deep``) instead of an error
that escapes later, is retried until the record expires and blocks its shard.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

GZIP_MAGIC: Final = b"\x1f\x8b"
# Deeper than any real log line; leaves room under orjson's 255-level dump limit for the
# envelopes (DLQ entry, OpenSearch document) the event is later wrapped in.
MAX_NESTING: Final = 128
# The bytes a JSON text can start with; a line starting otherwise is not JSON.


@dataclass(frozen=True, slots=True)
class EventError:
    """One event (or the whole record, ``index`` 0) that is bad data."""

    index: int
    reason: str
    detail: str
    raw: bytes | None  # None: the record's original bytes are the thing to replay
    count: int = 1  # log events this error stands for (bad lines of one record: all of them)


@dataclass(slots=True)
class DecodedPayload:
    """Events of one record; ``raws[i]`` is None when the record holds just that event."""

    events: list[Any] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # each event's line / logEvents index
    raws: list[bytes | None] = field(default_factory=list)
    errors: list[EventError] = field(default_factory=list)
    control_messages: int = 0
    # CloudWatch Logs: replayable bytes are built only for the events that need them.
    envelope: dict[str, Any] | None = None
    log_events: list[Any] = field(default_factory=list)

    def raw_for(self, index: int) -> bytes | None:
        """Bytes to keep in the DLQ for event ``index`` (None: the record's own bytes)."""
        if self.envelope is not None:
            return _single_event_envelope(self.envelope, self.log_events[index])
        return self.raws[index]

    def raw_for_all(self, indexes: Sequence[int]) -> bytes | None:
        """One replayable record holding events ``indexes`` (None: the record's own bytes)."""
        if self.envelope is not None:
            return _envelope_with(self.envelope, [self.log_events[i] for i in indexes])
        raws = [self.raws[i] for i in indexes]
        if any(raw is None for raw in raws):
            return None
        return b"\n".join(raw for raw in raws if raw is not None)

    @property
    def total(self) -> int:
        """Units this record contributes to ``RecordsIn`` (events, bad events, control)."""
        return len(self.events) + sum(e.count for e in self.errors) + self.control_messages


def gunzip_bounded(data: bytes, max_bytes: int) -> bytes:
    """Decompress gzip, refusing to inflate past ``max_bytes`` (zip bombs are bad data too)."""
    # Every member of a multi-member stream (RFC 1952) counts, as ``gzip -d`` reads them all.
    parts: list[bytes] = []
    size = 0
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = inflater.decompress(data, max_bytes - size + 1)
        size += len(out)
        if size > max_bytes:
            raise OverflowError(f"inflates past {max_bytes} bytes")
        if not inflater.eof:
            raise zlib.error("truncated gzip stream")
        parts.append(out)
        data = inflater.unused_data
        if not data:
            return out if len(parts) == 1 else b"".join(parts)


def decode_payload(data: bytes, max_bytes: int = 1_048_576) -> DecodedPayload:
    """Decode one record's bytes (already base64-decoded) into events and per-event errors."""
    result = DecodedPayload()
    if len(data) > max_bytes:
        result.errors.append(EventError(0, "oversized", f"{len(data)} bytes > {max_bytes}", None))
        return result
    if data[:2] == GZIP_MAGIC:
        try:
            data = gunzip_bounded(data, max_bytes)
        except OverflowError as exc:
            result.errors.append(EventError(0, "oversized", f"gzip payload {exc}", None))
            return result
        except (zlib.error, EOFError, OSError) as exc:
            result.errors.append(EventError(0, "invalid_gzip", str(exc), None))
            return result
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if b"\n" in data.strip():
            _decode_lines(data, result)
        else:
            error = _decode_text(0, data, exc, None, result)
            if error is not None:
                result.errors.append(error)
        return result
    if too_deep(data, value):
        result.errors.append(EventError(0, "too_deep", f"JSON nested deeper than {MAX_NESTING} levels", None))
        return result
    if is_cloudwatch_envelope(value):
        _decode_cloudwatch(value, result)
    else:
        result.events.append(value)
        result.positions.append(0)
        result.raws.append(None)
    return result


ENVELOPE_KEYS: Final = frozenset(("messageType", "owner", "logGroup", "logStream", "subscriptionFilters"))


def is_cloudwatch_envelope(value: object) -> bool:
    """A CloudWatch Logs subscription envelope: every one of the envelope's own fields."""
    return isinstance(value, dict) and ENVELOPE_KEYS.issubset(value)


def _decode_text(
    index: int, data: bytes, exc: Exception, raw: bytes | None, result: DecodedPayload
) -> EventError | None:
    """A line that is not JSON: a raw event when it is readable text, else its error."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as utf8:
        return EventError(index, "invalid_utf8", str(utf8), raw)
    stripped = text.strip()
    if stripped[:1] in ("{", "["):  # claims to be JSON: a truncated or corrupt record
        return EventError(index, "not_json", str(exc), raw)
    result.events.append({"log": stripped})
    result.positions.append(index)
    result.raws.append(raw)
    return None


def too_deep(data: bytes, value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether ``value`` (parsed from ``data``) nests containers deeper than ``limit``."""
    if data.count(b"[") + data.count(b"{") <= limit:  # cannot be: skip the walk
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _decode_line(index: int, line: bytes, result: DecodedPayload) -> EventError | None:
    """One line of a newline-joined record: an event added to ``result``, or the line's error."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return _decode_text(index, line, exc, line, result)
    if too_deep(line, event):
        return EventError(index, "too_deep", f"JSON nested deeper than {MAX_NESTING} levels", None)
    result.events.append(event)
    result.positions.append(index)
    result.raws.append(line)
    return None


def _decode_lines(data: bytes, result: DecodedPayload) -> None:
    index = 0
    bad: list[bytes] = []
    first: EventError | None = None
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        error = _decode_line(index, line, result)
        if error is not None:
            first = first or error
            bad.append(line)  # a reference to the split line: no copy per bad line
        index += 1
    if first is not None:
        # One error for all the record's bad lines, replayable as one record of them.
        detail = f"{len(bad)} of {index} lines are bad data; first, line {first.index}: {first.detail}"
        result.errors.append(EventError(first.index, first.reason, detail, b"\n".join(bad), count=len(bad)))


def _decode_cloudwatch(envelope: dict[str, Any], result: DecodedPayload) -> None:
    if envelope.get("messageType") == "CONTROL_MESSAGE":
        result.control_messages += 1
        return
    log_events = envelope.get("logEvents")
    if not isinstance(log_events, list):
        result.errors.append(EventError(0, "invalid_field:logEvents", "logEvents is not a list", None))
        return
    group = str(envelope.get("logGroup") or "")
    stream = str(envelope.get("logStream") or "")
    service = group.rstrip("/").rsplit("/", 1)[-1] or None
    for index, log_event in enumerate(log_events):
        if not isinstance(log_event, dict) or not isinstance(log_event.get("message"), str):
            raw = _single_event_envelope(envelope, log_event)
            result.errors.append(EventError(index, "invalid_field:logEvents", "logEvent has no message", raw))
            continue
        # Every line travels raw, JSON or not: ``prepare_event`` reads it exactly as it reads
        # Fluent Bit's ``log`` (one reading for both paths; the line's own time wins).
        event: dict[str, Any] = {"log": log_event["message"]}
        event.setdefault("timestamp", log_event.get("timestamp"))
        if service:
            event.setdefault("service", service)
        event.setdefault("log_group", group)
        event.setdefault("log_stream", stream)
        result.events.append(event)
        result.positions.append(index)
        result.raws.append(None)
        result.log_events.append(log_event)
    result.envelope = envelope


def _single_event_envelope(envelope: dict[str, Any], log_event: object) -> bytes:
    """A replayable record holding just this log event, in the shape CloudWatch sends."""
    return _envelope_with(envelope, [log_event])


def _envelope_with(envelope: dict[str, Any], log_events: list[Any]) -> bytes:
    """A replayable record holding just these log events, in the shape CloudWatch sends."""
    single = {key: value for key, value in envelope.items() if key != "logEvents"}
    single["logEvents"] = log_events
    return gzip.compress(orjson.dumps(single), mtime=0)
