"""``cali loggen``: realistic application logs with labelled incidents."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO, cast

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime
    from pathlib import Path

    from cali_local.fluentbit import DeliveryReport, KinesisStreamsOutput
    from cali_local.loggen import GeneratedEvent

_EPILOG = """\
examples:
  cali loggen --scenario db-outage --count 2000 --seed 7 > app.log
  cali loggen --scenario mixed --rate 50 --duration 300 --output-dir ./logs   # one file per service
  cali loggen --scenario deploy-regression --format fluentbit-json --output records.jsonl
  AWS_ENDPOINT_URL=http://localhost:4566 cali loggen --scenario mixed --to-stream cali-dev-logs
  cali loggen --list-scenarios

--format raw writes what the applications write (feed it to Fluent Bit, or to
`cali demo --input`); fluentbit-json writes what Fluent Bit's kinesis_streams output
puts into the stream, one JSON record per line. --labels writes the ground truth
(incident, signature, malformed reason, PII values) for every event as JSON lines.
The same --seed and --start always give the same output.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from cali_local.loggen import SCENARIOS  # light: no third-party imports at module level

    parser = subparsers.add_parser(
        "loggen",
        help="generate realistic multi-service logs with incidents",
        description="Generate realistic logs from seven services (Java, Python, Go, Node) in their real "
        "formats, with stack traces, PII-looking values and incident scenarios. Deterministic with --seed.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--scenario", default="mixed", choices=SCENARIOS, help="what goes wrong (default: mixed)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same logs (default: 0)")
    parser.add_argument(
        "--count", type=int, default=None, help="number of events (default: 1000 unless --duration)"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds: of wall time with --rate, of log time without it",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="lines per second in real time (a stack trace line counts); default: as fast as possible",
    )
    parser.add_argument(
        "--start",
        default=None,
        help="ISO-8601 time of the first event when not pacing with --rate (default: now)",
    )
    parser.add_argument(
        "--environment", default="local", help="value of the `environment` field (default: local)"
    )
    parser.add_argument(
        "--cluster", default="cali-local", help="value of the `cluster` field (default: cali-local)"
    )
    parser.add_argument(
        "--bad-fraction",
        type=float,
        default=0.0,
        help="fraction of malformed stream records for DLQ testing, 0..1 (default: 0)",
    )
    parser.add_argument(
        "--format",
        choices=("raw", "fluentbit-json"),
        default="raw",
        help="raw application lines, or the records Fluent Bit sends to Kinesis (default: raw)",
    )
    parser.add_argument(
        "--config",
        default="kubernetes",
        help="Fluent Bit config to emulate: kubernetes, files, or a path (default: kubernetes)",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--output", "-o", default=None, help="write to FILE instead of stdout")
    target.add_argument("--output-dir", default=None, help="write DIR/<service>.log per service (raw format)")
    target.add_argument(
        "--to-stream",
        default=None,
        metavar="NAME",
        help="put records into this Kinesis stream (boto3; honours AWS_ENDPOINT_URL)",
    )
    parser.add_argument(
        "--labels", default=None, metavar="FILE", help="write ground-truth labels as JSON lines"
    )
    parser.add_argument("--list-scenarios", action="store_true", help="describe the scenarios and exit")
    parser.set_defaults(func=run)


# Argument checks in the order they are reported: (is wrong, message).
_CHECKS: tuple[tuple[Callable[[argparse.Namespace], bool], str], ...] = (
    (lambda a: a.count is not None and a.count < 0, "--count must be >= 0"),
    (lambda a: a.rate is not None and a.rate <= 0, "--rate must be > 0"),
    (lambda a: not 0.0 <= a.bad_fraction <= 1.0, "--bad-fraction must be between 0 and 1"),
    (
        lambda a: bool(a.output_dir) and a.format != "raw",
        "--output-dir writes raw files; use --output for fluentbit-json",
    ),
)


@dataclass(frozen=True)
class _Plan:
    """What the checked arguments ask ``generate`` for."""

    config: Path
    start: datetime | None
    count: int | None


def run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime
    from pathlib import Path

    from cali_local.loggen import SCENARIO_HELP, generate

    if args.list_scenarios:
        for name, text in SCENARIO_HELP.items():
            print(f"{name:<18} {text}")
        return 0
    plan = _plan(args)
    if isinstance(plan, str):
        return _fail(plan)
    events = generate(
        args.scenario,
        seed=args.seed,
        count=plan.count,
        start=plan.start,
        environment=args.environment,
        duration=args.duration,
        bad_fraction=args.bad_fraction,
        config=plan.config,
        cluster=args.cluster,
        clock=(lambda: datetime.now(UTC)) if args.rate else None,
    )
    try:
        sink = _Sink(args)
    except Exception as exc:  # boto3 setup: no region, bad endpoint URL
        return _fail(f"cannot open the output: {exc}")
    labels = Path(args.labels).open("w", encoding="utf-8") if args.labels else None  # noqa: SIM115 - closed below
    stats: Counter[str] = Counter()
    try:
        report = _pump(events, sink, labels, args, stats)
    except Exception as exc:
        message = _delivery_error(exc)
        if message is None:
            raise
        return _fail(message)
    finally:
        if labels:
            labels.close()
    return _finish(args.scenario, stats, report)


def _plan(args: argparse.Namespace) -> _Plan | str:
    """The plan, or what is wrong with the arguments."""
    problem = next((message for wrong, message in _CHECKS if wrong(args)), None)
    if problem is not None:
        return problem
    config = _config_path(args.config)
    if not config.is_file():
        return f"Fluent Bit config not found: {config}"
    try:
        start = _parse_start(args.start)
    except ValueError:
        return f"--start is not an ISO-8601 time: {args.start!r}"
    count = args.count if args.count is not None or args.duration is not None else 1000
    return _Plan(config=config, start=start, count=count)


def _config_path(name: str) -> Path:
    from pathlib import Path

    from cali_local.fluentbit import FILES_CONFIG, KUBERNETES_CONFIG

    known = {"kubernetes": KUBERNETES_CONFIG, "k8s": KUBERNETES_CONFIG, "files": FILES_CONFIG}
    return known.get(name, Path(name))


def _parse_start(text: str | None) -> datetime | None:
    """``--start`` as an aware time (UTC when it has no offset); ValueError when it is not ISO-8601."""
    from datetime import UTC, datetime

    if not text:
        return None
    start = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return start if start.tzinfo is not None else start.replace(tzinfo=UTC)


def _pump(
    events: Iterator[GeneratedEvent],
    sink: _Sink,
    labels: TextIO | None,
    args: argparse.Namespace,
    stats: Counter[str],
) -> DeliveryReport | None:
    """Write ``events`` (and their labels) to ``sink``, paced by ``--rate``; the delivery report."""
    import time

    wall_duration = args.duration if args.rate else None
    began = time.monotonic()
    next_slot = began
    for event in events:
        if wall_duration is not None and time.monotonic() - began > wall_duration:
            break
        sink.write(event, stats)
        if labels:
            labels.write(json.dumps(_label(event)) + "\n")
        _count(event, stats)
        if args.rate:
            next_slot = _wait_for_slot(sink, next_slot + len(event.lines) / args.rate)
    return cast("DeliveryReport | None", sink.close())


def _count(event: GeneratedEvent, stats: Counter[str]) -> None:
    stats["events"] += 1
    stats[f"incident:{event.incident}"] += 1 if event.incident else 0
    stats["malformed"] += 1 if event.malformed else 0


def _wait_for_slot(sink: _Sink, slot: float) -> float:
    """Paced mode: sleep until ``slot`` (monotonic seconds), flushing first; returns ``slot``."""
    import time

    delay = slot - time.monotonic()
    if delay > 0:
        sink.idle()
        time.sleep(delay)
    return slot


def _delivery_error(exc: Exception) -> str | None:
    """The message for a failure we expect while writing, or None to let it propagate."""
    if isinstance(exc, OSError | RuntimeError):
        return str(exc)
    if type(exc).__module__.startswith("botocore"):  # credentials, missing stream, access denied
        return f"Kinesis rejected the records: {exc}"
    return None


def _finish(scenario: str, stats: Counter[str], report: DeliveryReport | None) -> int:
    """Print the summary to stderr; exit code 2 when Kinesis kept some records."""
    summary: dict[str, Any] = {
        "scenario": scenario,
        "events": stats["events"],
        "lines": stats["lines"],
        "malformed": stats["malformed"],
        "skipped_malformed_in_raw": stats["skipped_malformed"],
        "incidents": {
            k.split(":", 1)[1]: v for k, v in sorted(stats.items()) if k.startswith("incident:") and v
        },
    }
    if report is not None:
        summary["delivery"] = report.as_dict()
    print(json.dumps(summary), file=sys.stderr)
    if report is not None and report.failed:
        codes = Counter(code for _, code in report.failed)
        return _fail(f"{len(report.failed)} records were not delivered after retries: {dict(codes)}")
    return 0


def _label(event: GeneratedEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "time": event.time.isoformat(),
        "service": event.service,
        "level": event.level,
        "format": event.format,
        "incident": event.incident,
        "signature": event.signature,
        "malformed": event.malformed,
        "pii": list(event.pii),
    }


class _Sink:
    """Where events go: stdout, a file, one file per service, or a Kinesis stream."""

    def __init__(self, args: argparse.Namespace) -> None:
        from pathlib import Path

        self.format = args.format
        self.files: dict[str, BinaryIO] = {}
        self.out: BinaryIO | None = None
        self.kinesis: KinesisStreamsOutput | None = None
        self.output_dir = Path(args.output_dir) if args.output_dir else None
        self.last_put = 0.0
        if args.to_stream:
            import os

            import boto3

            from cali_local.fluentbit import KinesisStreamsOutput, PutRecordsClient

            # AWS_REGION is what Fluent Bit and Lambda use; boto3 itself reads AWS_DEFAULT_REGION.
            region = os.environ.get("AWS_REGION") or None
            client = cast("PutRecordsClient", boto3.client("kinesis", region_name=region))
            self.kinesis = KinesisStreamsOutput(client, args.to_stream)
        elif self.output_dir:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        elif args.output:
            self.out = Path(args.output).open("wb")  # noqa: SIM115 - closed in close()
        else:
            self.out = sys.stdout.buffer

    def write(self, event: GeneratedEvent, stats: Counter[str]) -> None:
        stats["lines"] += len(event.lines)
        if self.kinesis is not None:
            tag = "kube." + (event.source.path.strip("/").replace("/", ".") if event.source else "loggen")
            self.kinesis.add(event.data, tag)
            return
        if self.format == "raw":
            if event.malformed:
                # A malformed record is a defect of the stream, not a line an application writes.
                stats["skipped_malformed"] += 1
                return
            payload = (event.raw + "\n").encode("utf-8")
        else:
            payload = event.data
        if self.output_dir is not None:
            handle = self.files.get(event.service)
            if handle is None:
                handle = (self.output_dir / f"{event.service}.log").open("ab")
                self.files[event.service] = handle
            handle.write(payload)
            handle.flush()
        elif self.out is not None:
            self.out.write(payload)

    def idle(self) -> None:
        """Paced mode: make what was written visible before sleeping."""
        import time

        # Like Fluent Bit's `flush: 1`: at most one PutRecords per second when pacing.
        if self.kinesis is not None and time.monotonic() - self.last_put >= 1.0:
            self.kinesis.flush()
            self.last_put = time.monotonic()
        if self.out is not None:
            self.out.flush()

    def close(self) -> Any:
        for handle in self.files.values():
            handle.close()
        if self.out is not None:
            self.out.flush()
            if self.out is not sys.stdout.buffer:
                self.out.close()
        if self.kinesis is not None:
            return self.kinesis.close()
        return None


def _fail(message: str) -> int:
    print(f"cali loggen: error: {message}", file=sys.stderr)
    return 2
