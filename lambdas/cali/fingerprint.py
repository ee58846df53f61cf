"""Log fingerprints: a stable id for the template of a log event.

``fingerprint("Connection to 10.0.0.7:5432 timed out after 30000 ms")`` and the same line
with another address and delay get the same id, because the variable parts are masked
before hashing: ``Connection to <*> timed out after <*> ms``.

Why a stateless masker and not a learning parser such as Drain: the log consumer runs in
many Lambda containers at once, on many shards, across deploys. A parser that learns
templates from the lines it has seen gives the same line different ids in different
containers (and after every cold start), which breaks throttling and incident grouping.
Here the id is a pure function of the text: the same event gets the same id everywhere,
forever, unless the algorithm version below is changed on purpose.

Variables are recognised by their shape, never by words of a particular log source:
URLs, e-mails, UUIDs, timestamps, IPs with ports, paths, quoted values, ``key=value``
values, hex and any token that carries a digit. See ``docs/fingerprinting.md``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cali.fingerprint_stack import DEFAULT_FRAMEWORK_MARKERS, parse_exception_header, parse_trace

# Part of every hashed key: changing the masking rules changes ids, and bumping this
# makes that a visible, conscious decision (the golden-id unit test pins it).
ALGORITHM_VERSION = "cali-fp-1"
WILDCARD = "<*>"

_HEX = r"[0-9a-fA-F]"
# Order matters: at one position the first alternative that matches wins, so the
# longest, most specific shapes come first. Everything becomes one wildcard.
_VARIABLE_PATTERNS: tuple[str, ...] = (
    # URL with scheme
    r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+",
    # e-mail
    r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b",
    # UUID
    rf"\b{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}\b",
    # ISO-8601 / SQL timestamps and dates
    r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b",
    # Apache/CLF time 10/Oct/2000:13:55:36 -0700
    r"\b\d{1,2}/[A-Z][a-z]{2}/\d{4}(?::\d{2}){3}(?:\s[+-]\d{4})?",
    # "Sun Dec 04 04:47:44 2005", "Dec 4 04:47:44"
    r"\b(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+)?(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r"\s+\d{1,2}\s+\d{2}:\d{2}:\d{2}(?:\s+\d{4})?",
    # time of day
    r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b",
    # IPv6 (at least two colons, a digit somewhere, optional %zone)
    r"(?<![\w:])(?=[0-9a-fA-F:]*\d)(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{1,4}(?:%\w+)?(?![\w:])",
    # IPv4 with optional port
    r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\w.])",
    # 0x-prefixed hex
    r"\b0[xX][0-9a-fA-F]+\b",
    # absolute path (unix) or windows path
    r"(?<![\w/.~-])(?:~|\.{1,2})?/(?:[\w.@%+~-]+/)*[\w.@%+~-]+/?",
    r"\b[A-Za-z]:\\(?:[^\\\s]+\\)*[^\\\s]*",
    # double- and single-quoted values (a quote at a word boundary, not an apostrophe)
    r"\"[^\"\n]*\"",
    r"(?<![\w'])'[^'\n]*'(?![\w'])",
    # any other token that carries a digit (ids, sizes, durations, versions, numbers)
    r"[^\s=:,;()\[\]{}\"'<>|]*\d[^\s=:,;()\[\]{}\"'<>|]*",
)
_VARIABLES = re.compile("|".join(f"(?:{p})" for p in _VARIABLE_PATTERNS))
# The value of key=value is variable whatever its shape (user=alice, state=RUNNING).
_KEY_VALUE = re.compile(r"(\b[A-Za-z_][\w.-]*)=(?:\"[^\"]*\"|'[^']*'|[^\s,;&)\]}]*)")
# Consecutive wildcards (lists, "ip:port", "a.b") mean one variable of varying length.
_WILDCARD_RUNS = re.compile(r"<\*>(?:[\s,.:;/_-]*<\*>)+")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The template of a log event and its stable id."""

    id: str
    template: str
    exception_type: str | None = None


class Fingerprinter:
    """Masks variables, parses stack traces and hashes the result.

    The defaults are the one generic configuration used everywhere; the knobs exist for
    experiments and for the benchmark, not for per-source tuning.
    """

    def __init__(
        self,
        *,
        max_frames: int = 3,
        framework_markers: Sequence[str] = DEFAULT_FRAMEWORK_MARKERS,
        max_message_chars: int = 2048,
    ) -> None:
        self._max_frames = max_frames
        self._framework_markers = tuple(framework_markers)
        self._max_message_chars = max_message_chars

    def template(self, message: str) -> str:
        """The message with every variable replaced by ``<*>``."""
        text = message[: self._max_message_chars]
        text = _KEY_VALUE.sub(r"\1=<*>", text)
        text = _VARIABLES.sub(WILDCARD, text)
        text = _WILDCARD_RUNS.sub(WILDCARD, text)
        return _SPACES.sub(" ", text).strip()

    def fingerprint(self, message: str, stack_trace: str | None = None) -> Fingerprint:
        """Fingerprint one event; a multi-line message without ``stack_trace`` is split."""
        if stack_trace is None and "\n" in message:
            message, _, stack_trace = message.partition("\n")
        template = self.template(message)
        if not stack_trace or not stack_trace.strip():
            return Fingerprint(_digest(template), template, None)
        trace = parse_trace(stack_trace, max_frames=self._max_frames,
                            framework_markers=self._framework_markers)
        exc_type, exc_message = trace.exception_type, trace.exception_message
        if exc_type is None:
            header = parse_exception_header(message)
            if header is not None:
                # The first line is the exception itself: its text is not the template.
                exc_type, exc_message = header
                template = ""
        if exc_type is None and not trace.frames:
            # Continuation lines that are not a trace we know: keep the first line only.
            return Fingerprint(_digest(template), template, None)
        frames = "\x1f".join(trace.frames)
        key = "\x1e".join((template, exc_type or "", frames))
        shown = template
        if exc_type:
            detail = self.template(exc_message or "")
            label = f"{exc_type}: {detail}" if detail else exc_type
            shown = f"{shown} [{label}]" if shown else label
        if trace.frames:
            shown += " at " + " < ".join(trace.frames)
        return Fingerprint(_digest(key), shown, exc_type)


def _digest(key: str) -> str:
    material = f"{ALGORITHM_VERSION}\x00{key}".encode()
    return hashlib.blake2b(material, digest_size=8).hexdigest()


_DEFAULT = Fingerprinter()


def fingerprint(message: str, stack_trace: str | None = None) -> Fingerprint:
    """Fingerprint of a log event with the default, generic configuration."""
    return _DEFAULT.fingerprint(message, stack_trace)
