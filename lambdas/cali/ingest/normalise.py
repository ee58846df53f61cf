# ruff: noqa: E501  (one format per row: a pattern and its example read best unbroken)
"""The line normaliser: one raw log line -> time, level, message and header fields.

Every event whose text still carries its header (Fluent Bit's unparsed ``log``, CloudWatch
Logs events, raw input files) goes through ``LineNormaliser.parse`` (``parts`` on the
consumer's path: the same reading as a plain tuple). Headers are recognised
by *shape*, never by where the line came from: ``FORMATS`` below is the single table of
shapes, tried in order, first match wins. Each entry names the format, its compiled
pattern, how the time is read and where the level comes from.

Conventions inside the patterns (named groups):

- time parts ``Y`` (4-digit year) or ``y`` (2-digit), ``m`` (month number) or ``mon``
  (month name), ``d``, ``H``, ``M``, ``S``, ``f`` (fraction digits), ``tz`` (``Z``,
  ``+hh:mm``, ``+hhmm``, ``UTC``), ``ampm``; or ``epoch`` (seconds or milliseconds). A
  missing year is inferred from the arrival time (a December line read in January is
  last year's); a missing zone means UTC.
- the level from ``level`` / ``level_b`` (any spelling ``Level.parse`` and ``LEVEL_WORDS``
  know), ``letter`` (``V D I W E F A`` of logcat, klog, Rails), ``pri`` (syslog
  ``<PRI>``) or ``status`` (HTTP access lines: 5xx ERROR, 4xx WARN, configurable);
- ``msg`` is the message; every other named group (logger, thread, pid, host, ...) is
  kept in ``fields``.

A line with no level word gets one from ``ImpliedSeverity`` (``level_source="inferred"``)
when it says something only a failure says (authentication failure, segfault, timed
out...), else none (``"default"``): the caller decides what no level means (INFO).

Speed: the normaliser sits on the consumer's hot path, so candidates are pre-selected by
the line's first character (a syslog line is never tried against ISO patterns) and the
candidates are tried together, in table order, as few combined regexes (``_SameTime``),
compiled once on first use. Rewrites that keep every match the same make the patterns
cheaper to fail: level words grouped by first letter, possessive repeats where the next
token cannot start inside the repeat (a thread name up to its closing bracket). Behind a
shared time, only the rows that can start with the line's next non-blank character are
tried (``first_chars``), and an ISO time is matched without its groups. A matched row is
read by a function written for it when its step is compiled (``_Row``,
``_reader_source``: its group numbers, field names and time and level rules as
constants), and a time's second is read once (``_calendar_code``), the line's fraction
added to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from typing import Any, Final

import orjson

from cali.contracts.levels import Level
from cali.ingest.decoding import MAX_NESTING, too_deep
from cali.ingest.first_chars import FirstChars, first_chars

# What a line says about itself as the hot path passes it on: the fields of ``ParsedLine``
# in its order (format, timestamp, level, level_source, message, fields). A plain tuple,
# because building a dataclass per line costs as much as a row's reader; ``parse`` wraps
# the tuple once, ``LineNormaliser.parts`` (the consumer's path) hands it on as it is.
Parts = tuple[str, datetime | None, Level | None, str, str, dict[str, Any]]

# ----------------------------------------------------------------------------- level words

# Spellings seen in real headers beyond ``Level.parse``'s aliases: PostgreSQL's LOG and
# statement context, .NET's 4-letter console levels, logrus' TTY abbreviations, BGL's
# FAILURE, Windows' Information/Verbose.
_EXTRA_LEVELS: Final[dict[str, Level]] = {
    "LOG": Level.INFO,
    "NORMAL": Level.INFO,  # Kubernetes event type
    "STATEMENT": Level.INFO,
    "DETAIL": Level.INFO,
    "HINT": Level.INFO,
    "CONTEXT": Level.INFO,
    "INFORMATIONAL": Level.INFO,
    "NOTE": Level.INFO,
    "FAILURE": Level.ERROR,
    "FATAL ERROR": Level.FATAL,  # the Go runtime
    "FAIL": Level.ERROR,
    "ERRO": Level.ERROR,
    "EROR": Level.ERROR,
    "CRT": Level.FATAL,
    "FTL": Level.FATAL,
    "FATA": Level.FATAL,
    "PANI": Level.FATAL,
    "DEBU": Level.DEBUG,
    "DBUG": Level.DEBUG,
    "TRCE": Level.TRACE,
    "VRB": Level.DEBUG,
    "WARNING": Level.WARN,
}

# Words accepted as a level in a header position (matched case-insensitively there).
LEVEL_WORDS: Final = (
    "TRACE|DEBUG|INFO|INFORMATION|INFORMATIONAL|NOTICE|WARN|WARNING|ERROR|ERR|FATAL|CRIT|CRITICAL"
    "|SEVERE|ALERT|EMERG|EMERGENCY|PANIC|FAILURE|VERBOSE|FINEST|FINER|FINE|CONFIG"
    "|DBG|DBUG|DEBU|TRC|TRCE|INF|WRN|ERRO|EROR|ERR|FTL|FATA|PANI|CRT|VRB|FAIL|NOTE"
)


def _by_first_letter(words: str) -> str:
    """``words`` ("A|B|...") as one alternative per first letter, the words' order kept within
    each: ``re`` tries the same words in the same order on any text (words with different
    first letters never both match), but skips a whole letter's words at once."""
    rests: dict[str, list[str]] = {}
    for word in words.split("|"):
        rests.setdefault(word[0], []).append(re.escape(word[1:]))
    return "|".join(f"{re.escape(first)}(?:{'|'.join(tails)})" for first, tails in rests.items())


_LEVEL_ALT: Final = _by_first_letter(LEVEL_WORDS)  # in patterns, in place of LEVEL_WORDS

_LETTERS: Final[dict[str, Level]] = {
    "V": Level.TRACE,
    "T": Level.TRACE,
    "D": Level.DEBUG,
    "I": Level.INFO,
    "N": Level.INFO,
    "W": Level.WARN,
    "E": Level.ERROR,
    "F": Level.FATAL,
    "A": Level.FATAL,  # Android's ASSERT / Ruby's ANY
    "C": Level.FATAL,
}
_MARKS: Final = {".": Level.DEBUG, "-": Level.DEBUG, "*": Level.INFO, "#": Level.WARN}
_SYSLOG_SEVERITY: Final = (
    Level.FATAL,
    Level.FATAL,
    Level.FATAL,
    Level.ERROR,
    Level.WARN,
    Level.INFO,
    Level.INFO,
    Level.DEBUG,
)


def level_of_word(word: str) -> Level | None:
    """A header's level word in any case ("error", "Error", "E", "fail") or None."""
    cached = _WORD_LEVELS.get(word, _MISSING)
    if cached is not _MISSING:
        return cached  # type: ignore[return-value]
    level = _level_of_word(word)
    if len(_WORD_LEVELS) < 4096:  # level words are few; any other word is rarely repeated
        _WORD_LEVELS[word] = level
    return level


_MISSING: Final = object()
_WORD_LEVELS: dict[str, Level | None] = {}


def _level_of_word(word: str) -> Level | None:
    text = word.strip().upper()
    extra = _EXTRA_LEVELS.get(text)
    if extra is not None:
        return extra
    if text in _KNOWN_NAMES:
        return Level.parse(text)
    return None


_KNOWN_NAMES: Final = frozenset(
    (
        *("TRACE", "TRC", "FINEST", "FINER", "DEBUG", "DBG", "FINE", "VERBOSE", "INFO", "INF"),
        *("INFORMATION", "NOTICE", "CONFIG", "WARN", "WRN", "ERROR", "ERR", "SEVERE", "FATAL"),
        *("CRITICAL", "CRIT", "EMERG", "EMERGENCY", "ALERT", "PANIC", "DPANIC"),
    )
)

# ----------------------------------------------------------------------------- time

_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}
_ZONE_NAMES: Final = {"Z": 0, "UTC": 0, "GMT": 0, "z": 0}
_TIME_KEYS: Final = frozenset(("Y", "y", "m", "mon", "d", "H", "M", "S", "f", "tz", "ampm", "epoch"))


def _zone(text: str) -> timezone | None:
    """``Z``, ``UTC``, ``+01:00``, ``-0500`` -> its zone (None: unknown, read as UTC)."""
    cached = _ZONES.get(text, _MISSING)
    if cached is not _MISSING:
        return cached  # type: ignore[return-value]
    zone = _parse_zone(text)
    if len(_ZONES) < 1024:  # a host writes one or two offsets
        _ZONES[text] = zone
    return zone


_ZONES: dict[str, timezone | None] = {}


def _parse_zone(text: str) -> timezone | None:
    text = text.strip()
    if text in _ZONE_NAMES:
        return UTC
    if len(text) >= 5 and text[0] in "+-":
        digits = text[1:].replace(":", "")
        if len(digits) == 4 and digits.isdigit():
            minutes = int(digits[:2]) * 60 + int(digits[2:])
            return timezone(timedelta(minutes=-minutes if text[0] == "-" else minutes))
    return None


def _epoch(text: str) -> datetime | None:
    return _epoch_number(float(text))


def _epoch_number(number: float) -> datetime | None:
    if number > 1e11:  # 13 digits: milliseconds
        number /= 1000
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _year(groups: Mapping[str, str | None]) -> int | None:
    if groups.get("Y"):
        return int(groups["Y"] or 0)
    if groups.get("y"):
        return 2000 + int(groups["y"] or 0)
    return None


_YEAR_SLACK: Final = timedelta(days=1)


def _from_iso(text: str) -> datetime | None:
    """The common ISO-8601 forms through ``datetime.fromisoformat`` (C); None: use the groups."""
    if text.endswith((" UTC", " GMT")):
        text = text[:-4] + "+00:00"
    text = text.replace(",", ".", 1)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        # Parsing again with the zone costs a sixth of ``moment.replace(tzinfo=UTC)``.
        return datetime.fromisoformat(text + "+00:00")
    return moment.astimezone(UTC)


def time_from_groups(groups: Mapping[str, Any], arrival: datetime) -> datetime | None:
    """Build a UTC datetime from a match's time groups (see the module docstring)."""
    iso = groups.get("_iso")
    if iso:
        fast = _from_iso(iso)
        if fast is not None:
            return fast
        head = groups.get("_head")
        if isinstance(head, re.Match):
            groups = head.groupdict()
    moment, yearless = _calendar_time(groups, arrival.year)
    return _year_before(moment, arrival) if yearless and moment is not None else moment


def _calendar_time(groups: Mapping[str, Any], arrival_year: int) -> tuple[datetime | None, bool]:
    """(the time the groups say, in the arrival's year when they name none; whether they named
    none). Depends on the arrival only through its year, so a time can be cached per year."""
    epoch = groups.get("epoch")
    if epoch:
        return _epoch(epoch), False
    mon = groups.get("mon")
    month = _MONTHS.get(mon[:3].lower(), 0) if mon else int(groups.get("m") or 0)
    day = int(groups.get("d") or 0)
    hour = int(groups.get("H") or 0)
    ampm = groups.get("ampm")
    if ampm:
        hour = hour % 12 + (12 if ampm.upper() == "PM" else 0)
    fraction = groups.get("f") or ""
    year = _year(groups)
    zone_text = groups.get("tz")
    zone = _zone(zone_text) if zone_text else None
    try:
        # Built with its zone: ``datetime.replace(tzinfo=...)`` costs more than the rest.
        moment = datetime(
            arrival_year if year is None else year,
            month,
            day,
            hour,
            int(groups.get("M") or 0),
            int(groups.get("S") or 0),
            int(fraction[:6].ljust(6, "0")) if fraction else 0,
            UTC if zone is None else zone,
        )
    except ValueError:
        return None, False
    if zone is not None and zone is not UTC:
        moment = moment.astimezone(UTC)
    return moment, year is None


def _year_before(moment: datetime, arrival: datetime) -> datetime:
    """No year in the line (syslog, logcat, klog): the arrival's year, or the year before
    when that would put the line in the future (a December line read in January)."""
    if moment <= arrival + _YEAR_SLACK:
        return moment
    try:
        return moment.replace(year=moment.year - 1)
    except ValueError:  # 29 February
        return moment - timedelta(days=365)


# ----------------------------------------------------------------------------- table


class LevelRule(Enum):
    """Where a format's level comes from."""

    WORD = "word"  # a level word (group ``level`` or ``level_b``)
    LETTER = "letter"  # a single letter (group ``letter``)
    PRI = "pri"  # syslog <PRI> (group ``pri``)
    STATUS = "status"  # HTTP status (group ``status``)
    MARK = "mark"  # Redis' one-character level (group ``mark``)
    NONE = "none"  # the format has no level: sniff the message, then infer


@dataclass(frozen=True, slots=True)
class LineFormat:
    """One row of the format table."""

    name: str
    pattern: re.Pattern[str]
    level: LevelRule
    starts: str  # characters a matching line can start with; "" = any
    example: str
    nested: bool = False  # ``msg`` is itself a line to normalise (CFDR prefix)
    # Speed: a row that starts with one of the shared time shapes is matched in two steps,
    # the shape once per line (``lead``, shared by every such row) and the rest (``tail``).
    lead: re.Pattern[str] | None = None
    tail: re.Pattern[str] | None = None
    needle: str = ""  # a substring every matching line holds (checked before the pattern)

    def groups(self, text: str) -> dict[str, Any] | None:
        """The named groups of ``text`` matched by this row, or None."""
        if self.needle and self.needle not in text:
            return None
        if self.lead is None or self.tail is None:
            match = self.pattern.match(text)
            return None if match is None else match.groupdict()
        head = self.lead.match(text)
        if head is None:
            return None
        rest = self.tail.match(text, head.end())
        if rest is None:
            return None
        return head.groupdict() | rest.groupdict()


DIGITS: Final = "0123456789"
UPPER: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER: Final = "abcdefghijklmnopqrstuvwxyz"

_FRAC = r"(?:[.,](?P<f>\d{1,9}))?"
_HMS = r"(?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})"
_TZ = r"(?P<tz>Z|[+-]\d{2}:?\d{2}| UTC| GMT| [+-]\d{2}:?\d{2})?"
_MON = r"(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_WDAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
TS_ISO: Final = rf"(?P<Y>\d{{4}})-(?P<m>\d{{2}})-(?P<d>\d{{2}})[T ]{_HMS}{_FRAC}{_TZ}"
TS_SLASH: Final = rf"(?P<Y>\d{{4}})/(?P<m>\d{{2}})/(?P<d>\d{{2}})[ T]{_HMS}{_FRAC}{_TZ}"
TS_DOTTED: Final = (
    r"(?P<Y>\d{4})\.(?P<m>\d{2})\.(?P<d>\d{2})[ -](?P<H>\d{2})[:.](?P<M>\d{2})[:.](?P<S>\d{2})"
    rf"{_FRAC}{_TZ}"
)
TS_DASHED: Final = (  # 2005-06-03-15.42.50.675872 (IBM RAS logs)
    r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})-(?P<H>\d{2})\.(?P<M>\d{2})\.(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?"
)
TS_YY_SLASH: Final = rf"(?P<y>\d{{2}})/(?P<m>\d{{2}})/(?P<d>\d{{2}}) {_HMS}{_FRAC}"
TS_YYMMDD: Final = r"(?P<y>\d{2})(?P<m>\d{2})(?P<d>\d{2}) (?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})"
TS_COMPACT: Final = (
    r"(?P<Y>\d{4})(?P<m>\d{2})(?P<d>\d{2})-(?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})(?:[:.](?P<f>\d{1,6}))?"
)
TS_MONTH_DAY: Final = rf"(?P<m>\d{{2}})-(?P<d>\d{{2}}) {_HMS}{_FRAC}"
TS_SYSLOG: Final = rf"{_MON} {{1,2}}(?P<d>\d{{1,2}}) (?:(?P<Y>\d{{4}}) )?{_HMS}{_FRAC}"
TS_APACHE: Final = rf"{_WDAY} {_MON} (?P<d>\d{{1,2}}) {_HMS}{_FRAC} (?P<Y>\d{{4}})"
TS_CLF: Final = rf"(?P<d>\d{{2}})/{_MON}/(?P<Y>\d{{4}}):{_HMS} (?P<tz>[+-]\d{{4}})"
TS_DAY_MON: Final = rf"(?P<d>\d{{1,2}}) {_MON} (?P<Y>\d{{4}}) {_HMS}{_FRAC}"
TS_US: Final = (
    r"(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<Y>\d{4}),? (?P<H>\d{1,2}):(?P<M>\d{2}):(?P<S>\d{2})"
    r"(?: (?P<ampm>[AaPp][Mm]))?"
)
TS_EPOCH: Final = r"(?P<epoch>1\d{9}(?:\.\d{1,9})?|1\d{12})"
TS_EPOCH_SCI: Final = r"(?P<epoch>\d\.\d+e\+09)"  # zap's default float seconds: 1.7954598014567e+09
_ISO_LEAD: Final = re.compile(TS_ISO)

# ``\d{2}`` outside a character class and not made lazy or possessive, or repeated again.
_FIXED_DIGITS: Final = re.compile(r"\\d\{([2-4])\}(?![?+*{])|\\.|\[\^?\]?(?:\\.|[^\]\\])*\]|.", re.DOTALL)


def _unrolled(pattern: str) -> str:
    r"""``pattern`` with each short run of digits written out (``\d{4}`` -> ``\d\d\d\d``): the
    same matches, but ``re`` then checks each digit inline instead of entering a repeat
    (about 120 instructions less per run; a time has five or six)."""
    return _FIXED_DIGITS.sub(
        lambda part: r"\d" * int(part.group(1)) if part.group(1) else part.group(0), pattern
    )


# The ISO lead with its zone as its only group (``_SameTime.matcher``).
_LEAN_ISO: Final = re.compile(_unrolled(re.sub(r"\(\?P<(?!tz>)\w+>", "(?:", TS_ISO)))

# The time shapes rows may start with, longest first (``_fmt`` splits such rows in two).
_TIME_SHAPES: Final = tuple(
    sorted(
        (TS_ISO, TS_SLASH, TS_DOTTED, TS_DASHED, TS_YY_SLASH, TS_YYMMDD, TS_COMPACT, TS_MONTH_DAY),
        key=len,
        reverse=True,
    )
)

# Level in a known header position: upper-case bare word, or any case when bracketed.
_LV = rf"(?P<level>(?i:{_LEVEL_ALT}))"
_LV_UPPER = rf"(?P<level>{_LEVEL_ALT})"
_LV_ANY = (
    rf"(?:\[\s*(?P<level_b>(?i:{_LEVEL_ALT}))\s*\]|<(?P<level_a>(?i:{_LEVEL_ALT}))>|{_LV_UPPER}(?![\w.-])"
    rf"|(?P<level_c>(?i:{_LEVEL_ALT}))(?=:\s))"
)
_SYSLOG_TAG = r"(?P<app>[^\s\[:]+(?:\([^)\s]*\))?(?: \d[\w.]*(?=:))?|[^\[:]{1,48}?(?=\[\d+\]:))(?:\[(?P<pid>\d+)\])?(?: \([^)]*\))?"
_THREAD = r"\[(?P<thread>[^\]]*+)\]"
# zap's console encoder: TAB-separated level, logger (optional), caller, message
_TSV = rf"\t{_LV}\t(?:(?:(?P<logger>[\w.-]+)\t)?(?P<caller>[\w./-]+:\d+)\t)?(?P<msg>.*)"
_LOGGER = r"(?P<logger>[A-Za-z_$][\w$.\-]*+(?:\$[\w$]+)?)"


_LEADS: dict[str, re.Pattern[str]] = {}


def _fmt(
    name: str,
    pattern: str,
    level: LevelRule,
    starts: str,
    example: str,
    *,
    nested: bool = False,
    needle: str = "",
) -> LineFormat:
    compiled = re.compile(pattern, re.DOTALL)
    for shape in _TIME_SHAPES:
        if pattern.startswith(shape):
            lead = _LEADS.setdefault(shape, re.compile(shape, re.DOTALL))
            tail = re.compile(pattern[len(shape) :], re.DOTALL)
            return LineFormat(name, compiled, level, starts, example, nested, lead, tail, needle)
    return LineFormat(name, compiled, level, starts, example, nested, needle=needle)


W, L, P, S, N = LevelRule.WORD, LevelRule.LETTER, LevelRule.PRI, LevelRule.STATUS, LevelRule.NONE

# The format table: the single source of truth (``cali parse``, the consumer, the indexer,
# ``cali demo`` and docs/ingest.md all read it). Order matters: specific shapes first.
FORMATS: Final[tuple[LineFormat, ...]] = (
    # --- syslog with <PRI> -------------------------------------------------------------
    _fmt(
        "syslog-5424",
        rf"<(?P<pri>\d{{1,3}})>1 (?:{TS_ISO}|-) (?P<host>\S+) (?P<app>\S+) (?P<pid>\S+) (?P<msgid>\S+) "
        r"(?P<sd>-|(?:\[[^\]]*\])+) ?(?:\ufeff)?(?P<msg>.*)",
        P,
        "<",
        "<165>1 2026-11-23T10:00:01.003Z web1 nginx 1234 ID47 - upstream timed out",
    ),
    _fmt(
        "syslog-3164",
        rf"<(?P<pri>\d{{1,3}})>{TS_SYSLOG} (?P<host>\S+) {_SYSLOG_TAG}: ?(?P<msg>.*)",
        P,
        "<",
        "<34>Nov 23 10:00:01 web1 su[77]: 'su root' failed for lonvick on /dev/pts/8",
    ),
    _fmt(
        "syslog-3164-iso",
        rf"<(?P<pri>\d{{1,3}})>{TS_ISO} (?P<host>\S+) {_SYSLOG_TAG}: ?(?P<msg>.*)",
        P,
        "<",
        "<11>2026-11-23T10:00:01.123+00:00 web1 app[77]: disk full",
    ),
    # --- supercomputer logs (USENIX CFDR: BG/L, Thunderbird, Spirit, Liberty): a label
    # ("-" for none), epoch seconds, date and node before the node's own line.
    _fmt(
        "cfdr",
        rf"(?P<label>[^\s\d]\S*) {TS_EPOCH} \d{{4}}\.\d{{2}}\.\d{{2}} (?P<node>\S+) (?P<msg>.*)",
        N,
        "-" + UPPER,  # "-" (no label) or an upper-case alert category
        "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO cache",
        nested=True,
    ),
    # --- Apache httpd error log (2.2 and 2.4) -----------------------------------------
    _fmt(
        "apache-error",
        rf"\[{TS_APACHE}\] \[(?:(?P<module>[\w-]+):)?(?P<level>\w+)\]"
        r"(?: \[pid (?P<pid>\d+)(?::tid (?P<tid>\d+))?\])?(?: (?P<code>AH\d+):)? (?P<msg>.*)",
        W,
        "[",
        "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
    ),
    # --- HTTP access logs (NCSA common/combined: nginx, Apache, gunicorn, Traefik) -----
    _fmt(
        "http-access",
        rf"(?P<client>\S++) (?P<ident>\S++) (?P<user>\S++) \[{TS_CLF}\] "
        r"(?P<msg>\"(?P<request>[^\"]*)\" (?P<status>\d{3}) (?P<bytes>\S+).*)",
        S,
        "",
        '10.0.0.1 - - [23/Nov/2026:10:00:01 +0000] "GET /api HTTP/1.1" 502 157 "-" "curl/8.5"',
        needle='] "',
    ),
    # Django's runserver / django.server: [23/Nov/2026 10:00:01] "GET / HTTP/1.1" 500 145
    _fmt(
        "django-server",
        r"\[(?P<d>\d{2})/" + _MON + r"/(?P<Y>\d{4})[ :]" + _HMS + r"\] "
        r"(?P<msg>\"(?P<request>[^\"]*)\" (?P<status>\d{3}) (?P<bytes>\S+).*)",
        S,
        "[",
        '[23/Nov/2026 10:00:01] "GET /orders/ HTTP/1.1" 500 145',
    ),
    # --- bracketed-time formats ------------------------------------------------------
    # Elasticsearch: [2026-11-23T10:00:01,123][WARN ][o.e.c.r.a.DiskThresholdMonitor] [node-1] msg
    _fmt(
        "elasticsearch",
        rf"\[{TS_ISO}\]\[{_LV}\s*\]\[(?P<logger>[^\]]+)\]\s*(?:\[(?P<node>[^\]]*)\] )?(?P<msg>.*)",
        W,
        "[",
        "[2026-11-23T10:00:01,123][WARN ][o.e.c.r.a.DiskThresholdMonitor] [node-1] high disk watermark",
    ),
    # Flask default: [2026-11-23 10:00:01,456] ERROR in app: msg
    _fmt(
        "flask",
        rf"\[{TS_ISO}\] {_LV} in (?P<logger>[^\s:]+): (?P<msg>.*)",
        W,
        "[",
        "[2026-11-23 10:00:01,456] ERROR in app: Exception on /checkout [POST]",
    ),
    # Kafka / ZooKeeper 3.5+ style log4j: [2026-11-23 10:00:01,123] ERROR msg (kafka.server.ReplicaManager)
    _fmt(
        "kafka",
        rf"\[{TS_ISO}\] {_LV}\s+(?P<msg>.*?)(?: \((?P<logger>[\w.$]+)\))?\s*$",
        W,
        "[",
        "[2026-11-23 10:00:01,123] ERROR Error processing fetch (kafka.server.ReplicaManager)",
    ),
    # gunicorn error log: [2026-11-23 10:00:01 +0000] [12345] [ERROR] msg
    _fmt(
        "gunicorn",
        rf"\[{TS_ISO}\] \[(?P<pid>\d+)\] \[{_LV}\] (?P<msg>.*)",
        W,
        "[",
        "[2026-11-23 10:00:01 +0000] [12345] [ERROR] Exception in worker process",
    ),
    # Serilog / .NET short console: [10:00:01 ERR] msg, or with a date
    _fmt(
        "serilog",
        rf"\[(?:{TS_ISO}|\d{{2}}:\d{{2}}:\d{{2}}(?:\.\d+)?) {_LV}\] (?P<msg>.*)",
        W,
        "[",
        "[10:00:01 ERR] Payment 42 failed",
    ),
    # Proxifier-style [MM.dd HH:mm:ss] program - msg
    _fmt(
        "bracket-month-day",
        rf"\[(?P<m>\d{{2}})\.(?P<d>\d{{2}}) {_HMS}\] (?P<program>\S+) - (?P<msg>.*)",
        N,
        "[",
        "[10.30 16:49:06] chrome.exe - proxy.example.com:5070 close, 0 bytes sent",
    ),
    # Any other bracketed ISO time: [2026-11-23 10:00:01.123] [ERROR] msg / [ts] ERROR msg
    _fmt(
        "bracket-iso",
        rf"\[{TS_ISO}\]\s*(?:\[(?P<thread>[^\]]*)\]\s*)??(?:{_LV_ANY}:?\s+)?(?:[-:|]\s+)?(?P<msg>.*)",
        W,
        "[",
        "[2026-11-23 10:00:01.123] [ERROR] disk full",
    ),
    # pino-pretty: [10:00:01.123] ERROR (1234 on host): msg
    _fmt(
        "pino-pretty",
        rf"\[(?:{TS_ISO}|\d{{2}}:\d{{2}}:\d{{2}}\.\d{{3}})\] {_LV_UPPER} \((?:(?P<name>[^)/]+)/)?(?P<pid>\d+) on "
        r"(?P<host>[^)]+)\): (?P<msg>.*)",
        W,
        "[",
        "[10:00:01.123] ERROR (1234 on web-1): request failed",
    ),
    # --- ISO timestamp first ------------------------------------------------------------
    # Spring Boot 2/3 default console: ts LEVEL pid --- [app] [thread] [trace] logger : msg
    _fmt(
        "spring-boot",
        rf"{TS_ISO}\s++{_LV_UPPER}\s++(?:\[(?P<service>[^,\]\s]*+),(?P<trace_id>[0-9a-f]*+),(?P<span_id>[0-9a-f]*+)"
        r"(?:,[^\]]*+)?\]\s++)?(?P<pid>\d+) --- (?:\[(?P<app>[^\]]*+)\] )?\[\s*(?P<thread>[^\]]*+)\] "
        r"(?:\[(?:(?P<otel_trace_id>[0-9a-f]{32})-(?P<otel_span_id>[0-9a-f]{16}))?\s*\] )?(?P<logger>\S++)\s+: (?P<msg>.*)",
        W,
        DIGITS,
        "2026-11-23T18:48:39.123Z ERROR 1 --- [payments] [nio-8080-exec-4] c.a.p.PaymentService : charge failed",
        needle=" --- ",
    ),
    # MySQL 8 error log: 2026-11-23T10:00:01.123456Z 0 [ERROR] [MY-010000] [Server] msg
    _fmt(
        "mysql",
        rf"{TS_ISO} (?P<thread>\d+) \[(?P<level>\w+)\](?: \[(?P<code>MY-\d+)\])?(?: \[(?P<subsystem>\w+)\])? "
        r"(?P<msg>.*)",
        W,
        DIGITS,
        "2026-11-23T10:00:01.123456Z 0 [ERROR] [MY-010119] [Server] Aborting",
        needle="[",
    ),
    # PostgreSQL default: 2026-11-23 10:00:01.123 UTC [1234] ERROR:  msg
    _fmt(
        "postgresql",
        rf"{TS_ISO}(?: \w++)? \[(?P<pid>\d+)\](?: (?P<user>\S+)@(?P<db>\S+))? "
        r"(?P<level>LOG|ERROR|WARNING|FATAL|PANIC|INFO|NOTICE|DEBUG\d?|STATEMENT|DETAIL|HINT|CONTEXT):\s+"
        r"(?P<msg>.*)",
        W,
        DIGITS,
        '2026-11-23 10:00:01.123 UTC [1234] ERROR:  relation "orders" does not exist',
        needle="]",
    ),
    # nginx error log: 2026/11/23 10:00:01 [error] 1234#0: *5 msg
    _fmt(
        "nginx-error",
        rf"{TS_SLASH} \[{_LV}\] (?P<pid>\d+)#(?P<tid>\d+): (?:\*(?P<connection>\d+) )?(?P<msg>.*)",
        W,
        DIGITS,
        "2026/11/23 10:00:01 [error] 1234#0: *5 connect() failed (111: Connection refused)",
    ),
    # Windows CBS / CBS-like: 2016-09-28 04:30:30, Info                  CBS    msg
    _fmt(
        "windows-cbs",
        rf"{TS_ISO}, {_LV}\s+(?:(?P<component>[A-Za-z][\w-]*)\s{{2,}})?(?P<msg>.*)",
        W,
        DIGITS,
        "2016-09-28 04:30:31, Error                 CBS    Failed to load the package",
        needle=", ",
    ),
    # AWS Lambda runtimes: ts<TAB>request-id<TAB>LEVEL<TAB>msg (Node) / ts<TAB>id<TAB>msg
    _fmt(
        "aws-lambda",
        rf"{TS_ISO}\t(?P<request_id>[0-9a-f-]{{36}}|undefined)\t(?:{_LV}\t)?(?P<msg>.*)",
        W,
        DIGITS,
        "2026-11-23T10:00:01.123Z\t5c3b3a1e-0b5e-4f4e-9f0e-2b2c3d4e5f60\tERROR\tInvoke Error",
        needle="\t",
    ),
    # zap development / tab-separated console: ts<TAB>LEVEL<TAB>caller<TAB>msg
    _fmt(
        "tsv",
        rf"{TS_ISO}{_TSV}",
        W,
        DIGITS,
        "2026-11-23T10:00:01.123Z\tERROR\tcharge/charge.go:42\tcharge failed",
        needle="\t",
    ),
    _fmt(
        "tsv-epoch",
        rf"{TS_EPOCH_SCI}{_TSV}",
        W,
        DIGITS,
        "1.7954598014567e+09\terror\tledger\tledger/main.go:30\tstarted",
        needle="\t",
    ),
    # log4j2 "%d{ISO8601} %-5p [%t] %c %X - %m" (%X: the MDC map, {requestId=.., traceId=..})
    _fmt(
        "log4j2-mdc",
        rf"{TS_ISO}\s++{_LV_UPPER}\s++{_THREAD} {_LOGGER} \{{(?P<kv>[^}}]*+)\}} - (?P<msg>.*)",
        W,
        DIGITS,
        "2026-11-23T18:48:39,123 ERROR [pool-2-thread-7] com.acme.Ledger {requestId=r-1, traceId=4bf9} - write failed",
        needle="} - ",
    ),
    # Python logging with the OpenTelemetry instrumentation's default format
    _fmt(
        "python-otel",
        rf"{TS_ISO} {_LV_UPPER} \[(?P<logger>[^\]]*+)\] \[(?P<source>[^\]]*+)\] \[(?P<kv>[^\]]*+)\] - (?P<msg>.*)",
        W,
        DIGITS,
        "2026-11-23 18:48:39,123 ERROR [inventory.db] [pool.py:88] [trace_id=0 span_id=0 resource.service.name=inventory trace_sampled=False] - lost",
        needle="] - ",
    ),
    # ZooKeeper 3.4 / log4j "%d - %-5p [%t:%C{1}@%L] - %m"
    _fmt(
        "log4j-dash",
        rf"{TS_ISO}\s+-\s+{_LV_UPPER}\s+\[(?P<thread>.*?)\]\s+-\s+(?P<msg>.*)",
        W,
        DIGITS,
        "2015-07-29 19:04:29,071 - WARN  [SendWorker:188978561024:QuorumCnxManager$SendWorker@688] - Send worker leaving",
    ),
    # logback/log4j2 "%d [%thread] %-5level %logger - %msg" (logback 1.3+: " -- ")
    _fmt(
        "logback",
        rf"{TS_ISO}\s++{_THREAD}\s++{_LV_UPPER}\s++{_LOGGER}\s++--? (?P<msg>.*)",
        W,
        DIGITS,
        "2026-11-23 10:00:01.456 [http-1] ERROR com.acme.OrderService - order 1234 failed",
    ),
    # Python cookbook "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
    _fmt(
        "python-cookbook",
        rf"{TS_ISO} - (?P<logger>\S+) - {_LV_UPPER} - (?P<msg>.*)",
        W,
        DIGITS,
        "2026-11-23 10:00:01,456 - app.worker - ERROR - job failed",
        needle=" - ",
    ),
    # Go/klog-ish and Java "ts LEVEL [thread] logger: msg" / "ts LEVEL logger - msg" /
    # Spark/Hadoop/HDFS "ts [pid] LEVEL component: msg" with any of the date shapes.
    *(
        _fmt(
            f"{name}-level-logger",
            rf"{ts}\s++(?:(?P<pid>\d+) )?{_LV_UPPER}\s++(?:{_THREAD}\s++)?{_LOGGER}(?::(?P<line>\d+))?"
            r"(?::|\s+--?) (?P<msg>.*)",
            W,
            DIGITS,
            example,
        )
        for name, ts, example in (
            (
                "iso",
                TS_ISO,
                "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created",
            ),
            (
                "yy-slash",
                TS_YY_SLASH,
                "17/06/09 20:10:40 INFO executor.CoarseGrainedExecutorBackend: Registered",
            ),
            (
                "yymmdd",
                TS_YYMMDD,
                "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating",
            ),
            ("slash", TS_SLASH, "2026/11/23 10:00:01 ERROR com.acme.Job: job failed"),
            ("dotted", TS_DOTTED, "2026.11.23 10:00:01 ERROR com.acme.Job: job failed"),
        )
    ),
    # OpenStack/oslo.log: ts pid LEVEL logger [context] msg
    _fmt(
        "oslo",
        rf"{TS_ISO} (?P<pid>\d+) {_LV_UPPER} (?P<logger>[\w.]+) \[(?P<context>[^\]]*)\] (?P<msg>.*)",
        W,
        DIGITS,
        "2026-11-23 10:00:01.008 25746 ERROR nova.compute.manager [req-1 - - - - -] Instance failed",
        needle="[",
    ),
    # Python "%(asctime)s %(levelname)s %(name)s %(message)s": a dotted/``root`` logger name
    _fmt(
        "iso-level-name",
        rf"{TS_ISO}\s++{_LV_UPPER}\s++(?P<logger>root|__main__|[A-Za-z_][\w-]*+(?:\.[A-Za-z_][\w-]*+)+) (?P<msg>.*)",
        W,
        DIGITS,
        "2026-11-23 10:00:01,123 ERROR app.db connection lost",
    ),
    # .NET console with a timestamp: ts fail: Category[12] msg
    _fmt(
        "dotnet-console-ts",
        rf"{TS_ISO} (?P<level>trce|dbug|info|warn|fail|crit): (?P<logger>[\w.]+)\[(?P<event_id>\d+)\]\s*(?P<msg>.*)",
        W,
        DIGITS,
        "2026-11-23T10:00:01.123Z fail: Microsoft.AspNetCore.Server.Kestrel[13] Unhandled exception",
        needle="]",
    ),
    # winston printf "${timestamp} ${level} [${service}]: ${message}" (and without the service)
    _fmt(
        "node-text",
        rf"{TS_ISO} (?P<level>(?i:{_LEVEL_ALT}))(?: \[(?P<service>[^\]]+)\])?: (?P<msg>.*)",
        W,
        DIGITS,
        "2026-11-23T18:48:39.123Z error [notifications]: template failed",
    ),
    # Generic: any timestamp, then an optional level word, then the message.
    *(
        _fmt(
            f"{name}",
            rf"{ts}(?:\s*[,|]|\s+-)?\s+(?:{_LV_ANY}:?\s+(?:[-:|]\s+)?)?(?P<msg>.*)",
            W,
            DIGITS,
            example,
        )
        for name, ts, example in (
            ("iso", TS_ISO, "2026-11-23T10:00:01.123Z ERROR payment failed"),
            ("slash", TS_SLASH, "2026/11/23 10:00:01 connection refused"),
            ("dotted", TS_DOTTED, "2026.11.23 10:00:01 ERROR disk full"),
            ("yy-slash", TS_YY_SLASH, "26/11/23 10:00:01 WARN slow"),
            ("yymmdd", TS_YYMMDD, "261123 100001 ERROR disk full"),
        )
    ),
    # Android logcat threadtime: 03-17 16:13:38.811  1702  2395 D WindowManager: msg
    _fmt(
        "logcat",
        rf"{TS_MONTH_DAY}\s+(?P<pid>\d+)\s+(?P<tid>\d+) (?P<letter>[VDIWEFA]) (?P<tag>[^:]*?)\s*: (?P<msg>.*)",
        L,
        DIGITS,
        "03-17 16:13:38.811  1702  2395 E ActivityManager: ANR in com.example",
    ),
    # logcat "time": 03-17 16:13:38.811 E/Tag( 1234): msg
    _fmt(
        "logcat-time",
        rf"{TS_MONTH_DAY}\s+(?P<letter>[VDIWEFA])/(?P<tag>[^(]*?)\(\s*(?P<pid>\d+)\): (?P<msg>.*)",
        L,
        DIGITS,
        "03-17 16:13:38.811 E/AndroidRuntime( 1234): FATAL EXCEPTION: main",
    ),
    # yyyyMMdd-HH:mm:ss:SSS|component|pid|msg (and any pipe-separated header after it)
    _fmt(
        "compact-pipe",
        rf"{TS_COMPACT}\|(?:{_LV_ANY}\|)?(?P<component>[^|\s]*)\|(?P<pid>\d+)\|(?P<msg>.*)",
        W,
        DIGITS,
        "20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579",
    ),
    _fmt(
        "compact",
        rf"{TS_COMPACT}(?:\s*[|,]|\s+-)?\s*(?:{_LV_ANY}:?\s+)?(?P<msg>.*)",
        W,
        DIGITS,
        "20261123-10:00:01:123 ERROR disk full",
    ),
    # IBM RAS (BG/L) node line after the CFDR prefix: ts node type component LEVEL msg
    _fmt(
        "ras",
        rf"{TS_DASHED} (?P<location>\S+) (?P<type>[A-Z_]+) (?P<component>[A-Z_]+) {_LV_UPPER} (?P<msg>.*)",
        W,
        DIGITS,
        "2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL FATAL data TLB error interrupt",
    ),
    _fmt(
        "dashed",
        rf"{TS_DASHED}\s+(?:{_LV_ANY}:?\s+)?(?P<msg>.*)",
        W,
        DIGITS,
        "2005-06-03-15.42.50.675872 ERROR disk full",
    ),
    # Redis: 1:M 23 Nov 2026 10:00:01.123 # msg   (. debug, - verbose, * notice, # warning)
    _fmt(
        "redis",
        rf"(?P<pid>\d+):(?P<role>[XCSM]) {TS_DAY_MON} (?P<mark>[.\-*#]) (?P<msg>.*)",
        LevelRule.MARK,
        DIGITS,
        "1:M 23 Nov 2026 10:00:01.123 # Can't save in background: fork: Cannot allocate memory",
    ),
    # log4j DATE: 23 Nov 2026 10:00:01,123 ERROR msg
    _fmt(
        "day-month-year",
        rf"{TS_DAY_MON}\s+(?:{_LV_ANY}:?\s+)?(?:{_THREAD}\s+)?(?P<msg>.*)",
        W,
        DIGITS,
        "23 Nov 2026 10:00:01,123 ERROR [main] job failed",
    ),
    # US date: 11/23/2026 10:00:01 AM ...
    _fmt(
        "us-date",
        rf"{TS_US}\s+(?:{_LV_ANY}:?\s+)?(?P<msg>.*)",
        W,
        DIGITS,
        "11/23/2026 10:00:01 AM ERROR disk full",
    ),
    # epoch seconds/milliseconds first: 1700000000.123 ERROR msg
    _fmt(
        "epoch",
        rf"{TS_EPOCH}\s+(?:{_LV_ANY}:?\s+)?(?P<msg>.*)",
        W,
        DIGITS,
        "1700000000.123 ERROR disk full",
    ),
    # --- month-name first: syslog files (RFC 3164 without PRI, rsyslog default) -------
    _fmt(
        "syslog",
        rf"{TS_SYSLOG} (?P<host>[\w.\-/:]+) {_SYSLOG_TAG}: ?(?P<msg>.*)",
        N,
        "JFMASOND",
        "Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for invalid user webmaster",
    ),
    _fmt(
        "syslog-notag",
        rf"{TS_SYSLOG} (?P<host>[\w.\-/:]+) (?P<msg>.*)",
        N,
        "JFMASOND",
        "Jun 14 15:16:01 combo restarting",
    ),
    # rsyslog high-precision: 2026-11-23T10:00:01.123456+00:00 host tag[pid]: msg
    # --- letter-first and level-first shapes ---------------------------------------------
    # A Go runtime crash written straight to stderr
    _fmt(
        "go-panic",
        r"(?P<msg>(?P<level>panic|fatal error): .*)",
        W,
        "pf",
        "panic: runtime error: invalid memory address or nil pointer dereference",
    ),
    # logback BasicConfigurator / log4j2 DefaultConfiguration: time of day only (no date,
    # so no timestamp: the arrival is closer to the truth than a guessed day)
    _fmt(
        "time-of-day-logback",
        rf"\d{{2}}:\d{{2}}:\d{{2}}[.,]\d{{3}}\s+{_THREAD}\s+{_LV_UPPER}\s+{_LOGGER}\s+--? (?P<msg>.*)",
        W,
        DIGITS,
        "10:00:01.456 [http-1] ERROR com.acme.OrderService - order failed",
    ),
    # klog/glog: E1123 10:00:01.123456    1234 file.go:123] msg
    _fmt(
        "klog",
        rf"(?P<letter>[IWEF])(?P<m>\d{{2}})(?P<d>\d{{2}}) {_HMS}{_FRAC}\s+(?P<tid>\d+) (?P<caller>[^\]\s]+)\] (?P<msg>.*)",
        L,
        "IWEF",
        "E1123 10:00:01.123456    1234 kubelet.go:2183] Error syncing pod",
    ),
    # Ruby Logger / Rails: E, [2026-11-23T10:00:01.123456 #1234] ERROR -- app: msg
    _fmt(
        "ruby-logger",
        rf"(?P<letter>[DIWEFAU]), \[{TS_ISO} #(?P<pid>\d+)\]\s+(?:{_LV_UPPER}|ANY) -- (?P<progname>[^:]*): (?P<msg>.*)",
        L,
        "DIWEFAU",
        "E, [2026-11-23T10:00:01.123456 #1234] ERROR -- : PG::ConnectionBad: could not connect",
    ),
    # logrus TTY: ERRO[0042] msg key=value
    _fmt(
        "logrus-tty",
        r"(?P<level>DEBU|INFO|WARN|ERRO|FATA|PANI|TRAC)\[(?P<elapsed>\d+)\] (?P<msg>.*)",
        W,
        "DIWEFPT",
        'ERRO[0042] failed to connect to database   error="dial tcp: connection refused"',
    ),
    # .NET console (Microsoft.Extensions.Logging): fail: Category[12] msg (often on the next line)
    _fmt(
        "dotnet-console",
        r"(?P<level>trce|dbug|info|warn|fail|crit): (?P<logger>[\w.]+)\[(?P<event_id>\d+)\]\s*(?P<msg>.*)",
        W,
        "tdiwfc",
        'fail: Microsoft.AspNetCore.Server.Kestrel[13] Connection id "0HM": An unhandled exception was thrown',
    ),
    # uvicorn / Python basicConfig: "ERROR:    msg", "ERROR:root:msg"
    _fmt(
        "python-basic",
        r"(?P<level>CRITICAL|ERROR|WARNING|INFO|DEBUG):(?P<logger>[^:\s]*):(?P<msg>.*)",
        W,
        "CEWID",
        "ERROR:root:job failed",
    ),
    _fmt(
        "level-colon",
        rf"{_LV_UPPER}:\s+(?P<msg>.*)",
        W,
        UPPER,
        "ERROR:    Exception in ASGI application",
    ),
    # Level first, then a time: "ERROR 2026-11-23 10:00:01,123 views 1234 5678 msg" (Django
    # verbose), "[ERROR]\t2026-11-23T10:00:01.123Z\treqid\tmsg" (Lambda Python).
    _fmt(
        "level-iso",
        rf"(?:\[{_LV}\]|{_LV_UPPER.replace('level', 'level_b')})\s+{TS_ISO}\s+"
        r"(?:(?P<request_id>[0-9a-f-]{36})\s+)?(?P<msg>.*)",
        W,
        "[" + UPPER,
        "[ERROR]\t2026-11-23T10:00:01.123Z\t5c3b3a1e-0b5e-4f4e-9f0e-2b2c3d4e5f60\tboom",
    ),
    # Kubernetes events as kubectl prints them: LAST SEEN TYPE REASON OBJECT MESSAGE
    _fmt(
        "kube-events",
        r"(?P<age>\d+[smhd]\w*|<unknown>)\s+(?P<level>Normal|Warning)\s+(?P<reason>[A-Z]\w+)\s+"
        r"(?P<object>[\w.-]+/[\w.-]+)\s+(?P<msg>.*)",
        W,
        DIGITS + "<",
        "5m   Warning   BackOff   pod/api-7c9   Back-off restarting failed container",
    ),
    # Windows Event Viewer "Save as text": Level<TAB>date time<TAB>source<TAB>id<TAB>task<TAB>msg
    _fmt(
        "windows-event",
        rf"(?P<level>Information|Warning|Error|Critical|Verbose)\t{TS_US}\t(?P<source>[^\t]*)\t"
        r"(?P<event_id>\d+)\t(?P<task>[^\t]*)\t(?P<msg>.*)",
        W,
        "IWECV",
        "Error\t11/23/2026 10:00:01 AM\tService Control Manager\t7034\tNone\tThe service terminated unexpectedly.",
    ),
    # AWS Lambda platform lines (no time: CloudWatch's event time is the record's)
    _fmt(
        "aws-lambda-platform",
        r"(?P<msg>(?P<kind>START|END|REPORT|INIT_START|INIT_REPORT|EXTENSION|TELEMETRY) (?:RequestId: "
        r"(?P<request_id>[0-9a-f-]{36})|Runtime Version|Extension)?.*)",
        N,
        "STARIE",
        "REPORT RequestId: 5c3b3a1e-0b5e-4f4e-9f0e-2b2c3d4e5f60 Duration: 3000.00 ms Status: timeout",
    ),
    # logfmt (logrus/slog text, ECS agent, Heroku): level=error time=... msg="..."
    _fmt(
        "logfmt",
        r"(?P<msg>[A-Za-z_][\w.-]*=(?:\"(?:[^\"\\]|\\.)*\"|\S*)(?: +[A-Za-z_][\w.-]*=(?:\"(?:[^\"\\]|\\.)*\"|\S*))+)\s*",
        N,
        UPPER + LOWER + "_",
        'time="2026-11-23T10:00:01Z" level=error msg="failed to pull image" module=docker_client.go',
    ),
    # One word (the program), then the time, then ": ": Debian's update-alternatives log
    # (/var/log/alternatives.log). Last in the table: it reads only lines no other row reads
    # (an ISO time followed by a colon matches no ISO-first row).
    _fmt(
        "program-iso",
        rf"(?P<program>[A-Za-z][\w.+-]*)(?:\[(?P<pid>\d+)\])? {TS_ISO}: (?P<msg>.*)",
        N,
        UPPER + LOWER,
        "update-alternatives 2025-06-24 14:36:53: link group pager updated to point to /usr/bin/less",
    ),
)

_NAMES: Final = frozenset(fmt.name for fmt in FORMATS)
assert len(_NAMES) == len(FORMATS), "format names must be unique"


Match = tuple[LineFormat, dict[str, Any]]
_GROUP_NAME: Final = re.compile(r"\(\?P<(\w+)>")


class _Single:
    """One row, tried on its own."""

    __slots__ = ("alone", "fmt", "needle", "read")

    def __init__(self, fmt: LineFormat) -> None:
        self.fmt = fmt
        self.needle = fmt.needle  # looked for by the caller's loop (``LineNormaliser.parse``), without a call
        self.alone = _SameTime(fmt.lead if fmt.tail is not None else None, [fmt])
        # ``text`` read by this row, or None when the row does not match: as a step of one row
        # (values by position), called directly rather than through a method of this class.
        # The caller has looked for the needle.
        self.read: Callable[[str, datetime, LineNormaliser, int], Parts | None] = self.alone.read

    def match(self, text: str) -> Match | None:
        fmt = self.fmt
        if fmt.needle and fmt.needle not in text:  # most lines: no call into the row
            return None
        groups = fmt.groups(text)
        return None if groups is None else (fmt, groups)


_LEVEL_GROUPS: Final = ("level", "level_b", "level_a", "level_c")  # the order ``_build`` reads them
_RULE_GROUPS: Final = {
    LevelRule.LETTER: "letter",
    LevelRule.PRI: "pri",
    LevelRule.STATUS: "status",
    LevelRule.MARK: "mark",
}


# A matched row is read by a small function written for that row when its step is compiled
# (``_reader_source``), the way ``dataclasses`` writes ``__init__``: the row's group numbers,
# field names and its way of reading the time and the level are constants in its code, so a
# line costs a few dozen bytecodes instead of a call per part and a loop per field. The
# code is written from the format table only (group names are identifiers checked below,
# numbers are ints), never from a line. ``tests/unit/test_normalise_fast_path.py`` holds
# every reader to the general path (``LineNormaliser._build``) on every corpus line.
Reader = Callable[["re.Match[str] | None", "re.Match[str]", datetime, "LineNormaliser"], Parts]


def _iso_time(head: re.Match[str], now: datetime) -> datetime | None:
    """An ISO lead ``fromisoformat`` refused as written: ``_build``'s way (with the lead's
    groups: ``head`` is a match of the group-less ``_LEAN_ISO``)."""
    iso = head.group(0)
    return _from_iso(iso) or time_from_groups({"_iso": iso, "_head": _full_lead(head)}, now)


def _full_lead(head: re.Match[str]) -> re.Match[str] | None:
    """The ISO lead again, with its groups, where the group-less one matched."""
    return _ISO_LEAD.match(head.string, head.start())


# Any other time shape is read from the lead's groups and the row's own, as ``_build`` reads
# them, but the second a time names repeats on every line written in that second: a reader
# looks it up in ``_CALENDAR`` (``_calendar_code``), keyed by the row, the arrival's year
# (``_calendar_time`` depends on the arrival only through it) and the time's text without
# its fraction; the fraction and the year rule, which needs the arrival itself, are
# applied per line.
def _calendar_miss(
    row: _Row, year: int, key: tuple[str | None, ...], head: re.Match[str] | None
) -> tuple[datetime | None, bool, str]:
    """A second not in ``_CALENDAR`` yet: read and stored. ``key``: the lead's text without
    its fraction, then the row's own time values."""
    groups = head.groupdict() if head is not None else {}
    groups.update(zip(row.time_names, key[1:], strict=True))
    groups["f"] = None  # the second itself; the line's fraction is added by the reader
    found = _second(groups, year)
    if len(_CALENDAR) >= _CALENDAR_SIZE:
        _CALENDAR.clear()
    _CALENDAR[(row, year, *key)] = found
    return found


def _with_fraction(moment: datetime, second: str, fraction: str) -> datetime:
    """A cached second plus the line's fraction (zones are whole minutes: the fraction is
    the same before and after UTC)."""
    try:  # a third of the cost of ``moment.replace(microsecond=...)``
        return _FROM_ISO(f"{second}.{fraction[:6]}+00:00")
    except ValueError:  # digits fromisoformat does not read (not ASCII)
        return moment.replace(microsecond=int(fraction[:6].ljust(6, "0")))


def _second(groups: dict[str, Any], year: int) -> tuple[datetime | None, bool, str]:
    """(the UTC second the groups name, whether they named no year, that second as ISO text)."""
    if not _has_time(groups):
        return None, False, ""
    moment, yearless = _calendar_time(groups, year)
    return moment, yearless, moment.isoformat(timespec="seconds")[:19] if moment is not None else ""


def _without_span(head: re.Match[str], group: int) -> str:
    """The lead's text without one group (its fraction): the same key for every line of a second."""
    start, end = head.span(group)
    text = head.string
    return text[head.start() : start] + text[end : head.end()]


_FROM_ISO: Final = datetime.fromisoformat
_CALENDAR: dict[tuple[object, ...], tuple[datetime | None, bool, str]] = {}
_CALENDAR_SIZE: Final = 4096  # a few seconds of each shape; cleared, not evicted one by one

# How each level rule reads its one group (``value``) in a reader's code: the same rules as
# ``LineNormaliser._rule_level`` (the general path), written inline; the fast-path tests hold
# the two to the same level on every corpus line.
_RULE_CODE: Final = {
    LevelRule.LETTER: "_LETTERS.get({value} or '')",
    LevelRule.PRI: "_SYSLOG_SEVERITY[int({value} or 13) % 8]",
    LevelRule.STATUS: "normaliser.status_level({value})",
    LevelRule.MARK: "_MARKS.get({value} or '')",
}


class _Row:
    """One row of a combined step: where its parts sit among its groups, worked out once
    when the step is compiled, and (``read``) the function that reads a match of it."""

    __slots__ = ("fmt", "names", "read", "slots", "source", "time_names")

    def __init__(
        self, fmt: LineFormat, names: tuple[str, ...], slots: tuple[int, ...], lead: re.Pattern[str] | None
    ) -> None:
        self.fmt = fmt
        self.names = names
        self.slots = slots
        # A row's own fraction is read apart from the rest of its time (``_calendar_code``
        # caches the second); behind a lead, the lead's groups decide, as in ``_build``.
        own_fraction = lead is None and "f" in names
        self.time_names = tuple(
            name for name in names if name in _TIME_KEYS and not (own_fraction and name == "f")
        )
        # Nested rows read their message as a line, logfmt its pairs, ``kv`` its map: the
        # general path (``LineNormaliser._finish``) keeps those few rows simple.
        fast = not fmt.nested and fmt.name != "logfmt" and "kv" not in names
        self.source = _reader_source(self, lead, own_fraction) if fast else ""
        self.read: Reader | None = _compile_reader(self) if fast else None


def _reader_source(row: _Row, lead: re.Pattern[str] | None, own_fraction: bool) -> str:
    """The code of ``row.read``: the row's values, its time, level, fields and message."""
    names = row.names
    var = {name: f"v{index}" for index, name in enumerate(names)}
    if not all(name.isidentifier() for name in names):
        raise ValueError(f"format {row.fmt.name}: group names must be identifiers")
    body: list[str] = []
    if names:  # ``group`` with one number returns the value, with several a tuple
        targets = ", ".join(var.values()) + ("," if len(names) == 1 else "")
        body.append(f"{targets} = rest.group({', '.join(map(str, row.slots))})")
    body += _time_code(row, lead, var, own_fraction)
    body += _fields_code(names, var)
    body.append(
        f"message = {var['msg']}.rstrip() if {var['msg']} else ''" if "msg" in var else "message = ''"
    )
    level = _level_code(row.fmt.level, names, var)
    if level is not None:
        body += [
            *level,
            "if level is not None:",
            "    return NAME, timestamp, level, 'line', message, fields",
        ]
    body.append("return normaliser._without_level(FMT, timestamp, message, fields)")
    return "def read(head, rest, now, normaliser):\n" + "".join(f"    {line}\n" for line in body)


def _time_code(row: _Row, lead: re.Pattern[str] | None, var: dict[str, str], own_fraction: bool) -> list[str]:
    if lead is not None and lead.pattern == TS_ISO:
        # One ``fromisoformat`` with UTC appended when the lead saw no zone (its zone group is
        # its last: ``lastindex`` says whether one was given); the general code otherwise.
        zone = _LEAN_ISO.groupindex["tz"]  # the lead is matched without its other groups
        return [
            f"if head.lastindex != {zone}:",
            "    try:",
            # fromisoformat reads a decimal comma itself (Python 3.11+)
            "        timestamp = _fromisoformat(head[0] + '+00:00')",
            "    except ValueError:  # not a calendar time ('2026-13-45')",
            "        timestamp = _iso_time(head, now)",
            "else:",
            "    timestamp = _iso_time(head, now)",
        ]
    if lead is None and not row.time_names:
        return ["timestamp = None"]
    own = "".join(f"{var[name]}, " for name in row.time_names)
    if lead is not None and "f" in lead.groupindex:
        number = lead.groupindex["f"]
        return [
            f"fraction = head.group({number})",
            f"key = _without_span(head, {number}) if fraction else head.group(0)",
            *_calendar_code("key", own, "fraction"),
        ]
    key = "head.group(0)" if lead is not None else "''"
    return _calendar_code(key, own, var["f"] if own_fraction else None)


def _calendar_code(key: str, own: str, fraction: str | None) -> list[str]:
    """The cached second (``_CALENDAR``), the line's fraction and the year rule, inline."""
    code = [
        f"found = _CALENDAR.get((ROW, now.year, {key}, {own}))",
        "if found is None:",
        f"    found = _calendar_miss(ROW, now.year, ({key}, {own}), head)",
        "timestamp, yearless, second = found",
    ]
    if fraction is not None:
        code += [
            f"if {fraction} and timestamp is not None:",
            f"    timestamp = _with_fraction(timestamp, second, {fraction})",
        ]
    return [
        *code,  # ``_year_before`` without the call when the line is not ahead of its arrival
        "if yearless and timestamp > now + _YEAR_SLACK:",
        "    timestamp = _year_before(timestamp, now)",
    ]


def _fields_code(names: tuple[str, ...], var: dict[str, str]) -> list[str]:
    """``_header_fields``: every other group under its field name, in pattern order, without
    the groups that did not take part (the later of two groups for one field wins)."""
    kept = [(_FIELD_NAMES.get(name, name), var[name]) for name in names if name not in _FIELD_SKIP]
    if not kept:
        return ["fields = {}"]
    if len({name for name, _ in kept}) < len(kept):
        return ["fields = {}"] + [
            f"if {value} is not None: fields[{name!r}] = {value}" for name, value in kept
        ]
    literal = ", ".join(f"{name!r}: {value}" for name, value in kept)
    values = "".join(f"{value}, " for _, value in kept)
    return [
        f"fields = {{{literal}}}",
        f"if None in ({values}):",
        "    fields = {key: value for key, value in fields.items() if value is not None}",
    ]


def _level_code(rule: LevelRule, names: tuple[str, ...], var: dict[str, str]) -> list[str] | None:
    """Code setting ``level`` from the row's groups, or None for a row without a level."""
    if rule is LevelRule.NONE:
        return None
    if rule is LevelRule.WORD:
        words = [var[name] for name in _LEVEL_GROUPS if name in var]
        if not words:
            return ["level = None"]
        return [
            f"word = {' or '.join(words)}",
            "level = _WORD_LEVELS.get(word, _MISSING) if word else None",
            "if level is _MISSING:",
            "    level = level_of_word(word)",
        ]
    value = var.get(_RULE_GROUPS[rule], "None")
    if rule is LevelRule.STATUS:  # a few statuses repeat: looked up, without the call
        return [f"level = normaliser.status_levels.get({value}) or {_RULE_CODE[rule].format(value=value)}"]
    return [f"level = {_RULE_CODE[rule].format(value=value)}"]


def _compile_reader(row: _Row) -> Reader:
    namespace: dict[str, Any] = {
        "ROW": row,
        "FMT": row.fmt,
        "NAME": row.fmt.name,
        "_fromisoformat": datetime.fromisoformat,
        "_iso_time": _iso_time,
        "_CALENDAR": _CALENDAR,
        "_calendar_miss": _calendar_miss,
        "_with_fraction": _with_fraction,
        "_YEAR_SLACK": _YEAR_SLACK,
        "_year_before": _year_before,
        "_without_span": _without_span,
        "_WORD_LEVELS": _WORD_LEVELS,
        "_MISSING": _MISSING,
        "level_of_word": level_of_word,
        "_LETTERS": _LETTERS,
        "_SYSLOG_SEVERITY": _SYSLOG_SEVERITY,
        "_MARKS": _MARKS,
    }
    code = compile(row.source, f"<reader {row.fmt.name}>", "exec")
    exec(code, namespace)  # noqa: S102 - code written from the format table, never from input
    reader: Reader = namespace["read"]
    return reader


class _SameTime:
    """Rows tried together as one regex, their patterns alternatives in table order (``re``
    takes the first that matches, as the table does), so a line costs one C-level match
    instead of a Python call per row. Either every row that starts with one time shape
    (``lead``: the shape is matched once, the alternatives are the rows' tails), or a run of
    rows without a shared shape that follow each other in the plan (``lead=None``).

    Each alternative ends with an empty marker group, the last group a successful match
    closes: ``Match.lastindex`` names the row without looking at the other groups. A row's
    ``needle`` is not checked here: it is a substring the row's pattern needs anyway."""

    __slots__ = (
        "firsts",
        "iso",
        "lead",
        "matcher",
        "names",
        "narrow",
        "needle",
        "plans",
        "rows",
        "slots",
        "tails",
        "which",
    )

    def __init__(self, lead: re.Pattern[str] | None, rows: list[LineFormat]) -> None:
        self.lead = lead
        self.rows = rows
        self.needle = ""  # each row's pattern needs its own: nothing to look for first
        self.iso = lead is not None and lead.pattern == TS_ISO  # fromisoformat (C) reads it first
        # An ISO time is read by fromisoformat, not from its groups: it is matched without them
        # (a third less work; ``_full_lead`` matches it again with them when they are needed).
        if self.iso or lead is None:
            self.matcher = _LEAN_ISO if self.iso else None
        else:  # the same groups, its digit runs written out
            self.matcher = re.compile(_unrolled(lead.pattern), lead.flags)
        # Compiled on first use: a process reads few shapes, and the import is the cold start.
        self.tails: re.Pattern[str] | None = None
        self.which: dict[int, int] = {}  # marker group number -> row index
        # per row: its group names and their numbers in the combined pattern
        self.names: list[tuple[str, ...]] = []
        self.slots: list[tuple[int, ...]] = []
        self.plans: dict[int, _Row] = {}  # marker group number -> how that row is read
        # Behind a lead: the line's first non-blank character after it -> the rows that can
        # start there, as a step of their own (``_narrowed``); ``firsts`` per row, on first use.
        self.narrow: dict[str, _SameTime] = {}
        self.firsts: list[FirstChars | None] | None = None

    def _compile(self) -> re.Pattern[str]:
        patterns = [_rest_of(row, self.lead) for row in self.rows]
        parts = []
        for index, pattern in enumerate(patterns):
            renamed = _GROUP_NAME.sub(rf"(?P<r{index}_\1>", pattern)
            parts.append(f"(?:{renamed})(?P<row{index}>)")
        tails = re.compile(_unrolled("|".join(parts)) or "(?!)", re.DOTALL)  # no rows: nothing matches
        numbers = tails.groupindex
        self.which = {numbers[f"row{index}"]: index for index in range(len(patterns))}
        self.names = [tuple(_GROUP_NAME.findall(pattern)) for pattern in patterns]
        self.slots = [
            tuple(numbers[f"r{index}_{name}"] for name in names) for index, names in enumerate(self.names)
        ]
        self.plans = {
            marker: _Row(self.rows[index], self.names[index], self.slots[index], self.lead)
            for marker, index in self.which.items()
        }
        self.tails = tails
        return tails

    def read(self, text: str, now: datetime, normaliser: LineNormaliser, depth: int) -> Parts | None:
        """``text`` read by the first of these rows that matches, or None.

        ``match`` and the row's ``_build`` in one, without the dict of every group in
        between: the matched row's reader takes the values by number (``_Row.read``). The
        few rows without a reader (nested, logfmt, key=value groups) go through ``_finish``."""
        lead = self.matcher
        if lead is None:
            head = None
            rest = (self.tails or self._compile()).match(text)
            step = self
        else:
            head = lead.match(text)
            if head is None:
                return None
            end = head.end()
            char = text[end : end + 1]
            if char.isspace():
                char = text[end : end + _BLANKS].lstrip()[:1]
            step = self.narrow.get(char) or self._narrowed(char)
            rest = (step.tails or step._compile()).match(text, end)
        if rest is None:
            return None
        row = step.plans[rest.lastindex or 0]
        if row.read is not None:
            return row.read(head, rest, now, normaliser)
        groups: dict[str, Any] = {}
        if head is not None:
            groups = {"_iso": head.group(0), "_head": _full_lead(head)} if self.iso else head.groupdict()
        groups.update(zip(row.names, (rest.group(slot) for slot in row.slots), strict=True))
        return normaliser._finish(row.fmt, groups, now, depth)

    def _narrowed(self, char: str) -> _SameTime:
        """The rows that can match a line whose first non-blank character after the lead is
        ``char``, in table order (``first_chars``: a row is left out only when its pattern
        requires another first character). All rows for "" (no character, or a long blank)."""
        if self.firsts is None:
            assert self.lead is not None
            self.firsts = [
                first_chars(_rest_of(row, self.lead), (row.tail or row.pattern).flags) for row in self.rows
            ]
        rows = [
            row
            for row, first in zip(self.rows, self.firsts, strict=True)
            if not char or first is None or first.admits(char)
        ]
        step = self if len(rows) == len(self.rows) else _together(self.lead, rows)
        if len(self.narrow) < _NARROW_SIZE:  # a source writes a few shapes; any other char is rare
            self.narrow[char] = step
        return step

    def match(self, text: str) -> Match | None:
        groups: dict[str, Any]
        tails = self.tails or self._compile()
        if self.lead is None:
            rest = tails.match(text)
            groups = {}
        else:
            head = self.lead.match(text)
            if head is None:
                return None
            rest = tails.match(text, head.end())
            # ISO times go to fromisoformat; the head's groups are read only if it refuses.
            groups = {"_iso": head.group(0), "_head": head} if self.iso else head.groupdict()
        if rest is None:
            return None
        index = self.which[rest.lastindex or 0]
        slots = self.slots[index]
        if slots:
            values = rest.group(*slots) if len(slots) > 1 else (rest.group(slots[0]),)
            groups.update(zip(self.names[index], values, strict=True))
        return self.rows[index], groups


_BLANKS: Final = 64  # blanks between the time and the rest looked through for its first character
_NARROW_SIZE: Final = 128


def _rest_of(row: LineFormat, lead: re.Pattern[str] | None) -> str:
    """What ``row`` matches after ``lead`` (its whole pattern when there is no lead)."""
    if lead is None:
        return row.pattern.pattern
    assert row.tail is not None
    return row.tail.pattern


Step = _Single | _SameTime


def _plan(formats: Iterable[LineFormat]) -> tuple[Step, ...]:
    """Rows sharing a time shape become one step at the place of the first of them. Safe
    because a line that has one time shape cannot match a row that starts differently.
    Rows without a time shape next to each other in the plan become one step too."""
    steps: list[_SameTime | list[LineFormat]] = []
    groups: dict[re.Pattern[str], list[LineFormat]] = {}
    for fmt in formats:
        if fmt.lead is None or fmt.tail is None:
            if steps and isinstance(steps[-1], list):
                steps[-1].append(fmt)
            else:
                steps.append([fmt])
            continue
        if fmt.lead not in groups:
            groups[fmt.lead] = []
            steps.append(_SameTime(fmt.lead, groups[fmt.lead]))
        groups[fmt.lead].append(fmt)
    planned: list[Step] = []
    for step in steps:
        if isinstance(step, list):
            planned.append(_Single(step[0]) if len(step) == 1 else _together(None, step))
        else:
            planned.append(_together(step.lead, step.rows))  # compile with every row
    return tuple(planned)


_TOGETHER: dict[tuple[re.Pattern[str] | None, tuple[str, ...]], _SameTime] = {}


def _together(lead: re.Pattern[str] | None, rows: list[LineFormat]) -> _SameTime:
    """One ``_SameTime`` per set of rows: many first characters share the same rows, and
    compiling each combination once keeps the import (the Lambda's cold start) short."""
    key = (lead, tuple(row.name for row in rows))
    step = _TOGETHER.get(key)
    if step is None or step.rows != rows:
        step = _TOGETHER[key] = _SameTime(lead, rows)
    return step


def _index(formats: Iterable[LineFormat]) -> dict[str, tuple[Step, ...]]:
    """First character -> the steps worth trying, in table order."""
    table = tuple(formats)
    chars = {char for fmt in table for char in fmt.starts}
    index = {char: _plan(fmt for fmt in table if not fmt.starts or char in fmt.starts) for char in chars}
    index[""] = _plan(fmt for fmt in table if not fmt.starts)
    return index


_BY_FIRST: Final = _index(FORMATS)

_TIME_ONLY: Final = tuple(
    re.compile(rf"\s*{shape}\s*$")
    for shape in (
        TS_ISO,
        TS_SLASH,
        TS_DOTTED,
        TS_DASHED,
        TS_YY_SLASH,
        TS_YYMMDD,
        TS_COMPACT,
        TS_MONTH_DAY,
        TS_SYSLOG,
        TS_APACHE,
        TS_CLF,
        TS_DAY_MON,
        TS_US,
        TS_EPOCH,
    )
)


def parse_time_text(text: str, arrival: datetime) -> datetime | None:
    """A value that is only a time (a JSON ``time`` key, a CSV column) in any table shape."""
    for pattern in _TIME_ONLY:
        match = pattern.match(text)
        if match is not None:
            return time_from_groups(match.groupdict(), arrival)
    return None


# ----------------------------------------------------------------------------- implied severity

_ERROR_RULES: Final = (
    # A process or the kernel says it died or is about to.
    r"kernel panic|\bpanic(?:ked)?\b|\bsegfault\b|segmentation fault|core dumped|out of memory"
    r"|\boom[- ]kill|killed process|\bfatal error\b|unhandled exception|uncaught exception"
    r"|traceback \(most recent call last\)|exception in thread|task timed out"
    r"|(?<![\w-])error ?: |\berror (?:code|status)\b"
)
_WARN_RULES: Final = (
    # Security: what an attacker's attempts look like in auth logs.
    r"authentication failure|failed password|break-in attempt|invalid user|illegal user"
    r"|permission denied|access denied|\bdenied\b|unauthori[sz]ed"
    # Something the caller needed did not happen.
    r"|\bfail(?:ed|ure|s)?\b|\brefused\b|timed out|\bunavailable\b|\bunreachable\b"
    r"|\bcannot\b|can't|could not|couldn't|unable to|\baborted\b|\bcorrupt(?:ed|ion)?\b"
)
# Phrases that contain a rule word but report success or no problem.
_BENIGN: Final = (
    r"\b(?:no|0|zero|without) (?:errors?|failures?|warnings?)\b|\bsucceeded\b|\bsuccessful(?:ly)?\b"
    r"|\b(?:detected and )?corrected\b"
    r"|error[_ ]?(?:rate|count)=0\b|failed=0\b|errors?=0\b|\bfailover (?:complete|succeeded)\b"
)


@dataclass(frozen=True, slots=True)
class ImpliedSeverity:
    """Conservative level for lines that carry none (``level_source="inferred"``).

    ERROR for what only a dying process says (panic, segfault, OOM kill, unhandled
    exception, "Task timed out", "error:"), WARN for failed, refused, denied, timed out,
    unavailable, authentication failure, break-in attempt; a line that says it succeeded or
    had no errors is not flagged. ``extra_error`` / ``extra_warn`` add patterns (per
    environment or service, from settings); ``enabled=False`` turns inference off.
    """

    enabled: bool = True
    extra_error: tuple[str, ...] = ()
    extra_warn: tuple[str, ...] = ()
    _error: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _warn: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _benign: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        error = "|".join((_ERROR_RULES, *self.extra_error))
        warn = "|".join((_WARN_RULES, *self.extra_warn))
        object.__setattr__(self, "_error", re.compile(error, re.IGNORECASE))
        object.__setattr__(self, "_warn", re.compile(warn, re.IGNORECASE))
        object.__setattr__(self, "_benign", re.compile(_BENIGN, re.IGNORECASE))

    def classify(self, message: str) -> Level | None:
        """ERROR, WARN or None (nothing implied) for a message without a level."""
        if not self.enabled:
            return None
        head = message[:INFER_CHARS]
        # Most lines say none of the rule words: one search for the stems is much cheaper
        # than the rule alternations (every built-in rule contains one of these stems).
        if not self.extra_error and not self.extra_warn and _RULE_STEM.search(head.lower()) is None:
            return None
        if self._error.search(head):
            return Level.ERROR
        if self._warn.search(head) and not self._benign.search(head):
            return Level.WARN
        return None


INFER_CHARS: Final = 512
_RULE_STEMS: Final = (
    *("panic", "segfault", "segmentation", "core dump", "memory", "oom", "killed", "fatal", "unhandled"),
    *("uncaught", "traceback", "exception", "timed out", "error", "password", "break-in", "invalid user"),
    *("illegal user", "denied", "unauthori", "fail", "refused", "unavailable", "unreachable", "cannot"),
    *("can't", "could not", "couldn't", "unable to", "abort", "corrupt", "authentication"),
)  # the first line's head says what happened; a trace's tail does not
# English letters, commonest first (the usual frequency table; blanks are commoner still).
_LETTER_ORDER: Final = "etaoinshrdlcumwfgypbvkjxqz"


def _rare_anchored(words: Iterable[str]) -> str:
    """A pattern that ``search`` finds exactly where one of ``words`` occurs, cheaper to
    search than the words themselves.

    ``re`` searches an alternation by trying it at every position whose character can start
    one of the words, so words starting with common letters make it try almost everywhere.
    Here each word is matched from its rarest letter (by ``_LETTER_ORDER``), with the letters
    before it checked by a lookbehind ("traceback" -> ``k(?<=traceback)``, "denied" ->
    ``denied``): the same texts match, but far fewer positions are tried."""

    def rarity(char: str) -> int:
        return -1 if char.isspace() else _LETTER_ORDER.find(char) if char in _LETTER_ORDER else 20

    by_anchor: dict[str, list[str]] = {}
    for word in words:
        at = max(range(len(word)), key=lambda index: rarity(word[index]))
        behind = f"(?<={re.escape(word[: at + 1])})" if at else ""
        by_anchor.setdefault(word[at], []).append(behind + re.escape(word[at + 1 :]))
    return "|".join(f"{re.escape(anchor)}(?:{'|'.join(rests)})" for anchor, rests in by_anchor.items())


# Is any stem in the text: one search, each stem matched from its rarest letter (about a
# third less than the stems grouped by first letter, a fifth less than testing them one by
# one with ``in``).
_RULE_STEM: Final = re.compile(_rare_anchored(_RULE_STEMS))

# ----------------------------------------------------------------------------- result


@dataclass(slots=True)  # not frozen: cheaper to build, never changed after (the hot path uses ``Parts``)
class ParsedLine:
    """What one line says about itself."""

    format: str  # a FORMATS name, "json" or "unknown"
    timestamp: datetime | None
    level: Level | None
    level_source: str  # "line" | "inferred" | "default"
    message: str
    fields: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """The ``cali parse`` output object."""
        return {
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z") if self.timestamp else None,
            "level": self.level.name if self.level is not None else None,
            "level_source": self.level_source,
            "message": self.message,
            "format": self.format,
            "fields": self.fields,
        }


@dataclass(frozen=True, slots=True)
class HttpLevels:
    """HTTP status -> level for access lines (``status >= error_from`` is ERROR)."""

    error_from: int = 500
    warn_from: int = 400

    def level(self, status: int) -> Level:
        if status >= self.error_from:
            return Level.ERROR
        if status >= self.warn_from:
            return Level.WARN
        return Level.INFO


_FIELD_SKIP: Final = frozenset(
    (
        "_iso",
        "_head",
        "msg",
        "level",
        "level_b",
        "level_a",
        "level_c",
        "letter",
        "pri",
        "mark",
        "sd",
        *_TIME_KEYS,
    )
)
# Level word at the start of a message whose header had none: "ERROR: ...", "[warn] ...".
_MESSAGE_LEVEL: Final = re.compile(
    r"(?:(?:\[[^\]\s]{1,40}\]|\([^)\s]{1,40}\))\s+){0,3}"  # "[worker-3] (job=77) level=error ..."
    rf"(?:\[\s*(?P<level_b>(?i:{_LEVEL_ALT}))\s*\]|(?P<level>{_LEVEL_ALT})(?=[\s:\]|,])"
    rf"|(?P<level_c>(?i:{_LEVEL_ALT})):\s|(?i:level|lvl|severity)=[\"']?(?P<level_a>\w+))"
)
# An unknown shape: a level word after at most five header-like tokens (ones with a digit,
# bracketed or parenthesised ones, month and day names, separators), so a level word
# inside the sentence ("Found 3 ERROR entries") is not the line's level.
_HEADER_LEVEL: Final = re.compile(
    r"(?:(?:\[[^\]\n]{0,32}\]|\([^)\n]{0,32}\)|[^\s\d]{0,12}\d\S{0,40}|(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun"
    r"|Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]{0,6},?|[-|:])[ \t]+){0,5}"
    rf"(?:(?P<level>{_LEVEL_ALT})(?![\w.-])|\[(?P<level_b>(?i:{_LEVEL_ALT}))\]|<(?P<level_a>(?i:{_LEVEL_ALT}))>"
    rf"|(?P<level_c>(?i:{_LEVEL_ALT})):\s|(?i:level|lvl|severity)=[\"']?(?P<level_d>\w+))"
)
_SOURCE_PREFIX: Final = re.compile(
    r"(?:\[(?P<bracketed>[^\]\s]{1,120})\]|(?P<plain>[^\s|]{1,120})(?: +\|)?) +"
)
_LOGFMT_PAIR: Final = re.compile(r"([A-Za-z_][\w.-]*)=(\"(?:[^\"\\]|\\.)*\"|\S*)")
_JSON_TIME_KEYS: Final = (
    "@timestamp",
    "timestamp",
    "time",
    "ts",
    "datetime",
    "date",
    "__REALTIME_TIMESTAMP",
    "t",
)
_JSON_LEVEL_KEYS: Final = (
    "level",
    "severity",
    "lvl",
    "levelname",
    "log_level",
    "loglevel",
    "PRIORITY",
    "@l",
    "l",
)
_JSON_MESSAGE_KEYS: Final = ("message", "msg", "MESSAGE", "@m", "@mt", "log", "event", "body", "m")
# Each of those keys -> (its role: 0 time, 1 level, 2 message; its rank in the role's tuple).
# An object's keys are looked up once each (``_roles``) instead of every role's keys in turn.
_JSON_ROLES: Final = {
    key: (role, rank)
    for role, keys in enumerate((_JSON_TIME_KEYS, _JSON_LEVEL_KEYS, _JSON_MESSAGE_KEYS))
    for rank, key in enumerate(keys)
}
_JSON_ROLE_KEYS: Final = frozenset(_JSON_ROLES)
# No key has two roles (``_JSON_ROLES`` would keep only its last).
assert len(_JSON_ROLES) == sum(map(len, (_JSON_TIME_KEYS, _JSON_LEVEL_KEYS, _JSON_MESSAGE_KEYS)))


class LineNormaliser:
    """Parse raw lines with the format table; configured once per process."""

    def __init__(
        self,
        implied: ImpliedSeverity | None = None,
        http: HttpLevels | None = None,
        formats: tuple[LineFormat, ...] = FORMATS,
    ) -> None:
        self.implied = implied if implied is not None else ImpliedSeverity()
        self.http = http if http is not None else HttpLevels()
        self.status_levels: dict[str | None, Level] = {}  # an HTTP status's text -> its level
        self._by_first = _BY_FIRST if formats is FORMATS else _index(formats)
        self._any = self._by_first[""]  # the steps for a first character no row names
        # Inner lines (inside a level-less envelope) are read only by rows that give a level.
        self._inner_by_first = _index(
            fmt for fmt in formats if fmt.level is not LevelRule.NONE and not fmt.nested
        )

    def status_level(self, status: str | None) -> Level:
        """The level of an access line's HTTP status (``HttpLevels``), remembered by its text."""
        level = self.http.level(int(status or 0))
        if len(self.status_levels) < 1024:  # statuses are few; any other text is rare
            self.status_levels[status] = level
        return level

    def warm_up(self) -> None:
        """Compile every combined step now instead of on first use (benchmarks measure the
        warm state; a Lambda leaves it to first use, so a cold start pays only for the
        shapes it reads)."""
        for steps in (*self._by_first.values(), *self._inner_by_first.values()):
            for step in steps:
                combined = step.alone if isinstance(step, _Single) else step
                if combined.tails is None:
                    combined._compile()

    def parse(self, line: str, arrival: datetime | None = None) -> ParsedLine:
        """One line (a multi-line event's first line carries the header) -> ``ParsedLine``."""
        return ParsedLine(*self.parts(line, arrival))

    def parts(self, line: str, arrival: datetime | None = None) -> Parts:
        """``parse`` as a plain tuple, in ``ParsedLine``'s field order (the consumer's path)."""
        now = arrival if arrival is not None else datetime.now(UTC)
        text = line.rstrip("\r\n")
        first = text[:1]
        if first == "{" or (first.isspace() and text.lstrip()[:1] == "{"):
            stripped = text.lstrip()
            if stripped.rstrip()[-1:] == "}":
                parsed = _parse_json(stripped, now, self.implied)
                if parsed is not None:
                    return parsed
        for step in self._by_first.get(first, self._any):  # ``_parse_text`` without the call
            needle = step.needle
            if needle and needle not in text:  # most lines: no call into a row of its own
                continue
            read = step.read(text, now, self, 0)
            if read is not None:
                return read
        return self._no_row(text, now, 0)

    def _parse_text(self, text: str, now: datetime, depth: int) -> Parts:
        for step in self._by_first.get(text[:1], self._any):
            needle = step.needle
            if needle and needle not in text:
                continue
            parsed = step.read(text, now, self, depth)
            if parsed is not None:
                return parsed
        return self._no_row(text, now, depth)

    def _no_row(self, text: str, now: datetime, depth: int) -> Parts:
        """No row matched ``text``: a known line behind a source prefix, else unknown."""
        if depth == 0:
            prefixed = self._prefixed(text, now)
            if prefixed is not None:
                return prefixed
        return self._unknown(text, "unknown", None, {}, sniff=True)

    def _prefixed(self, text: str, now: datetime) -> Parts | None:
        """A known line behind one source token: ``kubectl logs --prefix`` ("[pod/x/c] ..."),
        ``docker compose logs`` ("web-1  | ..."), a file name. Only a timed inner line counts."""
        match = _SOURCE_PREFIX.match(text)
        if match is None:
            return None
        name, timestamp, level, source, message, inner_fields = self._parse_text(
            text[match.end() :], now, depth=1
        )
        if name == "unknown" or timestamp is None:
            return None
        fields = {"source": match.group("bracketed") or match.group("plain"), **inner_fields}
        return f"prefixed+{name}", timestamp, level, source, message, fields

    def _nested(self, fmt: LineFormat, groups: dict[str, Any], now: datetime) -> Parts:
        inner, _, level, source, message, inner_fields = self._parse_text(groups["msg"], now, depth=1)
        fields = {key: value for key, value in groups.items() if key not in _FIELD_SKIP and value}
        fields.update(inner_fields)
        name = fmt.name if inner == "unknown" else f"{fmt.name}+{inner}"
        # The prefix's epoch is unambiguous; the node's own time may be local.
        return name, time_from_groups(groups, now), level, source, message, fields

    def _finish(self, fmt: LineFormat, groups: dict[str, Any], now: datetime, depth: int) -> Parts:
        """A matched row's groups -> the line (a nested row's inner line only at the top)."""
        if fmt.nested and depth == 0:
            return self._nested(fmt, groups, now)
        return self._build(fmt, groups, now)

    def _without_level(
        self, fmt: LineFormat, timestamp: datetime | None, message: str, fields: dict[str, Any]
    ) -> Parts:
        """The end of ``_build`` for a row whose header gave no level."""
        inner = self._inner(message) if fmt.level is LevelRule.NONE else None
        if inner is not None:
            name, _, level, source, inner_message, inner_fields = inner
            return f"{fmt.name}+{name}", timestamp, level, source, inner_message, fields | inner_fields
        return self._unknown(message, fmt.name, timestamp, fields)

    def _rule_level(self, rule: LevelRule, value: str | None) -> Level | None:
        """``_line_level`` for the rules other than WORD and NONE, from the one group they read."""
        if rule is LevelRule.LETTER:
            return _LETTERS.get(value or "")
        if rule is LevelRule.PRI:
            return _SYSLOG_SEVERITY[int(value or 13) % 8]
        if rule is LevelRule.STATUS:
            return self.status_level(value)
        return _MARKS.get(value or "")

    def _build(self, fmt: LineFormat, groups: dict[str, Any], now: datetime) -> Parts:
        iso = groups.get("_iso")
        if iso:  # the common case first, without the general time code
            timestamp = _from_iso(iso) or time_from_groups(groups, now)
        else:
            timestamp = time_from_groups(groups, now) if _has_time(groups) else None
        fields = _header_fields(groups)
        message = (groups.get("msg") or "").rstrip()
        if fmt.level is LevelRule.WORD:  # most rows: ``_line_level`` without the call
            word = (
                groups.get("level") or groups.get("level_b") or groups.get("level_a") or groups.get("level_c")
            )
            level = level_of_word(word) if word else None
        else:
            level = self._line_level(fmt.level, groups)
        if fmt.name == "logfmt":
            return self._logfmt(message, now)
        if level is not None:
            return fmt.name, timestamp, level, "line", message, fields
        return self._without_level(fmt, timestamp, message, fields)

    def _inner(self, message: str) -> Parts | None:
        """A level-less envelope (syslog, journald text) around a line with its own header
        (kubelet's klog, a Java logger writing to syslog): the inner line's level counts."""
        for step in self._inner_by_first.get(message[:1], ()):
            found = step.match(message)
            if found is not None:
                fmt, groups = found
                level = self._line_level(fmt.level, groups)
                if level is None:
                    return None
                msg = (groups.get("msg") or "").rstrip()
                return fmt.name, None, level, "line", msg, _header_fields(groups)
        return None

    def _line_level(self, rule: LevelRule, groups: Mapping[str, str | None]) -> Level | None:
        if rule is LevelRule.WORD:
            word = (
                groups.get("level") or groups.get("level_b") or groups.get("level_a") or groups.get("level_c")
            )
            return level_of_word(word) if word else None
        if rule is LevelRule.NONE:
            return None
        return self._rule_level(rule, groups.get(_RULE_GROUPS[rule]))

    def _unknown(
        self,
        message: str,
        name: str,
        timestamp: datetime | None,
        fields: dict[str, Any],
        *,
        sniff: bool = False,
    ) -> Parts:
        """No level in the header: a level word leading the message, else infer, else none.

        ``sniff``: the line's shape is unknown, so a level word after a few header-like
        tokens counts too (``_HEADER_LEVEL``).
        """
        head = (_HEADER_LEVEL if sniff else _MESSAGE_LEVEL).match(message)
        if head is not None:
            groups = head.groupdict()
            word = (
                groups["level"]
                or groups["level_b"]
                or groups["level_c"]
                or groups["level_a"]
                or groups.get("level_d")
            )
            level = level_of_word(word or "")
            if level is not None:
                return name, timestamp, level, "line", message, fields
        implied = self.implied.classify(message)
        if implied is not None:
            return name, timestamp, implied, "inferred", message, fields
        return name, timestamp, None, "default", message, fields

    def _logfmt(self, text: str, now: datetime) -> Parts:
        pairs = {key: _unquote(value) for key, value in _LOGFMT_PAIR.findall(text)}
        if not any(key in pairs for key in _JSON_MESSAGE_KEYS):
            # No message key (a Heroku router line): the text is the message and its pairs
            # stay in it, so "service=12ms" does not rename the service.
            keep = {key: pairs[key] for key in (*_JSON_TIME_KEYS, *_JSON_LEVEL_KEYS) if key in pairs}
            return _from_mapping(keep, text, "logfmt", now, self.implied)
        return _from_mapping(pairs, text, "logfmt", now, self.implied)


def _has_time(groups: Mapping[str, Any]) -> bool:
    return bool(groups.get("_iso") or groups.get("d") or groups.get("epoch"))


_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
_ESCAPE: Final = re.compile(r"\\(.)")


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), value[1:-1])
    return value


# Key=value groups (``kv``: a log4j MDC map, OpenTelemetry's logging fields): the keys that
# name something the record has a slot for; "0" is OpenTelemetry's "no trace".
_KV_PAIR: Final = re.compile(r"([\w.]+)=([^,\s}\]]*)")
_KV_NAMES: Final = {
    "requestId": "request_id",
    "request_id": "request_id",
    "traceId": "trace_id",
    "trace_id": "trace_id",
    "spanId": "span_id",
    "span_id": "span_id",
    "service": "service",
    "resource.service.name": "service",
}
_FIELD_NAMES: Final = {"otel_trace_id": "trace_id", "otel_span_id": "span_id"}


def _header_fields(groups: Mapping[str, str | None]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in groups.items():
        if value is None or key in _FIELD_SKIP:
            continue
        if key == "kv":
            for name, item in _KV_PAIR.findall(value):
                if item and item != "0" and name in _KV_NAMES:
                    fields.setdefault(_KV_NAMES[name], item)
            continue
        fields[_FIELD_NAMES.get(key, key)] = value
    return fields


def _roles(data: Mapping[str, Any]) -> list[str | None]:
    """[time key, level key, message key] of ``data``: per role, its first key in the role's
    tuple whose value is neither None nor empty (None when there is none)."""
    chosen: list[str | None] = [None, None, None]
    ranks = [len(_JSON_ROLES)] * 3
    for key in _JSON_ROLE_KEYS.intersection(data):  # most objects: two or three keys
        value = data[key]
        if value is None or value == "":
            continue
        role, rank = _JSON_ROLES[key]
        if rank < ranks[role]:
            ranks[role] = rank
            chosen[role] = key
    return chosen


def _json_time(key: str | None, value: Any, now: datetime) -> datetime | None:
    if value is None:
        return None
    if key == "__REALTIME_TIMESTAMP":  # journald: microseconds since the epoch, as a string
        try:
            return datetime.fromtimestamp(int(value) / 1e6, tz=UTC)
        except (ValueError, OverflowError, OSError):
            return None
    if type(value) is float or (isinstance(value, int | float) and not isinstance(value, bool)):
        # orjson reads integers up to 64 bits: a float always holds them
        return _epoch_number(float(value / 1000 if value > 1e14 else value))  # µs (rare) -> ms
    if isinstance(value, str):
        return parse_time_text(value, now)
    return None


def _json_level(key: str | None, value: Any) -> Level | None:
    if value is None:
        return None
    if key == "PRIORITY" or (isinstance(value, str) and value.isdigit() and len(value) == 1):
        return _SYSLOG_SEVERITY[int(value) % 8]
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = int(value)  # pino/bunyan: 10 trace .. 60 fatal
        if number >= 60:
            return Level.FATAL
        return {10: Level.TRACE, 20: Level.DEBUG, 30: Level.INFO, 40: Level.WARN, 50: Level.ERROR}.get(
            number - number % 10, Level.INFO
        )
    return level_of_word(str(value)) if isinstance(value, str) else None


def _from_mapping(
    data: dict[str, Any], fallback: str, name: str, now: datetime, implied: ImpliedSeverity
) -> Parts:
    """A decoded object -> the line. Takes ``data`` over: its other keys become the fields
    (every caller passes an object it just built)."""
    time_key, level_key, message_key = _roles(data)
    time_value = data.pop(time_key) if time_key is not None else None
    level_value = data.pop(level_key) if level_key is not None else None
    message = data.pop(message_key) if message_key is not None else None
    fields = data
    text = message if isinstance(message, str) else fallback
    timestamp = _json_time(time_key, time_value, now)
    level = _json_level(level_key, level_value)
    if level is not None:
        return name, timestamp, level, "line", text, fields
    inferred = implied.classify(text)
    if inferred is not None:
        return name, timestamp, inferred, "inferred", text, fields
    return name, timestamp, None, "default", text, fields


def _parse_json(text: str, now: datetime, implied: ImpliedSeverity) -> Parts | None:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    # ``too_deep`` counts brackets first too; counted here, most lines need no bytes copy.
    if text.count("{") + text.count("[") > MAX_NESTING and too_deep(text.encode(), data):
        return None  # a too-deep object stays text: its structure cannot be written back out
    name = "journald" if "__REALTIME_TIMESTAMP" in data or "_SYSTEMD_UNIT" in data else "json"
    return _from_mapping(data, text, name, now, implied)


DEFAULT_NORMALISER: Final = LineNormaliser()


def parse_line(line: str, arrival: datetime | None = None) -> ParsedLine:
    """``DEFAULT_NORMALISER.parse``: the default configuration's view of one line."""
    return DEFAULT_NORMALISER.parse(line, arrival)
