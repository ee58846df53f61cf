"""What our Fluent Bit configuration does to log lines, in Python.

The local pipeline, ``cali loggen --to-stream`` and the tests need the records Fluent Bit
would put into Kinesis, but no Fluent Bit binary runs here. This module reads the real
configuration files in ``fluent-bit/`` at run time (inputs, filters in order, parsers,
multiline rules, output options) and applies them the way Fluent Bit's C code does:

* multiline grouping follows ``src/multiline/flb_ml_rule.c``: continuation rules of the
  current state first, then start rules; a line matching neither flushes the pending
  event and is emitted on its own;
* regex parsers follow ``flb_parser_regex.c``: unanchored search, empty captures skipped,
  ``time_key`` parsed into the record time and removed, a bad time keeps the input time;
  logfmt parsers follow ``flb_parser_logfmt.c`` (pairs up to the first line break,
  ``logfmt_no_bare_keys``, a bad time rejects the line);
* the parser filter follows ``filter_parser.c``: first parser that matches wins, parsed
  keys first, then the other keys (``reserve_data``), the source key dropped unless
  ``preserve_key``;
* ``modify`` applies its rules in file order; ``kubernetes`` appends the pod metadata the
  caller provides (the API server is out of reach here);
* ``kinesis_streams`` serialises the record as compact JSON, appends ``time_key`` at the
  end without checking for an existing key (so a JSON logger's own ``time`` is repeated,
  and ``json.loads`` keeps the last one, as downstream does), adds a newline, and drops
  empty records and records over 1,048,556 bytes.

Regexes are written in the Onigmo/Ruby dialect in the YAML; :func:`compile_onigmo` turns
them into Python patterns. Only the subset both engines read the same way is accepted
(see :func:`portability_problems`).
"""

from __future__ import annotations

import json
import os
import random
import re
import string
import time as _time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

FLUENT_BIT_DIR = Path(__file__).resolve().parent.parent / "fluent-bit"
KUBERNETES_CONFIG = FLUENT_BIT_DIR / "fluent-bit.yaml"
FILES_CONFIG = FLUENT_BIT_DIR / "fluent-bit-files.yaml"
PARSERS_FILE = FLUENT_BIT_DIR / "parsers.yaml"

# plugins/out_kinesis_streams/kinesis_api.h
MAX_EVENT_SIZE = 1_048_556
PUT_RECORDS_PAYLOAD_SIZE = 5_242_880
MAX_EVENTS_PER_PUT = 500
PUT_RECORDS_HEADER_LEN = 30
PUT_RECORDS_PER_RECORD_LEN = 48
PUT_RECORDS_FOOTER_LEN = 4

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class EmulationError(Exception):
    """The configuration uses something this emulation cannot reproduce faithfully."""


# --------------------------------------------------------------------------- regexes


@dataclass(frozen=True)
class OnigmoPattern:
    """A regex from the YAML and its Python equivalent."""

    source: str
    body: str
    compiled: re.Pattern[str]


def split_slashes(source: str) -> tuple[str, str]:
    """``'/body/flags'`` -> (body, flags), as ``flb_regex.c`` strips them."""
    if len(source) >= 2 and source.startswith("/"):
        last = source.rfind("/")
        if last > 0:
            flags = source[last + 1 :]
            if flags == "" or all(c in "mix" for c in flags):
                return source[1:last], flags
    return source, ""


def compile_onigmo(source: str) -> OnigmoPattern:
    """Compile an Onigmo (Ruby syntax) pattern from the YAML into a Python pattern.

    Ruby's ``^``/``$`` always match at line boundaries (Python's MULTILINE), ``\\d``,
    ``\\s`` and ``\\w`` are ASCII-only, and the ``m`` flag makes ``.`` match newlines
    (Python's DOTALL).
    """
    problems = portability_problems(source)
    if problems:
        raise EmulationError(f"regex {source!r} is not portable: {'; '.join(problems)}")
    body, flags = split_slashes(source)
    py_flags = re.MULTILINE | re.ASCII
    if "m" in flags:
        py_flags |= re.DOTALL
    if "i" in flags:
        py_flags |= re.IGNORECASE
    if "x" in flags:
        py_flags |= re.VERBOSE
    python_body = body.replace("(?<", "(?P<")
    try:
        compiled = re.compile(python_body, py_flags)
    except re.error as exc:
        raise EmulationError(f"regex {source!r} does not compile in Python: {exc}") from exc
    return OnigmoPattern(source=source, body=body, compiled=compiled)


_FORBIDDEN_ESCAPES = {
    "h": r"\h (hex digit in Onigmo, an error in Python)",
    "H": r"\H (non-hex digit in Onigmo)",
    "z": r"\z (end of string in Onigmo, an error in Python)",
    "Z": r"\Z (means different things in Onigmo and Python)",
    "K": r"\K (keep, Onigmo only)",
    "R": r"\R (line break, Onigmo only)",
    "X": r"\X (grapheme cluster, Onigmo only)",
    "G": r"\G (match start, Onigmo only)",
    "p": r"\p{...} (property classes, Onigmo only)",
    "P": r"\P{...} (property classes, Onigmo only)",
    "k": r"\k<name> (named backreference, spelled differently)",
    "g": r"\g<name> (subexpression call, Onigmo only)",
}


def portability_problems(source: str) -> list[str]:  # noqa: C901, PLR0912, PLR0915
    """Constructs that Onigmo and Python's ``re`` do not read the same way.

    Checked by walking the pattern once, outside and inside character classes:
    possessive quantifiers, atomic groups, lookbehind, unnamed capturing groups (Onigmo
    does not capture them next to named groups, Python does), duplicate group names,
    nested character-class sets and the escapes in ``_FORBIDDEN_ESCAPES``.
    """
    body, _ = split_slashes(source)
    problems: list[str] = []
    names: list[str] = []
    i = 0
    in_class = False
    n = len(body)
    while i < n:
        c = body[i]
        if c == "\\":
            nxt = body[i + 1] if i + 1 < n else ""
            if nxt in _FORBIDDEN_ESCAPES:
                problems.append(f"forbidden escape {_FORBIDDEN_ESCAPES[nxt]} at {i}")
            i += 2
            continue
        if in_class:
            if c == "[":
                problems.append(f"nested character class at {i}")
            elif c == "]":
                in_class = False
            i += 1
            continue
        if c == "[":
            in_class = True
            # a leading ']' or '^]' is a literal in both dialects
            j = i + 1
            if j < n and body[j] == "^":
                j += 1
            if j < n and body[j] == "]":
                j += 1
            i = j
            continue
        if c == "(":
            rest = body[i + 1 : i + 4]
            if not rest.startswith("?"):
                problems.append(f"unnamed capturing group at {i}: use (?:...) or (?<name>...)")
            elif rest.startswith("?>"):
                problems.append(f"atomic group at {i}")
            elif rest.startswith(("?<=", "?<!")):
                problems.append(f"lookbehind at {i}")
            elif rest.startswith("?<"):
                end = body.find(">", i)
                name = body[i + 3 : end]
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    problems.append(f"group name {name!r} must be letters, digits and _")
                names.append(name)
            elif rest.startswith("?P"):
                problems.append(f"Python-only named group syntax at {i}")
            elif rest.startswith("?") and not rest.startswith(("?:", "?=", "?!", "?#")):
                problems.append(f"inline flag or unsupported group {body[i : i + 4]!r} at {i}")
            i += 1
            continue
        if c in "*+?}" and i + 1 < n and body[i + 1] == "+":
            problems.append(f"possessive quantifier at {i}")
        i += 1
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(f"duplicate group names {duplicates}")
    return problems


# --------------------------------------------------------------------------- parsers


def _strftime_precision(moment: datetime, fmt: str) -> str:
    """``flb_aws_strftime_precision``: strftime plus %3N (ms), %9N and %L (ns)."""
    moment = moment.astimezone(UTC)
    nanos = moment.microsecond * 1000
    fmt = fmt.replace("%3N", f"{nanos // 1_000_000:03d}")
    fmt = fmt.replace("%9N", f"{nanos:09d}").replace("%L", f"{nanos:09d}")
    return moment.strftime(fmt)


def _parse_time(value: str, fluent_format: str) -> datetime | None:
    """Fluent Bit's ``time_format`` (strptime + %L fractional seconds) in Python."""
    py_format = fluent_format.replace("%L", "%f")
    text = value
    if "%L" in fluent_format:
        # Python's %f takes at most 6 digits; Fluent Bit reads up to nanoseconds.
        text = re.sub(r"(\d{2}[.,])(\d{6})\d+", r"\1\2", value, count=1)
    try:
        moment = datetime.strptime(text, py_format)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class ParseResult:
    fields: dict[str, Any]
    time: datetime | None


class Parser:
    """One entry of the YAML ``parsers`` section."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.name = str(spec["name"])
        self.format = str(spec.get("format", "")).lower()
        self.time_key = str(spec.get("time_key", "time"))
        self.time_format: str | None = spec.get("time_format")
        self.time_keep = _truthy(spec.get("time_keep", False))
        self.skip_empty = _truthy(spec.get("skip_empty_values", True))
        self.no_bare_keys = _truthy(spec.get("logfmt_no_bare_keys", False))
        self.pattern: OnigmoPattern | None = None
        self.hits = 0
        if self.format == "regex":
            if "regex" not in spec:
                raise EmulationError(f"parser {self.name}: format regex needs 'regex'")
            self.pattern = compile_onigmo(str(spec["regex"]))
        elif self.format not in {"json", "logfmt"}:
            raise EmulationError(f"parser {self.name}: format {self.format!r} is not emulated")
        if self.format == "json" and "time_key" in spec:
            raise EmulationError(f"parser {self.name}: json time_key is not emulated")
        if self.format != "regex" and spec.get("types"):
            raise EmulationError(f"parser {self.name}: types are not emulated")

    def parse(self, text: str) -> ParseResult | None:
        if self.format == "logfmt":
            result = self._parse_logfmt(text)
            self.hits += result is not None
            return result
        if self.pattern is None:
            result = self._parse_json(text)
            self.hits += result is not None
            return result
        match = self.pattern.compiled.search(text)
        if match is None:
            return None
        self.hits += 1
        fields: dict[str, Any] = {}
        parsed_time: datetime | None = None
        for name in self.pattern.compiled.groupindex:
            value = match.group(name)
            if value is None:
                value = ""
            if value == "" and self.skip_empty:
                continue
            if self.time_format and name == self.time_key:
                parsed_time = _parse_time(value, self.time_format)
                if parsed_time is None or not self.time_keep:
                    continue
            fields[name] = value
        return ParseResult(fields=fields, time=parsed_time)

    def _parse_logfmt(self, text: str) -> ParseResult | None:
        """``flb_parser_logfmt.c``: key=value pairs up to the first line break.

        Fluent Bit walks the text twice (count, then pack); a bare key with
        ``logfmt_no_bare_keys``, no pair at all, or a ``time_key`` value that does not
        parse with ``time_format`` (time_strict) fails the whole line. ``key=`` is
        ``true``, ``key=""`` the empty string, quoted values are unescaped.
        """
        fields: dict[str, Any] = {}
        parsed_time: datetime | None = None
        time_key = self.time_key if self.time_key else "time"
        for key, value, value_set, quoted, escaped in _logfmt_pairs(text):
            if self.no_bare_keys and value == "" and not value_set:
                return None
            if self.time_format and key == time_key and value != "":
                parsed_time = _parse_time(value, self.time_format)
                if parsed_time is None:
                    return None
                if not self.time_keep:
                    continue
            if value == "":
                fields[key] = "" if quoted else True
            else:
                fields[key] = _flb_unescape(value) if escaped else value
        if not fields:
            return None
        return ParseResult(fields=fields, time=parsed_time)

    @staticmethod
    def _parse_json(text: str) -> ParseResult | None:
        try:
            value = json.loads(text)
        except ValueError:
            return None
        if not isinstance(value, dict):
            return None
        return ParseResult(fields=value, time=None)


def _logfmt_ident(char: str) -> bool:
    """``ident_byte`` in flb_parser_logfmt.c: any byte above space except ``=`` and ``"``."""
    return char > " " and char not in '="'


def _logfmt_pairs(text: str) -> Iterator[tuple[str, str, bool, bool, bool]]:  # noqa: C901, PLR0912
    """(key, raw value, value_set, quoted, has_escape) as ``logfmt_parser()`` scans them."""
    i, end = 0, len(text)
    while i < end:
        while i < end and not _logfmt_ident(text[i]):
            i += 1
        if i == end:
            break
        start = i
        while i < end and _logfmt_ident(text[i]):
            i += 1
        key = text[start:i]
        value, value_set, quoted, escaped = "", False, False, False
        if i < end and text[i] == "=":
            value_set = True
            i += 1
            if i < end and text[i] == '"':
                i += 1
                quoted = True
                vstart = i
                while i < end and text[i] != '"':
                    if text[i] == "\\":
                        escaped = True
                        i += 1
                        if i == end:
                            break
                    i += 1
                value = text[vstart:i]
                if i < end and text[i] == '"':
                    i += 1
            else:
                vstart = i
                while i < end and _logfmt_ident(text[i]):
                    i += 1
                value = text[vstart:i]
        yield key, value, value_set, quoted, escaped
        if i == end:
            break
        if text[i] == "\r":
            break
        if text[i] == "\n":
            break


_FLB_SIMPLE_ESCAPES = {
    '"': '"',
    "'": "'",
    "\\": "\\",
    "/": "/",
    "n": "\n",
    "b": "\b",
    "t": "\t",
    "f": "\f",
    "r": "\r",
}
_FLB_SEQUENCE = re.compile(
    r"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{1,4})|U([0-9A-Fa-f]{1,8})|(.))", re.DOTALL
)


def _flb_unescape(value: str) -> str:
    """``flb_unescape_string_utf8``: JSON-style escapes, octal, \\x, \\u, \\U; else the char."""

    def repl(match: re.Match[str]) -> str:
        octal, hex2, hex4, hex8, other = match.groups()
        if other is not None:
            return _FLB_SIMPLE_ESCAPES.get(other, other)
        if octal is not None:
            return chr(int(octal, 8))
        code = int(hex2 or hex4 or hex8, 16)
        return chr(code) if code <= 0x10FFFF else "\ufffd"

    return _FLB_SEQUENCE.sub(repl, value)


@dataclass(frozen=True)
class MultilineRule:
    from_states: tuple[str, ...]
    pattern: OnigmoPattern
    to_state: str

    @property
    def is_start(self) -> bool:
        return "start_state" in self.from_states


class MultilineParser:
    """One entry of the YAML ``multiline_parsers`` section (``type: regex``)."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.name = str(spec["name"])
        if str(spec.get("type", "")).lower() != "regex":
            raise EmulationError(f"multiline parser {self.name}: only type regex is emulated")
        if spec.get("parser") or spec.get("key_content"):
            raise EmulationError(f"multiline parser {self.name}: parser/key_content are not emulated")
        self.flush_timeout_ms = int(spec.get("flush_timeout", 4000))
        self.rules: list[MultilineRule] = []
        # How often each rule (by position) decided a line; the tests use it for coverage.
        self.hits: Counter[int] = Counter()
        for rule in spec.get("rules") or []:
            states = tuple(s.strip() for s in str(rule["state"]).split(",") if s.strip())
            self.rules.append(
                MultilineRule(states, compile_onigmo(str(rule["regex"])), str(rule["next_state"]))
            )
        if not any(rule.is_start for rule in self.rules):
            raise EmulationError(f"multiline parser {self.name}: no start_state rule")
        # flb_ml_rule_init: for each rule, the rules whose from_states contain its to_state
        self.next_rules: dict[int, list[MultilineRule]] = {
            id(rule): [r for r in self.rules if rule.to_state in r.from_states] for rule in self.rules
        }

    def start_rule(self, line: str) -> MultilineRule | None:
        for rule in self.rules:
            if rule.is_start and rule.pattern.compiled.search(line):
                self.hits[self.rules.index(rule)] += 1
                return rule
        return None

    def continuation_rule(self, current: MultilineRule, line: str) -> MultilineRule | None:
        for rule in self.next_rules[id(current)]:
            if rule.is_start:
                continue
            if rule.pattern.compiled.search(line):
                self.hits[self.rules.index(rule)] += 1
                return rule
        return None

    def closes_at_once(self, rule: MultilineRule) -> bool:
        return any(r.is_start for r in self.next_rules[id(rule)])


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class PodMetadata:
    """What the ``kubernetes`` filter would fetch from the API server for a pod."""

    pod_name: str
    namespace_name: str
    container_name: str
    host: str
    labels: Mapping[str, str]
    pod_id: str
    docker_id: str
    container_image: str

    @property
    def log_path(self) -> str:
        name = f"{self.pod_name}_{self.namespace_name}_{self.container_name}-{self.docker_id}"
        return f"/var/log/containers/{name}.log"

    def as_record(self) -> dict[str, Any]:
        return {
            "pod_name": self.pod_name,
            "namespace_name": self.namespace_name,
            "pod_id": self.pod_id,
            "labels": dict(self.labels),
            "host": self.host,
            "container_name": self.container_name,
            "docker_id": self.docker_id,
            "container_image": self.container_image,
        }


@dataclass(frozen=True)
class LogSource:
    """Where lines come from: a file path, and for Kubernetes the pod that wrote it."""

    path: str
    pod: PodMetadata | None = None
    stream: str = "stdout"

    @classmethod
    def for_pod(cls, pod: PodMetadata, stream: str = "stdout") -> LogSource:
        return cls(path=pod.log_path, pod=pod, stream=stream)


@dataclass
class Event:
    """A record inside the pipeline: Fluent Bit's [timestamp, map]."""

    time: datetime
    body: dict[str, Any]
    source: LogSource
    tag: str


@dataclass(frozen=True)
class KinesisRecord:
    """One record as the ``kinesis_streams`` output sends it."""

    data: bytes
    time: datetime
    source: LogSource

    @property
    def record(self) -> dict[str, Any]:
        """The record as every consumer sees it (``json.loads``: last duplicate key wins)."""
        value: dict[str, Any] = json.loads(self.data)
        return value


@dataclass
class PipelineStats:
    lines_in: int = 0
    events_grouped: int = 0
    records_out: int = 0
    records_unparsed: int = 0
    skipped_long_lines: int = 0
    discarded_empty: int = 0
    discarded_oversize: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


# --------------------------------------------------------------------------- stages


class _MultilineStream:
    """flb_ml_stream_group: the pending event of one stream."""

    def __init__(self, parser: MultilineParser, key_content: str | None) -> None:
        self.parser = parser
        self.key_content = key_content
        self.rule: MultilineRule | None = None
        self.buf = ""
        self.context: Event | None = None

    def feed(self, event: Event) -> list[Event]:
        """Process one line; returns the events this line completes."""
        line = event.body.get(self.key_content) if self.key_content else event.body.get("log")
        out: list[Event] = []
        if not isinstance(line, str):
            out.extend(self.flush())
            out.append(event)
            return out
        rule: MultilineRule | None = None
        if self.rule is not None:
            rule = self.parser.continuation_rule(self.rule, line)
            if rule is not None:
                if self.buf and not self.buf.endswith("\n"):
                    self.buf += "\n"
                self.buf += "\n" if line == "" else line
        if rule is None:
            rule = self.parser.start_rule(line)
            if rule is not None:
                out.extend(self.flush())
                self.buf = line
                self.context = event
        if rule is None:
            # flb_ml_append: not processed -> flush pending, emit the line on its own
            out.extend(self.flush())
            self.buf = line
            self.context = event
            out.extend(self.flush())
            return out
        self.rule = rule
        if self.parser.closes_at_once(rule):
            out.extend(self.flush())
        return out

    def flush(self) -> list[Event]:
        if not self.buf and self.context is None:
            return []
        assert self.context is not None
        text = self.buf
        if self.key_content is None and text and not text.endswith("\n"):
            text += "\n"  # breakline_prepare: text mode ends every record with a newline
        context = self.context
        body = dict(context.body)
        body[self.key_content or "log"] = text
        self.buf = ""
        self.context = None
        self.rule = None
        return [Event(time=context.time, body=body, source=context.source, tag=context.tag)]


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"on", "true", "yes", "1"}


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def _unit_size(text: str) -> int:
    """Fluent Bit unit sizes: 32k, 1M, 5G (powers of 1024, case-insensitive, optional B)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)[bB]?\s*", text)
    if not match:
        raise EmulationError(f"not a unit size: {text!r}")
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]


def _tag_matches(pattern: str, tag: str) -> bool:
    regex = "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"
    return re.match(regex, tag) is not None


class _Filter:
    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.name = str(spec["name"])
        self.match = str(spec.get("match", "*"))

    def applies(self, tag: str) -> bool:
        return _tag_matches(self.match, tag)

    def process(self, event: Event) -> list[Event]:
        raise NotImplementedError

    def flush(self) -> list[Event]:
        return []


class _MultilineFilter(_Filter):
    def __init__(self, spec: Mapping[str, Any], multiline: Mapping[str, MultilineParser]) -> None:
        super().__init__(spec)
        names = [n.strip() for n in str(spec.get("multiline.parser", "")).split(",") if n.strip()]
        if len(names) != 1 or names[0] not in multiline:
            raise EmulationError(f"multiline filter: exactly one custom parser is emulated, got {names}")
        if str(spec.get("mode", "parser")) != "parser":
            raise EmulationError("multiline filter: only mode parser is emulated")
        self.parser = multiline[names[0]]
        self.key_content = str(spec.get("multiline.key_content", "log"))
        self.streams: dict[str, _MultilineStream] = {}

    def process(self, event: Event) -> list[Event]:
        stream = self.streams.setdefault(event.tag, _MultilineStream(self.parser, self.key_content))
        return stream.feed(event)

    def flush(self) -> list[Event]:
        out: list[Event] = []
        for stream in self.streams.values():
            out.extend(stream.flush())
        return out


class _ParserFilter(_Filter):
    def __init__(self, spec: Mapping[str, Any], parsers: Mapping[str, Parser]) -> None:
        super().__init__(spec)
        self.key_name = str(spec["key_name"])
        self.reserve_data = _truthy(spec.get("reserve_data", False))
        self.preserve_key = _truthy(spec.get("preserve_key", False))
        self.parsers: list[Parser] = []
        for name in _as_list(spec.get("parser")):
            if name not in parsers:
                raise EmulationError(f"parser filter: parser {name!r} is not defined")
            self.parsers.append(parsers[name])

    def process(self, event: Event) -> list[Event]:
        value = event.body.get(self.key_name)
        if not isinstance(value, str):
            return [event]
        for parser in self.parsers:
            result = parser.parse(value)
            if result is None:
                continue
            body = dict(result.fields)
            if self.reserve_data:
                for key, val in event.body.items():
                    if key == self.key_name and not self.preserve_key:
                        continue
                    # Fluent Bit appends the old keys after the parsed ones, even a key the
                    # parser also produced; json.loads downstream keeps the later value.
                    body[key] = val
            elif self.preserve_key:
                body[self.key_name] = value
            time = result.time or event.time
            return [Event(time=time, body=body, source=event.source, tag=event.tag)]
        return [event]


class _KubernetesFilter(_Filter):
    def process(self, event: Event) -> list[Event]:
        if event.source.pod is None:
            return [event]
        body = dict(event.body)
        body["kubernetes"] = event.source.pod.as_record()
        return [Event(time=event.time, body=body, source=event.source, tag=event.tag)]


class _ModifyFilter(_Filter):
    _ONE_ARG = frozenset({"remove"})
    _TWO_ARGS = frozenset({"set", "add", "rename", "hard_rename", "copy", "hard_copy"})

    def __init__(self, spec: Mapping[str, Any], env: Mapping[str, str]) -> None:
        super().__init__(spec)
        self.rules: list[tuple[str, list[str]]] = []
        for key, value in spec.items():
            op = str(key).lower()
            if op in {"name", "match"}:
                continue
            if op not in self._ONE_ARG | self._TWO_ARGS:
                raise EmulationError(f"modify filter: {op!r} is not emulated")
            for item in _as_list(value):
                args = _substitute_env(item, env, where=f"modify {op}").split(None, 1)
                expected = 1 if op in self._ONE_ARG else 2
                if len(args) != expected:
                    raise EmulationError(f"modify filter: {op} {item!r} needs {expected} argument(s)")
                self.rules.append((op, args))

    def process(self, event: Event) -> list[Event]:
        body = dict(event.body)
        for op, args in self.rules:
            if op == "remove":
                body.pop(args[0], None)
            elif op == "add":
                body.setdefault(args[0], args[1])
            elif op == "set":
                body[args[0]] = args[1]
            elif op in {"rename", "hard_rename"}:
                if args[0] in body and (op == "hard_rename" or args[1] not in body):
                    body = {(args[1] if k == args[0] else k): v for k, v in body.items() if k != args[1]}
            elif (
                op in {"copy", "hard_copy"} and args[0] in body and (op == "hard_copy" or args[1] not in body)
            ):
                body[args[1]] = body[args[0]]
        return [Event(time=event.time, body=body, source=event.source, tag=event.tag)]


def _substitute_env(value: str, env: Mapping[str, str], *, where: str) -> str:
    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env or env[name] == "":
            raise EmulationError(f"environment variable {name} is not set ({where})")
        return env[name]

    return _ENV_REF.sub(repl, value)


# --------------------------------------------------------------------------- pipeline


@dataclass
class FluentBitConfig:
    path: Path
    parsers: dict[str, Parser]
    multiline: dict[str, MultilineParser]
    inputs: list[dict[str, Any]]
    filters: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    raw: dict[str, Any] = field(repr=False)


def load_config(path: str | Path) -> FluentBitConfig:
    """Read a Fluent Bit YAML file and everything it includes."""
    main = Path(path).resolve()
    documents = _read_with_includes(main)
    parsers: dict[str, Parser] = {}
    multiline: dict[str, MultilineParser] = {}
    pipeline: dict[str, Any] = {}
    for doc in documents:
        for spec in doc.get("parsers") or []:
            parser = Parser(spec)
            parsers[parser.name] = parser
        for spec in doc.get("multiline_parsers") or []:
            ml = MultilineParser(spec)
            multiline[ml.name] = ml
        if "pipeline" in doc:
            pipeline = doc["pipeline"] or {}
    return FluentBitConfig(
        path=main,
        parsers=parsers,
        multiline=multiline,
        inputs=list(pipeline.get("inputs") or []),
        filters=list(pipeline.get("filters") or []),
        outputs=list(pipeline.get("outputs") or []),
        raw=documents[0],
    )


def _read_with_includes(path: Path, seen: frozenset[Path] = frozenset()) -> list[dict[str, Any]]:
    if path in seen:
        raise EmulationError(f"include loop at {path}")
    with path.open(encoding="utf-8") as handle:
        doc = yaml.safe_load(handle) or {}
    if not isinstance(doc, dict):
        raise EmulationError(f"{path}: top level must be a mapping")
    docs = [doc]
    for include in doc.get("includes") or []:
        docs.extend(_read_with_includes((path.parent / str(include)).resolve(), seen | {path}))
    return docs


class FluentBitPipeline:
    """Runs lines through one of our Fluent Bit configurations.

    >>> pipeline = FluentBitPipeline.load(FILES_CONFIG, env={...})   # doctest: +SKIP
    >>> records = pipeline.run(lines, LogSource("/var/log/app/checkout.log"), time=now)  # doctest: +SKIP
    """

    def __init__(self, config: FluentBitConfig, env: Mapping[str, str]) -> None:
        self.config = config
        self.env = dict(env)
        if len(config.inputs) != 1 or config.inputs[0].get("name") != "tail":
            raise EmulationError("exactly one tail input is emulated")
        tail = config.inputs[0]
        self.tag_prefix = str(tail.get("tag", "tail.*")).split("*")[0]
        self.path_key: str | None = tail.get("path_key")
        # tail: a line longer than buffer_max_size is skipped (skip_long_lines on) or stops
        # the file; either way it never reaches the output, so it is counted here.
        self.buffer_max_size = _unit_size(str(tail.get("buffer_max_size", "32k")))
        ml_names = [n.strip() for n in str(tail.get("multiline.parser", "")).split(",") if n.strip()]
        self.container_framing = bool(ml_names) and set(ml_names) <= {"cri", "docker"}
        self.input_multiline: MultilineParser | None = None
        if ml_names and not self.container_framing:
            if len(ml_names) != 1 or ml_names[0] not in config.multiline:
                raise EmulationError(f"tail: one custom multiline parser is emulated, got {ml_names}")
            self.input_multiline = config.multiline[ml_names[0]]
        self.filter_specs = config.filters
        outputs = [o for o in config.outputs if o.get("name") == "kinesis_streams"]
        if len(outputs) != 1:
            raise EmulationError("exactly one kinesis_streams output is emulated")
        out = outputs[0]
        self.time_key: str | None = out.get("time_key")
        self.time_key_format = str(out.get("time_key_format", "%Y-%m-%dT%H:%M:%S"))
        if out.get("log_key"):
            raise EmulationError("kinesis_streams log_key is not emulated")
        self.stats = PipelineStats()

    @classmethod
    def load(
        cls, config: str | Path = KUBERNETES_CONFIG, env: Mapping[str, str] | None = None
    ) -> FluentBitPipeline:
        return cls(load_config(config), os.environ if env is None else env)

    @property
    def is_kubernetes(self) -> bool:
        return any(spec.get("name") == "kubernetes" for spec in self.filter_specs)

    def session(self) -> PipelineSession:
        return PipelineSession(self)

    def run(
        self,
        lines: Iterable[str],
        source: LogSource,
        *,
        time: datetime | Callable[[], datetime] | None = None,
    ) -> list[KinesisRecord]:
        """All records for ``lines`` from one source, flushing at the end."""
        session = self.session()
        out: list[KinesisRecord] = []
        for line in lines:
            out.extend(session.feed(line, source, time=time))
        out.extend(session.close())
        return out

    def tag_for(self, source: LogSource) -> str:
        return self.tag_prefix + source.path.strip("/").replace("/", ".")

    def to_kinesis(self, event: Event) -> KinesisRecord | None:
        """plugins/out_kinesis_streams/kinesis_api.c: process_event()."""
        text = json.dumps(event.body, separators=(",", ":"), ensure_ascii=True)
        if len(text) <= 2:
            self.stats.discarded_empty += 1
            return None
        if len(text) + 1 >= MAX_EVENT_SIZE:
            self.stats.discarded_oversize += 1
            return None
        if self.time_key:
            stamp = _strftime_precision(event.time, self.time_key_format)
            text = text[:-1] + "," + json.dumps(self.time_key) + ":" + json.dumps(stamp) + "}"
        data = (text + "\n").encode("utf-8")
        if len(data) >= MAX_EVENT_SIZE:
            self.stats.discarded_oversize += 1
            return None
        self.stats.records_out += 1
        if "log" in event.body:
            self.stats.records_unparsed += 1
        return KinesisRecord(data=data, time=event.time, source=event.source)


class PipelineSession:
    """Feeds lines from any number of sources; keeps per-stream multiline state."""

    def __init__(self, pipeline: FluentBitPipeline) -> None:
        self.pipeline = pipeline
        config = pipeline.config
        self.filters: list[_Filter] = []
        for spec in pipeline.filter_specs:
            name = spec.get("name")
            if name == "multiline":
                self.filters.append(_MultilineFilter(spec, config.multiline))
            elif name == "parser":
                self.filters.append(_ParserFilter(spec, config.parsers))
            elif name == "kubernetes":
                self.filters.append(_KubernetesFilter(spec))
            elif name == "modify":
                self.filters.append(_ModifyFilter(spec, pipeline.env))
            else:
                raise EmulationError(f"filter {name!r} is not emulated")
        self.input_streams: dict[str, _MultilineStream] = {}

    def feed(
        self,
        line: str,
        source: LogSource,
        *,
        time: datetime | Callable[[], datetime] | None = None,
    ) -> list[KinesisRecord]:
        """One raw line (without its newline) as the application wrote it."""
        pipeline = self.pipeline
        pipeline.stats.lines_in += 1
        if len(line.encode("utf-8", "surrogateescape")) + 1 > pipeline.buffer_max_size:
            pipeline.stats.skipped_long_lines += 1
            return []
        moment = time() if callable(time) else (time or datetime.now(UTC))
        tag = pipeline.tag_for(source)
        body: dict[str, Any] = {"log": line}
        if pipeline.container_framing:
            body["stream"] = source.stream
        if pipeline.path_key:
            body[pipeline.path_key] = source.path
        event = Event(time=moment, body=body, source=source, tag=tag)
        if pipeline.input_multiline is not None:
            stream = self.input_streams.setdefault(tag, _MultilineStream(pipeline.input_multiline, None))
            events = stream.feed(event)
        else:
            events = [event]
        return self._through_filters(events, 0)

    def close(self) -> list[KinesisRecord]:
        """End of input: flush pending multiline events (Fluent Bit's flush_timeout)."""
        out: list[KinesisRecord] = []
        for stream in self.input_streams.values():
            out.extend(self._through_filters(stream.flush(), 0))
        for index, filt in enumerate(self.filters):
            out.extend(self._through_filters(filt.flush(), index + 1))
        return out

    def _through_filters(self, events: list[Event], start: int) -> list[KinesisRecord]:
        current = events
        for filt in self.filters[start:]:
            nxt: list[Event] = []
            for event in current:
                if filt.applies(event.tag):
                    nxt.extend(filt.process(event))
                else:
                    nxt.append(event)
            current = nxt
        out: list[KinesisRecord] = []
        for event in current:
            self.pipeline.stats.events_grouped += 1
            record = self.pipeline.to_kinesis(event)
            if record is not None:
                out.append(record)
        return out


def iter_file_records(
    path: str | Path,
    pipeline: FluentBitPipeline,
    *,
    source: LogSource | None = None,
    time: datetime | Callable[[], datetime] | None = None,
) -> Iterator[KinesisRecord]:
    """Stream a raw log file through the pipeline, as ``tail`` would read it."""
    src = source or LogSource(path=str(Path(path).resolve()))
    session = pipeline.session()
    with Path(path).open(encoding="utf-8", errors="replace", newline="") as handle:
        for raw in handle:
            yield from session.feed(raw.rstrip("\r\n"), src, time=time)
    yield from session.close()


# --------------------------------------------------------------------------- delivery


class PutRecordsClient(Protocol):
    """The one Kinesis call the output makes (a boto3 Kinesis client satisfies it)."""

    def put_records(self, *, StreamName: str, Records: list[dict[str, Any]]) -> Mapping[str, Any]: ...


@dataclass
class DeliveryReport:
    records_in: int = 0
    records_sent: int = 0
    requests: int = 0
    retried_records: int = 0
    throttled_requests: int = 0
    failed: list[tuple[bytes, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "records_in": self.records_in,
            "records_sent": self.records_sent,
            "requests": self.requests,
            "retried_records": self.retried_records,
            "throttled_requests": self.throttled_requests,
            "records_failed": len(self.failed),
        }


_RETRYABLE_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "InternalFailure",
    "ServiceUnavailable",
    "KMSThrottlingException",
    "LimitExceededException",
}


class KinesisStreamsOutput:
    """PutRecords batching the way ``kinesis_streams`` does it, with per-record retries.

    Batches hold at most 500 records and stay under 5 MiB by Fluent Bit's own accounting
    (base64 size + 48 bytes per record). Partition keys are random per record like the
    plugin's (10 instance characters + a djb2 hash of the tag and the clock). Unlike the
    plugin, which resends a whole batch when some records fail, only the failed records
    are resent, with exponential backoff and jitter; records still failing after
    ``max_attempts`` are kept in the report with their error code, never dropped quietly.
    """

    def __init__(
        self,
        client: PutRecordsClient,
        stream: str,
        *,
        max_attempts: int = 8,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.stream = stream
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep or _time.sleep
        self.rng = rng or random.Random()  # noqa: S311 - partition keys and jitter, not secrets
        self.instance_id = "".join(self.rng.choice(string.ascii_letters + string.digits) for _ in range(10))
        self.report = DeliveryReport()
        self._batch: list[dict[str, Any]] = []
        self._batch_size = PUT_RECORDS_HEADER_LEN + PUT_RECORDS_FOOTER_LEN + len(stream)

    def partition_key(self, tag: str) -> str:
        mask = (1 << 64) - 1
        h = 5381
        for byte in tag.encode():
            h = ((h << 5) + h + byte) & mask
        now = _time.time_ns()
        h2 = (5381 * (now // 1_000_000_000) * (now % 1_000_000_000)) & mask
        return f"{self.instance_id}{h % 7919}{h2 % 7919}"

    def add(self, data: bytes, tag: str = "kube.cali.loggen") -> None:
        self.report.records_in += 1
        if len(data) >= MAX_EVENT_SIZE:
            self.report.failed.append((data, "RecordTooLarge"))
            return
        event_bytes = (len(data) + 2) // 3 * 4 + PUT_RECORDS_PER_RECORD_LEN
        if self._batch and (self._batch_size + event_bytes > PUT_RECORDS_PAYLOAD_SIZE):
            self.flush()
        self._batch.append({"Data": data, "PartitionKey": self.partition_key(tag)})
        self._batch_size += event_bytes
        if len(self._batch) >= MAX_EVENTS_PER_PUT:
            self.flush()

    def flush(self) -> None:
        pending, self._batch = self._batch, []
        self._batch_size = PUT_RECORDS_HEADER_LEN + PUT_RECORDS_FOOTER_LEN + len(self.stream)
        attempt = 0
        while pending:
            attempt += 1
            self.report.requests += 1
            try:
                response = self.client.put_records(StreamName=self.stream, Records=pending)
            except Exception as exc:
                code = _error_code(exc)
                if code not in _RETRYABLE_CODES or attempt >= self.max_attempts:
                    self.report.failed.extend((r["Data"], code) for r in pending)
                    if code not in _RETRYABLE_CODES:
                        raise
                    return
                self.report.throttled_requests += 1
                self._backoff(attempt)
                continue
            results = list(response.get("Records", []))
            failed = [(rec, res) for rec, res in zip(pending, results, strict=True) if res.get("ErrorCode")]
            self.report.records_sent += len(pending) - len(failed)
            if not failed:
                return
            if attempt >= self.max_attempts:
                self.report.failed.extend((rec["Data"], str(res.get("ErrorCode"))) for rec, res in failed)
                return
            self.report.retried_records += len(failed)
            pending = [rec for rec, _ in failed]
            self._backoff(attempt)

    def close(self) -> DeliveryReport:
        self.flush()
        return self.report

    def _backoff(self, attempt: int) -> None:
        delay = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        self.sleep(self.rng.uniform(0, delay))


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__
