"""``cali doctor --local``: the same dependency checks against the services ``make demo`` uses.

The targets are read the way ``cali demo`` reads them (environment variables), so a
developer checks exactly what the demo will talk to. A service the demo starts for
itself when nothing is configured (Slack sink, OpenSearch stand-in, moto) is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cali_cli.doctor import dependencies
from cali_cli.doctor.report import Check

DEFAULT_MILVUS_URI = ".cali/milvus.db"  # where `cali knowledge sync` keeps Milvus Lite


def default_milvus_uri(workdir: Path = Path(".cali")) -> str:
    """The Milvus Lite store of the latest `make demo` run (``.cali/run-*/milvus.db``), else
    the one `cali knowledge sync` writes by default."""
    runs = sorted(workdir.glob("run-*/milvus.db"), key=lambda path: path.stat().st_mtime)
    return str(runs[-1]) if runs else str(workdir / "milvus.db")


@dataclass(frozen=True)
class LocalTargets:
    slack_webhook_url: str = ""
    slack_bot_token: str = ""
    slack_channel: str = ""
    slack_api_url: str = dependencies.SLACK_API
    llm_base_url: str = ""
    llm_api_key: str = ""
    llm_model: str = "gpt-4o-mini"
    milvus_uri: str = DEFAULT_MILVUS_URI
    opensearch_url: str = ""
    aws_endpoint_url: str = ""

    @classmethod
    def from_environment(cls, env: Mapping[str, str], workdir: Path = Path(".cali")) -> LocalTargets:
        return cls(
            slack_webhook_url=env.get("SLACK_WEBHOOK_URL", ""),
            slack_bot_token=env.get("SLACK_BOT_TOKEN", ""),
            slack_channel=env.get("SLACK_CHANNEL", ""),
            slack_api_url=env.get("SLACK_API_URL", dependencies.SLACK_API),
            llm_base_url=env.get("OPENAI_BASE_URL", ""),
            llm_api_key=env.get("OPENAI_API_KEY", ""),
            llm_model=env.get("OPENAI_MODEL", "gpt-4o-mini"),
            milvus_uri=env.get("LOCAL_MILVUS_URI") or default_milvus_uri(workdir),
            opensearch_url=env.get("CALI_OPENSEARCH_URL", ""),
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL", ""),
        )


def run_local(targets: LocalTargets) -> list[Check]:
    return [_slack(targets), _llm(targets), *_milvus(targets), *_opensearch(targets), _aws_endpoint(targets)]


def _milvus(targets: LocalTargets) -> list[Check]:
    uri = targets.milvus_uri
    if "://" not in uri and not Path(uri).exists():
        # Milvus Lite (a file or, from 3.x, a folder) would create an empty store here.
        return [
            Check.fail(
                "milvus",
                f"no Milvus Lite file at {uri}",
                "run `make demo` (it syncs the knowledge base into .cali/run-*/milvus.db), "
                "`cali knowledge sync`, or set LOCAL_MILVUS_URI",
            )
        ]
    return dependencies.check_milvus(
        uri,
        None,
        fix_set="export LOCAL_MILVUS_URI=<Milvus Lite file or http://host:19530>",
        fix_sync="cali knowledge sync (or make demo, which syncs the knowledge base first)",
    )


def _slack(targets: LocalTargets) -> Check:
    if targets.slack_bot_token:
        secret = {"bot_token": targets.slack_bot_token, "channel": targets.slack_channel or "#cali"}
    elif targets.slack_webhook_url:
        secret = {"webhook_url": targets.slack_webhook_url}
    else:
        return Check.skip("slack", "SLACK_WEBHOOK_URL unset: cali demo starts its own local Slack sink")
    return dependencies.check_slack(
        secret,
        fix_set="export SLACK_WEBHOOK_URL=... (or SLACK_BOT_TOKEN and SLACK_CHANNEL)",
        api_base_url=targets.slack_api_url,
    )


def _llm(targets: LocalTargets) -> Check:
    if not targets.llm_base_url and not targets.llm_api_key:
        return Check.skip("llm", "OPENAI_BASE_URL / OPENAI_API_KEY unset: the demo runs retrieval-only")
    return dependencies.check_llm(
        targets.llm_api_key,
        base_url=targets.llm_base_url or dependencies.OPENAI_API,
        model=targets.llm_model,
        fix_set="export OPENAI_API_KEY=... / OPENAI_BASE_URL=http://127.0.0.1:PORT/v1",
    )


def _opensearch(targets: LocalTargets) -> list[Check]:
    if not targets.opensearch_url:
        return [Check.skip("opensearch", "CALI_OPENSEARCH_URL unset: cali demo starts its own stand-in")]
    from opensearchpy import OpenSearch

    client = OpenSearch(hosts=[targets.opensearch_url], timeout=dependencies.TIMEOUT_SECONDS)
    return dependencies.check_opensearch(
        client, fix_access="check the URL and credentials in CALI_OPENSEARCH_URL"
    )


def _aws_endpoint(targets: LocalTargets) -> Check:
    if not targets.aws_endpoint_url:
        return Check.skip("aws endpoint", "AWS_ENDPOINT_URL unset: cali demo starts moto server")
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "sts",
        endpoint_url=targets.aws_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - a local endpoint accepts any
        config=Config(connect_timeout=5, read_timeout=5, retries={"max_attempts": 1}),
    )
    try:
        client.get_caller_identity()
    except (BotoCoreError, ClientError) as error:
        return Check.fail(
            "aws endpoint",
            f"{targets.aws_endpoint_url}: no answer ({error})",
            "start moto (moto_server -p 5000) or LocalStack, or unset AWS_ENDPOINT_URL",
        )
    return Check.ok("aws endpoint", f"{targets.aws_endpoint_url} answers")
