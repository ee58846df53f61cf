"""``cali redact``: the analyzer's PII and secret redaction as a filter (stdin -> stdout)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any

DESCRIPTION = """\
Replace personal data and secrets in log text with placeholders, exactly as the incident
analyzer does before anything leaves the account (LLM, embeddings, Slack).

Reads stdin line by line and writes each line as soon as it is redacted, so it works on a
live `tail -f`. By default one session covers the whole run: the same e-mail address
becomes the same <EMAIL_n> on every line. Classes: e-mail, IPv4, IPv6, AWS access and
secret keys, JWTs, bearer tokens, passwords and API keys in URLs and key=value pairs,
private keys, Luhn-valid card numbers, phone numbers, Korean resident registration numbers,
plus any --pattern you add.
"""

EPILOG = """\
examples:
  kubectl logs deploy/payments | cali redact
  cali redact --stats < app.log > app.redacted.log
  echo 'order 123 for bob@example.com' | cali redact --pattern ORDER_ID='order \\d+'
  cali redact --patterns-json '{"ticket": "TCK-\\\\d{6}"}' < app.log
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "redact",
        help="redact PII and secrets from log text (stdin to stdout)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--per-line",
        action="store_true",
        help="number placeholders independently on each line (default: one session for the run)",
    )
    parser.add_argument(
        "--stats",
        action="store_true",
        help="print how many values of each class were replaced to stderr at the end",
    )
    parser.add_argument(
        "--pattern",
        action="append",
        default=[],
        metavar="LABEL=REGEX",
        help="an extra pattern to redact as <LABEL_n> (repeatable); a group named 'value' "
        "redacts only that part",
    )
    parser.add_argument(
        "--patterns-json",
        default=None,
        metavar="JSON",
        help="extra patterns as a JSON object label -> regex (the REDACTION_EXTRA_PATTERNS format)",
    )
    parser.set_defaults(func=run)


def _extra_patterns(args: argparse.Namespace) -> dict[str, str]:
    patterns: dict[str, str] = {}
    if args.patterns_json:
        loaded = json.loads(args.patterns_json)
        if not isinstance(loaded, dict):
            raise ValueError("--patterns-json must be a JSON object")
        patterns.update({str(k): str(v) for k, v in loaded.items()})
    for item in args.pattern:
        label, sep, regex = item.partition("=")
        if not sep or not label or not regex:
            raise ValueError(f"--pattern {item!r} must look like LABEL=REGEX")
        patterns[label] = regex
    return patterns


_KEY_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_KEY_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----")


def _opens_key(line: str) -> bool:
    begins = list(_KEY_BEGIN.finditer(line))
    return bool(begins) and _KEY_END.search(line, begins[-1].end()) is None


def _units(lines: Iterable[str]) -> Iterator[str]:
    """Input lines, except that a private key spread over lines comes as one unit.

    Its body lines carry no marker of their own, so redacting line by line would print
    them as they are.
    """
    block: list[str] = []
    for line in lines:
        if block:
            block.append(line)
            if _KEY_END.search(line):
                yield "".join(block)
                block = []
        elif _opens_key(line):
            block.append(line)
        else:
            yield line
    if block:  # cut off by the end of the input: redacted to the end all the same
        yield "".join(block)


def run(args: argparse.Namespace) -> int:
    from cali.analysis.redaction import Redactor

    try:
        redactor = Redactor(_extra_patterns(args))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError too
        print(f"cali redact: {exc}", file=sys.stderr)
        return 2

    session = redactor.new_session()
    totals: dict[str, int] = {}
    lines = 0
    for line in _units(sys.stdin):
        if args.per_line:
            session = redactor.new_session()
        body, newline = (line[:-1], "\n") if line.endswith("\n") else (line, "")
        sys.stdout.write(session.redact(body) + newline)
        sys.stdout.flush()
        lines += line.count("\n") + (0 if line.endswith("\n") else 1)  # a key block is several
        if args.per_line:
            for label, count in session.counts.items():
                totals[label] = totals.get(label, 0) + count
    if not args.per_line:
        totals = session.counts
    if args.stats:
        print(f"lines: {lines}", file=sys.stderr)
        for label in sorted(totals):
            print(f"{label}: {totals[label]}", file=sys.stderr)
        print(f"total: {sum(totals.values())}", file=sys.stderr)
    return 0
