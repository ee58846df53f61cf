"""Fault scenarios of the log consumer stage (issue 11, rows 1, 2, 6, 7, 8 and 10).

Each scenario drives the deployed ``log_consumer`` handler through the Kinesis mapping
stand-in, then the ``incident_analyzer`` handler to the Slack stand-in, injects its fault
at a boundary and prints its tally. All of them assert 0 lost records, 0 lost alerts and
0 duplicate posts.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from dataclasses import replace

from cali.fingerprint import fingerprint
from cali_local.event_source import RuntimeExit, StreamMapping
from tests.faults.harness import World, always, before_call, client_error, cloudwatch_record, log_line

MakeWorld = Callable[..., World]


def assert_no_loss(tally_: object, *, duplicates: int = 0) -> None:
    from tests.faults.harness import Tally

    assert isinstance(tally_, Tally)
    assert tally_.on_failure == 0, "records reached the on-failure queue"
    assert tally_.lost_records == 0, f"{tally_.lost_records} records neither processed nor in the DLQ"
    assert tally_.lost_alerts == 0, f"{tally_.lost_alerts} alerts never reached Slack"
    assert tally_.duplicates <= duplicates, f"{tally_.duplicates} duplicate posts"
    assert tally_.incidents_dlq == 0


def test_row1_state_store_down_and_sqs_failing_retries_the_fail_open_alerts(world: MakeWorld) -> None:
    w = world()
    w.put(log_line("alpha"), log_line("bravo"), log_line("charlie"))
    # The state table is down for the whole batch (fail open); SQS refuses the first
    # invocation's sends (every attempt), then recovers.
    w.fault("dynamodb", "update_item", always(client_error("InternalServerError", "UpdateItem")))
    w.fault("dynamodb", "put_item", always(client_error("InternalServerError", "PutItem")))
    w.fault("dynamodb", "get_item", always(client_error("InternalServerError", "GetItem")))
    w.fault(
        "sqs",
        "send_message_batch",
        before_call(_raise(client_error("ServiceUnavailable", "SendMessageBatch", 503)), times=3),
    )
    w.run(analyzer=False)
    w.heal()
    w.run()
    assert_no_loss(w.tally("row 1: DynamoDB down + SQS failing", ["alpha", "bravo", "charlie"]))


def test_row2_crash_between_the_claim_and_the_send_does_not_lose_the_alert(world: MakeWorld) -> None:
    # A 4 s function timeout instead of the deployed 60 s keeps the scenario short; the
    # claim's lifetime is relative to the invocation, so the outcome is the same.
    w = world(mapping=replace(StreamMapping.deployed("dev"), timeout_seconds=4.0))
    w.consumer.before_retry = lambda _retry: time.sleep(1.0)  # Lambda backs off between retries
    w.put(log_line("delta"))
    # The process dies after the idempotency claim was written, before SQS got the alert.
    w.fault("sqs", "send_message_batch", before_call(_raise(RuntimeExit("killed before the send")), times=1))
    w.run()
    assert_no_loss(w.tally("row 2: crash after the claim, before the send", ["delta"]))


def test_row6_a_failing_fingerprint_does_not_take_the_batch_with_it(world: MakeWorld) -> None:
    w = world()
    # One fingerprint's state item is unreadable (written by hand or by an older
    # version): the throttle step fails for it, and only for it.
    bravo = json.loads(log_line("bravo"))
    fp = fingerprint(bravo["message"], None).id
    w.clients.dynamodb.put_item(
        TableName=w.resources.names.state_table,
        Item={"pk": {"S": f"throttle#{fp}"}, "sk": {"S": "window"}, "count": {"S": "corrupt"}},
    )
    # Fluent Bit joins lines: one Kinesis record holds all three, so bisecting cannot help.
    w.put([log_line("alpha"), log_line("bravo"), log_line("charlie")])
    w.run()
    assert_no_loss(w.tally("row 6: one fingerprint's batch step fails", ["alpha", "bravo", "charlie"]))


def _nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_row7_deeply_nested_json_goes_to_the_dlq_instead_of_blocking_the_shard(world: MakeWorld) -> None:
    w = world()
    # An app line nested 400 levels deep, next to a good line in the same record.
    deep_line = json.dumps({"level": "ERROR", "message": "deep", "context": _nested(400)}).encode()
    # A CloudWatch envelope nested 600 levels deep, with one bad log event: writing that
    # event's replayable copy used to raise orjson's "Recursion limit reached".
    envelope = json.loads(gzip.decompress(cloudwatch_record(["[ERROR] Worker kilo stalled"])))
    envelope["extra"] = _nested(600)
    envelope["logEvents"].append({"id": "9", "timestamp": 1796295600009, "message": 5})
    w.put([log_line("echo"), deep_line], gzip.compress(json.dumps(envelope).encode()))
    w.put(log_line("foxtrot"))
    w.run()
    tally = w.tally("row 7: JSON nested 400 and 600 levels deep", ["echo", "foxtrot"])
    assert_no_loss(tally)
    assert sorted(entry["reason"] for entry in w.dlq_objects()) == ["too_deep", "too_deep"]


def test_row8_one_record_of_many_bad_lines_is_one_dlq_object(world: MakeWorld) -> None:
    w = world()
    bad = [b"{not json %d" % i for i in range(2_000)]  # broken JSON: readable text is a raw line
    w.put([log_line("golf"), *bad])
    w.run()
    tally = w.tally("row 8: one record, 2,000 bad lines", ["golf"])
    assert_no_loss(tally)
    (entry,) = w.dlq_objects()
    assert entry["reason"] == "not_json" and entry["events"] == 2_000


def test_row10_multibyte_samples_fit_sqs_and_dynamodb(world: MakeWorld) -> None:
    w = world(env={"MAX_SAMPLES": "20"})
    # 20 distinct samples of 4-byte characters at the character bounds: 2,000 for the
    # message and 4,000 for the stack trace are 24 KB each, 480 KB together.
    lines = [
        log_line(
            "hotel", message=f"Payment backend hotel refused {i} " + "😀" * 1_990, stack_trace="😀" * 4_000
        )
        for i in range(20)
    ]
    w.put(lines)
    w.run()
    assert_no_loss(w.tally("row 10: multi-byte samples near the limits", ["hotel"]))


def _raise(error: BaseException) -> Callable[[], None]:
    def effect() -> None:
        raise error

    return effect
