"""Fluent Bit's regex, JSON and logfmt parsers and its multiline rules."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cali_local.fluentbit.config import EmulationError
from cali_local.fluentbit.regexes import OnigmoPattern, compile_onigmo


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"on", "true", "yes", "1"}


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


def _logfmt_skip(text: str, i: int, *, ident: bool) -> int:
    """The index of the first character from ``i`` whose ``ident_byte`` is not ``ident``."""
    end = len(text)
    while i < end and _logfmt_ident(text[i]) == ident:
        i += 1
    return i


def _logfmt_quoted(text: str, i: int) -> tuple[str, bool, int]:
    """(raw value, has_escape, index after the closing quote) from ``i``, just past the opening quote.

    An unterminated quote runs to the end of the text, as in ``logfmt_parser()``.
    """
    end, start, escaped = len(text), i, False
    while i < end and text[i] != '"':
        if text[i] == "\\":
            escaped = True
            i += 1
            if i == end:
                break
        i += 1
    value = text[start:i]
    if i < end and text[i] == '"':
        i += 1
    return value, escaped, i


def _logfmt_value(text: str, i: int) -> tuple[str, bool, bool, int]:
    """(raw value, quoted, has_escape, index after the value) from ``i``, just past the ``=``."""
    if i < len(text) and text[i] == '"':
        value, escaped, i = _logfmt_quoted(text, i + 1)
        return value, True, escaped, i
    value_end = _logfmt_skip(text, i, ident=True)
    return text[i:value_end], False, False, value_end


def _logfmt_pairs(text: str) -> Iterator[tuple[str, str, bool, bool, bool]]:
    """(key, raw value, value_set, quoted, has_escape) as ``logfmt_parser()`` scans them."""
    i, end = 0, len(text)
    while True:
        i = _logfmt_skip(text, i, ident=False)
        if i == end:
            break
        start = i
        i = _logfmt_skip(text, i, ident=True)
        key = text[start:i]
        value, value_set, quoted, escaped = "", False, False, False
        if i < end and text[i] == "=":
            value_set = True
            value, quoted, escaped, i = _logfmt_value(text, i + 1)
        yield key, value, value_set, quoted, escaped
        # a line break right after a pair ends the scan, as in logfmt_parser()
        if i == end or text[i] in "\r\n":
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
