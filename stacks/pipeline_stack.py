"""CaliStack: the whole pipeline of one environment, wired like the architecture diagram."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack, Tags
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.alarms import Alarms
from stacks.archive import Archive
from stacks.archive_sql import ArchiveSql
from stacks.config import LOG_RETENTION_DAYS, ResolvedEnvironment
from stacks.delivery import Delivery
from stacks.functions import Functions
from stacks.grafana import Grafana
from stacks.incident_queue import IncidentQueue
from stacks.log_stream import LogStream
from stacks.opensearch_setup import OpenSearchSetup
from stacks.quality_job import QualityJob
from stacks.search_domain import SearchDomain
from stacks.secrets import Secrets
from stacks.state_table import StateTable

# Graviton: about 20% cheaper per GB-second than x86 and every dependency ships
# manylinux aarch64 wheels for CPython 3.12.
ARCHITECTURE = lambda_.Architecture.ARM_64


def log_retention(days: int) -> logs.RetentionDays:
    """The RetentionDays member for ``days`` (jsii enum values are names, not numbers)."""
    members = [member for member in logs.RetentionDays if member is not logs.RetentionDays.INFINITE]
    return dict(zip(LOG_RETENTION_DAYS, members, strict=True))[days]


class CaliStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, environment: ResolvedEnvironment, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        name = environment.name
        config = environment.config
        Tags.of(self).add("app", "cali")
        Tags.of(self).add("environment", name)
        removal = RemovalPolicy.RETAIN if config.removal_policy == "retain" else RemovalPolicy.DESTROY
        retention = log_retention(config.log_retention_days)

        log_stream = LogStream(
            self,
            "LogStream",
            config=config.kinesis,
            removal_policy=removal,
            consumer_name=f"cali-{name}-log-consumer",
        )
        archive = Archive(self, "Archive", config=config.archive, removal_policy=removal)
        state = StateTable(self, "StateTable", removal_policy=removal)
        queues = IncidentQueue(
            self, "IncidentQueue", analyzer_timeout=Duration.seconds(config.analyzer.timeout_seconds)
        )
        secrets = Secrets(self, "Secrets", env_name=name, removal_policy=removal)
        search = SearchDomain(
            self,
            "SearchDomain",
            config=config.opensearch,
            domain_name=f"cali-{name}",
            log_retention=retention,
            removal_policy=removal,
        )
        functions = Functions(
            self,
            "Functions",
            env_name=name,
            config=config,
            architecture=ARCHITECTURE,
            log_retention=retention,
            stream=log_stream.stream,
            stream_consumer=log_stream.consumer,
            archive=archive.bucket,
            state=state,
            queues=queues,
            secrets=secrets,
        )
        delivery = Delivery(
            self,
            "Delivery",
            stream=log_stream.stream,
            bucket=archive.bucket,
            search=search,
            indexer=functions.log_indexer,
            log_retention=retention,
        )
        delivery.grant_put_incidents(functions.incident_analyzer)

        readers: list[iam.IRole | str] = []
        grafana_url = None
        if config.grafana_workspace:
            workspace = Grafana(self, "Grafana", env_name=name, search=search)
            readers.append(workspace.role)
            grafana_url = workspace.url
        readers.extend(config.opensearch.reader_role_arns)
        search.allow(*config.opensearch.reader_role_arns)
        functions.set_analysis_links(
            incidents_stream_name=delivery.incidents_stream_name,
            dashboards_url=search.dashboards_url,
            grafana_url=grafana_url,
        )

        archive_sql = ArchiveSql(
            self, "ArchiveSql", env_name=name, archive=archive.bucket, removal_policy=removal
        )
        quality = QualityJob(
            self,
            "QualityJob",
            env_name=name,
            sql=archive_sql,
            architecture=ARCHITECTURE,
            log_retention=retention,
            slack_secret=secrets.slack,
            search_endpoint=search.endpoint,
            search_domain_arn=search.domain_arn,
            search_domain_name=search.domain_name,
        )
        search.allow(quality.role)
        setup = OpenSearchSetup(
            self,
            "OpenSearchSetup",
            search=search,
            retention_days=config.opensearch.retention_days,
            # One replica where a second node can hold it; none on a one-node dev domain.
            replicas=min(1, config.opensearch.data_nodes - 1),
            writer_roles=[*delivery.search_writer_roles, quality.role],
            reader_roles=readers,
            architecture=ARCHITECTURE,
            log_retention=retention,
        )
        # Deliveries start once their backend roles are mapped, so none is rejected.
        delivery.logs.node.add_dependency(setup.resource)
        delivery.incidents.node.add_dependency(setup.resource)
        search.finalize_access_policy()

        alarms = Alarms(self, "Alarms", config=config.alarms, removal_policy=removal)
        alarms.watch_stream(log_stream.stream)
        alarms.watch_consumer_lag(functions.log_consumer)
        alarms.watch_functions([*functions.all.items(), ("quality_job", quality.function)])
        alarms.watch_dead_letters(
            [("IncidentDeadLetters", queues.dead_letters), ("ConsumerFailures", queues.consumer_failures)]
        )
        alarms.watch_delivery(
            [
                ("Raw", delivery.raw, "DeliveryToS3.Success"),
                ("SearchLogs", delivery.logs, "DeliveryToAmazonOpenSearchService.Success"),
                ("Incidents", delivery.incidents, "DeliveryToAmazonOpenSearchService.Success"),
            ]
        )
        alarms.watch_transform("SearchLogs", delivery.logs)
        alarms.watch_domain(search.domain_name, config.opensearch.volume_gb)

        # What an operator needs after `cdk deploy`: where Fluent Bit writes, which secrets
        # to fill, where to look (see docs/deploy.md).
        outputs = {
            "LogStreamName": (log_stream.stream.stream_name, "Fluent Bit kinesis_streams `stream`"),
            "ArchiveBucketName": (archive.bucket.bucket_name, "raw/, dlq/ and opensearch-failed/ objects"),
            "AccessLogBucketName": (archive.access_logs.bucket_name, "S3 server access logs of the archive"),
            "SlackSecretArn": (
                secrets.slack.secret_arn,
                "put-secret-value: {webhook_url} or {bot_token, channel}",
            ),
            "OpenAiSecretArn": (secrets.openai.secret_arn, "put-secret-value: {api_key}"),
            "MilvusSecretArn": (secrets.milvus.secret_arn, "put-secret-value: {uri, token}"),
            "OpenSearchEndpoint": (search.endpoint, "HTTPS endpoint of the domain (SigV4)"),
            "OpenSearchDashboardsUrl": (search.dashboards_url, "OpenSearch Dashboards"),
            "AlarmTopicArn": (alarms.topic.topic_arn, "Subscribe on-call here"),
            "ConsumerFailuresQueueUrl": (
                queues.consumer_failures.queue_url,
                "Kinesis batches the consumer gave up on",
            ),
            "IncidentDeadLettersQueueUrl": (
                queues.dead_letters.queue_url,
                "Incidents the analyzer could not finish",
            ),
        }
        if grafana_url is not None:
            outputs["GrafanaUrl"] = (grafana_url, "Amazon Managed Grafana workspace")
        for output_id, (value, description) in outputs.items():
            CfnOutput(self, output_id, value=value, description=description)

        self.log_stream = log_stream
        self.archive = archive
        self.search = search
        self.functions = functions
        self.delivery = delivery
