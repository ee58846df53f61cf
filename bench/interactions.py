"""How long does the Slack interactivity endpoint take, against Slack's 3-second limit?

Run from the repository root::

    .venv/bin/python -m bench.interactions            # 300 requests of each kind
    .venv/bin/python -m bench.interactions --count 1000

It drives ``Interactions.handle`` (signature check, payload parse, team check, replay
mark, conditional state write) against the state table on moto in the same process, with
a Slack stand-in that answers at once (views.open is not called: the numbers are for
the request path CALI controls). Printed per kind: median, p95 and max milliseconds.
moto answers in-process, so each DynamoDB call here costs less than the few
milliseconds of a real one (two to three calls per accepted request).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import boto3
from moto import mock_aws

from cali.lifecycle.interactions import InteractionConfig, Interactions
from cali.lifecycle.store import DynamoDbLifecycleStore, DynamoDbReplayGuard
from cali_local.resources import create_state_table

SECRET, TEAM = "bench-signing-secret", "T0BENCH"


class _Slack:
    def open_view(self, trigger_id: str, view: Mapping[str, Any]) -> None: ...
    def message_blocks(self, channel: str, ts: str) -> list[dict[str, Any]]:
        return []

    def update_message(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None: ...
    def post(self, channel: str, text: str, *, thread_ts: str | None = None) -> str | None:
        return None

    def group_members(self, group_id: str) -> frozenset[str]:
        return frozenset()


class _Quiet:
    def defer(self, job: Mapping[str, Any]) -> None: ...
    def count(self, name: str, value: float = 1.0, *, unit: str = "Count", **dimensions: str) -> None: ...


def _request(action: str, fingerprint: str, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": "U0BENCH"},
        "channel": {"id": "C0"},
        "message": {"ts": "1.1", "blocks": []},
        "actions": [{"action_id": action, "value": fingerprint}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return body, {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def _measure(
    app: Interactions, make: Callable[[int], tuple[bytes, dict[str, str]]], count: int
) -> list[float]:
    times = []
    for i in range(count):
        body, headers = make(i)
        started = time.perf_counter()
        app.handle(body, headers)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_state_table(client, "bench")
        quiet = _Quiet()
        app = Interactions(
            InteractionConfig(SECRET, frozenset({TEAM})),
            store=DynamoDbLifecycleStore("bench", client=client),
            replay=DynamoDbReplayGuard("bench", client=client),
            slack=_Slack(),
            deferrer=quiet,
            metrics=quiet,
            clock=lambda: datetime.now(UTC),
        )
        kinds = {
            "rejected: bad signature": lambda i: _request("cali_ack", f"fp{i}", secret="wrong"),
            "accepted: acknowledge": lambda i: _request("cali_ack", f"fp{i}"),
            "accepted: already acknowledged": lambda i: _request("cali_ack", f"fp{i}"),
            "accepted: mute 1 h": lambda i: _request("cali_mute_1h", f"fp{i}"),
        }
        machine = platform.processor() or platform.machine()
        print(f"{machine}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
        print(f"{'request':<32} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for name, make in kinds.items():
            times = sorted(_measure(app, make, args.count))
            p95 = times[int(0.95 * (len(times) - 1))]
            print(
                f"{name:<32} {len(times):>5} {statistics.median(times):>8.2f} {p95:>8.2f} {times[-1]:>8.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
