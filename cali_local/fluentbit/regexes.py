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


def portability_problems(source: str) -> list[str]:  # noqa: C901, PLR0912, PLR0915
    """Constructs that Onigmo and Python's ``re`` do not read the same way.

    Checked by walking the pattern once, outside and inside character classes:
    possessive quantifiers, atomic groups, lookbehind, unnamed capturing groups (Onigmo
    does not capture them next to named groups, Python does), duplicate group names,
    nested character-class sets and the escapes in ``_FORBIDDEN_ESCAPES``.
    """
    body, _ = split_slashes(source)
    problems: list[str] = []
    names: list[str] = []
    i = 0
    in_class = False
    n = len(body)
    while i < n:
        c = body[i]
        if c == "\\":
            nxt = body[i + 1] if i + 1 < n else ""
            if nxt in _FORBIDDEN_ESCAPES:
                problems.append(f"forbidden escape {_FORBIDDEN_ESCAPES[nxt]} at {i}")
            i += 2
            continue
        if in_class:
            if c == "[":
                problems.append(f"nested character class at {i}")
            elif c == "]":
                in_class = False
            i += 1
            continue
        if c == "[":
            in_class = True
            # a leading ']' or '^]' is a literal in both dialects
            j = i + 1
            if j < n and body[j] == "^":
                j += 1
            if j < n and body[j] == "]":
                j += 1
            i = j
            continue
        if c == "(":
            rest = body[i + 1 : i + 4]
            if not rest.startswith("?"):
                problems.append(f"unnamed capturing group at {i}: use (?:...) or (?<name>...)")
            elif rest.startswith("?>"):
                problems.append(f"atomic group at {i}")
            elif rest.startswith(("?<=", "?<!")):
                problems.append(f"lookbehind at {i}")
            elif rest.startswith("?<"):
                end = body.find(">", i)
                name = body[i + 3 : end]
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    problems.append(f"group name {name!r} must be letters, digits and _")
                names.append(name)
            elif rest.startswith("?P"):
                problems.append(f"Python-only named group syntax at {i}")
            elif rest.startswith("?") and not rest.startswith(("?:", "?=", "?!", "?#")):
                problems.append(f"inline flag or unsupported group {body[i : i + 4]!r} at {i}")
            i += 1
            continue
        if c in "*+?}" and i + 1 < n and body[i + 1] == "+":
            problems.append(f"possessive quantifier at {i}")
        i += 1
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(f"duplicate group names {duplicates}")
    return problems
