"""``cali demo``: the whole pipeline locally, on embedded defaults."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Run CALI end to end on this machine, without an AWS account:

  log generator -> Kinesis (moto server, or AWS_ENDPOINT_URL) -> the real Lambda handlers
  (log_consumer, log_indexer, incident_analyzer, knowledge_sync) -> Milvus Lite with the
  knowledge base and the local MiniLM embedder -> a local Slack sink; logs are indexed in
  an OpenSearch-compatible server the way Firehose would, and archived raw in S3.

It ends with a report: records in and out per stage, the dead-letter queue, the incidents,
the Slack messages as a person would read them and the latency of each stage.

Real services are used when configured: SLACK_WEBHOOK_URL posts to a real channel;
OPENAI_API_KEY and/or OPENAI_BASE_URL (any OpenAI-compatible server; OPENAI_MODEL picks
the model) turn on the LLM analysis, which otherwise degrades to retrieval-only summaries.
"""

EPILOG = """\
examples:
  cali demo                                   # the default mixed scenario, two waves
  cali demo --scenario db-outage --count 3000
  cali demo --input app.log --report out.json # your own raw log lines or Fluent Bit JSON lines
"""


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline locally and print what a user would see",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--scenario",
        default="mixed",
        help="log generator scenario (see `cali loggen --help`); default: mixed",
    )
    parser.add_argument("--count", type=int, default=4000, help="log events to generate (default 4000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the generator (default 7)")
    parser.add_argument(
        "--bad-fraction",
        type=float,
        default=0.01,
        help="fraction of malformed records sent on purpose, to show the DLQ (default 0.01)",
    )
    parser.add_argument(
        "--input",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="replay these files or directories instead of generated logs, as production "
        "would alert on them: raw log lines (any format `cali parse` knows) or Fluent Bit JSON "
        "lines; the lines' own times, the deployed throttle window (in the lines' time) and a "
        "report section on detected formats and inferred levels",
    )
    parser.add_argument("--report", type=Path, help="also write the report as JSON to this file")
    parser.add_argument(
        "--throttle-window",
        type=int,
        default=None,
        help="throttle window in seconds (default: 3 for generated logs, so the demo's second "
        "wave shows the throttled update; 900, the deployed default, with --input)",
    )
    parser.add_argument("--workdir", type=Path, default=Path(".cali"), help="scratch folder (default .cali)")
    parser.add_argument("--show", type=int, default=6, help="Slack messages to print (default 6)")
    parser.add_argument(
        "--no-quality",
        action="store_true",
        help="skip the closing data-quality report (see `cali quality --help`)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from collections.abc import Callable, Sequence
    from datetime import UTC, datetime

    from cali_local.demo_inputs import (
        PRODUCTION_THROTTLE_WINDOW_SECONDS,
        REPLAY_ENV,
        files_waves,
        generated_waves,
        input_files,
        summarise_input,
    )
    from cali_local.loggen import SCENARIOS
    from cali_local.pipeline import PipelineOptions, run_pipeline
    from cali_local.report_text import render_report
    from cali_local.services import NotALocalEndpointError

    summary = None
    extra_env: dict[str, str] = {}
    window = args.throttle_window
    again: Callable[[], Sequence[bytes]] | None = None
    if args.input is not None:
        try:
            files = input_files(args.input)
        except FileNotFoundError as error:
            print(f"cali demo: no such file or directory: {error}")
            return 2
        if not files:
            print(f"cali demo: no files under {' '.join(map(str, args.input))}")
            return 2
        waves, scenario = files_waves(files), f"input {', '.join(map(str, args.input))} ({len(files)} files)"
        summary = summarise_input(waves)
        extra_env = dict(REPLAY_ENV)
        window = PRODUCTION_THROTTLE_WINDOW_SECONDS if window is None else window
    elif args.scenario not in SCENARIOS:
        print(f"cali demo: unknown scenario {args.scenario!r}; choose one of: {', '.join(SCENARIOS)}")
        return 2
    else:
        waves = generated_waves(
            args.scenario, count=args.count, seed=args.seed, bad_fraction=args.bad_fraction
        )
        scenario = args.scenario

        def first_wave_now(scenario: str = args.scenario) -> Sequence[bytes]:
            """The first wave as the applications would log it again now (the regression)."""
            fresh = generated_waves(
                scenario,
                count=args.count,
                seed=args.seed,
                bad_fraction=args.bad_fraction,
                start=datetime.now(UTC),
            )
            return fresh[0]

        again = first_wave_now
    print(f"cali demo: starting local services and the pipeline ({scenario}) ...", flush=True)
    try:
        report = run_pipeline(
            PipelineOptions(
                scenario=scenario,
                waves=waves,
                workdir=args.workdir,
                throttle_window_seconds=3 if window is None else window,
                extra_env=extra_env,
                lifecycle=True,
                archive_copy=args.workdir / "archive",
                again=again,
            )
        )
    except NotALocalEndpointError as error:
        print(f"cali demo: {error}")
        return 2
    if summary is not None:
        report = report.model_copy(
            update={
                "input_formats": dict(summary.formats),
                "input_level_sources": dict(summary.level_sources),
                "input_inferred_levels": dict(summary.inferred),
            }
        )
    print(render_report(report, max_slack=args.show))
    if args.report is not None:
        args.report.write_text(report.model_dump_json(indent=2), encoding="utf-8")
        print(f"\nreport written to {args.report}")
    if not args.no_quality:
        _quality_report(args.workdir / "archive")
    return 0 if all(report.conservation.values()) else 1


def _quality_report(archive: Path) -> None:
    """The day's data-quality report over the archive the run just wrote (DuckDB)."""
    from cali.quality.engines import DuckDbEngine
    from cali.quality.runner import run_quality
    from cali_cli.commands.quality import newest_day
    from cali_local.quality_demo import SILENT_SERVICE, seed_baseline

    day = newest_day(archive)
    if day is None:
        print("\ndata quality: nothing archived, no report")
        return
    seed_baseline(archive, day)
    print(
        f"\n== Data quality of {day} (local archive {archive}; a 7-day baseline was seeded in which "
        f"service {SILENT_SERVICE!r} logs every hour: today it is silent on purpose) =="
    )
    report = run_quality(DuckDbEngine(archive), day, environment="demo")
    print(report.to_text())
    html = archive.parent / "quality-report.html"
    html.write_text(report.to_html(), encoding="utf-8")
    print(f"HTML report: {html}")
    print("rerun it with `cali quality run --local`; query the archive with `cali archive query --local`")
