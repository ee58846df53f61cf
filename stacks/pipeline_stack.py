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
from stacks.producer_policy import ProducerPolicy
from stacks.quality_job import QualityJob
from stacks.search_domain import SearchDomain
from stacks.secrets import Secrets
from stacks.sizing import log_shards_for, replicas_for
from stacks.slack_lifecycle import SlackLifecycle
from stacks.state_table import StateTable

# Graviton: about 20% cheaper per GB-second than x86 and every dependency ships
# manylinux aarch64 wheels for CPython 3.12.
ARCHITECTURE = lambda_.Architecture.ARM_64


def log_retention(days: int) -> logs.RetentionDays:
    """The RetentionDays member for ``days`` (jsii enum values are names, not numbers)."""
    members = [member for member in logs.RetentionDays if member is not logs.RetentionDays.INFINITE]
    return dict(zip(LOG_RETENTION_DAYS, members, strict=True))[days]


class CaliStack(Stack):
    # One statement per construct, in the order of the architecture diagram: splitting it would
    # scatter the wiring a reader follows top to bottom.
    def __init__(  # noqa: PLR0915
        self, scope: Construct, construct_id: str, *, environment: ResolvedEnvironment, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        name = environment.name
        config = environment.config
        Tags.of(self).add("app", "cali")
        Tags.of(self).add("environment", name)
        # Kept data stores use RETAIN_ON_UPDATE_OR_DELETE (DeletionPolicy RetainExceptOnCreate):
        # if the very first create rolls back, CloudFormation deletes what it made, so no
        # orphaned `cali-prod` domain keeps billing and the retry does not hit "already exists".
        removal = (
            RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE
            if config.removal_policy == "retain"
            else RemovalPolicy.DESTROY
        )
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
        # Slack links go only where a person can sign in: the managed workspace or the
        # configured (self-hosted) Grafana. The domain is IAM-only (no Cognito/SAML), so
        # an OpenSearch Dashboards link would open onto a 403; no Grafana means no link.
        link_target = grafana_url or config.grafana_url
        functions.set_analysis_links(
            incidents_stream_name=delivery.incidents_stream_name, grafana_url=link_target
        )

        lifecycle = SlackLifecycle(
            self,
            "SlackLifecycle",
            env_name=name,
            config=config.slack,
            architecture=ARCHITECTURE,
            log_retention=retention,
            table=state.table,
            slack_secret=secrets.slack,
            knowledge_sync=functions.knowledge_sync,
            analyzer=functions.incident_analyzer,
            removal_policy=removal,
        )
        functions.all.update(
            {"slack_interactions": lifecycle.interactions, "incident_lifecycle": lifecycle.worker}
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
            replicas=replicas_for(config.opensearch.data_nodes),
            log_shards=log_shards_for(config.opensearch.data_nodes),
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
            [
                ("IncidentDeadLetters", queues.dead_letters),
                ("ConsumerFailures", queues.consumer_failures),
                ("LifecycleDeadLetters", lifecycle.dead_letters),
            ]
        )
        alarms.watch_delivery(
            [
                ("Raw", delivery.raw, "DeliveryToS3.Success"),
                ("SearchLogs", delivery.logs, "DeliveryToAmazonOpenSearchService.Success"),
                ("Incidents", delivery.incidents, "DeliveryToAmazonOpenSearchService.Success"),
            ]
        )
        alarms.watch_transform("SearchLogs", delivery.logs)
        alarms.watch_domain(
            search.domain_name,
            volume_gb=config.opensearch.volume_gb,
            data_nodes=config.opensearch.data_nodes,
            dedicated_masters=config.opensearch.dedicated_master_count > 0,
        )
        producer = ProducerPolicy(self, "ProducerPolicy", stream=log_stream.stream, env_name=name)

        # What an operator needs after `cdk deploy`: where Fluent Bit writes, which secrets
        # to fill, where to look (see docs/deploy.md).
        outputs = {
            "LogStreamName": (log_stream.stream.stream_name, "Fluent Bit kinesis_streams `stream`"),
            "LogStreamArn": (log_stream.stream.stream_arn, "The stream producers write to"),
            "ProducerPolicyArn": (
                producer.policy.managed_policy_arn,
                "Attach to Fluent Bit's role: PutRecords on the log stream, nothing else",
            ),
            "ArchiveBucketName": (archive.bucket.bucket_name, "raw/, dlq/ and opensearch-failed/ objects"),
            "AccessLogBucketName": (archive.access_logs.bucket_name, "S3 server access logs of the archive"),
            "SlackSecretArn": (
                secrets.slack.secret_arn,
                "put-secret-value: {webhook_url} or {bot_token, channel}",
            ),
            "OpenAiSecretArn": (secrets.openai.secret_arn, "put-secret-value: {api_key}"),
            "MilvusSecretArn": (secrets.milvus.secret_arn, "put-secret-value: {uri, token}"),
            "OpenSearchEndpoint": (search.endpoint, "HTTPS endpoint of the domain (SigV4)"),
            "OpenSearchDomainName": (search.domain_name, "cali doctor reads its health and alarms"),
            "StateTableName": (state.table.table_name, "Throttle, incident and LLM budget state"),
            "KnowledgeSyncFunctionName": (
                functions.knowledge_sync.function_name,
                "aws lambda invoke it once after the Milvus secret is set (first knowledge sync)",
            ),
            "LogConsumerFunctionName": (functions.log_consumer.function_name, "Kinesis consumer"),
            "IncidentAnalyzerFunctionName": (
                functions.incident_analyzer.function_name,
                "Analyzer (SQS incidents queue -> LLM -> Slack)",
            ),
            "AlarmTopicArn": (alarms.topic.topic_arn, "Subscribe on-call here"),
            "ConsumerFailuresQueueUrl": (
                queues.consumer_failures.queue_url,
                "Kinesis batches the consumer gave up on",
            ),
            "IncidentDeadLettersQueueUrl": (
                queues.dead_letters.queue_url,
                "Incidents the analyzer could not finish",
            ),
            "IncidentDeadLettersQueueArn": (
                queues.dead_letters.queue_arn,
                "aws sqs start-message-move-task --source-arn (redrive to the incidents queue)",
            ),
            "IncidentQueueArn": (queues.queue.queue_arn, "Redrive destination of the dead letters"),
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
