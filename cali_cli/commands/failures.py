"""``cali failures``: Kinesis batches the log consumer gave up on, and their replay."""

from __future__ import annotations

import argparse
import os
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "failures",
        help="list and replay Kinesis batches the log consumer gave up on (on-failure queue)",
        description=(
            "When the log consumer fails a batch more often than the mapping's retry limit, or "
            "its records grow older than the maximum record age, Lambda sends the on-failure "
            "queue a description of the batch (shard, sequence range, condition), not the "
            "records. The records stay in the stream for its retention period (24 h by "
            "default). Fix the cause first (the consumer's logs say what failed), then replay: "
            "the records are read back from the shard and put into the stream again, and the "
            "queue message is deleted. Replay is a dry run unless --execute is given. An alert "
            "already sent is never sent again, so replaying twice only counts records twice."
        ),
        epilog=(
            "examples:\n"
            "  cali failures list --queue-url $CONSUMER_FAILURES_QUEUE_URL\n"
            "  cali failures replay                 # dry run: what would be put back\n"
            "  cali failures replay --execute\n"
            "The queue URL is the stack output ConsumerFailuresQueueUrl. AWS credentials and "
            "region come from the usual AWS environment; AWS_ENDPOINT_URL points the command "
            "at a local endpoint."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    actions = parser.add_subparsers(dest="failures_command", metavar="<action>")
    for name, help_text, func in (
        ("list", "show the batches waiting in the on-failure queue", run_list),
        ("replay", "put the batches' records back into the stream (dry run without --execute)", run_replay),
    ):
        sub = actions.add_parser(name, help=help_text)
        sub.add_argument(
            "--queue-url",
            default=os.environ.get("CONSUMER_FAILURES_QUEUE_URL", ""),
            help="the on-failure queue (default: $CONSUMER_FAILURES_QUEUE_URL)",
        )
        sub.add_argument("--limit", type=int, default=100, help="batches to handle (default: %(default)s)")
        if name == "replay":
            sub.add_argument("--execute", action="store_true", help="really put the records back")
        sub.set_defaults(func=func)


def _clients() -> tuple[Any, Any]:
    import boto3

    return boto3.client("sqs"), boto3.client("kinesis")


def _batches(args: argparse.Namespace, sqs: Any, hold_seconds: int) -> list[Any] | None:
    from cali.ingest.failures import receive_batches

    if not args.queue_url:
        print("cali failures: no queue: pass --queue-url or set CONSUMER_FAILURES_QUEUE_URL")
        return None
    return receive_batches(sqs, args.queue_url, limit=args.limit, hold_seconds=hold_seconds)


def run_list(args: argparse.Namespace) -> int:
    sqs, _ = _clients()
    # Only a look: listing must not hide the batches from a replay.
    batches = _batches(args, sqs, hold_seconds=0)
    if batches is None:
        return 2
    for batch in batches:
        print(
            f"{batch.shard_id} {batch.start_sequence}..{batch.end_sequence} "
            f"{batch.size} records {batch.condition} {batch.function_error[:80]}"
        )
    print(f"{len(batches)} batches")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from cali.ingest.failures import put_back, read_records

    sqs, kinesis = _clients()
    batches = _batches(args, sqs, hold_seconds=300)
    if batches is None:
        return 2
    replayed = 0
    for batch in batches:
        records = read_records(kinesis, batch)
        missing = batch.size - len(records)
        note = f" ({missing} no longer in the stream: past its retention)" if missing > 0 else ""
        print(f"{batch.shard_id} {batch.start_sequence}..{batch.end_sequence}: {len(records)} records{note}")
        if not args.execute:
            sqs.change_message_visibility(
                QueueUrl=args.queue_url, ReceiptHandle=batch.receipt_handle, VisibilityTimeout=0
            )
            continue
        put_back(kinesis, batch.stream_name, records)
        sqs.delete_message(QueueUrl=args.queue_url, ReceiptHandle=batch.receipt_handle)
        replayed += len(records)
    if args.execute:
        print(f"{replayed} records put back into the stream from {len(batches)} batches")
    else:
        print(f"dry run: {len(batches)} batches; add --execute to put their records back")
    return 0
