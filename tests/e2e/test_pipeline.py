"""The whole pipeline, from generated application logs to Slack, on the local services.

One storm scenario runs once for the module (about 15 s): two waves of a database outage
with malformed records and planted PII, separated by the throttle window, then every
Kinesis record is delivered to the consumer a second time.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from cali_local.demo_inputs import generated_events, split_waves
from cali_local.loggen import GeneratedEvent
from cali_local.pipeline import PipelineOptions, PipelineReport, run_pipeline

pytestmark = [pytest.mark.xdist_group("pipeline"), pytest.mark.slow]

THROTTLE_WINDOW = 2


@pytest.fixture(scope="module")
def storm(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[GeneratedEvent], PipelineReport]:
    events = generated_events("db-outage", count=1200, seed=11, bad_fraction=0.03)
    report = run_pipeline(
        PipelineOptions(
            scenario="db-outage",
            waves=split_waves(events),
            workdir=tmp_path_factory.mktemp("pipeline"),
            throttle_window_seconds=THROTTLE_WINDOW,
            redeliver=True,
        )
    )
    return events, report


def _stage(report: PipelineReport, prefix: str) -> tuple[int, int]:
    stage = next(s for s in report.stages if s.stage.startswith(prefix))
    return stage.records_in, stage.records_out


def test_every_record_is_accounted_for(storm: tuple[list[GeneratedEvent], PipelineReport]) -> None:
    events, report = storm
    assert all(report.conservation.values()), report.conservation
    sent, _ = _stage(report, "Fluent Bit")
    assert sent == len(events)
    consumer = report.metrics["log_consumer"]
    assert consumer["RecordsIn"] == len(events)
    assert consumer["RecordsKept"] + consumer["RecordsFiltered"] + consumer["RecordsInvalid"] == len(events)
    # Archived raw, and indexed unless malformed (those are in opensearch-failed/).
    archived_in, archived_out = _stage(report, "Firehose -> S3")
    assert archived_in == archived_out == len(events)
    _, indexed_out = _stage(report, "Firehose -> log_indexer")
    malformed = [e for e in events if e.malformed]
    assert indexed_out == len(events) - len(malformed)


def test_bad_records_reach_the_dlq_with_a_reason(storm: tuple[list[GeneratedEvent], PipelineReport]) -> None:
    events, report = storm
    malformed = [e.malformed for e in events if e.malformed]
    assert malformed, "the scenario must contain malformed records"
    assert len(report.dlq) == len(malformed)
    assert all(entry.reason and entry.key.startswith("dlq/") for entry in report.dlq)
    expected = Counter(malformed)
    # loggen's malformed kinds name the fault; the consumer's reasons are its DLQ codes.
    kind_to_reason = {
        "not_json": "not_json",
        "invalid_utf8": "invalid_utf8",
        "not_object": "not_an_object",
        "no_message": "missing_field:message",
    }
    assert Counter(report.dlq_by_reason) == Counter({kind_to_reason[k]: n for k, n in expected.items()})


def _alerts(report: PipelineReport) -> list[dict[str, object]]:
    return [i for i in report.incidents if i.get("slack_status") == "sent"]


def test_one_alert_per_incident_then_one_throttled_update(
    storm: tuple[list[GeneratedEvent], PipelineReport],
) -> None:
    events, report = storm
    alerts = _alerts(report)
    kinds_by_fingerprint: dict[str, Counter[str]] = {}
    for alert in alerts:
        kinds_by_fingerprint.setdefault(str(alert["fingerprint"]), Counter())[str(alert["kind"])] += 1
    storm_fingerprints = {str(a["fingerprint"]) for a in alerts if int(str(a["window_count"])) >= 20}
    assert storm_fingerprints, f"the outage should open at least one busy incident: {alerts}"
    for fingerprint in storm_fingerprints:
        kinds = kinds_by_fingerprint[fingerprint]
        # Hundreds of identical errors: one alert when it starts, one update with the count
        # when the window that saw repeats is over; never an alert per line. The second wave
        # finds the incident still firing: its rollover sends that update alone, it does not
        # open the incident again with a second "new" (two Slack posts at once).
        assert kinds["new"] == 1
        assert kinds["update"] >= 1
        occurrences = sum(1 for e in events if e.incident and e.level in {"ERROR", "FATAL", "WARN"})
        assert sum(kinds.values()) < occurrences / 10
    # Every message in Slack is one of these analysed incidents: nothing posted twice.
    assert len(report.slack) == len(alerts)


def test_redelivery_posts_nothing_twice(storm: tuple[list[GeneratedEvent], PipelineReport]) -> None:
    _, report = storm
    note = next(n for n in report.notes if n.startswith("redelivery"))
    before, after = re.findall(r"(\d+) before, (\d+) after", note)[0]
    assert int(before) > 0
    assert before == after


def test_no_pii_in_any_slack_payload(storm: tuple[list[GeneratedEvent], PipelineReport]) -> None:
    events, report = storm
    planted = {value for e in events for value in e.pii}
    assert planted, "the scenario must plant PII for this test to mean anything"
    payloads = json.dumps([m.model_dump() for m in report.slack])
    leaked = sorted(value for value in planted if value in payloads)
    assert not leaked
    assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", payloads.replace("@channel", ""))


def test_report_is_readable(storm: tuple[list[GeneratedEvent], PipelineReport], tmp_path: Path) -> None:
    from cali_local.report_text import render_report

    _, report = storm
    text = render_report(report)
    assert "Records in and out per stage" in text
    assert "Dead-letter queue" in text
    assert "[FAILED]" not in text
    assert report.slack[0].rendered.splitlines()[0] in text


def test_demo_over_a_users_raw_log_file(tmp_path: Path) -> None:
    """`cali demo --input FILE --report FILE.json` in a fresh process, as an operator runs it."""
    import os
    import subprocess
    import sys

    log = tmp_path / "app.log"
    log.write_text(
        # logback's default pattern: %d{yyyy-MM-dd HH:mm:ss.SSS} [%thread] %-5level %logger{36} - %msg%n
        "2026-11-23 10:00:00.123 [main] INFO  com.acme.Api - started in 2.1 s\n"
        "2026-11-23 10:00:01.456 [http-1] ERROR com.acme.Orders - order 1234 failed for bob@example.com\n"
        "java.lang.IllegalStateException: inventory unavailable\n"
        "\tat com.acme.OrderService.place(OrderService.java:42)\n"
        "\tat com.acme.Api.handle(Api.java:10)\n"
        "2026-11-23 10:00:02.789 [http-2] ERROR com.acme.Orders - order 1235 failed for eve@example.org\n"
        "java.lang.IllegalStateException: inventory unavailable\n"
        "\tat com.acme.OrderService.place(OrderService.java:42)\n"
        "\tat com.acme.Api.handle(Api.java:10)\n"
        "2026-11-23 10:00:03.000 [main] WARN  com.acme.Pool - pool 80% used\n",
        encoding="utf-8",
    )
    report_file = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cali_cli.main",
            "demo",
            "--input",
            str(log),
            "--report",
            str(report_file),
            "--workdir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        # An operator's shell: not the moto endpoint that integration tests in this process
        # may have exported (the demo would then share that server's leftover resources).
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(report_file.read_text())
    stages = {s["stage"]: s for s in report["stages"]}
    assert stages["Fluent Bit records -> Kinesis"]["records_in"] == 4  # multiline grouped
    consumer = report["metrics"]["log_consumer"]
    assert consumer["RecordsIn"] == 4
    assert consumer["RecordsKept"] == 3  # two ERRORs and a WARN
    fingerprints = Counter(i["fingerprint"] for i in report["incidents"])
    assert len(report["slack"]) == len(report["incidents"]) == 2  # the two errors are one incident
    assert len(fingerprints) == 2
    assert "bob@example.com" not in json.dumps(report["slack"])


def test_a_second_run_in_the_same_process_starts_clean(
    storm: tuple[list[GeneratedEvent], PipelineReport], tmp_path: Path
) -> None:
    """moto's state is process-wide: a rerun must neither re-read nor re-count the storm."""
    events = generated_events("disk-full", count=300, seed=5, bad_fraction=0.02)
    report = run_pipeline(
        PipelineOptions(scenario="disk-full", waves=split_waves(events, 1), workdir=tmp_path)
    )
    assert all(report.conservation.values()), report.conservation
    assert report.metrics["log_consumer"]["RecordsIn"] == len(events)
    assert len(report.dlq) == sum(1 for e in events if e.malformed)
    assert {i["fingerprint"] for i in report.incidents}.isdisjoint(
        {i["fingerprint"] for i in storm[1].incidents}
    )
