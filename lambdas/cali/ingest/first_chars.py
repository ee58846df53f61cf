"""What a row's pattern says about every text it matches, read once with ``re``'s own parser:
which character can start it, after any whitespace it skips (``first_chars``), and which
literal texts it always holds (``required_texts``, the check on the table's needles).

The normaliser tries the rows that share a time shape as one alternation, in table order.
A row that cannot match a line still costs the regex engine a partial match, and the rows
before a common one (logback is the tenth ISO row) cost more than the row itself. The line's
first non-blank character after the time decides cheaply which rows are worth trying:
``first_chars`` reads a row's pattern once, with the parser the ``re`` module itself uses,
and says which characters that can be.

The answer is conservative by construction: anything the analysis does not model
(``\\w``, ``.``, a negated class, case-insensitive letters, a lookaround, a pattern that
can match nothing or only blanks) makes the row a candidate for every line (``None``). A
row is only left out for a line when its pattern *requires* a first character the line
does not have, so the rows tried still give the same first match as the whole table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

try:  # the parser behind ``re.compile`` (CPython 3.11+); without it no row is left out
    from re import _constants as _sre  # type: ignore[attr-defined]
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - another interpreter
    _sre = _sre_parse = None


@dataclass(frozen=True, slots=True)
class FirstChars:
    """The characters a match can start with: ``chars``, or any decimal digit (``\\d``)."""

    chars: frozenset[str]
    digits: bool = False

    def admits(self, char: str) -> bool:
        return char in self.chars or (self.digits and char.isdecimal())

    def __or__(self, other: FirstChars) -> FirstChars:
        return FirstChars(self.chars | other.chars, self.digits or other.digits)


_NOTHING: Final = FirstChars(frozenset())


class _Unknown(Exception):
    """Something the analysis does not model: the row may start with anything."""


def first_chars(pattern: str, flags: int = 0) -> FirstChars | None:
    """The first non-blank character of any text ``pattern`` matches (``re.match`` at a
    position), or None when it cannot be told. Blank = what ``\\s`` and ``str.isspace`` call
    whitespace: the pattern's leading run of blank-only items is skipped."""
    if _sre_parse is None or flags & re.IGNORECASE:
        return None
    try:
        parsed = _sre_parse.parse(pattern, flags)
        if parsed.state.flags & re.IGNORECASE:  # a global ``(?i)``
            return None
        first, nullable = _sequence(_after_blanks(list(parsed)))
    except (_Unknown, re.error, AttributeError, TypeError, ValueError):
        return None
    if nullable or any(char.isspace() for char in first.chars):
        return None  # it may match blanks only, or start with a blank the skip did not take
    return first


def _after_blanks(items: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """``items`` without the leading ones that only ever match whitespace (`` ``, ``\\s++``)."""
    index = 0
    for op, value in items:
        if op in _REPEATS and len(value[2]) == 1:
            op, value = value[2][0]  # noqa: PLW2901 - the repeated item decides
        if not _blank_only(op, value):
            break
        index += 1
    return items[index:]


def _blank_only(op: Any, value: Any) -> bool:
    if op is _sre.LITERAL:
        return chr(value).isspace()
    if op is _sre.IN:  # ``\s``, ``[ \t]``
        return bool(value) and all(
            (kind is _sre.CATEGORY and item is _sre.CATEGORY_SPACE)
            or (kind is _sre.LITERAL and chr(item).isspace())
            for kind, item in value
        )
    return False


def _sequence(items: Any) -> tuple[FirstChars, bool]:
    """(what a match of these items in a row can start with, whether they can match empty)."""
    found = _NOTHING
    for op, value in items:
        first, nullable = _item(op, value)
        found = found | first
        if not nullable:
            return found, False
    return found, True


def _item(op: Any, value: Any) -> tuple[FirstChars, bool]:
    if op is _sre.LITERAL:
        return FirstChars(frozenset(chr(value))), False
    if op is _sre.IN:
        return _in(value), False
    if op is _sre.SUBPATTERN:
        _group, add_flags, del_flags, body = value
        if add_flags & re.IGNORECASE and not del_flags & re.IGNORECASE:
            raise _Unknown  # case folding reaches beyond ASCII (K and the Kelvin sign)
        return _sequence(body)
    if op is _sre.BRANCH:
        found, nullable = _NOTHING, False
        for branch in value[1]:
            first, empty = _sequence(branch)
            found, nullable = found | first, nullable or empty
        return found, nullable
    if op in _REPEATS:
        low, _high, body = value
        first, nullable = _sequence(body)
        return first, nullable or low == 0
    if op is _sre.ATOMIC_GROUP:
        return _sequence(value)
    raise _Unknown  # ANY, NOT_LITERAL, AT, ASSERT, GROUPREF, ...


def _in(value: Any) -> FirstChars:
    chars: set[str] = set()
    digits = False
    for op, item in value:
        if op is _sre.LITERAL:
            chars.add(chr(item))
        elif op is _sre.RANGE and item[1] - item[0] < 256:
            chars.update(chr(code) for code in range(item[0], item[1] + 1))
        elif op is _sre.CATEGORY and item is _sre.CATEGORY_DIGIT:
            digits = True
        else:  # NEGATE, \w, \s inside a class, a wide range: not modelled
            raise _Unknown
    return FirstChars(frozenset(chars), digits)


_REPEATS: Final = (
    frozenset((_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT)) if _sre is not None else frozenset()
)


def required_texts(pattern: str) -> list[str]:
    """The literal runs every match of ``pattern`` contains (from its top-level sequence and
    the groups that always take part), e.g. ``["] - "]`` for ``\\[(?P<kv>[^\\]]*)\\] - .*``.
    Used to check that a row's ``needle`` is one its pattern needs; [] when unreadable."""
    if _sre_parse is None:
        return []
    try:
        runs: list[str] = []
        _runs(list(_sre_parse.parse(pattern)), runs, [])
    except (re.error, AttributeError, TypeError, ValueError):
        return []
    return runs


def _runs(items: list[tuple[Any, Any]], runs: list[str], current: list[str]) -> None:
    """Literal runs of ``items``: consecutive literals join; anything else ends the run."""
    for op, value in items:
        if op is _sre.LITERAL:
            current.append(chr(value))
            continue
        if op is _sre.SUBPATTERN and not value[1] & re.IGNORECASE:
            _runs(list(value[3]), runs, current)  # a group that always takes part: inline
            continue
        _close(runs, current)
        if op in _REPEATS and value[0] >= 1:
            _runs(list(value[2]), runs, [])  # matched at least once: its own runs count
            _close(runs, [])
    _close(runs, current)


def _close(runs: list[str], current: list[str]) -> None:
    if current:
        runs.append("".join(current))
        current.clear()
