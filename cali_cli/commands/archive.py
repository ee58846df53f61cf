"""``cali archive``: SQL over the raw archive, on Athena (deployed) or DuckDB (local copy)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cali.quality.engines import Engine

DESCRIPTION = """\
Run SQL over the raw log archive. Two tables, the same on both engines:

  raw_lines(line, year, month, day, hour)   every archived line, as text; parse it with
                                            JSON_EXTRACT_SCALAR(line, '$.service') etc.
  dlq_entries(reason, error, shard_id, ..., arrival_time, data_base64, year, month, day, hour)

Partition columns are strings ('2026', '12', '03', '09'). Always filter on them: Athena
reads only the partitions you name (and the workgroup refuses queries that scan too much).
Write the SQL in Athena's dialect; --local translates it for DuckDB.

--env ENV uses the deployed workgroup cali-ENV and Glue database cali_ENV (AWS credentials
from the usual environment). --local reads a folder laid out like the bucket: .cali/archive,
which `make demo` fills, or one `cali archive download` fills from any bucket.
"""

EPILOG = """\
examples:
  cali archive query --local "SELECT COUNT(*) AS n FROM raw_lines"
  cali archive query --env prod "SELECT JSON_EXTRACT_SCALAR(line, '$.service') AS service, COUNT(*) AS n
      FROM raw_lines WHERE year = '2026' AND month = '12' AND day = '03' GROUP BY 1 ORDER BY n DESC"
  cali archive download --bucket my-archive-bucket --date 2026-12-03
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "archive",
        help="SQL over the raw log archive (Athena, or DuckDB on a local copy)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    actions = parser.add_subparsers(dest="archive_command", metavar="<action>")
    query = actions.add_parser("query", help="run one SELECT and print the rows")
    query.add_argument("sql", help="the query, in Athena's SQL dialect")
    add_engine_arguments(query)
    query.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    query.set_defaults(func=run_query)
    download = actions.add_parser("download", help="copy raw/ and dlq/ of a bucket to a local folder")
    download.add_argument("--bucket", required=True, help="the archive bucket")
    download.add_argument("--date", type=date.fromisoformat, help="only this day (YYYY-MM-DD)")
    download.add_argument("--to", type=Path, default=None, help="target folder (default .cali/archive)")
    download.set_defaults(func=run_download)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--env", help="deployed environment: Athena workgroup cali-ENV, database cali_ENV")
    where.add_argument("--local", action="store_true", help="DuckDB over a local copy (the default)")
    parser.add_argument(
        "--archive", type=Path, default=None, help="local archive folder (default .cali/archive)"
    )


def make_engine(args: argparse.Namespace) -> Engine:
    from cali.quality.engines import AthenaEngine, DuckDbEngine, athena_names
    from cali_local.archive import DEFAULT_ROOT

    if args.env:
        import boto3

        workgroup, database = athena_names(args.env)
        return AthenaEngine(boto3.client("athena"), workgroup=workgroup, database=database)
    root = args.archive or DEFAULT_ROOT
    if not (root / "raw").is_dir():
        raise FileNotFoundError(
            f"no archive at {root}/raw: run `make demo` or `cali archive download` first, or pass --archive"
        )
    return DuckDbEngine(root)


def run_query(args: argparse.Namespace) -> int:
    from cali.quality.engines import QueryError

    try:
        rows = make_engine(args).run([args.sql])[0]
    except (FileNotFoundError, QueryError) as error:
        print(f"cali archive: {error}", file=sys.stderr)
        return 1
    if args.json:
        for row in rows:
            print(json.dumps(row, default=str))
    else:
        print(format_table(rows))
    return 0


def format_table(rows: list[dict[str, Any]], limit: int = 200) -> str:
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    cells = [[str(row[c]) for c in columns] for row in rows[:limit]]
    widths = [min(60, max(len(c), *(len(r[i]) for r in cells))) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v[:w].ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more rows")
    lines.append(f"({len(rows)} rows)")
    return "\n".join(lines)


def run_download(args: argparse.Namespace) -> int:
    import boto3

    from cali_local.archive import DEFAULT_ROOT, download

    target = args.to or DEFAULT_ROOT
    copied = download(boto3.client("s3"), args.bucket, target, day=args.date)
    print(f"copied {copied} objects to {target}")
    return 0
