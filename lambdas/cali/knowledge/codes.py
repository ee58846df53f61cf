"""What standard error codes in a log line mean, in the words runbooks use.

A log line says ``504`` or ``ECONNREFUSED``; the runbook that covers it says "gateway
timeout" or "connection refused". Neither an embedding of the line nor a word match sees
that they are the same failure, so the retrieval query (and the line matcher) gets one
extra line with the meanings, read from the standard tables rather than written here:
``http.HTTPStatus`` phrases, ``os.strerror`` for errno names, ``signal.strsignal`` for
signals, and the eight getaddrinfo ``EAI_*`` codes of POSIX (Python has no table for them).

Only codes in an unambiguous position count: an HTTP status after ``HTTP/1.1"`` (access
logs), after a ``status``/``statusCode`` key or after ``HTTP``; a bare 504 may be a port,
a size or an id.
"""

from __future__ import annotations

import errno
import os
import re
import signal
from http import HTTPStatus

_HTTP_STATUS = re.compile(
    r"""(?:HTTP/\d(?:\.\d)?"?\s+|\bstatus(?:_?code)?["']?\s*[:=]\s*["']?|\bHTTP\s+(?:status\s+)?)([1-5]\d\d)\b""",
    re.IGNORECASE,
)
_ERRNO = re.compile(r"\b(E[A-Z0-9]{2,15})\b")
_SIGNAL = re.compile(r"\b(SIG[A-Z]{2,8})\b")
_EAI = re.compile(r"\b(EAI_[A-Z]+)\b")
# POSIX getaddrinfo error codes and glibc's gai_strerror texts.
_EAI_TEXT = {
    "EAI_AGAIN": "Temporary failure in name resolution",
    "EAI_BADFLAGS": "Bad value for ai_flags",
    "EAI_FAIL": "Non-recoverable failure in name resolution",
    "EAI_FAMILY": "ai_family not supported",
    "EAI_MEMORY": "Memory allocation failure",
    "EAI_NODATA": "No address associated with hostname",
    "EAI_NONAME": "Name or service not known",
    "EAI_SERVICE": "Servname not supported for ai_socktype",
}
MAX_MEANINGS = 6


def _http(text: str) -> list[str]:
    found: list[str] = []
    for match in _HTTP_STATUS.finditer(text):
        code = int(match.group(1))
        if code >= 400 and code in HTTPStatus._value2member_map_:
            found.append(f"HTTP {code} {HTTPStatus(code).phrase}")
    return found


def _errno(text: str) -> list[str]:
    found = [f"{name} {_EAI_TEXT[name]}" for name in _EAI.findall(text) if name in _EAI_TEXT]
    for name in _ERRNO.findall(text):
        code = getattr(errno, name, None)
        if isinstance(code, int):
            found.append(f"{name} {os.strerror(code)}")
    return found


def _signals(text: str) -> list[str]:
    found: list[str] = []
    for name in _SIGNAL.findall(text):
        number = getattr(signal.Signals, name, None)
        described = signal.strsignal(number) if number is not None else None
        if described:
            found.append(f"{name} {described}")
    return found


def code_meanings(text: str) -> list[str]:
    """``["HTTP 504 Gateway Timeout", "ECONNREFUSED Connection refused"]``: each code once,
    in the order found, at most :data:`MAX_MEANINGS`."""
    return list(dict.fromkeys([*_http(text), *_errno(text), *_signals(text)]))[:MAX_MEANINGS]
