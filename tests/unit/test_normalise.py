"""The line normaliser's rules beyond the corpus: year inference, zones, HTTP levels, the classifier."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cali.contracts.levels import Level
from cali.ingest.normalise import (
    FORMATS,
    HttpLevels,
    ImpliedSeverity,
    LineNormaliser,
    level_of_word,
    parse_line,
    parse_time_text,
)

JAN = datetime(2027, 1, 2, 12, 0, tzinfo=UTC)


def test_a_december_syslog_line_read_in_january_is_last_years() -> None:
    assert parse_line("Dec 31 23:59:59 h app: x", JAN).timestamp == datetime(
        2026, 12, 31, 23, 59, 59, tzinfo=UTC
    )
    assert parse_line("Jan  2 11:00:00 h app: x", JAN).timestamp == datetime(2027, 1, 2, 11, tzinfo=UTC)
    # a line up to a day ahead (clock skew between hosts) stays in the arrival's year
    assert parse_line("Jan  3 01:00:00 h app: x", JAN).timestamp == datetime(2027, 1, 3, 1, tzinfo=UTC)


def test_zones_are_converted_to_utc_and_naive_times_are_utc() -> None:
    assert parse_line("2026-11-23T10:00:00+02:00 ERROR x", JAN).timestamp == datetime(
        2026, 11, 23, 8, tzinfo=UTC
    )
    assert parse_line("2026-11-23 10:00:00 -0500 ERROR x", JAN).timestamp == datetime(
        2026, 11, 23, 15, tzinfo=UTC
    )
    assert parse_line("2026-11-23 10:00:00 ERROR x", JAN).timestamp == datetime(2026, 11, 23, 10, tzinfo=UTC)


def test_an_impossible_date_is_no_time_rather_than_an_error() -> None:
    parsed = parse_line("2026-02-30 10:00:00 ERROR x", JAN)
    assert parsed.timestamp is None
    assert parsed.level is Level.ERROR


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T10:00:01.5Z", datetime(2026, 11, 23, 10, 0, 1, 500000, tzinfo=UTC)),
        ("23/Nov/2026:10:00:01 +0000", datetime(2026, 11, 23, 10, 0, 1, tzinfo=UTC)),
        ("1763892001", datetime(2025, 11, 23, 10, 0, 1, tzinfo=UTC)),
        ("1763892001500", datetime(2025, 11, 23, 10, 0, 1, 500000, tzinfo=UTC)),
        ("20261123-10:00:01:123", datetime(2026, 11, 23, 10, 0, 1, 123000, tzinfo=UTC)),
        ("2026.11.23 10:00:01", datetime(2026, 11, 23, 10, 0, 1, tzinfo=UTC)),
        ("26/11/23 10:00:01", datetime(2026, 11, 23, 10, 0, 1, tzinfo=UTC)),
        ("261123 100001", datetime(2026, 11, 23, 10, 0, 1, tzinfo=UTC)),
        ("11-23 10:00:01.123", datetime(2026, 11, 23, 10, 0, 1, 123000, tzinfo=UTC)),
        ("not a time", None),
    ],
)
def test_time_shapes(text: str, expected: datetime | None) -> None:
    assert parse_time_text(text, JAN) == expected


@pytest.mark.parametrize(
    ("word", "level"),
    [
        ("error", Level.ERROR),
        ("Error", Level.ERROR),
        ("SEVERE", Level.ERROR),
        ("CRIT", Level.FATAL),
        ("EMERG", Level.FATAL),
        ("ALERT", Level.FATAL),
        ("NOTICE", Level.INFO),
        ("fail", Level.ERROR),
        ("WARNING", Level.WARN),
        ("Information", Level.INFO),
        ("host-1", None),
    ],
)
def test_level_words_in_any_case(word: str, level: Level | None) -> None:
    assert level_of_word(word) == level


def test_level_tokens_in_brackets_angles_and_level_equals() -> None:
    assert parse_line("2026-11-23 10:00:00 [error] x", JAN).level is Level.ERROR
    assert (
        parse_line("2026-11-23 10:00:00 <E> x", JAN).level is None
    )  # one letter only where a format uses it
    assert parse_line("2026-11-23 10:00:00 <warn> x", JAN).level is Level.WARN
    assert parse_line("2026-11-23 10:00:00 level=error x", JAN).level is Level.ERROR


def test_a_message_word_is_not_a_level() -> None:
    # "Error" starting a sentence is part of the message, not a header token.
    parsed = parse_line("2026/11/23 10:00:01 Error connecting to db", JAN)
    assert parsed.message == "Error connecting to db"
    assert parsed.level_source == "inferred" or parsed.level is None


def test_http_status_levels_are_configurable() -> None:
    line = '10.0.0.1 - - [23/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 404 0'
    assert parse_line(line, JAN).level is Level.WARN
    quiet = LineNormaliser(http=HttpLevels(error_from=500, warn_from=500))
    assert quiet.parse(line, JAN).level is Level.INFO
    # Each normaliser remembers its own statuses' levels: neither changes the other's.
    assert quiet.parse(line, JAN).level is Level.INFO
    assert parse_line(line, JAN).level is Level.WARN


def test_classifier_is_conservative() -> None:
    classify = ImpliedSeverity().classify
    assert classify("Out of memory: Killed process 42 (java)") is Level.ERROR
    assert classify("segfault at 0 ip 00007f") is Level.ERROR
    assert classify("Failed password for root from 1.2.3.4") is Level.WARN
    assert classify("connect to upstream timed out") is Level.WARN
    assert classify("backup completed with 0 errors") is None
    assert classify("retry succeeded after failed attempt") is None
    assert classify("instruction cache parity error detected and corrected") is None
    assert classify("user logged in") is None


def test_classifier_can_be_turned_off_or_extended() -> None:
    assert ImpliedSeverity(enabled=False).classify("segfault") is None
    extended = ImpliedSeverity(extra_error=(r"\bquota exceeded\b",), extra_warn=(r"\bslow query\b",))
    assert extended.classify("quota exceeded for tenant 7") is Level.ERROR
    assert extended.classify("slow query took 9s") is Level.WARN
    normaliser = LineNormaliser(ImpliedSeverity(enabled=False))
    parsed = normaliser.parse("Nov 30 06:55:48 h sshd[1]: Failed password for root", JAN)
    assert (parsed.level, parsed.level_source) == (None, "default")


def test_level_sources() -> None:
    assert parse_line("2026-11-23 10:00:00 ERROR boom", JAN).level_source == "line"
    assert parse_line("Nov 30 06:55:48 h sshd[1]: Failed password for root", JAN).level_source == "inferred"
    assert parse_line("Nov 30 06:55:48 h sshd[1]: Accepted password for root", JAN).level_source == "default"


def test_a_single_key_value_token_keeps_its_text() -> None:
    parsed = parse_line("user_id=42", JAN)
    assert parsed.message == "user_id=42"
    assert parsed.format == "unknown"


def test_json_lines_use_their_own_keys() -> None:
    parsed = parse_line('{"level":"error","msg":"boom","time":"2026-11-23T10:00:00Z","messageType":"x"}', JAN)
    assert (parsed.format, parsed.level, parsed.message) == ("json", Level.ERROR, "boom")
    assert parsed.fields == {"messageType": "x"}


def test_multi_line_events_keep_their_trace_in_the_message() -> None:
    event = (
        "2026-11-23 10:00:01,456 ERROR [main] com.acme.Job - failed\n"
        "java.lang.X: y\n\tat com.acme.Job.run(Job.java:1)"
    )
    parsed = parse_line(event, JAN)
    assert parsed.level is Level.ERROR
    assert parsed.message.startswith("failed\njava.lang.X: y")


def test_format_names_are_unique_and_documented() -> None:
    names = [fmt.name for fmt in FORMATS]
    assert len(names) == len(set(names))
    assert all(fmt.example for fmt in FORMATS)


def test_as_json_is_the_cali_parse_shape() -> None:
    out = parse_line("2026-11-23T10:00:00Z ERROR boom", JAN).as_json()
    assert out == {
        "timestamp": "2026-11-23T10:00:00Z",
        "level": "ERROR",
        "level_source": "line",
        "message": "boom",
        "format": "iso",
        "fields": {},
    }
