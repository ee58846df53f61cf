"""``cali doctor``: is this environment (or the local demo) ready, and if not, what to do."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Check an environment before and after `cdk deploy`, or the services `make demo` uses.
Every check prints ok / warn / fail (or skip) and, for warn and fail, the fix. The exit
code is 1 when any check fails, 0 otherwise (warnings do not fail), 2 on bad usage.

--env ENV (a name from cdk.json), with AWS credentials for that environment:
  before the deploy: credentials match cdk.json's account and region, the region is
  CDK-bootstrapped, the Lambda concurrency quota fits the environment, its OpenSearch
  instance types are offered there, and the synthesized bundles (cdk.out) fit Lambda.
  after the deploy: Slack, LLM and Milvus secrets are set and accepted (no message is
  posted, no token spent), the knowledge collection is loaded and not empty, OpenSearch
  health, index templates and ISM policies, consumer iterator age, DLQ and on-failure
  queue depths, alarms in ALARM, and the last knowledge sync.
--local: the Slack, LLM, Milvus, OpenSearch and AWS endpoints from SLACK_WEBHOOK_URL
  (or SLACK_BOT_TOKEN/SLACK_CHANNEL/SLACK_API_URL), OPENAI_BASE_URL/OPENAI_API_KEY/
  OPENAI_MODEL, LOCAL_MILVUS_URI (default: the latest demo run's .cali/run-*/milvus.db),
  CALI_OPENSEARCH_URL and
  AWS_ENDPOINT_URL; what is unset is started by `cali demo` itself and skipped here.
"""

EPILOG = """\
examples:
  cali doctor --env dev --phase preflight     # before the first `cdk deploy 'Dev/*'`
  cali doctor --env dev                       # both phases, after the deploy
  cali doctor --env prod --json > doctor.json
  cali doctor --local
"""


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "doctor",
        help="check an environment before/after deploy (or the local demo's services)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--env", help="environment name from cdk.json (dev, staging, prod, ...)")
    target.add_argument("--local", action="store_true", help="check the services `make demo` uses")
    parser.add_argument(
        "--phase",
        choices=("preflight", "post-deploy", "bundles", "all"),
        default="all",
        help="with --env: which checks to run (default: all); bundles: only the cdk.out "
        "bundle sizes, no AWS call",
    )
    parser.add_argument("--cdk-json", type=Path, default=Path("cdk.json"), help="default: ./cdk.json")
    parser.add_argument(
        "--cdk-out", type=Path, default=Path("cdk.out"), help="synthesized assembly (default: ./cdk.out)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cali_cli.doctor.report import Report

    if args.local:
        from cali_cli.doctor.local_checks import LocalTargets, run_local

        report = Report.of("local demo services", run_local(LocalTargets.from_environment(os.environ)))
    else:
        built = _env_report(args)
        if isinstance(built, str):
            print(f"cali doctor: {built}")
            return 2
        report = built
    print(report.to_json() if args.json else report.to_text())
    return report.exit_code


def _env_report(args: argparse.Namespace) -> Any:
    import json

    import boto3

    from cali_cli.doctor import aws_checks
    from cali_cli.doctor.report import Report
    from stacks.config import ConfigError, load_environments

    if not args.cdk_json.is_file():
        return f"no {args.cdk_json}: run from the repository root or pass --cdk-json"
    context = json.loads(args.cdk_json.read_text())["context"]
    try:
        (environment,) = load_environments(context, selected=args.env)
    except ConfigError as error:
        return str(error)
    if args.phase == "bundles":
        return Report.of(
            f"{environment.name} bundles in {args.cdk_out}", aws_checks.check_bundles(args.cdk_out)
        )
    session = boto3.session.Session(region_name=os.environ.get("AWS_REGION") or environment.region)

    def clients(name: str) -> Any:
        return session.client(name)  # type: ignore[call-overload]

    checks = []
    if args.phase in ("preflight", "all"):
        checks += aws_checks.preflight(environment, clients, cdk_out=args.cdk_out)
    if args.phase in ("post-deploy", "all"):
        checks += aws_checks.post_deploy(environment, clients)
    return Report.of(
        f"{environment.name} ({aws_checks.stack_name(environment)}, {environment.region})", checks
    )
