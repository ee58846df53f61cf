"""``cali parse``: raw log lines -> the time, level and message CALI reads from them."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

DESCRIPTION = """\
Show what CALI reads from your log lines before you deploy: for every raw line (stdin or
files) one JSON object with `timestamp` (ISO-8601 UTC or null), `level` (TRACE..FATAL or
null), `level_source` (line: the line says it; inferred: the line has no level but says
something only a failure says, such as "authentication failure" or "segfault"; default:
neither, CALI treats it as INFO), `message`, `format` (the recognised header shape, or
`unknown`) and the header `fields` (logger, thread, pid, host, ...).

This is the same normaliser the log consumer, the log indexer and `cali demo` use for
events whose text still carries its header (Fluent Bit's `log`, CloudWatch Logs events).
`--summary` prints instead how many lines each format matched and the share left unknown.
"""

EPILOG = """\
examples:
  kubectl logs deploy/payments | cali parse | head
  cali parse --summary /var/log/syslog /var/log/nginx/error.log
  cali parse --arrival 2015-11-01T00:00:00Z old.log   # year of year-less lines (syslog)
  cali parse --no-infer app.log                       # no implied levels
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "parse",
        help="show the time, level and message CALI reads from raw log lines",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="*", type=Path, help="log files (default: stdin; '-' is stdin)")
    parser.add_argument(
        "--summary", action="store_true", help="print per-format counts and the unknown share instead of JSON"
    )
    parser.add_argument(
        "--arrival",
        type=_iso_time,
        default=None,
        metavar="ISO-TIME",
        help="when the lines arrived (default: now); lines without a year get this year",
    )
    parser.add_argument("--no-infer", action="store_true", help="do not infer levels for level-less lines")
    parser.add_argument(
        "--http-error-from", type=int, default=500, metavar="STATUS", help="access lines: ERROR from (500)"
    )
    parser.add_argument(
        "--http-warn-from", type=int, default=400, metavar="STATUS", help="access lines: WARN from (400)"
    )
    parser.set_defaults(func=run)


def _iso_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class Summary:
    """Per-format line counts of one run."""

    formats: Counter[str] = field(default_factory=Counter)
    timed: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    lines: int = 0

    def add(self, format_name: str, timed: bool, level_source: str) -> None:
        self.lines += 1
        self.formats[format_name] += 1
        self.timed[format_name] += timed
        self.sources[level_source] += 1

    def render(self) -> list[str]:
        if not self.lines:
            return ["no lines"]
        out = [f"{'format':<28} {'lines':>7} {'share':>7} {'with time':>9}"]
        for name, count in self.formats.most_common():
            out.append(f"{name:<28} {count:>7} {count / self.lines:>7.1%} {self.timed[name] / count:>9.1%}")
        unknown = self.formats.get("unknown", 0)
        out.append("")
        out.append(f"{self.lines} lines, {unknown / self.lines:.1%} unknown (message = whole line, no time)")
        out.append(
            "levels: "
            + ", ".join(f"{source} {self.sources[source]}" for source in ("line", "inferred", "default"))
            + " (default = no level: treated as INFO)"
        )
        return out


def _lines(paths: list[Path], stdin: TextIO) -> Iterator[str]:
    if not paths:
        yield from stdin
        return
    for path in paths:
        if str(path) == "-":
            yield from stdin
            continue
        with path.open(encoding="utf-8", errors="replace") as handle:
            yield from handle


def parse_lines(lines: Iterable[str], args: argparse.Namespace, out: TextIO) -> Summary:
    """Write one JSON object per line (unless ``--summary``) and count formats."""
    from cali.ingest.normalise import HttpLevels, ImpliedSeverity, LineNormaliser

    normaliser = LineNormaliser(
        ImpliedSeverity(enabled=not args.no_infer),
        HttpLevels(error_from=args.http_error_from, warn_from=args.http_warn_from),
    )
    arrival = args.arrival or datetime.now(UTC)
    summary = Summary()
    for line in lines:
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        parsed = normaliser.parse(text, arrival)
        summary.add(parsed.format, parsed.timestamp is not None, parsed.level_source)
        if not args.summary:
            out.write(orjson.dumps(parsed.as_json(), default=str).decode() + "\n")
    return summary


def run(args: argparse.Namespace) -> int:
    missing = [str(path) for path in args.files if str(path) != "-" and not path.is_file()]
    if missing:
        print(f"cali parse: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    summary = parse_lines(_lines(args.files, sys.stdin), args, sys.stdout)
    if args.summary:
        print("\n".join(summary.render()))
    return 0
