"""Stack-trace parsing for fingerprinting: exception type and top application frames.

Grouping a crash by "exception type + the innermost few frames of *our* code" is what
error trackers (Sentry, Rollbar, Error Reporting) converge on: the exception message
carries ids and values, line numbers move with every deploy, and framework frames
(the servlet container, the asyncio loop, the Go runtime) are the same for every bug.
So frames are reduced to ``module.function`` (no line numbers), framework frames are
skipped, and the first ``max_frames`` application frames, innermost first, are kept.

Four trace dialects are recognised by line shape, which is cheap and needs no state:
Java/JVM (``at a.b.C.m(File.java:12)``, ``Caused by:``), Python (``Traceback``,
``File "x.py", line 3, in f``), Go (``panic:``, ``goroutine N [running]:``, function
line then ``\\tfile.go:12 +0x1d``) and Node.js (``at fn (file.js:1:2)``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# Frames of these modules/paths belong to runtimes and frameworks, not to the
# application; skipping them makes "top N frames" point at the code that differs.
DEFAULT_FRAMEWORK_MARKERS: tuple[str, ...] = (
    # JVM
    "java.", "javax.", "jdk.", "sun.", "com.sun.", "kotlin.", "kotlinx.", "scala.",
    "org.springframework.", "org.apache.catalina.", "org.apache.tomcat.", "org.apache.coyote.",
    "io.netty.", "reactor.", "org.hibernate.", "com.zaxxer.hikari.", "org.junit.",
    "jakarta.", "org.eclipse.jetty.", "io.undertow.", "com.fasterxml.jackson.",
    # Node.js
    "node_modules", "node:", "internal/",
    # Python
    "site-packages", "dist-packages", "/lib/python", "<frozen ",
    # Go
    "runtime/", "runtime.",
)

_JAVA_FRAME = re.compile(r"^\s*at\s+([\w$.<>/]+?)\.([\w$<>]+)\(([^)]*)\)")
_JAVA_EXCEPTION = re.compile(
    r"^\s*(?:Caused by:\s*|Suppressed:\s*)?((?:[A-Za-z_$][\w$]*\.)*[A-Za-z_$][\w$]*"
    r"(?:Exception|Error|Throwable|Failure|Fault))\b(?::\s?(.*))?$"
)
_PY_FRAME = re.compile(r'^\s*File "([^"]+)", line \d+, in (\S+)')
_PY_EXCEPTION = re.compile(r"^((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*)(?::\s?(.*))?$")
_NODE_FRAME = re.compile(
    r"^\s*at\s+(?:async\s+)?(?:new\s+)?(?:(.+?)\s+\((.+?)(?::\d+){0,2}\)|(.+?)(?::\d+){0,2})\s*$"
)
_NODE_EXCEPTION = re.compile(r"^([A-Za-z_$][\w$.]*(?:\s\[[\w-]+\])?):\s?(.*)$")
_GO_PANIC = re.compile(r"^(panic|fatal error):\s*(.*)$")
_GO_GOROUTINE = re.compile(r"^goroutine \d+ \[")
_GO_FUNC = re.compile(r"^((?:[\w.-]+/)*[\w.-]+?\.(?:\(\*?[\w]+\)\.)?[\w.$]+)\((?:[^)]*)\)$")
_GO_FILE = re.compile(r"^\t\S+\.go:\d+")


@dataclass(frozen=True, slots=True)
class ParsedTrace:
    """What of a stack trace goes into a fingerprint."""

    exception_type: str | None
    exception_message: str | None
    frames: tuple[str, ...]


def parse_trace(
    text: str,
    *,
    max_frames: int = 3,
    framework_markers: Sequence[str] = DEFAULT_FRAMEWORK_MARKERS,
) -> ParsedTrace:
    """Exception type, its (unmasked) message and the top application frames of ``text``."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return ParsedTrace(None, None, ())
    if any(_GO_GOROUTINE.match(line) for line in lines[:8]) or _GO_PANIC.match(lines[0]):
        return _parse_go(lines, max_frames, framework_markers)
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        return _parse_python(lines, max_frames, framework_markers)
    return _parse_at_style(lines, max_frames, framework_markers)


def _is_framework(frame: str, markers: Sequence[str]) -> bool:
    return any(marker in frame for marker in markers)


def _pick(frames: list[str], all_frames: list[str], max_frames: int) -> tuple[str, ...]:
    # A trace made only of framework frames still deserves a stable grouping key.
    chosen = frames if frames else all_frames
    return tuple(chosen[:max_frames])


def _parse_at_style(lines: list[str], max_frames: int, markers: Sequence[str]) -> ParsedTrace:
    """Java/JVM and Node.js: exception header line(s) followed by ``at ...`` frames."""
    exc_type: str | None = None
    exc_message: str | None = None
    app: list[str] = []
    every: list[str] = []
    in_first_block = True
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("at "):
            if not in_first_block:
                continue
            frame = _java_frame(stripped) or _node_frame(stripped)
            if frame is None:
                continue
            name, location = frame
            every.append(name)
            if not _is_framework(name, markers) and not _is_framework(location, markers):
                app.append(name)
            continue
        if stripped.startswith("... ") and stripped.endswith("more"):
            continue
        if stripped.startswith(("Caused by:", "Suppressed:")):
            # The outermost exception names the failure the application saw; causes
            # change with infrastructure, so only the first block is fingerprinted.
            in_first_block = False
            continue
        if exc_type is None and not every:
            match = _JAVA_EXCEPTION.match(stripped) or _NODE_EXCEPTION.match(stripped)
            if match:
                exc_type, exc_message = match.group(1), match.group(2)
    return ParsedTrace(exc_type, exc_message, _pick(app, every, max_frames))


def _java_frame(line: str) -> tuple[str, str] | None:
    match = _JAVA_FRAME.match(line)
    if match is None:
        return None
    location = match.group(3)
    if location.endswith(")"):
        location = location[:-1]
    # Node frames "at fn (/app/x.js:1:2)" also match the Java shape; a ".js"/".ts"
    # location or a path separator means Node.
    if "/" in location or "\\" in location or re.search(r"\.(?:[cm]?js|tsx?):", location):
        return None
    return f"{match.group(1)}.{match.group(2)}", location


def _node_frame(line: str) -> tuple[str, str] | None:
    match = _NODE_FRAME.match(line)
    if match is None:
        return None
    if match.group(2) is not None:
        function, location = match.group(1), match.group(2)
    else:
        function, location = "<anonymous>", match.group(3)
    location = re.sub(r"(?::\d+)+$", "", location)
    # The file name, not the deploy-specific absolute path, identifies the frame.
    return f"{function}@{location.rsplit('/', 1)[-1]}", location


def _parse_python(lines: list[str], max_frames: int, markers: Sequence[str]) -> ParsedTrace:
    # With chained exceptions the last traceback is the one that escaped.
    start = max(i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)"))
    app: list[str] = []
    every: list[str] = []
    exc_type: str | None = None
    exc_message: str | None = None
    for line in lines[start + 1:]:
        match = _PY_FRAME.match(line)
        if match:
            path, function = match.group(1), match.group(2)
            name = f"{_python_module(path)}.{function}"
            every.append(name)
            if not _is_framework(path, markers):
                app.append(name)
            continue
        if not line.startswith((" ", "\t")):
            exc = _PY_EXCEPTION.match(line.strip())
            if exc:
                exc_type, exc_message = exc.group(1), exc.group(2)
    # Python prints the innermost frame last; fingerprints want innermost first.
    app.reverse()
    every.reverse()
    return ParsedTrace(exc_type, exc_message, _pick(app, every, max_frames))


def _python_module(path: str) -> str:
    # Deploy roots differ (/var/task, /app, a venv); the last two path parts identify
    # the module well enough and stay stable across them.
    parts = path.replace("\\", "/").split("/")
    tail = "/".join(parts[-2:])
    return tail[:-3] if tail.endswith(".py") else tail


def _parse_go(lines: list[str], max_frames: int, markers: Sequence[str]) -> ParsedTrace:
    exc_type: str | None = None
    exc_message: str | None = None
    panic = _GO_PANIC.match(lines[0])
    if panic:
        kind, rest = panic.group(1), panic.group(2)
        # "panic: runtime error: index out of range" -> type "panic: runtime error".
        head, sep, tail = rest.partition(": ")
        if sep and re.fullmatch(r"[a-z][\w ]{0,40}", head):
            exc_type, exc_message = f"{kind}: {head}", tail
        else:
            exc_type, exc_message = kind, rest
    app: list[str] = []
    every: list[str] = []
    seen_goroutine = False
    for line in lines[1 if panic else 0:]:
        if _GO_GOROUTINE.match(line):
            if seen_goroutine:
                break  # only the panicking goroutine matters
            seen_goroutine = True
            continue
        if line.startswith("\t") or not seen_goroutine:
            continue
        match = _GO_FUNC.match(line.strip())
        if not match:
            continue
        name = match.group(1)
        every.append(name)
        if not _is_framework(name, markers) and not _is_go_stdlib(name):
            app.append(name)
    return ParsedTrace(exc_type, exc_message, _pick(app, every, max_frames))


def _is_go_stdlib(function: str) -> bool:
    # The first element of the import path names the standard library's top-level
    # packages ("net/http.(*conn).serve", "runtime.gopark"); modules start with a domain
    # ("github.com/...") or their own name ("main", "myapp/...").
    first = function.split("/", 1)[0].split(".", 1)[0]
    return first in _GO_STD_TOP


_GO_STD_TOP = frozenset({
    "archive", "bufio", "builtin", "bytes", "cmp", "compress", "container", "context", "crypto",
    "database", "debug", "embed", "encoding", "errors", "expvar", "flag", "fmt", "go", "hash",
    "html", "image", "index", "internal", "io", "iter", "log", "maps", "math", "mime", "net",
    "os", "path", "plugin", "reflect", "regexp", "runtime", "slices", "sort", "strconv",
    "strings", "structs", "sync", "syscall", "testing", "text", "time", "unicode", "unique",
    "unsafe", "weak",
})


def parse_exception_header(line: str) -> tuple[str, str | None] | None:
    """``(type, message)`` when ``line`` reads like ``pkg.SomeException: message``.

    Multi-line Java and Node events often start with the exception line itself; its
    message then varies per occurrence and must not become the event's template.
    """
    stripped = line.strip()
    match = _JAVA_EXCEPTION.match(stripped) or _GO_PANIC.match(stripped)
    if match is None:
        node = _NODE_EXCEPTION.match(stripped)
        if node is None or not node.group(1).split(".")[-1].endswith(("Error", "Exception")):
            return None
        match = node
    return match.group(1), match.group(2)
