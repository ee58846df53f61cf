"""``cali incident``: list, show, acknowledge, resolve and mute incidents without Slack.

The same state changes as the Slack buttons (cali.lifecycle), on the same DynamoDB
state table, with the same conditional writes: a CLI ack racing a Slack click ends in one
acknowledgement. A resolution becomes a knowledge entry exactly as one from Slack does.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cali.lifecycle.store import DynamoDbLifecycleStore


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "incident",
        help="list, show, ack, resolve, mute incidents (what the Slack buttons do)",
        description=(
            "Every fingerprint that alerted has a lifecycle: open -> acknowledged -> resolved, "
            "reopened when it fires again after a resolution, and optionally muted until a time. "
            "These commands change it exactly like the Slack buttons. A resolution (root cause "
            "+ what fixed it) is saved as knowledge and retrieved for the next similar incident."
        ),
        epilog=(
            "examples:\n"
            "  cali incident list\n"
            "  cali incident show 3f2a9c0d1e2b4a5f\n"
            "  cali incident ack 3f2a9c0d1e2b4a5f\n"
            '  cali incident resolve 3f2a9c0d1e2b4a5f --root-cause "pool too small" '
            '--resolution "raised pool to 50"\n'
            "  cali incident mute 3f2a9c0d1e2b4a5f --for 24h\n"
            "The table is $STATE_TABLE_NAME (default cali-local-state); AWS credentials and region "
            "come from the usual AWS environment; AWS_ENDPOINT_URL points at a local endpoint. "
            "With $LIFECYCLE_QUEUE_URL set, the Slack alert is redrawn after a change."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    parser.add_argument(
        "--table",
        default=os.environ.get("STATE_TABLE_NAME", "cali-local-state"),
        help="DynamoDB state table (default: $STATE_TABLE_NAME or %(default)s)",
    )
    actions = parser.add_subparsers(dest="incident_command", metavar="<action>")

    listing = actions.add_parser("list", help="incidents, most recent first")
    listing.add_argument("--status", choices=["open", "acknowledged", "resolved", "reopened"])
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=_list)

    show = actions.add_parser("show", help="one incident with its history")
    show.add_argument("fingerprint")
    show.set_defaults(func=_show)

    def change(name: str, text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, help=text)
        sub.add_argument("fingerprint")
        sub.add_argument("--as", dest="actor", help="who you are (default: cli:<login name>)")
        sub.set_defaults(func=_change, verb=name)
        return sub

    change("ack", "acknowledge: you are on it (stops escalation)")
    resolve = change("resolve", "resolve with a root cause and resolution (saved as knowledge)")
    resolve.add_argument("--root-cause", required=True)
    resolve.add_argument("--resolution", required=True, help="what fixed it")
    mute = change("mute", "hold alerts back for a while (an ERROR whose rate doubles still breaks through)")
    mute.add_argument("--for", dest="duration", default="1h", help="30m, 1h, 24h, 2d (default %(default)s)")
    change("unmute", "end a mute now")


def _store(args: argparse.Namespace) -> DynamoDbLifecycleStore:
    from cali.lifecycle.store import DynamoDbLifecycleStore

    return DynamoDbLifecycleStore(args.table)


def _list(args: argparse.Namespace) -> int:
    states = [s for s in _store(args).list(limit=10_000) if not args.status or s.status == args.status]
    states = states[: args.limit]
    if args.json:
        for state in states:
            print(json.dumps(state.model_dump(mode="json", exclude={"history"})))
        return 0
    if not states:
        print("no incidents")
        return 0
    now = datetime.now(UTC)
    print(f"{'fingerprint':<20} {'status':<13} {'muted':<6} {'occurrences':>11}  {'last seen':<17} title")
    for state in states:
        muted = "yes" if state.muted(now) else ""
        seen = (state.last_seen or state.opened_at).strftime("%Y-%m-%d %H:%M")
        fp, count, title = state.fingerprint, state.occurrences, state.title[:60]
        print(f"{fp:<20} {state.status:<13} {muted:<6} {count:>11}  {seen:<17} {title}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from cali.lifecycle.store import dump

    state = _store(args).load(args.fingerprint)
    if state is None:
        print(f"no incident {args.fingerprint}", file=sys.stderr)
        return 1
    print(dump(state))
    return 0


def _change(args: argparse.Namespace) -> int:
    from cali.lifecycle.interactions import slash_command
    from cali.lifecycle.state import TransitionRejected
    from cali.lifecycle.store import apply

    actor = args.actor or f"cli:{getpass.getuser()}"
    now = datetime.now(UTC)
    rest: list[str] = []
    if args.verb == "resolve":
        rest = [args.root_cause, args.resolution]
    elif args.verb == "mute":
        rest = [args.duration]
    try:
        command = slash_command(args.verb, actor, rest, now)
        result = apply(_store(args), args.fingerprint, command, now)
    except TransitionRejected as exc:
        print(f"not done: {exc}", file=sys.stderr)
        return 2
    print(f"{args.fingerprint}: {result.note}")
    _redraw(args.fingerprint, result.state.message_channel, result.state.message_ts, result.changed)
    return 0


def _redraw(fingerprint: str, channel: str | None, ts: str | None, changed: bool) -> None:
    queue_url = os.environ.get("LIFECYCLE_QUEUE_URL")
    if not (queue_url and channel and ts and changed):
        return
    import boto3

    from cali.lifecycle.runtime import SqsDeferrer

    job = {"job": "refresh", "fingerprint": fingerprint, "channel": channel, "ts": ts}
    SqsDeferrer(queue_url, boto3.client("sqs")).defer(job)
