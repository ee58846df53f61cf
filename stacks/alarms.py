"""Alarms: every pipeline failure a person must hear about, to one KMS-encrypted SNS topic."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.config import AlarmConfig

_FIVE_MINUTES = Duration.minutes(5)
GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
GTE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
LT = cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD


class Alarms(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: AlarmConfig, removal_policy: RemovalPolicy
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self.key = kms.Key(
            self,
            "Key",
            enable_key_rotation=True,
            removal_policy=removal_policy,
            description="Encrypts the CALI alarm topic",
        )
        # CloudWatch publishes to the encrypted topic with this key.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        self.topic = sns.Topic(
            self, "Topic", master_key=self.key, enforce_ssl=True, display_name="CALI pipeline alarms"
        )
        # enforce_ssl creates a topic policy, which replaces SNS's default one (the one that
        # let this account's alarms publish): allow this account's alarms explicitly.
        alarms_arn = f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {"aws:SourceArn": alarms_arn},
                },
            )
        )
        if config.email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.email))
        self._action = actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []

    def _add(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        operator: cloudwatch.ComparisonOperator,
        description: str,
        periods: int = 1,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> None:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            comparison_operator=operator,
            evaluation_periods=periods,
            treat_missing_data=missing,
            alarm_description=description,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms.append(alarm)

    def watch_stream(self, stream: kinesis.Stream) -> None:
        self._add(
            "StreamIteratorAge",
            stream.metric_get_records_iterator_age_milliseconds(statistic="Maximum", period=_FIVE_MINUTES),
            threshold=self._config.iterator_age_seconds * 1000,
            operator=GT,
            periods=2,
            description="Firehose readers of the log stream are falling behind",
        )
        self._add(
            "StreamWriteThrottled",
            stream.metric_put_records_throttled_records(statistic="Sum", period=_FIVE_MINUTES),
            threshold=0,
            operator=GT,
            periods=2,
            description="Producers (Fluent Bit) are throttled: add shards or use on-demand",
        )

    def watch_functions(self, functions: Iterable[tuple[str, lambda_.Function]]) -> None:
        for name, function in functions:
            label = name.title().replace("_", "")
            self._add(
                f"{label}Errors",
                function.metric_errors(statistic="Sum", period=_FIVE_MINUTES),
                threshold=0,
                operator=GT,
                description=f"{name} invocations failed",
            )
            self._add(
                f"{label}Throttles",
                function.metric_throttles(statistic="Sum", period=_FIVE_MINUTES),
                threshold=0,
                operator=GT,
                description=f"{name} invocations were throttled",
            )

    def watch_consumer_lag(self, function: lambda_.Function) -> None:
        self._add(
            "ConsumerIteratorAge",
            function.metric("IteratorAge", statistic="Maximum", period=_FIVE_MINUTES),
            threshold=self._config.iterator_age_seconds * 1000,
            operator=GT,
            periods=2,
            description="The log consumer is falling behind the stream",
        )

    def watch_dead_letters(self, queues: Iterable[tuple[str, sqs.Queue]]) -> None:
        for label, queue in queues:
            self._add(
                f"{label}Visible",
                queue.metric_approximate_number_of_messages_visible(
                    statistic="Maximum", period=Duration.minutes(1)
                ),
                threshold=1,
                operator=GTE,
                description=f"Messages in {label}: something was not processed",
            )

    def watch_delivery(self, streams: Iterable[tuple[str, firehose.CfnDeliveryStream, str]]) -> None:
        for label, stream, metric_name in streams:
            self._add_firehose_failing(
                f"{label}DeliveryFailing",
                stream,
                metric_name,
                f"Firehose {label} deliveries are failing (see the Delivery log group)",
            )

    def watch_transform(self, label: str, stream: firehose.CfnDeliveryStream) -> None:
        self._add_firehose_failing(
            f"{label}TransformFailing",
            stream,
            "ExecuteProcessing.Success",
            f"The log_indexer transform of {label} is failing",
        )

    def _add_firehose_failing(
        self, construct_id: str, stream: firehose.CfnDeliveryStream, success_metric: str, description: str
    ) -> None:
        """A Firehose ``*.Success`` ratio (1 = all succeeded) below 1 in two 5-minute periods in a row."""
        self._add(
            construct_id,
            cloudwatch.Metric(
                namespace="AWS/Firehose",
                metric_name=success_metric,
                dimensions_map={"DeliveryStreamName": stream.ref},
                statistic="Minimum",
                period=_FIVE_MINUTES,
            ),
            threshold=1,
            operator=LT,
            periods=2,
            description=description,
        )

    def watch_domain(self, domain_name: str, volume_gb: int) -> None:
        dimensions = {"DomainName": domain_name, "ClientId": Aws.ACCOUNT_ID}
        self._add(
            "SearchClusterRed",
            cloudwatch.Metric(
                namespace="AWS/ES",
                metric_name="ClusterStatus.red",
                dimensions_map=dimensions,
                statistic="Maximum",
                period=Duration.minutes(1),
            ),
            threshold=1,
            operator=GTE,
            description="OpenSearch cluster status is red",
        )
        self._add(
            "SearchWritesBlocked",
            cloudwatch.Metric(
                namespace="AWS/ES",
                metric_name="ClusterIndexWritesBlocked",
                dimensions_map=dimensions,
                statistic="Maximum",
                period=_FIVE_MINUTES,
            ),
            threshold=1,
            operator=GTE,
            description="OpenSearch blocks index writes",
        )
        # FreeStorageSpace is reported per data node in MiB; over the cluster dimensions the
        # Minimum statistic is the fullest node, so compare it with one node's volume (a
        # node-count multiple would fire while every node still had most of its disk free).
        free_mib = volume_gb * 1024 * self._config.free_storage_percent / 100
        self._add(
            "SearchFreeStorageLow",
            cloudwatch.Metric(
                namespace="AWS/ES",
                metric_name="FreeStorageSpace",
                dimensions_map=dimensions,
                statistic="Minimum",
                period=_FIVE_MINUTES,
            ),
            threshold=free_mib,
            operator=LT,
            description=f"OpenSearch free storage below {self._config.free_storage_percent}% on a data node",
        )
