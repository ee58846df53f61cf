"""The daily data-quality job: EventBridge Scheduler -> the ``quality_job`` Lambda -> Athena.

Why one Lambda and not a Step Functions state machine: the job is eight Athena queries
started together and polled until the slowest ends, then a few seconds of Great
Expectations over their (small) results. Over a day and its 7-day baseline, Athena scans
the eight days' gzip objects once per query; at CALI's scale (up to some tens of GB a day)
that takes seconds to a few minutes, and the workgroup's bytes-scanned limit cancels
anything that would run away. The function's timeout (15 minutes, Lambda's maximum) is
therefore the real bound, and the handler gives the queries ``query_timeout_seconds``
(10 minutes) before it stops them and fails loudly (a CloudWatch alarm on Errors, and the
schedule's retry). An archive that outgrows this (hundreds of GB a day) should move the
polling into a Step Functions ``athena:startQueryExecution.sync`` map and keep the same
handler for the judging step: the SQL and the checks do not change.

The function is a container image: its requirements install to 415 MB for arm64 (scipy,
pandas, numpy, Great Expectations), past a zip bundle's 250 MB; ``cdk deploy`` builds it
with Docker (``cdk synth`` only stages the build context).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks._nag import acknowledge_wildcards, arn_of
from stacks.archive_sql import REPORTS_PREFIX, ArchiveSql

LAMBDAS_DIR = Path(__file__).resolve().parents[1] / "lambdas"
#: 01:30 UTC: yesterday's last hour has been delivered (Firehose buffers up to 5 minutes).
DEFAULT_SCHEDULE = "cron(30 1 * * ? *)"


class QualityJob(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        sql: ArchiveSql,
        architecture: lambda_.Architecture,
        log_retention: logs.RetentionDays,
        slack_secret: secretsmanager.ISecret | None = None,
        search_endpoint: str | None = None,
        search_domain_arn: str | None = None,
        search_domain_name: str | None = None,
        schedule: str = DEFAULT_SCHEDULE,
        thresholds: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="CALI quality_job",
        )
        log_group.grant_write(self.role)
        environment = {
            "CALI_ENV": env_name,
            "ATHENA_WORKGROUP": sql.workgroup_name,
            "ATHENA_DATABASE": sql.database_name,
            "REPORTS_BUCKET": sql.results.bucket_name,
            "POWERTOOLS_SERVICE_NAME": "quality_job",
            "POWERTOOLS_METRICS_NAMESPACE": "CALI",
            "GX_ANALYTICS_ENABLED": "false",
        }
        if thresholds:
            environment["QUALITY_THRESHOLDS"] = json.dumps(dict(thresholds), sort_keys=True)
        if slack_secret is not None:
            environment["SLACK_SECRET_ARN"] = slack_secret.secret_arn
            slack_secret.grant_read(self.role)
        if search_endpoint:
            environment["QUALITY_OPENSEARCH_ENDPOINT"] = search_endpoint
        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            code=lambda_.DockerImageCode.from_image_asset(
                str(LAMBDAS_DIR),
                file="quality_job/Dockerfile",
                # The image's architecture must be the function's (Graviton by default).
                platform=ecr_assets.Platform.LINUX_ARM64
                if architecture.name == lambda_.Architecture.ARM_64.name
                else ecr_assets.Platform.LINUX_AMD64,
                exclude=["**/__pycache__", "**/*.pyc"],
            ),
            architecture=architecture,
            memory_size=2048,
            timeout=Duration.minutes(15),
            role=self.role,
            log_group=log_group,
            # No reserved concurrency: one run a day, and every reservation must leave 10
            # unreserved executions in the account (docs/deploy.md, Lambda concurrency). A
            # retried run racing the first posts to Slack once (S3 conditional marker).
            description="CALI daily data-quality checks over the archive (Athena + Great Expectations)",
            environment=environment,
        )
        sql.grant_query(self.role)
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[sql.results.arn_for_objects(f"{REPORTS_PREFIX}*")]
            )
        )
        wildcards = [*sql.nag_wildcards(), f"{arn_of(sql.results)}/{REPORTS_PREFIX}*"]
        if search_domain_arn:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["es:ESHttpPost", "es:ESHttpPut"],
                    resources=[f"{search_domain_arn}/_bulk", f"{search_domain_arn}/cali-quality-*"],
                )
            )
            wildcards.append(
                f"arn:<AWS::Partition>:es:<AWS::Region>:<AWS::AccountId>:domain/{search_domain_name}/cali-quality-*"
            )

        self.scheduler_role = iam.Role(
            self, "SchedulerRole", assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com")
        )
        # The unqualified ARN only (grant_invoke would add every version, "<arn>:*").
        self.scheduler_role.add_to_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.function.function_arn])
        )
        self.schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            name=f"cali-{env_name}-quality",
            description="CALI: daily data-quality report of yesterday's archive",
            schedule_expression=schedule,
            schedule_expression_timezone="UTC",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            target=scheduler.CfnSchedule.TargetProperty(
                arn=self.function.function_arn,
                role_arn=self.scheduler_role.role_arn,
                input="{}",
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_retry_attempts=2, maximum_event_age_in_seconds=3600
                ),
            ),
        )
        acknowledge_wildcards(
            self.role,
            wildcards,
            "Athena reads every object of the hourly raw/ and dlq/ partitions a query names and "
            "writes results with generated names under athena-results/; the job writes reports "
            "under quality-reports/<env>/<day>/ and documents to the monthly cali-quality-* "
            "indices of this one domain. The wildcards are exactly those prefixes and indices.",
        )
