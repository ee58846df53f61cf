"""``cali loggen``: realistic application logs with labelled incidents."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any, BinaryIO, cast

if TYPE_CHECKING:
    from cali_local.fluentbit import KinesisStreamsOutput
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


def run(args: argparse.Namespace) -> int:  # noqa: C901, PLR0911, PLR0912, PLR0915
    import time
    from datetime import UTC, datetime
    from pathlib import Path

    from cali_local.fluentbit import FILES_CONFIG, KUBERNETES_CONFIG
    from cali_local.loggen import SCENARIO_HELP, generate

    if args.list_scenarios:
        for name, text in SCENARIO_HELP.items():
            print(f"{name:<18} {text}")
        return 0
    if args.count is not None and args.count < 0:
        return _fail("--count must be >= 0")
    if args.rate is not None and args.rate <= 0:
        return _fail("--rate must be > 0")
    if not 0.0 <= args.bad_fraction <= 1.0:
        return _fail("--bad-fraction must be between 0 and 1")
    if args.output_dir and args.format != "raw":
        return _fail("--output-dir writes raw files; use --output for fluentbit-json")
    config = {"kubernetes": KUBERNETES_CONFIG, "k8s": KUBERNETES_CONFIG, "files": FILES_CONFIG}.get(
        args.config, Path(args.config)
    )
    if not Path(config).is_file():
        return _fail(f"Fluent Bit config not found: {config}")
    start = None
    if args.start:
        try:
            start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
        except ValueError:
            return _fail(f"--start is not an ISO-8601 time: {args.start!r}")
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
    count = args.count if args.count is not None or args.duration is not None else 1000
    clock = (lambda: datetime.now(UTC)) if args.rate else None
    wall_duration = args.duration if args.rate else None

    events = generate(
        args.scenario,
        seed=args.seed,
        count=count,
        start=start,
        environment=args.environment,
        duration=args.duration,
        bad_fraction=args.bad_fraction,
        config=config,
        cluster=args.cluster,
        clock=clock,
    )
    try:
        sink = _Sink(args)
    except Exception as exc:  # boto3 setup: no region, bad endpoint URL
        return _fail(f"cannot open the output: {exc}")
    labels = Path(args.labels).open("w", encoding="utf-8") if args.labels else None  # noqa: SIM115 - closed below
    stats: Counter[str] = Counter()
    began = time.monotonic()
    next_slot = began
    try:
        for event in events:
            if wall_duration is not None and time.monotonic() - began > wall_duration:
                break
            sink.write(event, stats)
            if labels:
                labels.write(json.dumps(_label(event)) + "\n")
            stats["events"] += 1
            stats[f"incident:{event.incident}"] += 1 if event.incident else 0
            stats["malformed"] += 1 if event.malformed else 0
            if args.rate:
                next_slot += len(event.lines) / args.rate
                delay = next_slot - time.monotonic()
                if delay > 0:
                    sink.idle()
                    time.sleep(delay)
        report = sink.close()
    except (OSError, RuntimeError) as exc:
        return _fail(str(exc))
    except Exception as exc:
        if type(exc).__module__.startswith("botocore"):  # credentials, missing stream, access denied
            return _fail(f"Kinesis rejected the records: {exc}")
        raise
    finally:
        if labels:
            labels.close()
    summary: dict[str, Any] = {
        "scenario": args.scenario,
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
