"""The filters: multiline, parser, kubernetes, modify."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cali_local.fluentbit.config import _ENV_REF, EmulationError
from cali_local.fluentbit.parsers import MultilineParser, MultilineRule, Parser, _truthy
from cali_local.fluentbit.records import Event


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
