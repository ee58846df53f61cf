"""Functions: the four CALI Lambdas, their triggers and least-privilege grants.

Environment variables are exactly the upper-cased field names of
``lambdas/cali/contracts/settings.py`` plus the Powertools ones; tests/infra checks that.
"""

from __future__ import annotations

import json

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks._nag import acknowledge_wildcards, arn_of
from stacks.archive import DLQ_PREFIX
from stacks.cali_function import cali_function
from stacks.config import EnvironmentConfig
from stacks.incident_queue import IncidentQueue
from stacks.secrets import Secrets
from stacks.state_table import StateTable


class Functions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        config: EnvironmentConfig,
        architecture: lambda_.Architecture,
        log_retention: logs.RetentionDays,
        stream: kinesis.Stream,
        stream_consumer: kinesis.StreamConsumer,
        archive: s3.Bucket,
        state: StateTable,
        queues: IncidentQueue,
        secrets: Secrets,
    ) -> None:
        super().__init__(scope, construct_id)
        self._architecture = architecture
        self._log_retention = log_retention
        self.all: dict[str, lambda_.Function] = {}
        common = {"CALI_ENV": env_name, "STATE_TABLE_NAME": state.table.table_name}

        consumer_cfg = config.consumer
        self.log_consumer = self._function(
            "LogConsumer",
            "log_consumer",
            memory=consumer_cfg.memory_mb,
            timeout=consumer_cfg.timeout_seconds,
            description="Decodes, validates, filters, fingerprints and throttles log records from Kinesis",
            environment={
                **common,
                "DLQ_BUCKET_NAME": archive.bucket_name,
                "DLQ_PREFIX": DLQ_PREFIX,
                "INCIDENTS_QUEUE_URL": queues.queue.queue_url,
                "MIN_LEVEL": consumer_cfg.min_level,
                "LEVEL_OVERRIDES": json.dumps(consumer_cfg.level_overrides, sort_keys=True),
                "THROTTLE_WINDOW_SECONDS": str(consumer_cfg.throttle_window_seconds),
                "SURGE_FACTOR": str(consumer_cfg.surge_factor),
                # The throttle's redelivery dedupe is only sound with one batch per shard.
                "PARALLELIZATION_FACTOR": str(consumer_cfg.parallelization_factor),
                **config.ingest.environment(),
            },
        )
        state.table.grant_read_write_data(self.log_consumer)
        self.log_consumer.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[archive.arn_for_objects(f"{DLQ_PREFIX}*")]
            )
        )
        queues.queue.grant_send_messages(self.log_consumer)
        self.log_consumer.add_event_source(
            sources.KinesisConsumerEventSource(
                stream_consumer,
                # TRIM_HORIZON: the first deploy processes what is already in the stream.
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=consumer_cfg.batch_size,
                max_batching_window=Duration.seconds(consumer_cfg.batching_window_seconds),
                parallelization_factor=consumer_cfg.parallelization_factor,
                bisect_batch_on_error=consumer_cfg.bisect_batch_on_error,
                retry_attempts=consumer_cfg.max_retries,
                max_record_age=Duration.seconds(consumer_cfg.max_record_age_seconds),
                report_batch_item_failures=True,
                on_failure=sources.SqsDlq(queues.consumer_failures),
            )
        )
        assert self.log_consumer.role is not None
        acknowledge_wildcards(
            self.log_consumer.role,
            [f"{arn_of(archive)}/{DLQ_PREFIX}*"],
            "The consumer writes one object per rejected record, keyed by time and "
            "id, under the dlq/ prefix only.",
        )

        # Firehose's data-transformation Lambda for the OpenSearch delivery stream: it only
        # transforms what Firehose hands it, so it needs no grants beyond its logs.
        self.log_indexer = self._function(
            "LogIndexer",
            "log_indexer",
            memory=512,
            timeout=120,
            description="Firehose transform: Kinesis log records to OpenSearch documents",
            # Reads raw lines exactly as the consumer does (same settings).
            environment={"CALI_ENV": env_name, **config.ingest.environment()},
        )

        analyzer_cfg = config.analyzer
        analysis_env = {
            **common,
            "SLACK_SECRET_ARN": secrets.slack.secret_arn,
            "OPENAI_SECRET_ARN": secrets.openai.secret_arn,
            "MILVUS_SECRET_ARN": secrets.milvus.secret_arn,
            "LLM_BASE_URL": analyzer_cfg.llm_base_url,
            "LLM_MODEL": analyzer_cfg.llm_model,
            "LLM_DAILY_TOKEN_BUDGET": str(analyzer_cfg.daily_token_budget),
            "EMBEDDING_PROVIDER": analyzer_cfg.embedding_provider,
        }
        self.incident_analyzer = self._function(
            "IncidentAnalyzer",
            "incident_analyzer",
            memory=analyzer_cfg.memory_mb,
            timeout=analyzer_cfg.timeout_seconds,
            description="Redacts, retrieves similar incidents, asks the LLM and posts to Slack",
            # The ceiling on concurrent analyses is the ceiling on LLM spend per minute.
            reserved_concurrency=analyzer_cfg.reserved_concurrency,
            environment=analysis_env,
        )
        state.table.grant_read_write_data(self.incident_analyzer)
        for secret in (secrets.slack, secrets.openai, secrets.milvus):
            secret.grant_read(self.incident_analyzer)
        self.incident_analyzer.add_event_source(
            sources.SqsEventSource(
                queues.queue,
                batch_size=analyzer_cfg.batch_size,
                report_batch_item_failures=True,
                # Pollers never exceed the reserved concurrency: a throttled SQS delivery
                # would count as a receive and push healthy incidents towards the DLQ.
                max_concurrency=analyzer_cfg.reserved_concurrency,
            )
        )

        sync_cfg = config.knowledge_sync
        self.knowledge_sync = self._function(
            "KnowledgeSync",
            "knowledge_sync",
            memory=sync_cfg.memory_mb,
            timeout=sync_cfg.timeout_seconds,
            description="Indexes runbooks and resolved incidents into Milvus",
            extra_folders=("knowledge_base",),
            environment={**analysis_env, "KNOWLEDGE_DIR": "knowledge_base"},
        )
        # Reads the incidents people marked resolved (incident# items) from the state table.
        state.table.grant_read_data(self.knowledge_sync)
        for secret in (secrets.openai, secrets.milvus):
            secret.grant_read(self.knowledge_sync)
        events.Rule(
            self,
            "KnowledgeSyncSchedule",
            schedule=events.Schedule.expression(sync_cfg.schedule),
            description="Re-indexes the knowledge base",
            targets=[targets.LambdaFunction(self.knowledge_sync, retry_attempts=2)],
        )

    def set_analysis_links(self, *, incidents_stream_name: str, grafana_url: str | None) -> None:
        for function in (self.incident_analyzer, self.knowledge_sync):
            function.add_environment("INCIDENTS_STREAM_NAME", incidents_stream_name)
            if grafana_url is not None:
                function.add_environment("GRAFANA_URL", grafana_url)

    def _function(
        self,
        construct_id: str,
        folder: str,
        *,
        memory: int,
        timeout: int,
        description: str,
        environment: dict[str, str],
        extra_folders: tuple[str, ...] = (),
        reserved_concurrency: int | None = None,
    ) -> lambda_.Function:
        function = cali_function(
            self,
            construct_id,
            folder,
            architecture=self._architecture,
            log_retention=self._log_retention,
            memory=memory,
            timeout=timeout,
            description=description,
            environment=environment,
            extra_folders=extra_folders,
            reserved_concurrency=reserved_concurrency,
        )
        self.all[folder] = function
        return function
