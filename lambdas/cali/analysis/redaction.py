"""PII and secret redaction: runs before any log text leaves the account (LLM, embeddings, Slack).

Each class of sensitive value is a small detector (a regex, sometimes followed by a check
such as Luhn or ``ipaddress``). Detectors run in a fixed order over the progressively
redacted text, because some shapes contain others: a URL with credentials contains an
``x@host`` that looks like an e-mail, a JWT after ``token=`` must keep its JWT label, a
credit card number must be claimed before the phone detector sees its digit groups.

Replacements are placeholders such as ``<EMAIL_1>``. Within one :class:`RedactionSession`
the same value always maps to the same placeholder, so the LLM (and the reader) can still
tell "the same address failed 40 times" from "40 addresses failed once each".

Decisions about ambiguous shapes (tested by the labelled corpus in
``tests/unit/data/redaction_corpus.jsonl``):

- a dotted quad of octets (``10.1.2.3``) is an IPv4 address even when it could be a
  four-part version; ``v1.2.3.4``, three-part semver and five-part OIDs are not;
- wildcard and loopback addresses (``0.0.0.0``, ``127.0.0.1``, ``::``, ``::1``) stay: they
  identify nobody and tell the reader "bind address" or "sidecar";
- ``10:30:00``, MAC addresses and ``Foo::Bar`` are not IPv6 (the candidate must parse with
  :mod:`ipaddress` and contain a digit);
- card numbers need 13-19 digits, a known network prefix (Visa, Mastercard, Amex,
  Discover, JCB, Diners, UnionPay, Maestro) and a valid Luhn checksum;
- Korean resident registration numbers need the hyphen (``YYMMDD-GNNNNNN``), a plausible
  month/day and gender digit 1-8; without the hyphen 13 digits are too often an id;
- secret values in ``key: value`` prose need to look like a secret (a digit, a symbol, or
  mixed case); ``token: expired`` stays readable, ``password: hunter2`` does not.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from cali.contracts.incident import IncidentMessage, SampleLine

Replacer = Callable[[re.Match[str], "RedactionSession"], str]

PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
_LABEL_SANITIZER = re.compile(r"[^A-Z0-9]+")

# Values that name the absence of a secret rather than a secret.
_NON_SECRET_VALUES = frozenset(
    {
        "",
        "null",
        "none",
        "nil",
        "undefined",
        "true",
        "false",
        "empty",
        "missing",
        "invalid",
        "expired",
        "required",
        "redacted",
        "masked",
        "hidden",
        "***",
        "****",
        "*****",
        "xxx",
        "[redacted]",
        "[filtered]",
        "<redacted>",
        "n/a",
        "-",
    }
)

# ---------------------------------------------------------------------------------------
# Patterns. Boundaries are explicit lookarounds because \b treats "-" and "." as breaks.
# ---------------------------------------------------------------------------------------

_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)

_JWT = re.compile(
    r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*(?![A-Za-z0-9_-])"
)

# "Bearer <token>" and "Basic <base64>" anywhere (headers, curl lines, JSON). The lookahead
# demands a digit or a token symbol so "expected Bearer authentication" is left alone.
_AUTH_SCHEME = re.compile(
    r"(?i)(?<![A-Za-z0-9])(bearer|basic)(\s+)(?=[A-Za-z0-9._~+/=-]*[0-9._~+/=-])([A-Za-z0-9._~+/-]{8,}=*)"
)

# scheme://user:password@host and scheme://:password@host (redis). The user stays: it
# names a service account, which helps the reader; the password goes. The password runs
# to the last "@" of the authority because people do paste unescaped "@", "#" or "?" in
# passwords.
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{1,20}://)([^\s:/@?#]*):([^\s/]+)@")

_AWS_ACCESS_KEY = re.compile(
    r"(?<![A-Za-z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"
)

# A 40-character base64-ish string is only an AWS secret key next to a key word: on its
# own it is as likely a SHA-1 or a cache key.
_AWS_SECRET_KEY = re.compile(
    r"(?i)(aws_?secret_?access_?key|secret_?access_?key|aws_?secret_?key|aws_?secret|secretkey"
    r"|secret[ _]key)"
    r"([\"']?\s*(?:[:=]|=>|\s)\s*[\"']?)"
    r"(?-i:([A-Za-z0-9/+]{40}))(?![A-Za-z0-9/+=])"
)

_CREDENTIAL_KEY_NAMES = (
    r"password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|auth[_-]?token"
    r"|access[_-]?token|refresh[_-]?token|id[_-]?token|client[_-]?secret|private[_-]?key"
    r"|secret[_-]?key|credentials?|session[_-]?(?:id|token|key)|signature|sig|x-amz-signature"
    r"|x-amz-security-token|connection[_-]?string|passphrase|cookie|(?:^|[_.-])pass"
)
# Key names end with a secret word (db_password, X-Api-Key, githubToken) but never continue
# into another word (max_tokens, token_count, passwordless). The regexes match any key-like
# token followed by a separator and a value, and the replacer checks the key's ending: one
# cheap scan instead of trying the word list at every position.
_CREDENTIAL_KEY = re.compile(rf"(?i)(?:{_CREDENTIAL_KEY_NAMES})$")
_KEY_LIKE = r"(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z0-9_.-]{1,64})"

# "key": "value" / 'key': 'value' / key="value" / key='value' (quoted: anything but the quote)
_KV_QUOTED = re.compile(
    rf"(?<![A-Za-z0-9_.-])(?P<q1>[\"']?){_KEY_LIKE}(?P=q1)\s*(?:=>|=|:)\s*"
    r"(?P<q2>[\"'])(?P<value>(?:(?!(?P=q2))[^\\\n]|\\.)+?)(?P=q2)"
)
# key=value (logfmt, query strings, env dumps): any run of non-separator characters.
_KV_EQUALS = re.compile(rf"{_KEY_LIKE}\s?=\s?(?![\"'])(?P<value>[^\s&,;\"'<>)\]}}]+)")
# key: value in prose or headers: only when the value looks like a secret (see _looks_secret).
_KV_COLON = re.compile(rf"{_KEY_LIKE}:\s*(?![\"'])(?P<value>[^\s&,;\"'<>)\]}}]+)")

# Command lines: --password hunter2, -token abc (the "=" form is a key=value pair).
_CLI_FLAG = re.compile(
    r"(?i)(?<![\w-])(--?(?:[a-z0-9]+[-_])*(?:password|passwd|passphrase|token|secret|api-?key))\s+(?![-\"'])(\S+)"
)

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)

# Candidates only; ipaddress decides. Groups of up to 4 hex digits joined by ":" with at
# least two colons, an optional IPv4 tail and an optional zone id.
_IPV6_CANDIDATE = re.compile(
    r"(?<![0-9A-Za-z:.])((?:[0-9A-Fa-f]{1,4})?(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?)"
    # "(?!\.\d)": never stop in front of an embedded IPv4 (::ffff:10.1.2.3), which would
    # take ":10" as a hex group and leave ".1.2.3" behind; backtrack to the IPv4 tail.
    r"(%[0-9A-Za-z._-]+)?(?![0-9A-Za-z:])(?!\.\d)"
)

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\w)(?!\.\d)")

_CARD_CANDIDATE = re.compile(r"(?<![\w.+-])\d(?:[ -]?\d){12,18}(?![\w.])(?![ -]\d)")
_CARD_PREFIX = re.compile(
    r"^(?:4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|6(?:011|5|4[4-9]|2)|35(?:2[89]|[3-8]\d)"
    r"|3(?:0[0-5]|[68])|5[06-9]|6\d)"
)

_KR_RRN = re.compile(r"(?<![\w-])\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])-[1-8]\d{6}(?![\w-])")

_PHONE = re.compile(
    r"(?<![\w+.-])(?:"
    # E.164 and international with separators: +82 10-1234-5678, +1 (415) 555-2671
    r"\+[1-9]\d{0,2}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,5})){1,5}"
    # Korean mobile and landline: 010-1234-5678, 02-123-4567, 031-1234-5678, 01012345678
    r"|0(?:1[016789]|2|[3-6][1-5]|70)[ .-]\d{3,4}[ .-]\d{4}|010\d{8}"
    # North American: (415) 555-2671, 415-555-2671, 415.555.2671
    r"|\(\d{3}\)\s?\d{3}[ .-]\d{4}|[2-9]\d{2}[.-][2-9]\d{2}[.-]\d{4}"
    # UK/EU national with a leading 0 and spaces: 020 7946 0958, 030 901820
    r"|0\d{2,4} \d{3,4} ?\d{3,4}"
    r")(?![\w-])(?!\.\d)"
)


# ---------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _is_card(candidate: str) -> bool:
    separators = {c for c in candidate if not c.isdigit()}
    if len(separators) > 1:
        return False
    digits = "".join(c for c in candidate if c.isdigit())
    return 13 <= len(digits) <= 19 and bool(_CARD_PREFIX.match(digits)) and luhn_valid(digits)


def _is_ipv6(candidate: str) -> bool:
    if candidate.count(":") < 2 or not any(c.isdigit() for c in candidate):
        return False
    try:
        address = ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return not (address.is_unspecified or address.is_loopback)


def _is_ipv4(candidate: str) -> bool:
    address = ipaddress.IPv4Address(candidate)
    return not (address.is_unspecified or address.is_loopback)


def _phone_digits_ok(candidate: str) -> bool:
    digits = sum(c.isdigit() for c in candidate)
    return 8 <= digits <= 15


def _looks_secret(value: str) -> bool:
    """Whether an unquoted ``key: value`` value reads like a credential rather than prose."""
    if any(c.isdigit() for c in value) or any(not c.isalnum() for c in value):
        return True
    return (any(c.islower() for c in value) and any(c.isupper() for c in value) and len(value) >= 8) or len(
        value
    ) >= 20


def _is_secret_value(value: str) -> bool:
    stripped = value.strip()
    if stripped.lower() in _NON_SECRET_VALUES:
        return False
    if PLACEHOLDER.fullmatch(stripped):
        return False
    # A placeholder followed by more text means another detector already took the value.
    return not stripped.startswith("<") or not PLACEHOLDER.match(stripped)


# ---------------------------------------------------------------------------------------
# Detectors
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detector:
    label: str
    pattern: re.Pattern[str]
    replace: Replacer


def _whole(label: str, check: Callable[[str], bool] | None = None) -> Replacer:
    def replace(match: re.Match[str], session: RedactionSession) -> str:
        value = match.group(0)
        if check is not None and not check(value):
            return value
        return session.placeholder(label, value)

    return replace


def _group(label: str, value_group: int | str, check: Callable[[str], bool] | None = None) -> Replacer:
    """Replace one group of the match, keep the rest (key names, separators, quotes)."""

    def replace(match: re.Match[str], session: RedactionSession) -> str:
        value = match.group(value_group)
        if not _is_secret_value(value) or (check is not None and not check(value)):
            return match.group(0)
        start, end = match.span(value_group)
        base = match.start(0)
        whole = match.group(0)
        return whole[: start - base] + session.placeholder(label, value) + whole[end - base :]

    return replace


def _ipv6(match: re.Match[str], session: RedactionSession) -> str:
    address, zone = match.group(1), match.group(2) or ""
    if not _is_ipv6(address):
        return match.group(0)
    return session.placeholder("IPV6", address) + zone


def _credential_value(check: Callable[[str], bool] | None = None) -> Replacer:
    """Redact the ``value`` group when the ``key`` group names a credential."""
    value_replacer = _group("SECRET", "value", check)

    def replace(match: re.Match[str], session: RedactionSession) -> str:
        if not _CREDENTIAL_KEY.search(match.group("key")):
            return match.group(0)
        return value_replacer(match, session)

    return replace


BUILTIN_DETECTORS: tuple[Detector, ...] = (
    Detector("PRIVATE_KEY", _PRIVATE_KEY, _whole("PRIVATE_KEY")),
    Detector("JWT", _JWT, _whole("JWT")),
    Detector("BEARER_TOKEN", _AUTH_SCHEME, _group("BEARER_TOKEN", 3)),
    Detector("SECRET", _URL_CREDENTIALS, _group("SECRET", 3)),
    Detector("AWS_ACCESS_KEY", _AWS_ACCESS_KEY, _whole("AWS_ACCESS_KEY")),
    Detector("AWS_SECRET_KEY", _AWS_SECRET_KEY, _group("AWS_SECRET_KEY", 3)),
    Detector("SECRET", _KV_QUOTED, _credential_value()),
    Detector("SECRET", _KV_EQUALS, _credential_value()),
    Detector("SECRET", _KV_COLON, _credential_value(_looks_secret)),
    Detector("SECRET", _CLI_FLAG, _group("SECRET", 2)),
    Detector("EMAIL", _EMAIL, _whole("EMAIL")),
    Detector("IPV6", _IPV6_CANDIDATE, _ipv6),
    Detector("IPV4", _IPV4, _whole("IPV4", _is_ipv4)),
    Detector("CARD", _CARD_CANDIDATE, _whole("CARD", _is_card)),
    Detector("KR_RRN", _KR_RRN, _whole("KR_RRN")),
    Detector("PHONE", _PHONE, _whole("PHONE", _phone_digits_ok)),
)

IP_DETECTORS: tuple[Detector, ...] = tuple(d for d in BUILTIN_DETECTORS if d.label in {"IPV4", "IPV6"})

LABELS: tuple[str, ...] = tuple(dict.fromkeys(d.label for d in BUILTIN_DETECTORS))


def normalize_label(label: str) -> str:
    """``"order-id"`` -> ``"ORDER_ID"``: labels end up inside ``<LABEL_n>`` placeholders."""
    normalized = _LABEL_SANITIZER.sub("_", label.upper()).strip("_")
    if not normalized or not normalized[0].isalpha():
        raise ValueError(f"redaction label {label!r} must start with a letter")
    return normalized


def compile_extra_patterns(extra_patterns: Mapping[str, str] | None) -> tuple[Detector, ...]:
    """Detectors for ``AnalyzerSettings.redaction_extra_patterns`` (label -> regex).

    They run first: an operator who adds a pattern wants it to win over the built-ins.
    A pattern with a group named ``value`` redacts only that group.
    """
    detectors = []
    for label, source in (extra_patterns or {}).items():
        name = normalize_label(label)
        try:
            pattern = re.compile(source)
        except re.error as exc:
            raise ValueError(f"redaction pattern {label!r} is not a valid regex: {exc}") from exc
        if pattern.groupindex.get("value"):
            replace = _group(name, pattern.groupindex["value"])
        else:
            replace = _whole(name)
        detectors.append(Detector(name, pattern, replace))
    return tuple(detectors)


# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------


@dataclass
class RedactionSession:
    """One consistent placeholder space (one incident, or one ``cali redact`` run)."""

    detectors: tuple[Detector, ...]
    _tokens: dict[tuple[str, str], str] = field(default_factory=dict)
    _next: dict[str, int] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    def placeholder(self, label: str, value: str) -> str:
        self._counts[label] = self._counts.get(label, 0) + 1
        key = (label, value)
        token = self._tokens.get(key)
        if token is None:
            number = self._next.get(label, 0) + 1
            self._next[label] = number
            token = f"<{label}_{number}>"
            self._tokens[key] = token
        return token

    def with_detectors(self, detectors: tuple[Detector, ...]) -> RedactionSession:
        """A view running other detectors over the same placeholder space."""
        return RedactionSession(detectors, self._tokens, self._next, self._counts)

    def redact(self, text: str) -> str:
        for detector in self.detectors:
            text = detector.pattern.sub(self._replacer(detector), text)
        return text

    def _replacer(self, detector: Detector) -> Callable[[re.Match[str]], str]:
        return lambda match: detector.replace(match, self)

    @property
    def counts(self) -> dict[str, int]:
        """Replacements made so far, per label (occurrences, not distinct values)."""
        return dict(self._counts)

    @property
    def distinct(self) -> dict[str, int]:
        """Distinct values replaced so far, per label."""
        return dict(self._next)

    def items(self) -> Iterator[tuple[str, str]]:
        """(placeholder, label) pairs handed out; never the original values."""
        for (label, _value), token in self._tokens.items():
            yield token, label


class Redactor:
    """Built-in detectors plus the configured extra patterns; cheap to keep for a process."""

    def __init__(self, extra_patterns: Mapping[str, str] | None = None) -> None:
        self.detectors: tuple[Detector, ...] = compile_extra_patterns(extra_patterns) + BUILTIN_DETECTORS

    def new_session(self) -> RedactionSession:
        return RedactionSession(self.detectors)

    def redact(self, text: str) -> str:
        """Redact one text on its own (its own placeholder numbering)."""
        return self.new_session().redact(text)


_KEY_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_KEY_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----")


def _join_split_private_key(message: str, stack_trace: str | None) -> tuple[str, str | None]:
    """Move the rest of a private key opened in ``message`` over from ``stack_trace``.

    A multi-line event arrives split (first line = message, the rest = stack trace), so
    a logged key begins in one field and its unmarked body lines sit in the other, where
    no detector would recognise them.
    """
    begins = list(_KEY_BEGIN.finditer(message))
    if not stack_trace or not begins or _KEY_END.search(message, begins[-1].end()):
        return message, stack_trace
    end = _KEY_END.search(stack_trace)
    cut = end.end() if end else len(stack_trace)
    return f"{message}\n{stack_trace[:cut]}", stack_trace[cut:].lstrip("\r\n") or None


def redact_incident(incident: IncidentMessage, redactor: Redactor) -> IncidentMessage:
    """A copy of the incident that is safe to send out: one session, so placeholders agree.

    Hosts are infrastructure names the on-call engineer needs; only addresses in them
    (``10.0.3.7``, not ``ip-10-0-3-7``) are replaced.
    """
    session = redactor.new_session()
    ip_session = session.with_detectors(IP_DETECTORS)
    samples = []
    for sample in incident.samples:
        message, stack_trace = _join_split_private_key(sample.message, sample.stack_trace)
        samples.append(
            SampleLine.model_validate(
                {
                    **sample.model_dump(),
                    "message": session.redact(message),
                    "stack_trace": session.redact(stack_trace) if stack_trace else stack_trace,
                    "host": ip_session.redact(sample.host) if sample.host else sample.host,
                }
            )
        )
    return incident.model_copy(
        update={
            "template": session.redact(incident.template),
            "samples": samples,
            "hosts": [ip_session.redact(host) for host in incident.hosts],
        }
    )
