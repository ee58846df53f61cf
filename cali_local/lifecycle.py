"""The incident lifecycle in ``make demo``: people clicking in the local Slack, timers firing.

After the pipeline has posted its alerts (in bot mode, with buttons), :func:`run_lifecycle`
plays what an on-call team does, through the real handlers:

1. acknowledge one incident, resolve another from the modal (its resolution becomes a
   knowledge entry, indexed by the real ``knowledge_sync`` handler from the stream),
   mute a third for an hour: signed requests as Slack sends them
   (:mod:`cali_local.slack_interactivity`) to the ``slack_interactions`` handler, whose
   deferred redraws the ``incident_lifecycle`` worker then does;
2. escalation: the clock of the worker moves on past the escalation delay; the open
   ERROR incidents are re-posted with the on-call mention;
3. the logs come again (the first wave re-sent after the throttle windows): the resolved
   incident is a regression in its old thread, and its resolution is retrieved as a
   similar incident; the muted one is held back;
4. quiet resolution: the clock moves past ``quiet_after``; the TTL sweep deletes the due
   timers and the worker posts "quiet since ...".

Two AWS behaviours have stand-ins here and say so: :class:`StateStream` stands in for
DynamoDB Streams (it diffs table snapshots) and for TTL deletion (moto never expires
items), and the worker's clock is moved forward instead of waiting for SQS delays.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cali.lifecycle.timers import escalation_due
from cali_local.event_source import LambdaContext, SqsEventSource
from cali_local.slack_interactivity import SlackClient
from cali_local.slack_sink import RecordedMessage, SlackSink

DEMO_CHANNEL = "C0CALIDEMO"
DEMO_TEAM = "T0CALIDEMO"
ONCALL_GROUP = "S0ONCALL"
ESCALATE_AFTER = timedelta(minutes=15)
QUIET_AFTER = timedelta(minutes=60)
Handler = Callable[[dict[str, Any], Any], Any]


def lifecycle_environment(sink: SlackSink, queue_url: str, signing_secret: str) -> dict[str, str]:
    """Bot mode against the local Slack (buttons need it), plus the lifecycle's settings."""
    minutes = int(ESCALATE_AFTER.total_seconds() // 60)
    escalation = f'{{"after_minutes": {minutes}, "max_times": 2, "mention": "<!subteam^{ONCALL_GROUP}>"}}'
    return {
        "SLACK_WEBHOOK_URL": "",
        "SLACK_BOT_TOKEN": sink.token,
        "SLACK_CHANNEL": DEMO_CHANNEL,
        "SLACK_API_BASE_URL": sink.api_base_url,
        "SLACK_SIGNING_SECRET": signing_secret,
        "SLACK_TEAM_IDS": f'["{DEMO_TEAM}"]',
        "SLACK_ALLOWED_USERGROUPS": f'["{ONCALL_GROUP}"]',
        "LIFECYCLE_QUEUE_URL": queue_url,
        "LIFECYCLE_MAX_DELAY_SECONDS": "0",  # the worker's clock is moved instead of waiting
        "ESCALATION": f'{{"ERROR": {escalation}, "FATAL": {escalation}}}',
        "QUIET_AFTER_MINUTES": str(int(QUIET_AFTER.total_seconds() // 60)),
    }


def new_signing_secret() -> str:
    return secrets.token_hex(16)


class StateStream:
    """Stands in for the state table's stream (and its TTL sweep) on an endpoint without them."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table
        self.seen = self.snapshot()

    def snapshot(self) -> dict[tuple[str, str], dict[str, Any]]:
        items: dict[tuple[str, str], dict[str, Any]] = {}
        kwargs: dict[str, Any] = {"TableName": self.table}
        while True:
            page = self.client.scan(**kwargs)
            for item in page.get("Items", []):
                items[(item["pk"]["S"], item["sk"]["S"])] = item
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def changes(self) -> list[dict[str, Any]]:
        """INSERT/MODIFY/REMOVE records since the last call, NEW_AND_OLD_IMAGES view."""
        now = self.snapshot()
        records = [
            _record("INSERT" if key not in self.seen else "MODIFY", item, self.seen.get(key))
            for key, item in now.items()
            if self.seen.get(key) != item
        ]
        records += [_record("REMOVE", None, old) for key, old in self.seen.items() if key not in now]
        self.seen = now
        return records

    def ttl_sweep(self, now: datetime) -> list[dict[str, Any]]:
        """Delete lifecycle timers whose ``expires_at`` passed, as DynamoDB's TTL does, with its identity."""
        self.changes()  # what happened before is not a TTL deletion
        records = []
        for (pk, sk), item in list(self.seen.items()):
            expires = int(item.get("expires_at", {}).get("N", "0"))
            if pk.startswith("timer#") and 0 < expires <= now.timestamp():
                self.client.delete_item(TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}})
                record = _record("REMOVE", None, item)
                record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
                records.append(record)
                del self.seen[(pk, sk)]
        return records


def _record(name: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> dict[str, Any]:
    image = new or old or {}
    body: dict[str, Any] = {
        "Keys": {"pk": image["pk"], "sk": image["sk"]},
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        body["NewImage"] = new
    if old is not None:
        body["OldImage"] = old
    return {"eventSource": "aws:dynamodb", "eventName": name, "dynamodb": body}


def for_knowledge_sync(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The event filter the stack puts on the knowledge sync's stream mapping."""
    return [
        r
        for r in records
        if r["eventName"] in {"INSERT", "MODIFY"}
        and r["dynamodb"].get("NewImage", {}).get("pk", {}).get("S", "").startswith("incident#")
    ]


@dataclass
class LifecycleDemo:
    sink: SlackSink
    handlers: Mapping[str, Handler]
    worker_queue: SqsEventSource
    stream: StateStream
    slack: SlackClient
    region: str
    #: The lifecycle worker's handler on a given clock (the demo moves time forward).
    make_timers: Callable[[Callable[[], datetime]], Handler]
    resend: Callable[[], int] | None
    """Puts the first wave into Kinesis again after two throttle windows (real time); None
    when the window is the production one (``--input``): the replay would wait 30 minutes."""
    lines: list[str] = field(default_factory=list)
    offset: timedelta = timedelta(0)
    resent: int = 0  # records put into Kinesis again (the report's counts include them)

    def __post_init__(self) -> None:
        self.timers = self.make_timers(self.now)

    def _replay(self, resend: Callable[[], int], fp_muted: str) -> None:
        self.lines.append("the first wave of logs again, after two throttle windows:")
        before = len(self.sink.messages)
        self.resent = resend()
        self._work()
        new = self.sink.messages[before:]
        regressions = [m for m in new if "Regression" in str(m.blocks)]
        retrieved = [m for m in regressions if _RESOLUTION["resolution"][:40] in str(m.blocks)]
        muted_posts = [m for m in new if fp_muted in str(m.blocks)]
        self.lines.append(
            f"  {len(regressions)} regression(s) posted in the old thread; its resolution retrieved as a "
            f"similar incident: {'yes' if retrieved else 'no'}; muted incident posts: {len(muted_posts)}"
        )

    def _call(self, event: dict[str, Any]) -> tuple[int, float]:
        started = time.perf_counter()
        response = self.handlers["slack_interactions"](
            event, LambdaContext("slack_interactions", region=self.region)
        )
        return int(response["statusCode"]), (time.perf_counter() - started) * 1000

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def _travel(self, offset: timedelta) -> None:
        self.offset = offset

    def _drain_worker(self) -> None:
        """The worker's event source mapping, with a stand-in for SQS's delivery delay: an
        escalation is delivered once its ``due_at`` has passed on the demo clock; until then
        it stays in the queue."""
        sqs, url = self.worker_queue.sqs, self.worker_queue.queue_url
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        held: list[str] = []
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
                "Messages", []
            )
            ready = []
            for message in messages:
                job = json.loads(message["Body"])
                waiting = job.get("job") == "escalate" and not escalation_due(job, self.now())
                (held.append(message["ReceiptHandle"]) if waiting else ready.append(message))
            if not ready:
                break
            records = [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": self.region,
                }
                for m in ready
            ]
            result = self.timers({"Records": records}, LambdaContext("incident_lifecycle"))
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
            for message in ready:
                if message["MessageId"] in failed:
                    held.append(message["ReceiptHandle"])
                else:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        for handle in held:
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)

    def _work(self) -> None:
        """The worker's queue and the stream, as their event source mappings would feed them."""
        self._drain_worker()
        records = self.stream.changes()
        knowledge = for_knowledge_sync(records)
        if knowledge:
            result = self.handlers["knowledge_sync"]({"Records": knowledge}, LambdaContext("knowledge_sync"))
            self.lines.append(f"  knowledge sync from the stream: {result['indexed']} resolution(s) indexed")

    def _alerts(self) -> list[tuple[str, RecordedMessage]]:
        found: dict[str, RecordedMessage] = {}
        for message in self.sink.messages:
            for block in message.blocks:
                if block.get("block_id") == "cali_actions" and message.thread_ts is None:
                    found.setdefault(str(block["elements"][0]["value"]), message)
        return list(found.items())

    def _level(self, fingerprint: str) -> str:
        key = {"pk": {"S": f"lifecycle#{fingerprint}"}, "sk": {"S": "state"}}
        item = self.stream.client.get_item(TableName=self.stream.table, Key=key).get("Item")
        return str(json.loads(item["doc"]["S"]).get("level", "")) if item else ""

    def act(self, label: str, event: dict[str, Any]) -> int:
        status, ms = self._call(event)
        self.lines.append(f"{label}: HTTP {status} in {ms:.0f} ms")
        self._work()
        return status

    def run(self) -> list[str]:
        alerts = self._alerts()
        if len(alerts) < 4:
            return [f"lifecycle skipped: {len(alerts)} alerts with buttons, 4 needed"]
        # Mute a WARN incident if there is one: a muted ERROR whose rate doubles breaks through.
        warn = [alert for alert in alerts if self._level(alert[0]) == "WARN"]
        fp_c, c = (warn or alerts[2:])[0]
        rest = [alert for alert in alerts if alert[0] != fp_c]
        (fp_a, a), (fp_b, b) = rest[0], rest[1]
        self.sink.usergroups[ONCALL_GROUP] = ["U0ALICE", "U0BOB"]
        forged = self.slack.click(a, "cali_ack", "U0ALICE")
        forged["body"] = forged["body"][:-4] + "AAA="  # a tampered body: rejected, nothing written
        self.act("forged request (bad signature)", forged)
        self.act(f"acknowledge {fp_a} by U0ALICE", self.slack.click(a, "cali_ack", "U0ALICE"))
        self.act(f"mute {fp_a} by U0EVE (not on call)", self.slack.click(a, "cali_mute_24h", "U0EVE"))
        self.act(f"open Resolve… on {fp_b}", self.slack.click(b, "cali_resolve", "U0BOB"))
        view = self.sink.views[-1]
        self.act(f"resolve {fp_b} by U0BOB", self.slack.submit(view, "U0BOB", _RESOLUTION))
        self.act(f"mute {fp_c} for 1 h by U0ALICE", self.slack.click(c, "cali_mute_1h", "U0ALICE"))
        self.act(f"vote on {fp_a}: helpful", self.slack.click(a, "cali_helpful_yes", "U0BOB"))

        posts_before = len(self.sink.messages)
        self._travel(ESCALATE_AFTER + timedelta(minutes=1))
        self._work()
        escalations = [m for m in self.sink.messages[posts_before:] if ":rotating_light:" in m.text]
        self.lines.append(f"{ESCALATE_AFTER} later: {len(escalations)} unacknowledged incident(s) escalated")
        self._travel(timedelta(0))

        if self.resend is None:
            self.lines.append(
                "the first wave of logs again: skipped (the throttle window is the production one; "
                "the replay would wait two windows)"
            )
        else:
            self._replay(self.resend, fp_c)

        self._travel(QUIET_AFTER + timedelta(minutes=5))
        stream_records = self.stream.ttl_sweep(self.now())
        if stream_records:
            self.timers({"Records": stream_records}, LambdaContext("incident_lifecycle"))
        quiet = [m for m in self.sink.messages if m.text.startswith(":zzz:")]
        self.lines.append(
            f"{QUIET_AFTER} later: {len(stream_records)} quiet timer(s) expired, {len(quiet)} quiet update(s)"
        )
        self._travel(timedelta(0))
        return self.lines


# What the engineer types into the modal (the demo has no LLM, so nothing is prefilled).
_RESOLUTION = {
    "root_cause": "The connection pool (10) was too small for the nightly batch job's parallelism.",
    "resolution": "Raised the pool size to 50 and added a statement timeout; see the runbook.",
}
