"""``first_chars``: which character can start a row's match, after the blanks it skips.

The normaliser leaves a row out for a line only when this says the row cannot start with
the line's next non-blank character, so an answer that is too narrow would change which
row reads a line. These tests hold the analysis to what ``re`` itself matches.
"""

from __future__ import annotations

import re

import pytest

from cali.ingest.first_chars import first_chars, required_texts
from cali.ingest.normalise import FORMATS, LineFormat
from tests.unit.test_normalise_fast_path import LINES

# Characters ``re`` treats specially: case folding beyond ASCII (Kelvin sign, long s, dotted
# I), non-ASCII digits and blanks, and the ASCII ones.
ALPHABET = [chr(code) for code in range(32, 127)] + [
    "\u212a",  # KELVIN SIGN: (?i)k matches it
    "\u017f",  # LATIN SMALL LETTER LONG S: (?i)s matches it
    "\u0130",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: \d matches it
    "\u00a0",
    "\u3000",
    "\t",
]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"\s++\[(?P<t>[^\]]*+)\]", {"["}),
        (r" (?P<pid>\d+) x", "digits"),
        (r"\t(?P<level>INFO|WARN)\t", {"I", "W"}),
        (r"(?:a|)b", {"a", "b"}),
        (r"\s++(?:(?P<pid>\d+) )?(?P<level>INFO|ERROR)", {"I", "E", "digits"}),
    ],
)
def test_what_a_pattern_must_start_with_is_read(pattern: str, expected: set[str] | str) -> None:
    first = first_chars(pattern)
    assert first is not None
    wanted = {expected} if isinstance(expected, str) else expected
    assert set(first.chars) | ({"digits"} if first.digits else set()) == wanted


@pytest.mark.parametrize(
    "pattern",
    [
        r"(?i:info) x",  # case folding: left to re
        r"(?i)info",
        r"\w+ x",  # a category the analysis does not model
        r".*",
        r"[^\]]+",
        r"\s*",  # blanks only, or nothing
        r"(?: x)?y",  # may start with a blank the skip does not take
        r"(?=a)a",  # a lookahead
    ],
)
def test_anything_not_modelled_leaves_the_row_a_candidate_for_every_line(pattern: str) -> None:
    assert first_chars(pattern) is None


@pytest.mark.parametrize("pattern", [r"\s++(?:INFO|[0-9]|\d)", r" \[x", r"(?:,|-)\s+\w", r"\t(?:ab|c)"])
def test_a_character_left_out_never_starts_a_match(pattern: str) -> None:
    first = first_chars(pattern)
    assert first is not None
    compiled = re.compile(pattern)
    for char in ALPHABET:
        for blanks in ("", " ", "\t", "  "):
            if compiled.match(f"{blanks}{char}INFOab x") is not None and not char.isspace():
                assert first.admits(char), (pattern, char)


def test_every_table_line_starts_with_a_character_its_row_admits() -> None:
    """Every corpus line and variant (thousands): the row that reads it, behind its time, can
    start with the line's next non-blank character."""
    checked = 0
    for fmt in FORMATS:
        if fmt.lead is None or fmt.tail is None:
            continue
        first = first_chars(fmt.tail.pattern, fmt.tail.flags)
        if first is None:
            continue
        for line in LINES:
            head = fmt.lead.match(line)
            if head is None or fmt.tail.match(line, head.end()) is None:
                continue
            rest = line[head.end() :].lstrip()
            assert rest and first.admits(rest[0]), (fmt.name, line)
            checked += 1
    assert checked > 200


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"\[(?P<kv>[^\]]*+)\] - (?P<msg>.*)", ["[", "] - "]),
        (r"a(?:bc|d)e", ["a", "e"]),  # an alternation ends a run
        (r"(?:x - )?y", ["y"]),  # an optional part holds nothing every match needs
        (r"(?:ab)+c", ["ab", "c"]),
        (r"\s+-\s+", ["-"]),
    ],
)
def test_the_texts_every_match_holds_are_read(pattern: str, expected: list[str]) -> None:
    assert required_texts(pattern) == expected


@pytest.mark.parametrize("fmt", [fmt for fmt in FORMATS if fmt.needle], ids=lambda fmt: fmt.name)
def test_every_needle_in_the_table_is_text_its_row_needs(fmt: LineFormat) -> None:
    """The normaliser leaves a row out for a line that lacks its needle, in combined steps
    too: a needle the pattern does not need would lose lines the row reads."""
    assert any(fmt.needle in run for run in required_texts(fmt.pattern.pattern)), fmt.needle
