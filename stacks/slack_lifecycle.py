"""SlackLifecycle: the Slack interactivity endpoint, the lifecycle worker and their plumbing.

Why an API Gateway **HTTP API** and not a Lambda function URL: Slack calls one public URL;
a function URL has no request throttling other than the function's reserved concurrency
(every flood request still runs, and is billed, as an invocation), no access log and no
place for a WAF (only behind CloudFront). The HTTP API gives a stage-wide rate and burst
limit enforced before Lambda, JSON access logs, and costs $1 per million requests. WAF
attaches to REST APIs, not HTTP APIs; we do not need it: every request is HMAC-verified
with the signing secret before anything is read or written, the rate limit caps what an
unsigned flood can cost (a reserved concurrency can be configured, none by default). (A REST
API + WAF rate-based rule would add about $6/month per environment for no extra check.)

Also here: the signing secret (Secrets Manager, no plaintext), the worker queue (deferred
Slack updates and escalation delays) with its DLQ, the state table's stream feeding the
worker (quiet timers deleted by TTL) and the knowledge sync (resolutions), each through
an event filter so neither function is invoked for throttle or cache writes.
"""

from __future__ import annotations

import json
from typing import Literal

import jsii
from aws_cdk import CfnOutput, Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from pydantic import BaseModel, ConfigDict, Field

from stacks._nag import acknowledge, acknowledge_wildcards
from stacks.cali_function import cali_function

ROUTE = "/slack/events"


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogs:
    def __init__(self, destination: apigwv2.IAccessLogDestination, log_format: apigw.AccessLogFormat) -> None:
        self._destination = destination
        self._format = log_format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format


class EscalationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    after_minutes: int = Field(gt=0, le=1440)
    max_times: int = Field(1, ge=1, le=10)
    mention: str = Field("<!here>", description="<!subteam^S...> for an on-call user group")
    channel: str = Field("", description="escalation channel id; empty: the alert's thread")


def _default_escalation() -> dict[Literal["ERROR", "FATAL"], EscalationConfig]:
    return {
        "FATAL": EscalationConfig(after_minutes=10, max_times=3),
        "ERROR": EscalationConfig(after_minutes=30, max_times=2),
    }


class SlackLifecycleConfig(BaseModel):
    """The ``slack`` key of an environment in cdk.json."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    team_ids: list[str] = Field(default_factory=list, description="Slack workspace ids (T...) allowed")
    allowed_usergroups: list[str] = Field(
        default_factory=list, description="user-group ids (S...) whose members may act; empty: anyone"
    )
    escalation: dict[Literal["ERROR", "FATAL"], EscalationConfig] = Field(default_factory=_default_escalation)
    quiet_after_minutes: int = Field(60, gt=0, le=7 * 1440)
    rate_limit_per_second: int = Field(20, gt=0, le=1000)
    burst_limit: int = Field(40, gt=0, le=5000)
    # None (default): no reservation. The HTTP API's rate limit already bounds the function,
    # and every reservation must leave 10 unreserved executions in the account (new
    # accounts have a quota of 10: any reservation there fails the deploy).
    reserved_concurrency: int | None = Field(None, ge=1, le=100)


class SlackLifecycle(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        config: SlackLifecycleConfig,
        architecture: lambda_.Architecture,
        log_retention: logs.RetentionDays,
        table: dynamodb.Table,
        slack_secret: secretsmanager.ISecret,
        knowledge_sync: lambda_.Function,
        analyzer: lambda_.Function,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self._architecture = architecture
        self._log_retention = log_retention
        self.signing_secret = secretsmanager.Secret(
            self,
            "SigningSecret",
            removal_policy=removal_policy,
            description=f'CALI {env_name}: Slack app signing secret as JSON {{"signing_secret"}}',
        )
        acknowledge(
            self.signing_secret, "SMG4", "Slack issues and rotates the signing secret (app settings)."
        )
        self.dead_letters = sqs.Queue(
            self,
            "WorkerDeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(self.dead_letters, "SQS3", "This queue is the dead-letter queue of the lifecycle worker.")
        self.queue = sqs.Queue(
            self,
            "WorkerQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(180),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=5, queue=self.dead_letters),
        )

        common = {
            "CALI_ENV": env_name,
            "STATE_TABLE_NAME": table.table_name,
            "SLACK_SECRET_ARN": slack_secret.secret_arn,
            "LIFECYCLE_QUEUE_URL": self.queue.queue_url,
        }
        self.interactions = self._function(
            "Interactions",
            "slack_interactions",
            timeout=10,
            reserved=config.reserved_concurrency,
            description="Slack interactivity and slash commands: verify, authorise, change incident state",
            environment={
                **common,
                "SLACK_SIGNING_SECRET_ARN": self.signing_secret.secret_arn,
                "SLACK_TEAM_IDS": json.dumps(config.team_ids),
                "SLACK_ALLOWED_USERGROUPS": json.dumps(config.allowed_usergroups),
            },
        )
        escalation = {level: rule.model_dump() for level, rule in config.escalation.items()}
        self.worker = self._function(
            "Worker",
            "incident_lifecycle",
            timeout=30,
            reserved=None,
            description="Redraws Slack alerts, escalates unacknowledged incidents, posts quiet resolutions",
            environment={
                **common,
                "ESCALATION": json.dumps(escalation, sort_keys=True),
                "QUIET_AFTER_MINUTES": str(config.quiet_after_minutes),
            },
        )
        for function in (self.interactions, self.worker):
            table.grant_read_write_data(function)
            slack_secret.grant_read(function)
            self.queue.grant_send_messages(function)
        self.signing_secret.grant_read(self.interactions)
        # The analyzer adds the buttons, holds muted alerts back and arms the timers.
        timers = {
            "LIFECYCLE_QUEUE_URL": self.queue.queue_url,
            "ESCALATION": json.dumps(escalation, sort_keys=True),
            "QUIET_AFTER_MINUTES": str(config.quiet_after_minutes),
        }
        for key, value in timers.items():
            analyzer.add_environment(key, value)
        self.queue.grant_send_messages(analyzer)

        self.worker.add_event_source(
            sources.SqsEventSource(self.queue, batch_size=10, report_batch_item_failures=True)
        )
        stream_failures = sqs.Queue(
            self,
            "StreamFailures",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(stream_failures, "SQS3", "On-failure destination of the state table stream consumers.")
        self.worker.add_event_source(
            sources.DynamoEventSource(
                table,
                starting_position=lambda_.StartingPosition.LATEST,
                batch_size=50,
                bisect_batch_on_error=True,
                retry_attempts=3,
                report_batch_item_failures=True,
                on_failure=sources.SqsDlq(stream_failures),
                filters=[
                    lambda_.FilterCriteria.filter(
                        {
                            "eventName": lambda_.FilterRule.is_equal("REMOVE"),
                            "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]},
                            "dynamodb": {"Keys": {"pk": {"S": lambda_.FilterRule.begins_with("timer#")}}},
                        }
                    )
                ],
            )
        )
        knowledge_sync.add_event_source(
            sources.DynamoEventSource(
                table,
                starting_position=lambda_.StartingPosition.LATEST,
                batch_size=10,
                max_batching_window=Duration.seconds(5),
                bisect_batch_on_error=True,
                retry_attempts=3,
                on_failure=sources.SqsDlq(stream_failures),
                filters=[
                    lambda_.FilterCriteria.filter(
                        {
                            "eventName": lambda_.FilterRule.or_("INSERT", "MODIFY"),
                            "dynamodb": {
                                "NewImage": {"pk": {"S": lambda_.FilterRule.begins_with("incident#")}}
                            },
                        }
                    )
                ],
            )
        )

        for function in (self.worker, knowledge_sync):
            assert function.role is not None
            acknowledge_wildcards(
                function.role,
                ["*"],
                "dynamodb:ListStreams (added by the stream event source) has no resource-level "
                "permissions; reading the stream itself is granted on this table's stream only.",
            )

        self.api = self._api(config)
        CfnOutput(
            self,
            "InteractivityUrl",
            value=f"{self.api.api_endpoint}{ROUTE}",
            description="Slack app: Interactivity Request URL and the /cali slash command URL",
        )
        CfnOutput(
            self,
            "SigningSecretArn",
            value=self.signing_secret.secret_arn,
            description='put-secret-value: {"signing_secret"} from the Slack app settings',
        )

    def _api(self, config: SlackLifecycleConfig) -> apigwv2.HttpApi:
        api = apigwv2.HttpApi(
            self,
            "Api",
            description="Slack interactivity endpoint",
            create_default_stage=False,
        )
        api.add_routes(
            path=ROUTE,
            methods=[apigwv2.HttpMethod.POST],
            integration=integrations.HttpLambdaIntegration("Interactions", self.interactions),
        )
        access_logs = logs.LogGroup(
            self, "AccessLogs", retention=self._log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=config.rate_limit_per_second, burst_limit=config.burst_limit
            ),
            access_log_settings=_AccessLogs(
                apigwv2.LogGroupLogDestination(access_logs),
                apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
            ),
        )
        self.stage = stage
        acknowledge(
            api,
            "APIG4",
            "Slack cannot send IAM, Cognito or JWT credentials; every request is authenticated "
            "by its v0 HMAC signature (signing secret) in the function before any other work.",
        )
        return api

    def _function(
        self,
        construct_id: str,
        folder: str,
        *,
        timeout: int,
        reserved: int | None,
        description: str,
        environment: dict[str, str],
    ) -> lambda_.Function:
        return cali_function(
            self,
            construct_id,
            folder,
            architecture=self._architecture,
            log_retention=self._log_retention,
            memory=512,
            timeout=timeout,
            description=description,
            environment=environment,
            reserved_concurrency=reserved,
        )
