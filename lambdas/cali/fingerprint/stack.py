"""Stack-trace parsing for fingerprinting: exception type and top application frames.

Grouping a crash by "exception type + the innermost few frames of *our* code" is what
error trackers (Sentry, Rollbar, Error Reporting) converge on: the exception message
carries ids and values, line numbers move with every deploy, and framework frames (the
servlet container, the event loop, the Go runtime) are the same for every bug. So a
frame is reduced to its function (no line number, no deploy-specific path), framework
frames are skipped, and the first ``max_frames`` application frames, innermost first,
are kept. A trace with no application frame at all keeps its first framework frames.

Four dialects are recognised by line shape, which is cheap and needs no state:
Java/JVM (``at a.b.C.m(File.java:12)``, ``Caused by:``), Python (``Traceback``,
``File "x.py", line 3, in f``), Go (``panic:``, ``goroutine 1 [running]:``, a function
line then ``\\t/app/main.go:12 +0x1d``) and Node.js (``at fn (/app/file.js:1:2)``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

# Frames of runtimes and frameworks: skipping them makes the "top N frames" point at
# the code that differs between bugs. A marker with a path character (``/ \ : <``) is a
# substring of the frame's file; any other is a prefix of its function (JVM, Go packages).
DEFAULT_FRAMEWORK_MARKERS: tuple[str, ...] = (
    # JVM
    "java.",
    "javax.",
    "jakarta.",
    "jdk.",
    "sun.",
    "com.sun.",
    "kotlin.",
    "kotlinx.",
    "scala.",
    "org.springframework.",
    "org.apache.catalina.",
    "org.apache.tomcat.",
    "org.apache.coyote.",
    "org.eclipse.jetty.",
    "io.undertow.",
    "io.netty.",
    "reactor.",
    "org.hibernate.",
    "com.zaxxer.hikari.",
    "com.fasterxml.jackson.",
    "org.junit.",
    # Node.js
    "node_modules/",
    "node:",
    # Python
    "site-packages/",
    "dist-packages/",
    "/lib/python3.",
    "/lib/python2.",
    "<frozen ",
    "/var/runtime/",
    "awslambdaric/",  # the AWS Lambda runtime interface client
    # Go (the standard library is recognised by its import paths, see _is_go_stdlib)
    "runtime.",
)

_JAVA_FRAME = re.compile(r"^at\s+([\w$.<>/]+?)\.([\w$<>]+)\(([^)]*)\)")
_JAVA_EXCEPTION = re.compile(
    r"^(?:Caused by:\s*|Suppressed:\s*)?((?:[A-Za-z_$][\w$]*\.)*[A-Za-z_$][\w$]*"
    r"(?:Exception|Error|Throwable|Failure|Fault))\b(?::\s?(.*))?$"
)
_NODE_FRAME = re.compile(r"^at\s+(?:async\s+)?(?:new\s+)?(?:(.+?)\s+\((.+)\)|(.+))$")
_NODE_EXCEPTION = re.compile(r"^([A-Za-z_$][\w$.]*(?:\s\[[\w-]+\])?):\s?(.*)$")
_LINE_COLUMN = re.compile(r"(?::\d+)+$")
_JS_LOCATION = re.compile(r"\.(?:[cm]?js|[cm]?ts|jsx|tsx)(?::\d+)*$")
_PY_FRAME = re.compile(r'^\s*File "([^"]+)", line \d+, in (\S+)')
_PY_EXCEPTION = re.compile(r"^((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*)(?::\s?(.*))?$")
_GO_PANIC = re.compile(r"^(panic|fatal error):\s*(.*)$")
_GO_GOROUTINE = re.compile(r"^goroutine \d+ \[")
_GO_FUNC = re.compile(r"^((?:[\w.-]+/)*[\w.-]+?\.(?:\(\*?\w+\)\.)?[\w.$]+)\(.*\)$")
# Generated names carry per-build or per-run numbers: lambda$handle$0,
# $$Lambda$123/0x0000000800c0b440, GeneratedMethodAccessor12, $Proxy45, func1.
_GENERATED_NUMBER = re.compile(r"0x[0-9a-fA-F]+|\d+(?=$|[$./])|(?<=\$)\d+")


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
    markers = _markers(tuple(framework_markers))
    # Substring tests first: this runs for every ERROR record that carries a trace.
    if ("goroutine " in text and any(_GO_GOROUTINE.match(line) for line in lines[:8])) or (
        ":" in lines[0] and _GO_PANIC.match(lines[0])
    ):
        return _parse_go(lines, max_frames, markers)
    if 'File "' in text and any(_PY_FRAME.match(line) for line in lines[:8]):
        return _parse_python(lines, max_frames, markers)
    return _parse_at_style(lines, max_frames, markers)


def parse_exception_header(line: str) -> tuple[str, str | None] | None:
    """``(type, message)`` when ``line`` reads like ``pkg.SomeException: message``.

    Multi-line Java, Node and Go events often start with the exception line itself;
    its message then varies per occurrence and must not become the event's template.
    """
    stripped = line.strip()
    panic = _GO_PANIC.match(stripped)
    if panic:
        return _go_exception(panic)
    match = _JAVA_EXCEPTION.match(stripped)
    if match is None:
        # "TypeError: x", "Error [ERR_HTTP_HEADERS_SENT]: x"; "a: 1" is no exception.
        match = _NODE_EXCEPTION.match(stripped)
        if match is None or not match.group(1).split(" [")[0].endswith(("Error", "Exception")):
            return None
    return match.group(1), match.group(2)


class _Markers:
    def __init__(self, markers: tuple[str, ...]) -> None:
        substrings = [m for m in markers if any(c in m for c in "/\\:<")]
        self.prefixes = tuple(m for m in markers if m not in substrings)
        # One regex search instead of a loop over substrings: this runs per frame.
        self._in_location = re.compile("|".join(map(re.escape, substrings)) or "(?!)")

    def is_framework(self, function: str, location: str) -> bool:
        return function.startswith(self.prefixes) or self._in_location.search(location) is not None


@functools.lru_cache(maxsize=8)
def _markers(markers: tuple[str, ...]) -> _Markers:
    return _Markers(markers)


def _frame_name(name: str) -> str:
    return _GENERATED_NUMBER.sub("<*>", name)


def _pick(app: list[str], every: list[str], max_frames: int) -> tuple[str, ...]:
    # A trace made only of framework frames still deserves a stable grouping key.
    return tuple((app or every)[:max_frames])


def _parse_at_style(lines: list[str], max_frames: int, markers: _Markers) -> ParsedTrace:
    """Java/JVM and Node.js: exception header line(s), then ``at ...`` frames."""
    exc_type: str | None = None
    exc_message: str | None = None
    app: list[str] = []
    every: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("at "):
            frame = _java_frame(stripped) or _node_frame(stripped)
            if frame is not None:
                function, location = frame
                every.append(function)
                if not markers.is_framework(function, location):
                    app.append(function)
                    if len(app) == max_frames:
                        break  # the rest of a long trace cannot change the result
            continue
        if stripped.startswith(("Caused by:", "Suppressed:")):
            # The outermost exception is the failure the application saw; causes and
            # their frames follow the infrastructure, so the first block decides.
            break
        if exc_type is None and not every:
            header = parse_exception_header(stripped)
            if header:
                exc_type, exc_message = header
    return ParsedTrace(exc_type, exc_message, _pick(app, every, max_frames))


def _java_frame(line: str) -> tuple[str, str] | None:
    match = _JAVA_FRAME.match(line)
    if match is None:
        return None
    location = match.group(3)
    # Node frames "at fn (/app/x.js:1:2)" have the same shape; a path or a JS/TS file
    # means Node.
    if "/" in location or "\\" in location or _JS_LOCATION.search(location):
        return None
    return _frame_name(f"{match.group(1)}.{match.group(2)}"), location


def _node_frame(line: str) -> tuple[str, str] | None:
    match = _NODE_FRAME.match(line)
    if match is None:
        return None
    if match.group(2) is not None:
        function, location = match.group(1), match.group(2)
    else:
        function, location = "<anonymous>", match.group(3)
    location = _LINE_COLUMN.sub("", location)
    if not any(c in location for c in "./\\"):
        # V8 built-ins have no file: "at async Promise.all (index 0)", "(native)".
        location = "node:builtin"
    # The file name, not the deploy-specific absolute path, identifies the frame.
    return _frame_name(f"{function}@{location.rsplit('/', 1)[-1]}"), location


def _parse_python(lines: list[str], max_frames: int, markers: _Markers) -> ParsedTrace:
    # With chained exceptions the last traceback is the one that escaped.
    headers = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    app: list[str] = []
    every: list[str] = []
    exc_type: str | None = None
    exc_message: str | None = None
    for line in lines[headers[-1] + 1 if headers else 0 :]:
        match = _PY_FRAME.match(line)
        if match:
            path, function = match.group(1), match.group(2)
            name = _frame_name(f"{_python_module(path)}.{function}")
            every.append(name)
            if not markers.is_framework(name, path):
                app.append(name)
            continue
        if every and not line.startswith((" ", "\t")):
            # The first unindented line after the frames; later lines continue its message.
            exc = _PY_EXCEPTION.match(line.strip())
            if exc:
                exc_type, exc_message = exc.group(1), exc.group(2)
            break
    # Python prints the innermost frame last; fingerprints want innermost first.
    app.reverse()
    every.reverse()
    return ParsedTrace(exc_type, exc_message, _pick(app, every, max_frames))


def _python_module(path: str) -> str:
    # Deploy roots differ (/var/task, /app, a virtualenv); the last two path parts
    # identify the module and stay the same across them.
    parts = path.replace("\\", "/").split("/")
    tail = "/".join(parts[-2:])
    return tail.removesuffix(".py")


def _go_exception(panic: re.Match[str]) -> tuple[str, str]:
    # "panic: runtime error: index out of range" -> type "panic: runtime error".
    kind, rest = panic.group(1), panic.group(2)
    head, sep, tail = rest.partition(": ")
    if sep and re.fullmatch(r"[a-z][a-z ]{0,40}", head):
        return f"{kind}: {head}", tail
    return kind, rest


def _parse_go(lines: list[str], max_frames: int, markers: _Markers) -> ParsedTrace:
    exc_type: str | None = None
    exc_message: str | None = None
    panic = _GO_PANIC.match(lines[0])
    if panic:
        exc_type, exc_message = _go_exception(panic)
    app: list[str] = []
    every: list[str] = []
    seen_goroutine = False
    for line in lines:
        if _GO_GOROUTINE.match(line):
            if seen_goroutine:
                break  # only the goroutine that panicked matters
            seen_goroutine = True
            continue
        if not seen_goroutine or line.startswith(("\t", " ", "created by ")):
            continue
        match = _GO_FUNC.match(line.strip())
        if not match:
            continue
        name = _frame_name(match.group(1))
        every.append(name)
        if not markers.is_framework(name, "") and not _is_go_stdlib(name):
            app.append(name)
            if len(app) == max_frames:
                break
    return ParsedTrace(exc_type, exc_message, _pick(app, every, max_frames))


def _is_go_stdlib(function: str) -> bool:
    # The first element of the import path names a standard-library package
    # ("net/http.(*conn).serve", "runtime.gopark"); modules start with a domain
    # ("github.com/...") or their own name ("main", "myapp/...").
    first = function.split("/", 1)[0].split(".", 1)[0]
    return first in _GO_STD_TOP


_GO_STD_TOP = frozenset(
    {
        "archive",
        "bufio",
        "builtin",
        "bytes",
        "cmp",
        "compress",
        "container",
        "context",
        "crypto",
        "database",
        "debug",
        "embed",
        "encoding",
        "errors",
        "expvar",
        "flag",
        "fmt",
        "go",
        "hash",
        "html",
        "image",
        "index",
        "internal",
        "io",
        "iter",
        "log",
        "maps",
        "math",
        "mime",
        "net",
        "os",
        "path",
        "plugin",
        "reflect",
        "regexp",
        "runtime",
        "slices",
        "sort",
        "strconv",
        "strings",
        "structs",
        "sync",
        "syscall",
        "testing",
        "text",
        "time",
        "unicode",
        "unique",
        "unsafe",
        "weak",
    }
)
