"""``cali dlq``: inspect the log consumer's dead-letter queue and replay fixed records."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cali.ingest.dlq import DlqEntry, S3Dlq

_RELATIVE = re.compile(r"^(\d+)([mhd])$")


def _when(text: str) -> datetime:
    """ISO-8601 (``2026-11-23T10:00Z``) or a duration back from now (``90m``, ``24h``, ``7d``)."""
    match = _RELATIVE.match(text)
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dlq",
        help="list, show and replay records the log consumer could not process",
        description=(
            "Records the log consumer cannot process (bad base64, gzip, UTF-8 or JSON, missing "
            "or invalid fields, oversized) are kept in S3 under dlq/YYYY/MM/DD/HH/<id>.json with "
            "the original bytes and the reason. List them, look at one, fix the producer (or the "
            "consumer), then replay them into the Kinesis stream. Replay is a dry run unless "
            "--execute is given; replayed entries are marked and skipped next time."
        ),
        epilog=(
            "examples:\n"
            "  cali dlq list --since 24h\n"
            "  cali dlq list --reason missing_field --json\n"
            "  cali dlq show 2026112310-1a2b3c4d5e6f7a8b9c0d\n"
            "  cali dlq replay --reason invalid_field:timestamp --since 2d            # dry run\n"
            "  cali dlq replay --reason invalid_field:timestamp --since 2d --execute\n"
            "AWS credentials and region come from the usual AWS environment; AWS_ENDPOINT_URL "
            "points the command at a local endpoint."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    actions = parser.add_subparsers(dest="dlq_command", metavar="<action>")

    def common(sub: argparse.ArgumentParser, filters: bool = True) -> None:
        sub.add_argument(
            "--bucket",
            default=os.environ.get("DLQ_BUCKET_NAME", "cali-local-archive"),
            help="archive bucket holding the DLQ (default: $DLQ_BUCKET_NAME or %(default)s)",
        )
        sub.add_argument(
            "--prefix", default=os.environ.get("DLQ_PREFIX", "dlq/"), help="key prefix (default: dlq/)"
        )
        if filters:
            sub.add_argument(
                "--since",
                type=_when,
                default=_when("24h"),
                help="arrival time from: ISO-8601 or 90m/24h/7d ago (default: 24h)",
            )
            sub.add_argument("--until", type=_when, default=None, help="arrival time until (default: now)")
            sub.add_argument(
                "--reason", help="only this reason; a prefix like missing_field matches all fields"
            )

    listing = actions.add_parser("list", help="list DLQ entries, oldest first")
    common(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    listing.set_defaults(func=run_list)

    show = actions.add_parser("show", help="print one entry with its decoded payload")
    common(show, filters=False)
    show.add_argument("id", help="entry id as printed by `cali dlq list`")
    show.set_defaults(func=run_show)

    replay = actions.add_parser("replay", help="put entries' original bytes back into the stream (dry run)")
    common(replay)
    replay.add_argument(
        "--id",
        action="append",
        dest="ids",
        default=[],
        help="replay only this entry (repeatable); default: all entries matching the filters",
    )
    replay.add_argument("--stream", help="stream name or ARN (default: the stream each entry came from)")
    replay.add_argument("--execute", action="store_true", help="really put the records (default: dry run)")
    replay.add_argument("--force", action="store_true", help="also replay entries already replayed")
    replay.set_defaults(func=run_replay)


def _store(args: argparse.Namespace) -> S3Dlq:
    import boto3

    from cali.ingest.dlq import S3Dlq

    return S3Dlq(boto3.client("s3"), args.bucket, args.prefix)


def _entries(args: argparse.Namespace, store: S3Dlq) -> list[DlqEntry]:
    until = args.until or datetime.now(UTC) + timedelta(minutes=1)
    return list(store.list(args.since, until, args.reason))


def run_list(args: argparse.Namespace) -> int:
    entries = _entries(args, _store(args))
    if args.json:
        for entry in entries:
            print(
                json.dumps(
                    {
                        "id": entry.entry_id,
                        **entry.model_dump(mode="json", exclude={"data_base64"}),
                        "bytes": len(entry.data),
                    }
                )
            )
        return 0
    if not entries:
        print("No DLQ entries match.", file=sys.stderr)
        return 0
    print(f"{'ID':<31} {'ARRIVAL (UTC)':<20} {'REASON':<28} {'BYTES':>7}  REPLAYED  ERROR")
    for entry in entries:
        print(
            f"{entry.entry_id:<31} {entry.arrival_time:%Y-%m-%d %H:%M:%S} {entry.reason:<28} "
            f"{len(entry.data):>7}  {'yes' if entry.replayed_at else 'no':<8}  {entry.error[:60]}"
        )
    print(f"{len(entries)} entries", file=sys.stderr)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from cali.ingest.decoding import GZIP_MAGIC, gunzip_bounded

    try:
        entry = _store(args).get(args.id)
    except Exception as exc:
        print(f"cali dlq show: cannot read entry {args.id}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(entry.model_dump(mode="json", exclude={"data_base64"}), indent=2))
    data = entry.data
    if data[:2] == GZIP_MAGIC:
        try:
            data = gunzip_bounded(data, 10 * 1024 * 1024)
            print("--- payload (gunzipped) ---")
        except Exception:
            print("--- payload (gzip, cannot be decompressed) ---")
    else:
        print("--- payload ---")
    print(data.decode("utf-8", errors="backslashreplace"))
    return 0


def run_replay(args: argparse.Namespace) -> int:
    import boto3

    from cali.ingest.dlq import replay

    store = _store(args)
    entries = [store.get(i) for i in args.ids] if args.ids else _entries(args, store)
    by_stream: dict[str, list[DlqEntry]] = {}
    for entry in entries:
        stream = args.stream or entry.stream_arn
        if not stream:
            print(
                f"cali dlq replay: entry {entry.entry_id} has no source stream; pass --stream",
                file=sys.stderr,
            )
            return 2
        by_stream.setdefault(stream, []).append(entry)
    kinesis = boto3.client("kinesis") if args.execute else None
    replayed = skipped = failed = 0
    for stream, group in by_stream.items():
        result = replay(group, store, kinesis, stream, execute=args.execute, force=args.force)
        replayed += len(result.replayed)
        skipped += len(result.skipped)
        failed += len(result.failed)
        for entry_id in result.replayed:
            print(f"{'replayed' if args.execute else 'would replay'} {entry_id} -> {stream}")
        for entry_id, error in result.failed.items():
            print(f"FAILED {entry_id}: {error}", file=sys.stderr)
    mode = "" if args.execute else " (dry run: nothing sent; add --execute)"
    print(f"{replayed} replayed, {skipped} skipped as already replayed, {failed} failed{mode}")
    return 1 if failed else 0
