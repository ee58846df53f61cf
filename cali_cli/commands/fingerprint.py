"""``cali fingerprint``: print the fingerprint and template of each log line."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

DESCRIPTION = """\
Read log messages, one per line, and print for each line its fingerprint (a 16-character
id of the line's template) and the template itself, separated by a tab:

    $ echo 'Connection to 10.0.0.7:5432 timed out after 30000 ms' | cali fingerprint
    c7fce483f0ef6964\tConnection to <*> timed out after <*>

Lines that differ only in variable parts (numbers, ids, IPs, paths, URLs, quoted values,
e-mails, timestamps, key=value values) get the same fingerprint: this is the id the log
consumer uses to group, throttle and deduplicate incidents, and the `fingerprint` field of
every document in OpenSearch. The id is stable across machines and deploys.

Pass the message part of each line (without the timestamp/level prefix) for the ids the
pipeline computes; whole raw lines work too, the prefix is mostly masked.
"""

EPILOG = """\
examples:
  cali fingerprint < app.log                    one "<fingerprint><TAB><template>" per line
  kubectl logs deploy/api | cali fingerprint --summary      groups, most frequent first
  tail -f app.log | cali fingerprint | grep -v c7fce483f0ef6964     streams as lines arrive
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fingerprint",
        help="print the fingerprint and template of each log line read from stdin",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="files to read instead of standard input ('-' means standard input)",
    )
    parser.add_argument(
        "--summary",
        action="store_true",
        help="instead of one line per input line, print each group once at the end as "
        "'<count><TAB><fingerprint><TAB><template>', most frequent first",
    )
    parser.add_argument(
        "--top",
        type=int,
        default=None,
        metavar="N",
        help="print only the N largest groups (implies --summary)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cali.fingerprint import Fingerprinter

    if args.top is not None and args.top < 1:
        sys.stderr.write("cali fingerprint: --top must be at least 1\n")
        return 2
    summary = args.summary or args.top is not None
    fingerprinter = Fingerprinter()
    out = sys.stdout
    if not summary and hasattr(out, "reconfigure"):
        # Streaming: each result appears as soon as its line is read, even on a pipe.
        out.reconfigure(line_buffering=True)
    counts: Counter[str] = Counter()
    templates: dict[str, str] = {}
    try:
        for raw in _lines(args.files):
            # One output line per input line (blank ones too) so `paste` can align them.
            result = fingerprinter.fingerprint(raw.rstrip("\r\n"))
            if summary:
                counts[result.id] += 1
                templates.setdefault(result.id, result.template)
            else:
                out.write(f"{result.id}\t{result.template}\n")
    except OSError as error:
        out.flush()
        sys.stderr.write(f"cali fingerprint: cannot read {error.filename or 'input'}: {error.strerror}\n")
        return 2
    if summary:
        for fp_id, count in counts.most_common(args.top):
            out.write(f"{count}\t{fp_id}\t{templates[fp_id]}\n")
        sys.stderr.write(f"{counts.total()} lines, {len(counts)} fingerprints\n")
    out.flush()
    return 0


def _lines(files: list[str]) -> Iterator[str]:
    for name in files or ["-"]:
        if name == "-":
            stdin = sys.stdin
            if hasattr(stdin, "reconfigure"):
                # Logs are not always valid UTF-8; a bad byte must not stop the stream.
                stdin.reconfigure(errors="replace")
            yield from stdin
        else:
            with open(name, encoding="utf-8", errors="replace") as stream:  # noqa: PTH123
                yield from stream
