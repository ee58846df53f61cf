"""cali loggen: determinism, ground-truth labels, Fluent Bit record shape, delivery."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cali.contracts.levels import Level
from cali.contracts.records import RecordError, build_record
from cali.fingerprint import fingerprint
from cali.ingest.decoding import decode_payload
from cali.ingest.events import REPLAY_TIME_RULE, prepare_event
from cali_cli.main import main
from cali_local.fluentbit import (
    FILES_CONFIG,
    MAX_EVENTS_PER_PUT,
    PUT_RECORDS_PAYLOAD_SIZE,
    FluentBitPipeline,
    KinesisStreamsOutput,
)
from cali_local.loggen import MALFORMED_KINDS, SCENARIOS, GeneratedEvent, generate, stable_digest

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
_CACHE: dict[tuple[str, int, int, float], list[GeneratedEvent]] = {}


def events(scenario: str, *, seed: int = 1, count: int = 500, bad: float = 0.0) -> list[GeneratedEvent]:
    key = (scenario, seed, count, bad)
    if key not in _CACHE:
        _CACHE[key] = list(generate(scenario, seed=seed, count=count, start=START, bad_fraction=bad))
    return _CACHE[key]


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = list(generate("mixed", seed=7, count=300, start=START))
    b = list(generate("mixed", seed=7, count=300, start=START))
    c = list(generate("mixed", seed=8, count=300, start=START))
    assert stable_digest(a) == stable_digest(b)
    assert [e.raw for e in a] == [e.raw for e in b]
    assert stable_digest(a) != stable_digest(c)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_event_is_one_valid_record_for_the_consumer(scenario: str) -> None:
    for event in events(scenario):
        assert event.record is not None
        assert event.data.endswith(b"}\n")
        decoded = decode_payload(event.data)
        assert decoded.errors == []
        [raw_event] = decoded.events
        record = build_record(prepare_event(raw_event, event.time, time_rule=REPLAY_TIME_RULE))
        assert record.level == Level[event.level], event.raw
        assert record.service == event.service
        assert record.environment == "local"
        assert record.pod == event.record["kubernetes"]["pod_name"]
        assert record.message.strip()
        # The line's own time (its logger's precision: seconds to microseconds) is the record's.
        assert abs((record.timestamp - event.time).total_seconds()) < 1, event.raw


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_labels_promise_one_alert_per_incident(scenario: str) -> None:
    evs = events(scenario, count=800)
    signatures: dict[str, set[str]] = defaultdict(set)
    fingerprints: dict[str, set[str]] = defaultdict(set)
    for e in evs:
        if Level[e.level] >= Level.WARN:
            assert e.incident is not None, f"{e.signature} at {e.level} outside an incident"
        if e.incident is None:
            continue
        signatures[e.incident].add(e.signature)
        rec = build_record(prepare_event(decode_payload(e.data).events[0], None))
        fingerprints[e.incident].add(fingerprint(rec.message, rec.stack_trace).id)
    assert all(len(s) == 1 for s in signatures.values()), signatures
    assert all(len(f) == 1 for f in fingerprints.values()), {k: len(v) for k, v in fingerprints.items()}
    distinct = [next(iter(f)) for f in fingerprints.values()]
    assert len(set(distinct)) == len(distinct)
    expected = {
        "baseline": set(),
        "mixed": {
            "db-outage",
            "slow-upstream",
            "disk-full",
            "deploy-regression",
            "noisy-warnings",
            "smtp-outage",
            "auth-crashloop",
        },
    }
    assert set(signatures) == expected.get(scenario, {scenario})


def test_stack_traces_and_formats_are_present() -> None:
    evs = events("mixed", count=800)
    formats = Counter(e.format for e in evs)
    assert set(formats) == {"logback", "log4j", "python", "zap", "pino", "node", "logrus", "go-panic"}
    by_incident = {e.incident: e for e in evs if e.incident}
    assert "Caused by: org.postgresql.util.PSQLException" in by_incident["db-outage"].raw
    assert "\t... 2 more" in by_incident["db-outage"].raw
    assert "java.lang.NullPointerException" in by_incident["deploy-regression"].raw
    assert "During handling of the above exception" in by_incident["disk-full"].raw
    assert "goroutine" in by_incident["auth-crashloop"].raw
    assert "    at TCPConnectWrap.afterConnect" in by_incident["smtp-outage"].raw
    pino = json.loads(by_incident["slow-upstream"].raw)
    assert pino["level"] == 50 and pino["err"]["stack"].startswith("Error: upstream request timeout")
    deploy_marker = [e for e in evs if "Started CheckoutApplication v2.15.0" in e.raw]
    assert len(deploy_marker) == 1


def test_pii_values_are_in_the_text_and_the_record() -> None:
    evs = events("mixed", count=800)
    with_pii = [e for e in evs if e.pii]
    assert len(with_pii) > 50
    kinds: Counter[str] = Counter()
    for e in with_pii:
        for value in e.pii:
            assert value in e.raw
            assert value.encode() in e.data
            kinds["email" if "@" in value else "key" if value.startswith("sk_live_") else "ip"] += 1
    assert set(kinds) == {"email", "key", "ip"}
    assert any(e.incident and e.pii for e in evs)


def test_bad_fraction_makes_records_the_consumer_rejects() -> None:
    evs = events("db-outage", count=1000, bad=0.1)
    bad = [e for e in evs if e.malformed]
    assert 60 <= len(bad) <= 140
    assert {e.malformed for e in bad} == set(MALFORMED_KINDS)
    for e in bad:
        assert e.record is None and e.incident is None
        decoded = decode_payload(e.data)
        rejected = bool(decoded.errors)
        for ev in decoded.events:
            try:
                build_record(prepare_event(ev, None))
            except RecordError:
                rejected = True
        assert rejected, (e.malformed, e.data)
    assert not any(e.malformed for e in events("db-outage", count=1000))


def test_whole_stream_through_fluent_bit_equals_per_event_records() -> None:
    evs = [e for e in events("mixed", count=600) if not e.malformed]
    pipeline = FluentBitPipeline.load(
        FILES_CONFIG,
        env={
            "CALI_ENV": "local",
            "CALI_CLUSTER": "cali-local",
            "HOSTNAME": "h",
            "AWS_REGION": "x",
            "CALI_STREAM_NAME": "s",
        },
    )
    per_event = list(generate("mixed", seed=1, count=600, start=START, config=FILES_CONFIG))
    session = pipeline.session()
    out = []
    for e in per_event:
        assert e.source is not None and e.source.path == f"/var/log/app/{e.service}.log"
        assert "kubernetes" not in (e.record or {})
        for line in e.lines:
            out += session.feed(line, e.source, time=e.time)
    out += session.close()
    assert len(out) == len(evs)

    def key(r: dict[str, Any]) -> tuple[Any, Any, Any]:
        return (r["service"], r["time"], r.get("message") or r.get("msg"))

    assert sorted(key(r.record) for r in out) == sorted(key(e.record) for e in per_event if e.record)


def test_duration_bounds_log_time() -> None:
    evs = list(generate("baseline", seed=3, count=None, duration=30, start=START))
    assert evs and (evs[-1].time - START).total_seconds() <= 30
    assert 300 < len(evs) < 900  # about 20 events per second
    with pytest.raises(ValueError, match="count, duration"):
        list(generate("baseline", count=None))
    with pytest.raises(ValueError, match="unknown scenario"):
        list(generate("nope", count=1))


# --------------------------------------------------------------------------- CLI


def test_cli_writes_raw_fluentbit_json_labels_and_per_service_files(tmp_path: Path, capsys: Any) -> None:
    args = [
        "loggen",
        "--scenario",
        "disk-full",
        "--seed",
        "4",
        "--count",
        "120",
        "--start",
        "2026-11-23T10:00:00Z",
    ]
    assert (
        main(
            [
                *args,
                "--format",
                "fluentbit-json",
                "-o",
                str(tmp_path / "r.jsonl"),
                "--labels",
                str(tmp_path / "l.jsonl"),
                "--bad-fraction",
                "0.05",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    expected = list(generate("disk-full", seed=4, count=120, start=START, bad_fraction=0.05))
    assert (tmp_path / "r.jsonl").read_bytes() == b"".join(e.data for e in expected)
    labels = [json.loads(line) for line in (tmp_path / "l.jsonl").read_text().splitlines()]
    assert [lab["incident"] for lab in labels] == [e.incident for e in expected]
    assert summary["events"] == 120 and summary["malformed"] == sum(1 for e in expected if e.malformed)

    assert main([*args, "--output-dir", str(tmp_path / "logs")]) == 0
    files = {p.name for p in (tmp_path / "logs").iterdir()}
    assert "inventory.log" in files
    inventory = (tmp_path / "logs" / "inventory.log").read_text()
    assert "OSError: [Errno 28] No space left on device" in inventory

    assert main([*args]) == 0
    raw = capsys.readouterr().out
    assert raw == "".join(e.raw + "\n" for e in generate("disk-full", seed=4, count=120, start=START))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--bad-fraction", "2"], "--bad-fraction"),
        (["--rate", "0"], "--rate"),
        (["--start", "yesterday"], "ISO-8601"),
        (["--config", "/nonexistent.yaml"], "not found"),
        (["--output-dir", "x", "--format", "fluentbit-json"], "--output-dir"),
    ],
)
def test_cli_rejects_bad_arguments_clearly(extra: list[str], message: str, capsys: Any) -> None:
    assert main(["loggen", "--count", "1", *extra]) == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------- delivery


class FakeKinesis:
    """PutRecords with Kinesis' limits and failure modes (per-record and whole-call)."""

    def __init__(
        self, fail_first_attempt_every: int = 0, throttle_calls: int = 0, missing: bool = False
    ) -> None:
        self.stored: list[bytes] = []
        self.calls: list[int] = []
        self.fail_every = fail_first_attempt_every
        self.throttle_calls = throttle_calls
        self.missing = missing
        self.seen: set[bytes] = set()

    def put_records(self, *, StreamName: str, Records: list[dict[str, Any]]) -> Mapping[str, Any]:
        from botocore.exceptions import ClientError

        if self.missing:
            raise ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": "no stream"}}, "PutRecords"
            )
        assert 1 <= len(Records) <= 500
        assert sum(len(r["Data"]) + len(r["PartitionKey"]) for r in Records) <= 5 * 1024 * 1024
        for r in Records:
            assert len(r["Data"]) <= 1024 * 1024
            assert 1 <= len(r["PartitionKey"]) <= 256
        self.calls.append(len(Records))
        if self.throttle_calls:
            self.throttle_calls -= 1
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                "PutRecords",
            )
        results: list[dict[str, Any]] = []
        for i, r in enumerate(Records):
            if self.fail_every and i % self.fail_every == 0 and r["Data"] not in self.seen:
                self.seen.add(r["Data"])
                results.append(
                    {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded"}
                )
            else:
                self.stored.append(r["Data"])
                results.append({"SequenceNumber": str(len(self.stored)), "ShardId": "shardId-000000000000"})
        return {"FailedRecordCount": sum(1 for x in results if "ErrorCode" in x), "Records": results}


def test_output_batches_within_limits_and_retries_only_failed_records() -> None:
    fake = FakeKinesis(fail_first_attempt_every=7, throttle_calls=2)
    out = KinesisStreamsOutput(fake, "cali-test", sleep=lambda _: None)
    payloads = [e.data for e in events("mixed", count=1200)]
    for data in payloads:
        out.add(data)
    report = out.close()
    assert sorted(fake.stored) == sorted(payloads)  # each delivered exactly once
    assert report.records_sent == len(payloads) and not report.failed
    assert report.retried_records > 0 and report.throttled_requests == 2
    assert max(fake.calls) == MAX_EVENTS_PER_PUT


def test_output_splits_by_payload_size() -> None:
    fake = FakeKinesis()
    out = KinesisStreamsOutput(fake, "s", sleep=lambda _: None)
    big = b'{"message":"' + b"x" * 600_000 + b'"}\n'
    for _ in range(12):
        out.add(big)
    out.close()
    assert len(fake.stored) == 12
    assert all(n * (len(big) * 4 // 3 + 48) <= PUT_RECORDS_PAYLOAD_SIZE for n in fake.calls)


def test_output_reports_undeliverable_records_and_raises_on_fatal_errors() -> None:
    out = KinesisStreamsOutput(FakeKinesis(throttle_calls=100), "s", max_attempts=3, sleep=lambda _: None)
    out.add(b'{"message":"a"}\n')
    report = out.close()
    assert [code for _, code in report.failed] == ["ProvisionedThroughputExceededException"]
    missing = KinesisStreamsOutput(FakeKinesis(missing=True), "s", sleep=lambda _: None)
    missing.add(b'{"message":"a"}\n')
    with pytest.raises(Exception, match="no stream"):
        missing.close()
    assert missing.report.failed[0][1] == "ResourceNotFoundException"


def test_partition_keys_look_like_the_plugins() -> None:
    out = KinesisStreamsOutput(FakeKinesis(), "s")
    keys = {out.partition_key("kube.var.log.containers.a.log") for _ in range(50)}
    assert all(k[:10] == out.instance_id and k[10:].isdigit() for k in keys)
