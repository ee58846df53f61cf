"""`cali doctor` against moto server and the local stand-ins, passing and failing for each cause.

AWS: moto server answers STS, SSM, CloudFormation, Secrets Manager, SQS and CloudWatch.
It has no Lambda GetAccountSettings and no OpenSearch ListInstanceTypeDetails, so those
two clients are botocore Stubbers answering with the API's real response shapes.
Dependencies: the local Slack sink, the OpenAI-compatible stub, Milvus Lite and the
OpenSearch stand-in (osmem-server) with CALI's templates applied.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from cali.search import index as search_index
from cali_cli.doctor import aws_checks
from cali_cli.doctor.dependencies import check_milvus, check_slack
from cali_cli.doctor.local_checks import LocalTargets, run_local
from cali_cli.doctor.report import Check, Report, Status
from cali_cli.main import main
from cali_local.aws_endpoint import MotoEndpoint, free_port
from cali_local.openai_stub import OpenAiStub
from cali_local.slack_sink import SlackSink
from stacks.config import EnvironmentConfig, ResolvedEnvironment

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("doctor")]

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"  # the moto_endpoint fixture's region
API_KEY = "sk-local-doctor"
MODEL = "local-model"


def statuses(checks: list[Check]) -> dict[str, Status]:
    return {check.name: check.status for check in checks}


def by_name(checks: list[Check], name: str) -> Check:
    (found,) = [check for check in checks if check.name == name]
    return found


# --- the stand-ins ------------------------------------------------------------------------


@dataclass(frozen=True)
class StandIns:
    slack: SlackSink
    llm: OpenAiStub
    milvus_uri: str
    opensearch_url: str
    aws_endpoint_url: str

    def targets(self) -> LocalTargets:
        return LocalTargets(
            slack_webhook_url=self.slack.webhook_url,
            llm_base_url=self.llm.base_url,
            llm_api_key=API_KEY,
            llm_model=MODEL,
            milvus_uri=self.milvus_uri,
            opensearch_url=self.opensearch_url,
            aws_endpoint_url=self.aws_endpoint_url,
        )


def milvus_with_knowledge(path: Path, rows: int) -> str:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=str(path))
    client.create_collection("cali_knowledge", dimension=4)
    if rows:
        client.insert("cali_knowledge", [{"id": i, "vector": [0.1, 0.2, 0.3, float(i)]} for i in range(rows)])
    client.close()
    return str(path)


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: MotoEndpoint) -> Iterator[StandIns]:
    from opensearchpy import OpenSearch
    from osmem_server import OsmemServer

    folder = tmp_path_factory.mktemp("doctor")
    with (
        SlackSink(rate_limit_per_channel=None) as slack,
        OpenAiStub(api_key=API_KEY, model_name=MODEL) as llm,
        OsmemServer.start(japanese=False) as search,
    ):
        # The stand-in has no ISM plugin; the doctor reports that as skipped.
        with contextlib.suppress(search_index.IsmUnavailableError):
            search_index.apply(OpenSearch(hosts=[search.url], timeout=30), retention_days=7)
        yield StandIns(
            slack=slack,
            llm=llm,
            milvus_uri=milvus_with_knowledge(folder / "milvus.db", rows=3),
            opensearch_url=search.url,
            aws_endpoint_url=moto_endpoint.url,
        )


def closed_url() -> str:
    return f"http://127.0.0.1:{free_port('127.0.0.1')}"


# --- --local --------------------------------------------------------------------------------


def test_local_passes_against_the_demo_services(stand_ins: StandIns) -> None:
    checks = run_local(stand_ins.targets())
    assert statuses(checks) == {
        "slack": Status.OK,
        "llm": Status.OK,
        "milvus": Status.OK,
        "knowledge": Status.OK,
        "opensearch": Status.OK,
        "index templates": Status.OK,
        "ism": Status.SKIP,  # osmem-server has no ISM plugin
        "aws endpoint": Status.OK,
    }
    assert "3 entries" in by_name(checks, "knowledge").detail
    assert Report.of("local", checks).exit_code == 0
    # The dry check posts nothing.
    assert stand_ins.slack.messages == []
    assert stand_ins.llm.completion_requests == []


def test_local_cli_json_and_exit_code(
    stand_ins: StandIns, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    targets = stand_ins.targets()
    for key, value in {
        "SLACK_WEBHOOK_URL": targets.slack_webhook_url,
        "OPENAI_BASE_URL": targets.llm_base_url,
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_MODEL": MODEL,
        "LOCAL_MILVUS_URI": targets.milvus_uri,
        "CALI_OPENSEARCH_URL": targets.opensearch_url,
    }.items():
        monkeypatch.setenv(key, value)
    assert main(["doctor", "--local", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["exit_code"] == 0 and report["counts"]["fail"] == 0
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    assert main(["doctor", "--local"]) == 1
    out = capsys.readouterr().out
    assert "fail  llm" in out and "refused the key (401)" in out and "fix: create a new API key" in out


BROKEN: dict[str, tuple[Callable[[StandIns, LocalTargets, Path], LocalTargets], str, Status, str]] = {
    "slack webhook unreachable": (
        lambda s, t, p: replace(t, slack_webhook_url=closed_url() + "/services/T/B/x"),
        "slack",
        Status.FAIL,
        "webhook: no answer",
    ),
    "slack webhook revoked": (
        lambda s, t, p: replace(t, slack_webhook_url=s.slack.base_url + "/nowhere/T/B/x"),
        "slack",
        Status.FAIL,
        "revoked or mistyped",
    ),
    "slack bot token invalid": (
        lambda s, t, p: replace(t, slack_bot_token="xoxb-wrong", slack_api_url=s.slack.api_base_url),
        "slack",
        Status.FAIL,
        "invalid_auth",
    ),
    "llm key refused": (lambda s, t, p: replace(t, llm_api_key="sk-wrong"), "llm", Status.FAIL, "401"),
    "llm unreachable": (
        lambda s, t, p: replace(t, llm_base_url=closed_url() + "/v1"),
        "llm",
        Status.FAIL,
        "no answer",
    ),
    "llm model not served": (
        lambda s, t, p: replace(t, llm_model="gpt-5"),
        "llm",
        Status.WARN,
        "'gpt-5' is not among",
    ),
    "milvus file missing": (
        lambda s, t, p: replace(t, milvus_uri=str(p / "absent.db")),
        "milvus",
        Status.FAIL,
        "no Milvus Lite file",
    ),
    "knowledge never synced": (
        lambda s, t, p: replace(t, milvus_uri=milvus_with_knowledge(p / "empty.db", rows=0)),
        "knowledge",
        Status.FAIL,
        "is empty",
    ),
    "opensearch down": (
        lambda s, t, p: replace(t, opensearch_url=closed_url()),
        "opensearch",
        Status.FAIL,
        "no answer",
    ),
    "aws endpoint down": (
        lambda s, t, p: replace(t, aws_endpoint_url=closed_url()),
        "aws endpoint",
        Status.FAIL,
        "no answer",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_local_fails_with_the_right_message_for_each_broken_dependency(
    stand_ins: StandIns, tmp_path: Path, case: str
) -> None:
    breaker, name, status, message = BROKEN[case]
    checks = run_local(breaker(stand_ins, stand_ins.targets(), tmp_path))
    broken = by_name(checks, name)
    assert broken.status is status, broken
    assert message in broken.detail
    assert broken.fix
    # Only the broken dependency is reported.
    assert [c.name for c in checks if c.status in (Status.FAIL, Status.WARN)] == [name]
    assert Report.of("local", checks).exit_code == (1 if status is Status.FAIL else 0)


def test_missing_knowledge_collection_names_the_first_sync(tmp_path: Path) -> None:
    from pymilvus import MilvusClient

    MilvusClient(uri=str(tmp_path / "new.db")).close()
    checks = check_milvus(str(tmp_path / "new.db"), None, fix_set="set it", fix_sync="invoke the sync")
    assert [(c.name, c.status) for c in checks] == [("milvus", Status.OK), ("knowledge", Status.FAIL)]
    assert checks[1].fix == "invoke the sync"


def test_templates_missing_on_a_fresh_cluster() -> None:
    from osmem_server import OsmemServer

    with OsmemServer.start(japanese=False) as search:
        checks = run_local(LocalTargets(milvus_uri="http://unused", opensearch_url=search.url))
    templates = by_name(checks, "index templates")
    assert templates.status is Status.FAIL
    assert "cali-logs" in templates.detail and "cali-incidents" in templates.detail


def test_unset_secret_fails_slack() -> None:
    check = check_slack(None, fix_set="put-secret-value")
    assert (check.status, check.fix) == (Status.FAIL, "put-secret-value")


# --- --env, against moto --------------------------------------------------------------------


def environment(**analyzer: Any) -> ResolvedEnvironment:
    raw = json.loads((ROOT / "cdk.json").read_text())["context"]["environments"]["dev"]
    config = EnvironmentConfig.model_validate(raw)
    if analyzer:
        config = config.model_copy(update={"analyzer": config.analyzer.model_copy(update=analyzer)})
    return ResolvedEnvironment(name="dev", account=None, region=REGION, config=config)


def busy_environment() -> ResolvedEnvironment:
    """dev with 4 parallel batches per shard: 4 x 4 for the consumer alone."""
    env = environment()
    consumer = env.config.consumer.model_copy(update={"parallelization_factor": 4})
    return env.model_copy(update={"config": env.config.model_copy(update={"consumer": consumer})})


@dataclass
class Deployed:
    outputs: dict[str, str]
    clients: Callable[[str], Any]
    quota: dict[str, int]
    instance_types: list[str]
    now: dt.datetime
    stubs: dict[str, Any] = field(default_factory=dict)


def moto(name: str) -> Any:
    return boto3.client(name, region_name=REGION)  # type: ignore[call-overload]


def stubbed(deployed: Deployed, name: str) -> Any:
    client = moto(name)
    stubber = Stubber(client)
    if name == "lambda":
        stubber.add_response(
            "get_account_settings",
            {
                "AccountLimit": {
                    "ConcurrentExecutions": deployed.quota["quota"],
                    "UnreservedConcurrentExecutions": deployed.quota["unreserved"],
                },
                "AccountUsage": {"FunctionCount": 0},
            },
        )
        if "IncidentAnalyzerFunctionName" in deployed.outputs:
            stubber.add_response(
                "get_function_concurrency",
                {"ReservedConcurrentExecutions": 2},
                {"FunctionName": deployed.outputs["IncidentAnalyzerFunctionName"]},
            )
    else:
        stubber.add_response(
            "list_instance_type_details",
            {"InstanceTypeDetails": [{"InstanceType": kind} for kind in deployed.instance_types]},
            {"EngineVersion": "OpenSearch_2.19", "MaxResults": 100},
        )
    stubber.activate()
    return client


@pytest.fixture
def deployed(moto_endpoint: MotoEndpoint, stand_ins: StandIns) -> Iterator[Deployed]:
    suffix = free_port("127.0.0.1")  # unique names per test on the shared moto server
    secrets = moto("secretsmanager")

    def secret(name: str, value: dict[str, str]) -> str:
        return str(secrets.create_secret(Name=f"{name}-{suffix}", SecretString=json.dumps(value))["ARN"])

    sqs = moto("sqs")
    outputs = {
        "SlackSecretArn": secret("slack", {"webhook_url": stand_ins.slack.webhook_url}),
        "OpenAiSecretArn": secret("openai", {"api_key": API_KEY}),
        "MilvusSecretArn": secret("milvus", {"uri": stand_ins.milvus_uri, "token": ""}),
        "OpenSearchEndpoint": "search-cali-dev.example",
        "LogConsumerFunctionName": f"consumer-{suffix}",
        "LogStreamName": f"stream-{suffix}",
        "KnowledgeSyncFunctionName": f"sync-{suffix}",
        "IncidentDeadLettersQueueUrl": sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"],
        "ConsumerFailuresQueueUrl": sqs.create_queue(QueueName=f"failures-{suffix}")["QueueUrl"],
    }
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cloudformation = moto("cloudformation")
    cloudformation.create_stack(StackName="Dev-Cali", TemplateBody=json.dumps(template))
    moto("ssm").put_parameter(Name=aws_checks.BOOTSTRAP_PARAMETER, Value="27", Type="String", Overwrite=True)
    now = dt.datetime.now(dt.UTC)
    cloudwatch = moto("cloudwatch")
    cloudwatch.put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "Errors",
                "Dimensions": [{"Name": "FunctionName", "Value": outputs["KnowledgeSyncFunctionName"]}],
                "Timestamp": now - dt.timedelta(hours=3),
                "Value": 0,
            },
            {
                "MetricName": "IteratorAge",
                "Dimensions": [{"Name": "FunctionName", "Value": outputs["LogConsumerFunctionName"]}],
                "Timestamp": now - dt.timedelta(minutes=2),
                "Value": 1200,
            },
        ],
    )
    state = Deployed(outputs, moto, {"quota": 1000, "unreserved": 1000}, ["t3.small.search"], now)

    def clients(name: str) -> Any:
        # One stubbed client per service and check run: its responses are queued in the
        # order the checks call them (clear `stubs` before another run).
        if name in ("lambda", "opensearch"):
            return state.stubs.setdefault(name, stubbed(state, name))
        return moto(name)

    state.clients = clients
    try:
        yield state
    finally:
        cloudformation.delete_stack(StackName="Dev-Cali")
        for alarm in cloudwatch.describe_alarms(AlarmNamePrefix="Dev-Cali-")["MetricAlarms"]:
            cloudwatch.delete_alarms(AlarmNames=[alarm["AlarmName"]])


def post_deploy(deployed: Deployed, stand_ins: StandIns) -> list[Check]:
    from opensearchpy import OpenSearch

    # The domain's SigV4 endpoint is stood in for by osmem-server.
    return aws_checks.post_deploy(
        environment(llm_base_url=stand_ins.llm.base_url, llm_model=MODEL),
        deployed.clients,
        search_client=lambda endpoint, region: OpenSearch(hosts=[stand_ins.opensearch_url], timeout=10),
        now=deployed.now,
    )


def asset(cdk_out: Path, folder: str, size: int) -> None:
    handler = cdk_out / f"asset.{folder}0000" / folder / "handler.py"
    handler.parent.mkdir(parents=True)
    handler.write_text("def handler(event, context): ...\n")
    with (handler.parent.parent / "big.so").open("wb") as blob:
        blob.truncate(size)


def offering(deployed: Deployed, instance_types: list[str]) -> ResolvedEnvironment:
    deployed.instance_types = instance_types
    return environment()


def with_asset(cdk_out: Path, folder: str, size: int) -> ResolvedEnvironment:
    asset(cdk_out, folder, size)
    return environment()


def test_preflight_passes(deployed: Deployed, tmp_path: Path) -> None:
    asset(tmp_path, "log_consumer", 12_000_000)
    checks = aws_checks.preflight(environment(), deployed.clients, cdk_out=tmp_path)
    assert {c.name: c.status for c in checks} == {
        "credentials": Status.OK,
        "cdk bootstrap": Status.OK,
        "lambda concurrency": Status.OK,
        "opensearch instance types": Status.OK,
        "bundle log_consumer": Status.OK,
    }, checks


PREFLIGHT_BROKEN: dict[str, tuple[Callable[[Deployed, Path], ResolvedEnvironment], str, Status, str]] = {
    "new account quota of 10": (
        lambda d, p: (d.quota.update(quota=10, unreserved=10), environment())[1],
        "lambda concurrency",
        Status.FAIL,
        "would leave 8 unreserved (Lambda requires 10)",
    ),
    "quota below the peak": (
        lambda d, p: (d.quota.update(quota=14, unreserved=14), busy_environment())[1],
        "lambda concurrency",
        Status.WARN,
        "below the",
    ),
    "instance type not offered": (
        lambda d, p: offering(d, ["m6g.large.search"]),
        "opensearch instance types",
        Status.FAIL,
        "t3.small.search not offered",
    ),
    "not bootstrapped": (
        lambda d, p: (moto("ssm").delete_parameter(Name=aws_checks.BOOTSTRAP_PARAMETER), environment())[1],
        "cdk bootstrap",
        Status.FAIL,
        "is not bootstrapped",
    ),
    "wrong region": (
        lambda d, p: environment().model_copy(update={"region": "us-east-1"}),
        "credentials",
        Status.FAIL,
        "cdk.json says us-east-1",
    ),
    "wrong account": (
        lambda d, p: environment().model_copy(update={"account": "210987654321"}),
        "credentials",
        Status.FAIL,
        "cdk.json says 210987654321",
    ),
    "bundle over 90%": (
        lambda d, p: with_asset(p, "incident_analyzer", 240_000_000),
        "bundle incident_analyzer",
        Status.WARN,
        "92%",
    ),
}


@pytest.mark.parametrize("case", PREFLIGHT_BROKEN)
def test_preflight_fails_with_the_fix(deployed: Deployed, tmp_path: Path, case: str) -> None:
    breaker, name, status, message = PREFLIGHT_BROKEN[case]
    env = breaker(deployed, tmp_path)
    asset(tmp_path, "log_consumer", 1000)
    checks = aws_checks.preflight(env, deployed.clients, cdk_out=tmp_path)
    broken = by_name(checks, name)
    assert (broken.status, message in broken.detail) == (status, True), broken
    assert broken.fix
    moto("ssm").put_parameter(Name=aws_checks.BOOTSTRAP_PARAMETER, Value="27", Type="String", Overwrite=True)


def test_no_credentials_stops_preflight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    session = boto3.session.Session(region_name=REGION)

    def clients(name: str) -> Any:
        return session.client(name)  # type: ignore[call-overload]

    checks = aws_checks.preflight(environment(), clients, cdk_out=tmp_path)
    assert [(c.name, c.status) for c in checks] == [("credentials", Status.FAIL)]


def test_post_deploy_passes(deployed: Deployed, stand_ins: StandIns) -> None:
    checks = post_deploy(deployed, stand_ins)
    failing = [c for c in checks if c.status in (Status.FAIL, Status.WARN)]
    assert failing == []
    assert {c.name for c in checks} >= {
        "stack",
        "slack",
        "llm",
        "milvus",
        "knowledge",
        "opensearch",
        "index templates",
        "consumer lag",
        "stream lag",
        "incident DLQ",
        "consumer on-failure queue",
        "alarms",
        "knowledge sync",
    }


def test_post_deploy_reports_each_problem(deployed: Deployed, stand_ins: StandIns) -> None:
    moto("secretsmanager").put_secret_value(
        SecretId=deployed.outputs["SlackSecretArn"], SecretString="placeholder-from-cloudformation"
    )
    moto("sqs").send_message(QueueUrl=deployed.outputs["IncidentDeadLettersQueueUrl"], MessageBody="{}")
    cloudwatch = moto("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName="Dev-Cali-SearchClusterRed-ABC123",
        MetricName="ClusterStatus.red",
        Namespace="AWS/ES",
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cloudwatch.set_alarm_state(
        AlarmName="Dev-Cali-SearchClusterRed-ABC123", StateValue="ALARM", StateReason="test"
    )
    cloudwatch.put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "IteratorAge",
                "Dimensions": [
                    {"Name": "FunctionName", "Value": deployed.outputs["LogConsumerFunctionName"]}
                ],
                "Timestamp": deployed.now - dt.timedelta(minutes=1),
                "Value": 3_600_000,
            },
            {
                "MetricName": "Errors",
                "Dimensions": [
                    {"Name": "FunctionName", "Value": deployed.outputs["KnowledgeSyncFunctionName"]}
                ],
                "Timestamp": deployed.now - dt.timedelta(minutes=30),
                "Value": 1,
            },
        ],
    )
    cloudwatch.put_metric_data(
        Namespace="AWS/Kinesis",
        MetricData=[
            {
                "MetricName": "GetRecords.IteratorAgeMilliseconds",
                "Dimensions": [{"Name": "StreamName", "Value": deployed.outputs["LogStreamName"]}],
                "Timestamp": deployed.now - dt.timedelta(minutes=3),
                "Value": 900_000,
            }
        ],
    )
    checks = {c.name: c for c in post_deploy(deployed, stand_ins)}
    expected = {
        "slack": "not configured",
        "incident DLQ": "1 messages waiting",
        "alarms": "SearchClusterRed-ABC123",
        "consumer lag": "iterator age 3600 s",
        "stream lag": "iterator age 900 s",
        "knowledge sync": "failed",
    }
    for name, message in expected.items():
        assert checks[name].status is Status.FAIL, checks[name]
        assert message in checks[name].detail, checks[name]
        assert checks[name].fix
    assert "put-secret-value" in checks["slack"].fix
    assert "start-message-move-task" in checks["incident DLQ"].fix
    assert checks["llm"].status is Status.OK


def test_post_deploy_without_a_stack_says_deploy(moto_endpoint: MotoEndpoint) -> None:
    checks = aws_checks.post_deploy(environment(), moto)
    assert [(c.name, c.status) for c in checks] == [("stack", Status.FAIL)]
    assert "npx cdk deploy 'Dev/Cali'" in checks[0].fix


def test_refused_reads_fail_with_the_reason_instead_of_a_traceback(
    deployed: Deployed, stand_ins: StandIns
) -> None:
    # What CI's DeployRole would meet: reads it is not granted are refused.
    from botocore.exceptions import ClientError
    from opensearchpy import OpenSearch

    def deny(model: Any, **_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}}, model.name)

    def refusing(name: str) -> Any:
        client = deployed.clients(name)
        if name in ("secretsmanager", "cloudwatch"):
            client.meta.events.register("before-call.*.*", deny)
        return client

    checks = aws_checks.post_deploy(
        environment(),
        refusing,
        search_client=lambda endpoint, region: OpenSearch(hosts=[stand_ins.opensearch_url], timeout=10),
        now=deployed.now,
    )
    by = {c.name: c for c in checks}
    assert by["secrets"].status is Status.FAIL
    assert "AccessDeniedException" in by["secrets"].detail
    assert by["alarms"].status is Status.FAIL and "cannot check" in by["alarms"].detail


def test_local_default_milvus_is_the_latest_demo_runs_store(tmp_path: Path) -> None:
    from cali_cli.doctor.local_checks import default_milvus_uri

    assert default_milvus_uri(tmp_path) == str(tmp_path / "milvus.db")
    older = tmp_path / "run-20261201T000000-aaaaaa" / "milvus.db"
    newer = tmp_path / "run-20261202T000000-bbbbbb" / "milvus.db"
    for index, store in enumerate((older, newer)):
        store.mkdir(parents=True)
        os.utime(store, (1_000_000 + index, 1_000_000 + index))
    assert default_milvus_uri(tmp_path) == str(newer)
    assert LocalTargets.from_environment({"LOCAL_MILVUS_URI": "/x.db"}, tmp_path).milvus_uri == "/x.db"


def test_env_cli_bundles_phase_needs_no_aws_and_bad_env_is_usage_error(tmp_path: Path, capsys: Any) -> None:
    asset(tmp_path, "incident_analyzer", 240_000_000)
    cdk_json = str(ROOT / "cdk.json")
    args = ["doctor", "--env", "dev", "--phase", "bundles", "--cdk-json", cdk_json]
    assert main([*args, "--cdk-out", str(tmp_path), "--json"]) == 0  # a warning does not fail
    report = json.loads(capsys.readouterr().out)
    (check,) = report["checks"]
    assert (check["name"], check["status"]) == ("bundle incident_analyzer", "warn")
    assert main(["doctor", "--env", "qa", "--cdk-json", cdk_json]) == 2
    assert "invalid -c env=qa" in capsys.readouterr().out


def test_quota_check_does_not_count_the_deployed_reservation_twice(
    deployed: Deployed, tmp_path: Path
) -> None:
    # Deployed dev: the analyzer's 2 and another function's 1 are reserved: 11 of 14 unreserved.
    deployed.quota.update(quota=14, unreserved=11)
    assert (
        by_name(
            aws_checks.preflight(environment(), deployed.clients, cdk_out=tmp_path), "lambda concurrency"
        ).status
        is Status.FAIL
    )
    deployed.stubs.clear()
    deployed.outputs["IncidentAnalyzerFunctionName"] = "analyzer"
    moto("cloudformation").update_stack(
        StackName="Dev-Cali",
        TemplateBody=json.dumps(
            {
                "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {key: {"Value": value} for key, value in deployed.outputs.items()},
            }
        ),
    )
    check = by_name(
        aws_checks.preflight(environment(), deployed.clients, cdk_out=tmp_path), "lambda concurrency"
    )
    assert check.status is Status.OK, check
