"""Onigmo (Fluent Bit's regex dialect) patterns as Python patterns, and what both read alike."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cali_local.fluentbit.config import EmulationError


@dataclass(frozen=True)
class OnigmoPattern:
    """A regex from the YAML and its Python equivalent."""

    source: str
    body: str
    compiled: re.Pattern[str]


def split_slashes(source: str) -> tuple[str, str]:
    """``'/body/flags'`` -> (body, flags), as ``flb_regex.c`` strips them."""
    if len(source) >= 2 and source.startswith("/"):
        last = source.rfind("/")
        if last > 0:
            flags = source[last + 1 :]
            if flags == "" or all(c in "mix" for c in flags):
                return source[1:last], flags
    return source, ""


def compile_onigmo(source: str) -> OnigmoPattern:
    """Compile an Onigmo (Ruby syntax) pattern from the YAML into a Python pattern.

    Ruby's ``^``/``$`` always match at line boundaries (Python's MULTILINE), ``\\d``,
    ``\\s`` and ``\\w`` are ASCII-only, and the ``m`` flag makes ``.`` match newlines
    (Python's DOTALL).
    """
    problems = portability_problems(source)
    if problems:
        raise EmulationError(f"regex {source!r} is not portable: {'; '.join(problems)}")
    body, flags = split_slashes(source)
    py_flags = re.MULTILINE | re.ASCII
    if "m" in flags:
        py_flags |= re.DOTALL
    if "i" in flags:
        py_flags |= re.IGNORECASE
    if "x" in flags:
        py_flags |= re.VERBOSE
    python_body = body.replace("(?<", "(?P<")
    try:
        compiled = re.compile(python_body, py_flags)
    except re.error as exc:
        raise EmulationError(f"regex {source!r} does not compile in Python: {exc}") from exc
    return OnigmoPattern(source=source, body=body, compiled=compiled)


_FORBIDDEN_ESCAPES = {
    "h": r"\h (hex digit in Onigmo, an error in Python)",
    "H": r"\H (non-hex digit in Onigmo)",
    "z": r"\z (end of string in Onigmo, an error in Python)",
    "Z": r"\Z (means different things in Onigmo and Python)",
    "K": r"\K (keep, Onigmo only)",
    "R": r"\R (line break, Onigmo only)",
    "X": r"\X (grapheme cluster, Onigmo only)",
    "G": r"\G (match start, Onigmo only)",
    "p": r"\p{...} (property classes, Onigmo only)",
    "P": r"\P{...} (property classes, Onigmo only)",
    "k": r"\k<name> (named backreference, spelled differently)",
    "g": r"\g<name> (subexpression call, Onigmo only)",
}


# Group openings Python reads differently from Onigmo, checked in this order after "(".
_GROUP_PREFIX_PROBLEMS = (
    ("?>", "atomic group"),
    ("?<=", "lookbehind"),
    ("?<!", "lookbehind"),
)
_PORTABLE_GROUP_PREFIXES = ("?:", "?=", "?!", "?#")


def _named_group_problem(body: str, i: int, names: list[str]) -> str | None:
    """Record the name of the ``(?<name>`` group at ``i``; a problem if Python cannot spell it."""
    end = body.find(">", i)
    name = body[i + 3 : end]
    names.append(name)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return f"group name {name!r} must be letters, digits and _"
    return None


def _group_problem(body: str, i: int, names: list[str]) -> str | None:
    """The problem with the group opened by the ``(`` at ``i``, if any."""
    rest = body[i + 1 : i + 4]
    if not rest.startswith("?"):
        return f"unnamed capturing group at {i}: use (?:...) or (?<name>...)"
    for prefix, what in _GROUP_PREFIX_PROBLEMS:
        if rest.startswith(prefix):
            return f"{what} at {i}"
    if rest.startswith("?<"):
        return _named_group_problem(body, i, names)
    if rest.startswith("?P"):
        return f"Python-only named group syntax at {i}"
    if not rest.startswith(_PORTABLE_GROUP_PREFIXES):
        return f"inline flag or unsupported group {body[i : i + 4]!r} at {i}"
    return None


def _class_body_start(body: str, i: int) -> int:
    """The index after the ``[`` at ``i`` where the class's closing ``]`` may appear.

    A leading ``]`` or ``^]`` is a literal in both dialects.
    """
    j = i + 1
    if j < len(body) and body[j] == "^":
        j += 1
    if j < len(body) and body[j] == "]":
        j += 1
    return j


def _outside_class_problem(body: str, i: int, names: list[str]) -> str | None:
    """The problem with the character at ``i``, outside a character class, other than ``\\`` and ``[``."""
    if body[i] == "(":
        return _group_problem(body, i, names)
    if body[i] in "*+?}" and body[i + 1 : i + 2] == "+":
        return f"possessive quantifier at {i}"
    return None


def portability_problems(source: str) -> list[str]:
    """Constructs that Onigmo and Python's ``re`` do not read the same way.

    Checked by walking the pattern once, outside and inside character classes:
    possessive quantifiers, atomic groups, lookbehind, unnamed capturing groups (Onigmo
    does not capture them next to named groups, Python does), duplicate group names,
    nested character-class sets and the escapes in ``_FORBIDDEN_ESCAPES``.
    """
    body, _ = split_slashes(source)
    problems: list[str | None] = []
    names: list[str] = []
    i, in_class = 0, False
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1 : i + 2]
            if nxt in _FORBIDDEN_ESCAPES:
                problems.append(f"forbidden escape {_FORBIDDEN_ESCAPES[nxt]} at {i}")
            i += 2
        elif in_class:
            problems.append(f"nested character class at {i}" if c == "[" else None)
            in_class = c != "]"
            i += 1
        elif c == "[":
            in_class = True
            i = _class_body_start(body, i)
        else:
            problems.append(_outside_class_problem(body, i, names))
            i += 1
    found = [problem for problem in problems if problem is not None]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        found.append(f"duplicate group names {duplicates}")
    return found
