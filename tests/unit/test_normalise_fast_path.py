"""The normaliser's fast path reads every line as the table read row by row would.

For speed, ``LineNormaliser`` tries rows together: every row that starts with one time
shape as one regex (the shape matched once), runs of other rows as one alternation, the
matched row named by a marker group, and reads the row's values by position, with a line's
second cached. The table's meaning is simpler: rows in order, first match wins, each row's
groups read by name (``_build``). These tests hold the two to the same answer on the corpus, on every row's
example and on variants of them made to sit between shapes (cut, case-changed, prefixed),
parsed one after another so that consecutive lines keep switching shape.
"""

from __future__ import annotations

import itertools
import random
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from cali.contracts.levels import Level
from cali.ingest import normalise
from cali.ingest.normalise import FORMATS, LineFormat, LineNormaliser, ParsedLine, Parts

CORPUS = Path(__file__).parent / "data" / "formats_corpus.yaml"
ARRIVAL = datetime(2026, 12, 1, tzinfo=UTC)


def _row_by_row(text: str) -> tuple[LineFormat, dict[str, Any]] | None:
    """The table's definition: rows in order (a row only for the first characters it names),
    first match wins."""
    for fmt in FORMATS:
        if fmt.starts and text[:1] not in fmt.starts:
            continue
        groups = fmt.groups(text)
        if groups is not None:
            return fmt, groups
    return None


def _lines() -> list[str]:
    """Corpus lines and row examples, and variants of each, interleaved by source."""
    entries = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))
    bases = [[case["line"] for case in entry["lines"]] for entry in entries]
    bases.append([fmt.example for fmt in FORMATS])
    variants = []
    for line in itertools.chain.from_iterable(bases):
        variants.append(
            [line[:cut] for cut in (5, 12, 19, 20, 24, 30, 40, len(line) - 1)]
            + [
                line.lower(),
                line.upper(),
                line.replace(" ", "\t", 1),
                line.replace(" ", "  ", 2),
                "x" + line,
                line[1:],
                "2026-11-23 10:00:01 " + line,
                "prog 2026-11-23 10:00:01: " + line,
                "Nov 23 10:00:01 host app: " + line,
            ]
        )
    # round-robin: each line is followed by one of another source or shape
    groups = bases + variants
    return [line for batch in itertools.zip_longest(*groups) for line in batch if line is not None]


LINES = _lines()


def test_the_combined_steps_pick_the_row_and_groups_a_row_by_row_scan_picks() -> None:
    normaliser = LineNormaliser()
    assert len(LINES) > 3000
    for line in LINES:
        text = line.rstrip("\r\n")
        expected = _row_by_row(text)
        got = None
        for step in normaliser._by_first.get(text[:1], normaliser._by_first[""]):
            got = step.match(text)
            if got is not None:
                break
        if expected is None:
            assert got is None, (line, got)
            continue
        assert got is not None, (line, expected[0].name)
        assert got[0].name == expected[0].name, line
        # ISO times arrive as their text (``_iso``) instead of their parts; the rest is equal
        shared = got[1].keys() & expected[1].keys()
        assert {key: got[1][key] for key in shared} == {key: expected[1][key] for key in shared}, line
        assert got[1].keys() - shared <= {"_iso", "_head"}, line


class _ByGroups:
    """One row read the general way: its groups as a dict (``LineFormat.groups``), then
    ``_build`` (no combined regex, no values by position, no cached seconds)."""

    needle = ""  # ``LineFormat.groups`` looks for the row's needle itself

    def __init__(self, fmt: LineFormat) -> None:
        self.fmt = fmt

    def read(self, text: str, now: datetime, normaliser: LineNormaliser, depth: int) -> Parts | None:
        groups = self.fmt.groups(text)
        return None if groups is None else normaliser._finish(self.fmt, groups, now, depth)


def _one_row_at_a_time(normaliser: LineNormaliser) -> LineNormaliser:
    """``normaliser`` with every row tried on its own, the general way (``_ByGroups``)."""
    slow = LineNormaliser(normaliser.implied, normaliser.http)
    table: dict[str, tuple[_ByGroups, ...]] = {
        char: tuple(_ByGroups(fmt) for fmt in FORMATS if not fmt.starts or char in fmt.starts)
        for char in {*normaliser._by_first, *(char for fmt in FORMATS for char in fmt.starts)}
    }
    table[""] = tuple(_ByGroups(fmt) for fmt in FORMATS if not fmt.starts)
    slow._by_first = cast(Any, table)  # reference steps in place of the production ones
    slow._any = cast(Any, table[""])
    return slow


def _as_tuple(parsed: ParsedLine) -> tuple[object, ...]:
    return (
        parsed.format,
        parsed.timestamp,
        parsed.level,
        parsed.level_source,
        parsed.message,
        list(parsed.fields.items()),  # order too: ``cali parse`` prints the fields in it
    )


@pytest.mark.parametrize("arrival", [ARRIVAL, datetime(2027, 1, 2, 3, tzinfo=UTC)], ids=["dec", "jan"])
def test_fast_and_row_by_row_normalisers_give_the_same_record_line_after_line(arrival: datetime) -> None:
    fast = LineNormaliser()
    slow = _one_row_at_a_time(fast)
    for line in LINES:
        assert _as_tuple(fast.parse(line, arrival)) == _as_tuple(slow.parse(line, arrival)), line


def test_the_program_time_row_reads_update_alternatives_and_nothing_else_changes() -> None:
    parsed = normalise.parse_line(
        "update-alternatives 2025-06-24 14:36:53: run with --install /usr/bin/pager pager /usr/bin/less 77",
        ARRIVAL,
    )
    assert parsed.format == "program-iso"
    assert parsed.timestamp == datetime(2025, 6, 24, 14, 36, 53, tzinfo=UTC)
    assert parsed.fields == {"program": "update-alternatives"}
    assert parsed.message == "run with --install /usr/bin/pager pager /usr/bin/less 77"
    assert (parsed.level, parsed.level_source) == (None, "default")
    # level-less: the message's own header, else the implied level, as for syslog
    said = normalise.parse_line("backup[42] 2026-11-23T10:00:01Z: ERROR: disk full", ARRIVAL)
    assert (said.format, said.level, said.level_source) == ("program-iso+level-colon", Level.ERROR, "line")
    assert (said.message, said.fields) == ("disk full", {"program": "backup", "pid": "42"})
    implied = normalise.parse_line("backup 2026-11-23 10:00:01: connection refused by 10.0.0.7", ARRIVAL)
    assert (implied.format, implied.level, implied.level_source) == ("program-iso", Level.WARN, "inferred")
    # it is the last row: a line another row reads is not taken (a time with no colon after
    # it, a level first, a syslog line whose message holds such a time)
    assert normalise.parse_line("ERROR 2026-11-23 10:00:01,123 views 1 2 boom", ARRIVAL).format == "level-iso"
    assert normalise.parse_line("app 2026-11-23 10:00:01 started", ARRIVAL).format != "program-iso"
    in_syslog = normalise.parse_line("Nov 23 10:00:01 h tool 2026-11-23 10:00:01: x", ARRIVAL)
    assert in_syslog.format == "syslog-notag"


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type,misc]


_NEW_YEAR = "Dec 31 23:59:59 h app: x"


@pytest.mark.parametrize(
    ("line", "arrival", "expected"),
    [
        # no year: the arrival's, or the year before when that would be more than a day ahead
        (_NEW_YEAR, _utc(2027, 1, 1), _utc(2026, 12, 31, 23, 59, 59)),
        (_NEW_YEAR, _utc(2026, 12, 31, 23, 59, 59), _utc(2026, 12, 31, 23, 59, 59)),
        (_NEW_YEAR, _utc(2026, 12, 30, 23, 59, 58), _utc(2025, 12, 31, 23, 59, 59)),
        ("Feb 29 10:00:00 h app: x", _utc(2028, 3, 1), _utc(2028, 2, 29, 10)),
        # klog: the same second, two fractions
        ("I1231 23:59:59.000001 1 a.go:1] x", _utc(2027, 1, 1), _utc(2026, 12, 31, 23, 59, 59, 1)),
        ("I1231 23:59:59.5 1 a.go:1] x", _utc(2027, 1, 1), _utc(2026, 12, 31, 23, 59, 59, 500000)),
        # a lead's own fraction (logcat, Go's log): one cached second, each line's fraction
        ("12-31 23:59:59.250  10  11 E Tag: x", _utc(2027, 1, 1), _utc(2026, 12, 31, 23, 59, 59, 250000)),
        ("12-31 23:59:59.999  10  11 E Tag: x", _utc(2027, 1, 1), _utc(2026, 12, 31, 23, 59, 59, 999000)),
        ("2026/12/31 23:59:59.123456 x", _utc(2027, 1, 1), _utc(2026, 12, 31, 23, 59, 59, 123456)),
        ("2026/12/31 23:59:59 x", _utc(2027, 1, 1), _utc(2026, 12, 31, 23, 59, 59)),
        # a fraction fromisoformat does not read (Arabic-Indic digits): int() reads it
        ("I1231 23:59:59.\u0665 1 a.go:1] x", _utc(2027, 1, 1), _utc(2026, 12, 31, 23, 59, 59, 500000)),
        # a zone behind the fraction: the second in UTC, then the fraction
        ("2026/12/31 23:59:59.5 +01:00 x", _utc(2027, 1, 1), _utc(2026, 12, 31, 22, 59, 59, 500000)),
        # an access line's zone, its second cached and read again
        (
            '10.0.0.7 - - [31/Dec/2026:23:59:59 -0500] "GET / HTTP/1.1" 200 5 "-" "curl"',
            _utc(2027, 1, 1),
            _utc(2027, 1, 1, 4, 59, 59),
        ),
    ],
)
def test_a_cached_second_gives_what_a_fresh_read_gives_whatever_the_arrival(
    line: str, arrival: datetime, expected: datetime
) -> None:
    fresh = _one_row_at_a_time(LineNormaliser())
    for _ in range(2):  # the second read finds the second in the cache
        assert normalise.parse_line(line, arrival).timestamp == expected
        assert normalise.parse_line(line, arrival).timestamp == fresh.parse(line, arrival).timestamp


def test_the_second_cache_stays_bounded() -> None:
    for second in range(normalise._CALENDAR_SIZE + 50):
        minutes, seconds = divmod(second, 60)
        hours, minutes = divmod(minutes, 60)
        normalise.parse_line(f"Dec  1 {hours:02d}:{minutes:02d}:{seconds:02d} h app: x", ARRIVAL)
    assert 0 < len(normalise._CALENDAR) <= normalise._CALENDAR_SIZE


# Lines that take the rare ways of the fast path: an ISO lead fromisoformat refuses (the
# group-less lead is matched again with its groups), a zone after the time, rows without a
# reader behind an ISO lead (key=value groups, logfmt), blanks and no text after the time
# (every row is a candidate), a first character no row can start with.
ODD_LINES = [
    "2026-13-45 10:00:00 ERROR [main] a.b.C - month 13",
    "2026-02-30T10:00:00Z INFO [t] a.b.C - 30 February",
    "2026-11-23 10:00:00,123 +0100 WARN [t] a.b.C - a zone after the time",
    "2026-11-23T10:00:00.123456789Z ERROR x.y: nine fraction digits",
    "2026-11-23 10:00:00.000 INFO  [main] c.e.App {user=42, tenant=a} - with MDC",
    "2026-11-23T10:00:00Z level=error msg=boom",
    "2026-11-23 10:00:00" + " " * 80 + "ERROR after many blanks",
    "2026-11-23 10:00:00",
    "2026-11-23 10:00:00 \u00a7 no row starts with this",
    "2026-11-23 10:00:00\u3000ERROR [t] a.b - an ideographic space",
    "2026-11-23 10:00:00 \u0663 a digit that is not ASCII",
]


@pytest.mark.parametrize("line", ODD_LINES)
def test_the_rare_ways_through_the_fast_path_read_as_row_by_row(line: str) -> None:
    fast = LineNormaliser()
    slow = _one_row_at_a_time(fast)
    for _ in range(2):  # the second time through the narrowed steps and the cached second
        assert _as_tuple(fast.parse(line, ARRIVAL)) == _as_tuple(slow.parse(line, ARRIVAL))


def test_the_rarest_letter_stem_search_finds_exactly_the_texts_holding_a_stem() -> None:
    """``_rare_anchored`` rewrites the implied-level stems so that a search tries fewer
    positions; it must find a stem exactly where one occurs, wherever it sits."""
    stems = normalise._RULE_STEMS
    search = normalise._RULE_STEM.search
    pieces = [*stems, *(stem[:cut] for stem in stems for cut in range(1, len(stem)))]
    pieces += [stem[cut:] for stem in stems for cut in range(1, len(stem))]
    pieces += [" ", "x", "-", "'", "é"]
    rng = random.Random(7)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
        assert (search(text) is not None) == any(stem in text for stem in stems), text
    anchored = re.compile(normalise._rare_anchored(["abc", "b", "xyz"]))
    assert [bool(anchored.search(text)) for text in ("zabcz", "b", "xy z", "yz")] == [
        True,
        True,
        False,
        False,
    ]


@pytest.mark.parametrize(
    ("pattern", "unrolled"),
    [
        (r"\d{2}:\d{4}", r"\d\d:\d\d\d\d"),
        (r"[\d{2}]", r"[\d{2}]"),  # in a class, "{2}" is two characters
        (r"[]\d{2}]\d{3}", r"[]\d{2}]\d\d\d"),
        (r"\\d{2}", r"\\d{2}"),  # an escaped backslash, then "d{2}"
        (r"\d{2}?", r"\d{2}?"),  # lazy, possessive or repeated again: left as written
        (r"\d{2}+", r"\d{2}+"),
        (r"\d{5}\d{1,2}", r"\d{5}\d{1,2}"),
    ],
)
def test_digit_runs_are_written_out_only_where_that_keeps_every_match(pattern: str, unrolled: str) -> None:
    assert normalise._unrolled(pattern) == unrolled
    texts = ["12:3456", "1", "{", "2", "]", "123", "\\dd", "12345", "1234567", "123456789012"]
    for text in texts:
        original, written = re.compile(pattern).match(text), re.compile(unrolled).match(text)
        assert (original and original.group(0)) == (written and written.group(0)), text
