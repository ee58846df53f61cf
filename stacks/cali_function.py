"""How every CALI Lambda function is built (shared by the Functions and SlackLifecycle constructs)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks._nag import acknowledge
from stacks.bundling import RUNTIME, function_code

METRICS_NAMESPACE = "CALI"


def cali_function(
    scope: Construct,
    construct_id: str,
    folder: str,
    *,
    architecture: lambda_.Architecture,
    log_retention: logs.RetentionDays,
    memory: int,
    timeout: int,
    description: str,
    environment: dict[str, str],
    extra_folders: tuple[str, ...] = (),
    reserved_concurrency: int | None = None,
) -> lambda_.Function:
    """One CALI Lambda function: its own log group and role, the bundled code, Powertools env.

    Every stack that adds a CALI function (this one, the Slack lifecycle, ...) builds it here,
    so runtime, logging, permissions and the cdk-nag acknowledgement stay the same for all.
    """
    log_group = logs.LogGroup(
        scope, f"{construct_id}Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
    )
    # An explicit role instead of the AWSLambdaBasicExecutionRole managed policy:
    # it may write to this function's log group and nothing else by default.
    role = iam.Role(
        scope,
        f"{construct_id}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"CALI {folder}",
    )
    log_group.grant_write(role)
    function = lambda_.Function(
        scope,
        construct_id,
        runtime=RUNTIME,
        architecture=architecture,
        code=function_code(folder, architecture, extra_folders),
        handler=f"{folder}.handler.handler",
        memory_size=memory,
        timeout=Duration.seconds(timeout),
        role=role,
        log_group=log_group,
        reserved_concurrent_executions=reserved_concurrency,
        description=description,
        environment={
            **environment,
            "POWERTOOLS_SERVICE_NAME": folder,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "LOG_LEVEL": "INFO",
        },
    )
    acknowledge(
        function,
        "L1",
        "Python 3.12 is the runtime CALI targets and tests (dependencies are bundled as "
        "cp312 wheels); moving to a newer runtime is a deliberate, tested upgrade.",
    )
    return function
