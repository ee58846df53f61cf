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

# Characters that end a token. Splitting on them (and keeping them in the template) is
# what lets "uid=0", "(pid 42)" and "host:port" keep their constant part.
_DELIMS = r"\s=:,;()\[\]{}\"'<>|"
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_WEEKDAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_UNIT = (r"(?:[KMGTPE]i?B|[KMGTPE]|B|bytes?|ns|us|µs|ms|s|secs?|seconds?|m|mins?|minutes?"
         r"|h|hours?|d|days?|%)")
_TLD = r"(?:com|net|org|edu|gov|mil|int|io|co|us|uk|de|fr|jp|cn|ru|br|in|au|ca|nl|info|biz|local|internal|lan|cloud|dev|app)"

# Multi-word variables first, each behind a cheap substring test in ``template``.
_QUOTED = re.compile(r"\"[^\"\n]*\"|(?<![\w'])'[^'\n]*'(?![\w'])")
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")
_KEY_VALUE = re.compile(r"=(?:\"[^\"]*\"|'[^']*'|[^\s,;&)\]}\"'=][^\s,;&)\]}\"']*)")
_IPV6_COMPRESSED = re.compile(r"(?<![\w:])[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4})*::[0-9a-fA-F:]*(?:%\w+)?")
# A run of dots is a leader between a label and its value: "threshold......12".
_DOT_LEADER = re.compile(r"\.{2,}(?=[^\s.])")
# The one lexical rule: the word after "user" names an account ("session opened for
# user alice", "Invalid user admin from ..."). Account names rarely carry digits, and
# "user" is the entity auth, database and web logs all name this way.
# Function words and verb forms after "user" are prose ("user is", "user created"), not
# a name.
_USER_NAME = re.compile(
    r"\b([Uu]ser:? )(?!<\*>|(?:is|was|has|had|not|no|does|did|can|cannot|could|will|would|must|"
    r"should|may|might|with|from|to|in|on|at|by|for|of|and|or|the|a|an)\b|[a-z]+(?:ed|ing)\b)"
    rf"[^{_DELIMS}]+"
)
_EMPTY_PAIRS = (("()", "(<*>)"), ("[]", "[<*>]"), ("{}", "{<*>}"))

# One pass over the text that only starts at token boundaries (the look-behind), so it
# costs a few character tests per token. At a token start the first branch that
# matches wins, most specific first. Possessive quantifiers avoid backtracking.
_TOKEN_VARIABLE = re.compile(
    rf"(?<![^{_DELIMS}])(?:"
    # month-name dates: "Sun Dec 04 04:47:44 2005", "Jul 24 02:38:22"
    rf"(?:{_WEEKDAY}\s+)?{_MONTH}\s+\d{{1,2}}(?:\s+\d{{1,2}}:\d{{2}}(?::\d{{2}})?)?"
    r"(?:\s+[A-Z]{3,4}(?=\s+\d{4}))?(?:\s+\d{4})?(?![\w])"
    # MAC addresses and other colon-separated hex pairs, digits or not: "FF:F2:9C:DC"
    r"|[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){2,}(?![\w:])"
    # a number with a unit of size or duration: "512 KB", "1.5s", "30 ms", "99.9%"
    rf"|[-+]?\d+(?:\.\d+)?\s?{_UNIT}(?![\w])"
    # absolute or relative paths, including ones without digits
    rf"|(?:~|\.{{1,2}})?/[^{_DELIMS}]*+"
    # e-mail addresses and host names with a well-known top-level domain
    rf"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
    rf"|(?:[A-Za-z0-9-]+\.)+{_TLD}(?![\w.-])"
    # anything else that carries a digit: numbers, ids, hex, IPs, versions, timestamps
    rf"|[^{_DELIMS}\d]*+\d[^{_DELIMS}]*+"
    r")"
)
# Consecutive wildcards (lists, "ip:port", dates) are one variable of varying length.
_WILDCARD_RUNS = re.compile(r"<\*>(?:[\s,.:;/_+-]*<\*>)+")
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
        # The substring tests are ~50x cheaper than a regex pass that finds nothing.
        if "://" in text:
            text = _URL.sub(WILDCARD, text)
        if '"' in text or "'" in text:
            text = _QUOTED.sub(_keep_quotes, text)
        if "=" in text:
            text = _KEY_VALUE.sub("=<*>", text)
        if "ser " in text:
            text = _USER_NAME.sub(r"\1<*>", text)
        if ".." in text:
            text = _DOT_LEADER.sub(r"\g<0> ", text)
        if "::" in text:
            text = _IPV6_COMPRESSED.sub(WILDCARD, text)
        for empty, masked in _EMPTY_PAIRS:
            if empty in text:
                # An empty pair is a variable that happened to be empty: "from 1.2.3.4 ()".
                text = text.replace(empty, masked)
        text = _TOKEN_VARIABLE.sub(WILDCARD, text)
        if "<*>" in text:
            text = _WILDCARD_RUNS.sub(WILDCARD, text)
        return " ".join(text.split())

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


def _keep_quotes(match: re.Match[str]) -> str:
    quote = match.group(0)[0]
    return f"{quote}{WILDCARD}{quote}"


def _digest(key: str) -> str:
    material = f"{ALGORITHM_VERSION}\x00{key}".encode()
    return hashlib.blake2b(material, digest_size=8).hexdigest()


_DEFAULT = Fingerprinter()


def fingerprint(message: str, stack_trace: str | None = None) -> Fingerprint:
    """Fingerprint of a log event with the default, generic configuration."""
    return _DEFAULT.fingerprint(message, stack_trace)
