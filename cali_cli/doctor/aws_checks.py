"""``cali doctor --env ENV``: preflight (before `cdk deploy`) and post-deploy checks in AWS.

Every AWS call goes through ``clients(service_name)`` (a boto3 session's ``client``), so
the same checks run against AWS, moto server or LocalStack (``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from cali_cli.doctor import dependencies
from cali_cli.doctor.report import Check
from stacks.config import ResolvedEnvironment
from stacks.sizing import BUDGET_FRACTION, UNZIPPED_LIMIT_BYTES, concurrency_need, tree_size

Clients = Callable[[str], Any]
BOOTSTRAP_PARAMETER = "/cdk-bootstrap/hnb659fds/version"
# `cdk deploy` of this aws-cdk-lib needs at least this bootstrap stack version.
MIN_BOOTSTRAP_VERSION = 6
QUOTA_CODE = "L-B99A9384"  # Service Quotas: Lambda "Concurrent executions"
HANDLER_FOLDERS = ("log_consumer", "log_indexer", "incident_analyzer", "knowledge_sync", "opensearch_setup")


def stack_name(environment: ResolvedEnvironment) -> str:
    return f"{environment.stage_name}-Cali"


def _error_code(error: Exception) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "ClientError"))
    return type(error).__name__


# --- preflight ------------------------------------------------------------------------------


def preflight(environment: ResolvedEnvironment, clients: Clients, *, cdk_out: Path) -> list[Check]:
    identity = check_credentials(environment, clients)
    checks = [identity]
    if identity.status.value == "fail":
        return checks  # nothing else can be asked without credentials
    checks += [
        check_bootstrap(environment, clients),
        check_concurrency_quota(environment, clients),
        check_instance_types(environment, clients),
        *check_bundles(cdk_out),
    ]
    return checks


def check_credentials(environment: ResolvedEnvironment, clients: Clients) -> Check:
    name = "credentials"
    try:
        identity = clients("sts").get_caller_identity()
    except (NoCredentialsError, BotoCoreError, ClientError) as error:
        return Check.fail(
            name,
            f"no usable AWS credentials ({_error_code(error)})",
            "aws sso login / export AWS_PROFILE=...",
        )
    account = str(identity["Account"])
    region = clients("sts").meta.region_name
    problems = []
    if environment.account and environment.account != account:
        problems.append(f"credentials are for account {account}, cdk.json says {environment.account}")
    if region != environment.region:
        problems.append(f"the session region is {region}, cdk.json says {environment.region}")
    if problems:
        return Check.fail(
            name,
            "; ".join(problems),
            f"use a profile for account {environment.account or account}; "
            f"export AWS_REGION={environment.region}",
        )
    return Check.ok(name, f"account {account}, region {region} ({identity['Arn']})")


def check_bootstrap(environment: ResolvedEnvironment, clients: Clients) -> Check:
    name = "cdk bootstrap"
    fix = f"npx cdk bootstrap aws://ACCOUNT_ID/{environment.region}"
    try:
        value = clients("ssm").get_parameter(Name=BOOTSTRAP_PARAMETER)["Parameter"]["Value"]
    except ClientError as error:
        if _error_code(error) == "ParameterNotFound":
            return Check.fail(name, f"{environment.region} is not bootstrapped", fix)
        return Check.fail(name, f"cannot read {BOOTSTRAP_PARAMETER} ({_error_code(error)})", fix)
    if int(value) < MIN_BOOTSTRAP_VERSION:
        return Check.fail(name, f"bootstrap version {value} < {MIN_BOOTSTRAP_VERSION}", fix)
    return Check.ok(name, f"bootstrap version {value}")


def check_concurrency_quota(environment: ResolvedEnvironment, clients: Clients) -> Check:
    name = "lambda concurrency"
    config = environment.config
    need = concurrency_need(
        shards=config.kinesis.shards,
        parallelization_factor=config.consumer.parallelization_factor,
        analyzer_reserved=config.analyzer.reserved_concurrency,
    )
    try:
        limits = clients("lambda").get_account_settings()["AccountLimit"]
    except (BotoCoreError, ClientError) as error:
        return Check.fail(
            name, f"cannot read the account quota ({_error_code(error)})", "allow lambda:GetAccountSettings"
        )
    quota = int(limits["ConcurrentExecutions"])
    # Reservations of other functions already count against `unreserved`; so does this
    # environment's own once it is deployed, which must not be counted twice.
    unreserved = int(limits.get("UnreservedConcurrentExecutions", quota)) + _own_reservation(
        environment, clients
    )
    fix = (
        f"request at least {need.required_quota()} in Service Quotas: aws service-quotas "
        f"request-service-quota-increase --service-code lambda --quota-code {QUOTA_CODE} "
        f"--desired-value {need.required_quota()}"
    )
    if unreserved - need.reserved < 10:
        return Check.fail(
            name,
            f"reserving {need.reserved} for the analyzer would leave {unreserved - need.reserved} unreserved "
            f"(Lambda requires 10): the deploy fails (quota {quota})",
            fix,
        )
    if quota < need.peak:
        return Check.warn(
            name,
            f"quota {quota} is below the {need.peak} concurrent runs this environment can need: "
            "the consumer will be throttled and fall behind",
            fix,
        )
    return Check.ok(name, f"quota {quota}, {unreserved} unreserved; needs {need.peak} at peak")


def _own_reservation(environment: ResolvedEnvironment, clients: Clients) -> int:
    """The analyzer's current reservation when the stack is already deployed, else 0."""
    try:
        stack = clients("cloudformation").describe_stacks(StackName=stack_name(environment))["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        function = outputs.get("IncidentAnalyzerFunctionName")
        if not function:
            return 0
        answer = clients("lambda").get_function_concurrency(FunctionName=function)
    except (BotoCoreError, ClientError):
        return 0  # not deployed yet (or not readable): nothing to add back
    return int(answer.get("ReservedConcurrentExecutions", 0))


def check_instance_types(environment: ResolvedEnvironment, clients: Clients) -> Check:
    name = "opensearch instance types"
    config = environment.config.opensearch
    wanted = {config.data_node_type} | (
        {config.dedicated_master_type} if config.dedicated_master_type else set()
    )
    offered: set[str] = set()
    try:
        paginator_token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"EngineVersion": config.engine_version, "MaxResults": 100}
            if paginator_token:
                kwargs["NextToken"] = paginator_token
            page = clients("opensearch").list_instance_type_details(**kwargs)
            offered |= {str(item["InstanceType"]) for item in page.get("InstanceTypeDetails", [])}
            paginator_token = page.get("NextToken")
            if not paginator_token:
                break
    except (BotoCoreError, ClientError) as error:
        return Check.fail(
            name, f"cannot list instance types ({_error_code(error)})", "allow es:ListInstanceTypeDetails"
        )
    missing = sorted(wanted - offered)
    if missing:
        return Check.fail(
            name,
            f"{', '.join(missing)} not offered for {config.engine_version} in {environment.region}",
            "pick an offered type in cdk.json opensearch.data_node_type / dedicated_master_type",
        )
    return Check.ok(name, f"{', '.join(sorted(wanted))} offered in {environment.region}")


def _assets(cdk_out: Path) -> Iterator[tuple[str, Path]]:
    for asset in sorted(cdk_out.glob("**/asset.*")):
        if asset.is_dir():
            for folder in HANDLER_FOLDERS:
                if (asset / folder / "handler.py").is_file():
                    yield folder, asset


def check_bundles(cdk_out: Path) -> list[Check]:
    found = list(_assets(cdk_out)) if cdk_out.is_dir() else []
    if not found:
        return [Check.warn("bundle sizes", f"no Lambda assets in {cdk_out}", "run `make synth` first")]
    checks = []
    budget = UNZIPPED_LIMIT_BYTES * BUDGET_FRACTION
    for folder, asset in found:
        size = tree_size(asset)
        detail = (
            f"{size / 1e6:.1f} MB of {UNZIPPED_LIMIT_BYTES / 1e6:.1f} MB ({size / UNZIPPED_LIMIT_BYTES:.0%})"
        )
        if size > UNZIPPED_LIMIT_BYTES:
            checks.append(Check.fail(f"bundle {folder}", detail, "prune it in stacks/bundling.py"))
        elif size > budget:
            checks.append(
                Check.warn(f"bundle {folder}", detail, "over the 90% budget: prune it in stacks/bundling.py")
            )
        else:
            checks.append(Check.ok(f"bundle {folder}", detail))
    return checks


# --- after the deploy -----------------------------------------------------------------------


def post_deploy(
    environment: ResolvedEnvironment,
    clients: Clients,
    *,
    search_client: Callable[[str, str], Any] | None = None,
    now: dt.datetime | None = None,
) -> list[Check]:
    stack = stack_name(environment)
    try:
        described = clients("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    except (BotoCoreError, ClientError) as error:
        return [
            Check.fail(
                "stack",
                f"{stack} not found ({_error_code(error)})",
                f"npx cdk deploy '{environment.stage_name}/Cali'",
            )
        ]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    checks = [Check.ok("stack", f"{stack}: {described['StackStatus']}")]
    checks += check_secrets(environment, clients, outputs)
    if "OpenSearchEndpoint" in outputs:
        client = (search_client or signed_search_client)(outputs["OpenSearchEndpoint"], environment.region)
        checks += dependencies.check_opensearch(
            client,
            fix_access="add your IAM role ARN to opensearch.reader_role_arns in cdk.json and deploy",
        )
    moment = now or dt.datetime.now(dt.UTC)
    checks += _guarded("consumer lag", lambda: check_iterator_age(environment, clients, outputs, moment))
    checks += _guarded("queues", lambda: check_queues(clients, outputs, stack))
    checks += _guarded("alarms", lambda: [check_alarms(clients, stack)])
    checks += _guarded("knowledge sync", lambda: [check_last_sync(clients, outputs, stack, moment)])
    return checks


def _guarded(name: str, run: Callable[[], list[Check]]) -> list[Check]:
    """A check whose AWS call is refused (e.g. CI's deploy role) fails with that reason, not a traceback."""
    try:
        return run()
    except (BotoCoreError, ClientError) as error:
        return [
            Check.fail(
                name,
                f"cannot check: {_error_code(error)}",
                "run cali doctor with credentials that may read CloudWatch, SQS and the secrets",
            )
        ]


class SecretUnreadableError(Exception):
    """The secret exists but these credentials may not read it."""


def _secret(clients: Clients, arn: str | None) -> dict[str, Any] | None:
    """The secret's JSON; None when it is unset (still CloudFormation's random placeholder)."""
    if not arn:
        return None
    try:
        raw = clients("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    except ClientError as error:
        if _error_code(error) == "ResourceNotFoundException":
            return None
        raise SecretUnreadableError(_error_code(error)) from error
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return None  # still CloudFormation's random placeholder: never set
    return value if isinstance(value, dict) else None


def _fix_secret(output: str, example: str) -> str:
    return (
        f"aws secretsmanager put-secret-value --secret-id \"${output}\" --secret-string '{example}' "
        f"(${output} from the {output} stack output)"
    )


def check_secrets(environment: ResolvedEnvironment, clients: Clients, outputs: dict[str, str]) -> list[Check]:
    stack = stack_name(environment)
    sync_fix = (
        f'aws lambda invoke --function-name "$(aws cloudformation describe-stacks --stack-name {stack} '
        '--query "Stacks[0].Outputs[?OutputKey==\'KnowledgeSyncFunctionName\'].OutputValue" --output text)" '
        "/dev/stdout"
    )
    try:
        slack = _secret(clients, outputs.get("SlackSecretArn"))
        openai = _secret(clients, outputs.get("OpenAiSecretArn")) or {}
        milvus = _secret(clients, outputs.get("MilvusSecretArn")) or {}
    except SecretUnreadableError as error:
        return [
            Check.fail(
                "secrets",
                f"cannot read the secrets ({error})",
                "run cali doctor with credentials allowed secretsmanager:GetSecretValue on them",
            )
        ]
    analyzer = environment.config.analyzer
    return [
        dependencies.check_slack(
            slack, fix_set=_fix_secret("SlackSecretArn", '{"webhook_url": "https://hooks.slack.com/..."}')
        ),
        dependencies.check_llm(
            str(openai.get("api_key") or ""),
            base_url=analyzer.llm_base_url,
            model=analyzer.llm_model,
            fix_set=_fix_secret("OpenAiSecretArn", '{"api_key": "sk-..."}'),
        ),
        *dependencies.check_milvus(
            str(milvus.get("uri") or ""),
            str(milvus.get("token") or ""),
            fix_set=_fix_secret("MilvusSecretArn", '{"uri": "https://...", "token": "..."}'),
            fix_sync=sync_fix,
        ),
    ]


def signed_search_client(endpoint: str, region: str) -> Any:
    import boto3
    from opensearchpy import AWSV4SignerAuth, OpenSearch, RequestsHttpConnection

    return OpenSearch(
        hosts=[{"host": endpoint, "port": 443}],
        http_auth=AWSV4SignerAuth(boto3.Session().get_credentials(), region, "es"),
        use_ssl=True,
        verify_certs=True,
        connection_class=RequestsHttpConnection,
        timeout=dependencies.TIMEOUT_SECONDS,
    )


# (check name, output naming the resource, namespace, metric, dimension, fix when behind)
_LAG_CHECKS = (
    (
        "consumer lag",
        "LogConsumerFunctionName",
        "AWS/Lambda",
        "IteratorAge",
        "FunctionName",
        "check LogConsumer errors/throttles; raise consumer.parallelization_factor or shards",
    ),
    (
        "stream lag",
        "LogStreamName",
        "AWS/Kinesis",
        "GetRecords.IteratorAgeMilliseconds",
        "StreamName",
        "the Firehose readers are behind: check the Delivery log group and OpenSearch write blocks",
    ),
)


def check_iterator_age(
    environment: ResolvedEnvironment, clients: Clients, outputs: dict[str, str], now: dt.datetime
) -> list[Check]:
    """Kinesis iterator age of the Lambda consumer and of the stream's (Firehose) readers."""
    checks = []
    limit = environment.config.alarms.iterator_age_seconds
    for name, output, namespace, metric, dimension, fix in _LAG_CHECKS:
        resource = outputs.get(output)
        if not resource:
            checks.append(Check.fail(name, f"no {output} output", "redeploy the stack"))
            continue
        answer = clients("cloudwatch").get_metric_statistics(
            Namespace=namespace,
            MetricName=metric,
            Dimensions=[{"Name": dimension, "Value": resource}],
            StartTime=now - dt.timedelta(minutes=15),
            EndTime=now,
            Period=300,
            Statistics=["Maximum"],
        )
        age_ms = max((float(p["Maximum"]) for p in answer.get("Datapoints", [])), default=None)
        if age_ms is None:
            checks.append(Check.ok(name, "no records in the last 15 minutes (iterator age not reported)"))
        elif age_ms / 1000 > limit:
            checks.append(
                Check.fail(name, f"iterator age {age_ms / 1000:.0f} s > {limit} s: falling behind", fix)
            )
        else:
            checks.append(Check.ok(name, f"iterator age {age_ms / 1000:.1f} s (alarm at {limit} s)"))
    return checks


def check_queues(clients: Clients, outputs: dict[str, str], stack: str) -> list[Check]:
    checks = []
    redrive = {
        "IncidentDeadLettersQueueUrl": (
            "incident DLQ",
            "read them (cali dlq), fix the cause, then: aws sqs start-message-move-task "
            '--source-arn "$IncidentDeadLettersQueueArn" --destination-arn "$IncidentQueueArn"',
        ),
        "ConsumerFailuresQueueUrl": (
            "consumer on-failure queue",
            f'aws sqs receive-message --queue-url "$ConsumerFailuresQueueUrl" ({stack}): each '
            "message names the shard and sequence range given up on; see docs/deploy.md#redrive",
        ),
    }
    for output, (name, fix) in redrive.items():
        url = outputs.get(output)
        if not url:
            checks.append(Check.fail(name, f"no {output} output", "redeploy the stack"))
            continue
        attributes = clients("sqs").get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        depth = int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
            attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
        )
        checks.append(
            Check.fail(name, f"{depth} messages waiting", fix) if depth else Check.ok(name, "empty")
        )
    return checks


def check_alarms(clients: Clients, stack: str) -> Check:
    name = "alarms"
    # CloudFormation names each alarm `<stack>-<logical id>-<suffix>`.
    answer = clients("cloudwatch").describe_alarms(AlarmNamePrefix=f"{stack}-", StateValue="ALARM")
    firing = [alarm["AlarmName"] for alarm in answer.get("MetricAlarms", [])]
    if firing:
        shown = ", ".join(n.removeprefix(f"{stack}-") for n in firing[:5])
        return Check.fail(
            name, f"{len(firing)} in ALARM: {shown}", "see each alarm's description in the CloudWatch console"
        )
    return Check.ok(name, "none in ALARM")


def check_last_sync(clients: Clients, outputs: dict[str, str], stack: str, now: dt.datetime) -> Check:
    name = "knowledge sync"
    function = outputs.get("KnowledgeSyncFunctionName")
    if not function:
        return Check.fail(name, "no KnowledgeSyncFunctionName output", "redeploy the stack")
    start = now - dt.timedelta(hours=48)
    answer = clients("cloudwatch").get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Dimensions=[{"Name": "FunctionName", "Value": function}],
        StartTime=start,
        EndTime=now,
        Period=3600,
        Statistics=["Sum", "SampleCount"],
    )
    points = sorted(answer.get("Datapoints", []), key=lambda p: p["Timestamp"])
    fix = f"aws lambda invoke --function-name {function} /dev/stdout (and read its log group)"
    if not points:
        return Check.fail(name, "no run in the last 48 hours", fix)
    last = points[-1]
    if float(last["Sum"]) > 0:
        return Check.fail(name, f"the last run ({last['Timestamp']:%Y-%m-%d %H:%M} UTC) failed", fix)
    return Check.ok(name, f"last run {last['Timestamp']:%Y-%m-%d %H:%M} UTC succeeded")
