"""Log fingerprints: a stable id for the template of a log event.

``fingerprint("Connection to 10.0.0.7:5432 timed out after 30000 ms")`` and the same line
with another address and delay get the same id, because the variable parts are masked
before hashing: ``Connection to <*> timed out after <*>``.

Why a stateless masker and not a learning parser such as Drain: the log consumer runs in
many Lambda containers at once, on many shards, across deploys. A parser that learns
templates from the lines it has seen gives the same line different ids in different
containers (and after every cold start), which breaks throttling and incident grouping.
Here the id is a pure function of the text: the same event gets the same id everywhere,
forever, unless ``ALGORITHM_VERSION`` is changed on purpose.

Variables are recognised by their shape, never by words of a particular log source:
URLs, quoted values, ``key=value`` values, IPv6, month-name dates, MAC addresses, paths,
e-mails, host names and any token that carries a digit (numbers, ids, hex, IPv4 with
ports, UUIDs, timestamps, versions, sizes and durations). Tokens end at whitespace and
at ``= : , ; ( ) [ ] { } " ' < > |``, which stay in the template. One lexical rule is
added: the word after "user" is an account name. Stack traces are grouped by exception
type and top application frames (``cali.fingerprint.stack``). See
``docs/fingerprint.md`` for the design and the benchmark.

This runs once per kept record in the log consumer, so it is written for speed: the
regular expressions are compiled once, the expensive passes are skipped by plain
substring tests, and the main pass only does work at token boundaries.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cali.fingerprint.stack import DEFAULT_FRAMEWORK_MARKERS, parse_exception_header, parse_trace

# Part of every hashed key: changing the masking rules changes ids, and bumping this
# makes that a visible, conscious decision (the golden-id unit test pins it).
ALGORITHM_VERSION = "cali-fp-1"
WILDCARD = "<*>"

# Characters that end a token. Splitting on them and keeping them in the template is
# what lets "uid=0", "(pid 42)" and "host:port" keep their constant part.
_DELIMS = r"\s\u00a0\u3000=:,;()\[\]{}\"'<>|"  # (\s is ASCII-only in the token pass)
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_WEEKDAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
# Units whose choice follows the magnitude ("512 B" / "1.2 KB", "30 ms" / "2 s").
_UNIT = (
    r"(?:[KMGTPE]i?B|[KMGTPE]|B|bytes?|ns|us|µs|ms|s|secs?|seconds?|m|mins?|minutes?"
    r"|h|hours?|d|days?|%)"
)
# Host names without digits are recognised by a well-known top-level domain, or a
# cluster-internal suffix. Country codes that are also common file extensions or words
# (.py .js .sh .pl .id .so ...) are left out on purpose.
_TLDS = (
    "com",
    "net",
    "org",
    "edu",
    "gov",
    "mil",
    "int",
    "biz",
    "lan",
    "dev",
    "app",
    "io",
    "co",
    "us",
    "uk",
    "de",
    "fr",
    "jp",
    "cn",
    "ru",
    "br",
    "in",
    "au",
    "ca",
    "nl",
    "eu",
    "hk",
    "tw",
    "kr",
    "sg",
    "it",
    "es",
    "se",
    "ch",
    "at",
    "be",
    "nz",
    "ie",
    "za",
    "mx",
    "info",
    "arpa",
    "local",
    "cloud",
    "internal",
    "svc",
)

# --- passes over the whole message, each behind a cheap substring test ---------------
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")
# A quote at a word boundary, so that apostrophes ("can't") are not quotes.
_QUOTED = re.compile(r"\"[^\"\n]*\"|(?<![\w'])'[^'\n]*'(?![\w'])")
# The value of key=value is variable whatever its shape (user=alice, state=RUNNING);
# an empty value stays empty, it is often a different event ("rhost=" vs "rhost=x").
# A bracketed value ("Key (id)=(42)") is left to the token pass, which keeps the brackets.
_KEY_VALUE = re.compile(r"=(?:\"[^\"]*\"|'[^']*'|[^\s,;&()\[\]{}<>\"'=][^\s,;&)\]}\"']*)")
# The word after "user" names an account ("session opened for user alice", "Invalid
# user admin from ..."): the one lexical rule, because account names rarely carry
# digits and auth, database and web servers all word it this way. Function words after
# "user" are prose ("user is", "user not found"). It is a branch of the token pass
# (a look-behind at each token start), which is cheaper than a pass of its own.
_USER_NAME = (
    # cheapest test first: most token starts fail the first look-behind at its first char
    r"(?<=ser )(?<=[Uu]ser )(?<![\w-][Uu]ser )"
    r"(?!(?:is|was|has|had|not|no|does|did|can|cannot|could|will|would|must|should|may|might"
    rf"|with|from|to|in|on|at|by|for|of|and|or|the|a|an)(?![^{_DELIMS}]))[^{_DELIMS}]++"
)
# A run of dots is a leader between a label and its value: "threshold......12".
# (Three or more dots after a word: "../x" and "a..b" inside paths are not leaders.)
_DOT_LEADER = re.compile(r"(?<=\w)\.{3,}+(?=[^\s.])")
# Compressed IPv6 ("fe80::1%eth0", "::1"); full forms are digit-bearing tokens anyway.
_IPV6_COMPRESSED = re.compile(r"(?<![\w:])[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4})*::[0-9a-fA-F:]*(?:%\w+)?")
# A free-standing empty pair is a variable that happened to be empty: "from 1.2.3.4 ()"
# (not a call such as "init()", where the pair follows a word).
_EMPTY_PAIRS = ((" ()", " (<*>)"), (" []", " [<*>]"), (" {}", " {<*>}"))
_HAS_TLD = re.compile(rf"\.(?:{'|'.join(_TLDS)})(?![\w.-])")
# Look-behinds need a fixed width, hence one per length of top-level domain.
_TLD_END = (
    "(?:"
    + "|".join(
        rf"(?<=[\w-]\.(?:{'|'.join(t for t in _TLDS if len(t) == n)}))"
        for n in sorted({len(t) for t in _TLDS})
    )
    + ")"
)


def _token_variables(*, host_names: bool, user_names: bool) -> re.Pattern[str]:
    """The main pass: one regex that only starts at token boundaries (the look-behind).

    At a token start the first branch that matches wins, most specific first;
    possessive quantifiers keep it from backtracking, so a token costs a few tests.
    """
    host = f"|{_TLD_END}" if host_names else ""
    user = f"{_USER_NAME}|" if user_names else ""
    return re.compile(
        rf"(?<![^{_DELIMS}])(?:{user}"
        # month-name dates: "Sun Dec 04 04:47:44 2005", "Jul 24 02:38:22", "Jun 27 12:50:35 PDT 2005"
        rf"(?=[A-Z][a-z][a-z]\s)(?:{_WEEKDAY}\s+)?{_MONTH}\s+\d{{1,2}}"
        r"(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?(?:\s+[A-Z]{3,4}(?=\s+\d{4}))?(?:\s+\d{4})?(?!\w)"
        # MAC addresses and other colon-separated hex pairs, digits or not: "FF:F2:9C:DC";
        # full IPv6 addresses ("2001:db8:0:0:0:0:2:fa", "fdff:ffff:...:fffa"). Not a time
        # with a fraction ("12:30:45.123"), which the digit branch takes token by token.
        # (Bounded repeats: an adversarial "a:a:a:..." line must stay linear.)
        # They must end the token, else the digit branch takes the parts ("a:b:c1/x").
        rf"|[0-9A-Fa-f]{{2}}(?::[0-9A-Fa-f]{{2}}){{2,7}}(?![^{_DELIMS}]|:)"
        rf"|[0-9A-Fa-f]{{1,4}}(?::[0-9A-Fa-f]{{1,4}}){{7}}(?![^{_DELIMS}]|:)"  # eight groups need no digit
        rf"|(?=[0-9A-Fa-f:]{{0,38}}\d)[0-9A-Fa-f]{{1,4}}(?::[0-9A-Fa-f]{{1,4}}){{2,7}}(?![^{_DELIMS}]|:)"
        # absolute, home and relative paths, digits or not; Windows and UNC paths
        rf"|[~.]{{0,2}}/[^{_DELIMS}]*+|(?:[A-Za-z]:)?\\[^{_DELIMS}]*+"
        # One scan of the token decides the rest: it is a variable when it carries a
        # digit (numbers, ids, hex, IPv4:port, UUIDs, timestamps, versions, "1.5s"), an
        # "@" inside (e-mail addresses, user@host) or ends in a top-level domain.
        rf"|[^{_DELIMS}\d@]*+(?:\d[^{_DELIMS}]*+|(?<=[^{_DELIMS}])@[^{_DELIMS}]*+{host})"
        r")",
        # ASCII classes are ~10% faster; non-ASCII letters still make up tokens, only
        # digits and token-ending whitespace are the ASCII ones.
        re.ASCII,
    )


# Testing every token for a top-level domain costs a third of the masking time, so the
# host-name branch only runs on lines where a quick search finds such a suffix at all;
# likewise the user-name branch only where "ser" occurs.
_TOKENS = {
    (hosts, users): _token_variables(host_names=hosts, user_names=users)
    for hosts in (False, True)
    for users in (False, True)
}

# Consecutive wildcards (lists, "ip:port", split dates) are one variable of varying
# length, and a unit after a number goes with it: one pass from the literal "<*>".
_MASKED = rf"<\*>(?:\s?(?=[KMGTPEBbnuµmshd%]){_UNIT}(?!\w))?"
_WILDCARD_RUNS = re.compile(rf"{_MASKED}(?:[\s,.:;/_+-]*{_MASKED})*")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The template of a log event and its stable id (16 lowercase hex characters)."""

    id: str
    template: str
    exception_type: str | None = None


class Fingerprinter:
    """Masks variables, parses stack traces and hashes the result.

    The defaults are the one generic configuration used everywhere. The knobs exist for
    experiments and the benchmark, not for tuning per log source; ids are comparable only
    between fingerprinters with the same settings.
    """

    def __init__(
        self,
        *,
        max_frames: int = 3,
        framework_markers: Sequence[str] = DEFAULT_FRAMEWORK_MARKERS,
        max_message_chars: int = 2048,
        mask_user_names: bool = True,
    ) -> None:
        if max_frames < 0 or max_message_chars < 1:
            raise ValueError("max_frames must be >= 0 and max_message_chars >= 1")
        self._max_frames = max_frames
        self._framework_markers = tuple(framework_markers)
        # Bounds the cost of one pathological record (a whole file logged as one line).
        self._max_message_chars = max_message_chars
        self._mask_user_names = mask_user_names

    def template(self, message: str) -> str:
        """``message`` with every variable replaced by ``<*>`` and whitespace normalised."""
        text = message[: self._max_message_chars]
        # Substring tests are ~50x cheaper than a regex pass that finds nothing.
        if "://" in text:
            text = _URL.sub(WILDCARD, text)
        if '"' in text or "'" in text:
            text = _QUOTED.sub(_quoted_wildcard, text)
        if "=" in text:
            text = _KEY_VALUE.sub("=<*>", text)
        if "..." in text:
            text = _DOT_LEADER.sub(r"\g<0> ", text)
        if "::" in text:
            text = _IPV6_COMPRESSED.sub(WILDCARD, text)
        if "()" in text or "[]" in text or "{}" in text:
            for empty, masked in _EMPTY_PAIRS:
                text = text.replace(empty, masked)
        hosts = _HAS_TLD.search(text) is not None
        users = self._mask_user_names and "ser" in text
        text = _TOKENS[hosts, users].sub(WILDCARD, text)
        if WILDCARD in text:
            text = _WILDCARD_RUNS.sub(WILDCARD, text)
        return " ".join(text.split())

    def fingerprint(self, message: str, stack_trace: str | None = None) -> Fingerprint:
        """Fingerprint one event.

        A multi-line ``message`` without ``stack_trace`` is split the way Fluent Bit's
        multiline parsers join events: first line the message, the rest the trace.
        """
        if stack_trace is None and "\n" in message:
            message, _, stack_trace = message.partition("\n")
        template = self.template(message)
        if not stack_trace or stack_trace.isspace():
            return Fingerprint(_digest(template), template, None)

        trace = parse_trace(
            stack_trace, max_frames=self._max_frames, framework_markers=self._framework_markers
        )
        exc_type, exc_message = trace.exception_type, trace.exception_message
        if exc_type is None:
            header = parse_exception_header(message)
            if header is not None:
                # The first line is the exception itself ("java.lang.X: detail" followed
                # by frames): its detail varies, so it is shown but not the template.
                exc_type, exc_message = header
                template = ""
        if exc_type is None and not trace.frames:
            # Continuation lines that are no trace we know: the first line decides.
            return Fingerprint(_digest(template), template, None)

        # The exception message is left out of the key: it carries values that no
        # masking catches ("Duplicate entry 'x' for key 'y'") and the type plus the
        # frames already say which failure this is.
        key = "\x1e".join((template, exc_type or "", "\x1f".join(trace.frames)))
        shown = template
        if exc_type:
            detail = self.template(exc_message or "")
            label = f"{exc_type}: {detail}" if detail else exc_type
            shown = f"{shown} [{label}]" if shown else label
        if trace.frames:
            shown = f"{shown} at {' < '.join(trace.frames)}"
        return Fingerprint(_digest(key), shown, exc_type)


def _quoted_wildcard(match: re.Match[str]) -> str:
    quote = match.group(0)[0]
    return f"{quote}{WILDCARD}{quote}"


_PERSON = ALGORITHM_VERSION.encode()


def _digest(key: str) -> str:
    # blake2b, not hash(): Python salts str hashes per process (PYTHONHASHSEED). The
    # algorithm version personalises the hash, so a new version means new ids.
    # surrogatepass: a lone surrogate (undecodable bytes kept by surrogateescape) must
    # not make fingerprinting raise.
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8, person=_PERSON).hexdigest()


_DEFAULT = Fingerprinter()


def fingerprint(message: str, stack_trace: str | None = None) -> Fingerprint:
    """Fingerprint of a log event with the default, generic configuration."""
    return _DEFAULT.fingerprint(message, stack_trace)
