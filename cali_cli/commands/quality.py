"""``cali quality``: the daily data-quality checks over the archive, on demand."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Run CALI's data-quality checks for one day of the raw archive and print the report:
records per service and hour against the trailing 7-day baseline (a silent or tripled
service), required fields present and typed, unparsed and dead-letter shares, level mix
drift, event-time vs arrival-time skew, duplicate records and the day's new WARN+ message
templates. The SQL is the deployed job's (cali.quality); Great Expectations judges the rows.

--env ENV runs on Athena (workgroup cali-ENV) without publishing anything; the deployed
schedule publishes the same report to S3, OpenSearch and (on failure) Slack. --local (the
default) runs on DuckDB over .cali/archive, which `make demo` fills.
"""

EPILOG = """\
examples:
  cali quality run --local                 # the newest day in .cali/archive
  cali quality run --env prod --date 2026-12-02
  cali quality run --local --json report.json --html report.html
exit status: 0 all checks passed, 1 a check failed, 2 the checks could not run
"""


def register(subparsers: Any) -> None:
    from cali_cli.commands.archive import add_engine_arguments

    parser = subparsers.add_parser(
        "quality",
        help="run the daily data-quality checks over the archive and print the report",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    actions = parser.add_subparsers(dest="quality_command", metavar="<action>")
    run = actions.add_parser(
        "run",
        help="run every check for one day",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--date",
        type=date.fromisoformat,
        help="day to check, YYYY-MM-DD (default: --local the newest archived day, --env yesterday)",
    )
    add_engine_arguments(run)
    run.add_argument(
        "--environment-name", default=None, help="name shown in the report (default: ENV or local)"
    )
    run.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    run.add_argument("--html", type=Path, help="also write the report as an HTML page to this file")
    run.set_defaults(func=run_checks)


def newest_day(root: Path) -> date | None:
    days = [
        date(int(p.parent.parent.name[5:]), int(p.parent.name[6:]), int(p.name[4:]))
        for p in root.glob("raw/year=*/month=*/day=*")
    ]
    return max(days, default=None)


def run_checks(args: argparse.Namespace) -> int:
    from cali.quality.engines import QueryError
    from cali.quality.runner import run_quality
    from cali_cli.commands.archive import make_engine
    from cali_local.archive import DEFAULT_ROOT

    try:
        engine = make_engine(args)
    except FileNotFoundError as error:
        print(f"cali quality: {error}", file=sys.stderr)
        return 2
    day = args.date
    if day is None:
        day = (
            (datetime.now(UTC) - timedelta(days=1)).date()
            if args.env
            else newest_day(args.archive or DEFAULT_ROOT)
        )
    if day is None:
        print("cali quality: the local archive has no day to check", file=sys.stderr)
        return 2
    environment = args.environment_name or args.env or "local"
    try:
        report = run_quality(engine, day, environment=environment)
    except QueryError as error:
        print(f"cali quality: {error}", file=sys.stderr)
        return 2
    print(report.to_text())
    if args.json:
        args.json.write_text(report.model_dump_json(indent=2), encoding="utf-8")
        print(f"report written to {args.json}")
    if args.html:
        args.html.write_text(report.to_html(), encoding="utf-8")
        print(f"report written to {args.html}")
    return 0 if report.passed else 1
