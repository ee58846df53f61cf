"""Alarms: every pipeline failure a person must hear about, to one KMS-encrypted SNS topic."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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
LTE = cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD


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

    def watch_domain(
        self, domain_name: str, *, volume_gb: int, data_nodes: int, dedicated_masters: bool
    ) -> None:
        """AWS's recommended CloudWatch alarms for OpenSearch Service, for this domain.

        Thresholds, periods and datapoints follow "Recommended CloudWatch alarms for Amazon
        OpenSearch Service"; the master alarms exist only with dedicated master nodes.
        """
        for spec in domain_alarm_specs(
            volume_gb=volume_gb,
            data_nodes=data_nodes,
            dedicated_masters=dedicated_masters,
            free_storage_percent=self._config.free_storage_percent,
        ):
            self._add(
                spec.construct_id,
                cloudwatch.Metric(
                    namespace="AWS/ES",
                    metric_name=spec.metric,
                    dimensions_map={"DomainName": domain_name, "ClientId": Aws.ACCOUNT_ID},
                    statistic=spec.statistic,
                    period=Duration.minutes(spec.period_minutes),
                ),
                threshold=spec.threshold,
                operator=spec.operator,
                periods=spec.periods,
                description=spec.description,
                # A domain that stops reporting nodes or master reachability is broken.
                missing=spec.missing,
            )


@dataclass(frozen=True)
class DomainAlarm:
    construct_id: str
    metric: str
    statistic: str
    period_minutes: int
    periods: int
    operator: cloudwatch.ComparisonOperator
    threshold: float
    description: str
    missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING


# AWS's recommended set: (id, metric, statistic, period minutes, datapoints, operator,
# threshold, description). Master alarms apply to dedicated master nodes only.
# fmt: off
_DOMAIN_ALARMS: tuple[tuple[str, str, str, int, int, cloudwatch.ComparisonOperator, float, str], ...] = (
    ("SearchClusterRed", "ClusterStatus.red", "Maximum", 1, 1, GTE, 1,
     "OpenSearch cluster status is red: a primary shard is unassigned"),
    ("SearchClusterYellow", "ClusterStatus.yellow", "Maximum", 1, 5, GTE, 1,
     "OpenSearch cluster status is yellow: a replica shard is unassigned"),
    ("SearchWritesBlocked", "ClusterIndexWritesBlocked", "Maximum", 5, 1, GTE, 1,
     "OpenSearch blocks index writes"),
    ("SearchSnapshotFailed", "AutomatedSnapshotFailure", "Maximum", 1, 1, GTE, 1,
     "An automated OpenSearch snapshot failed: no recent backup"),
    ("SearchCpuHigh", "CPUUtilization", "Maximum", 15, 3, GTE, 80,
     "OpenSearch data node CPU at or above 80% for 45 minutes"),
    ("SearchJvmPressureHigh", "JVMMemoryPressure", "Maximum", 5, 3, GTE, 80,
     "OpenSearch JVM memory pressure at or above 80%: risk of out-of-memory errors"),
    ("SearchOldGenJvmHigh", "OldGenJVMMemoryPressure", "Maximum", 1, 3, GTE, 80,
     "OpenSearch old-generation JVM memory pressure at or above 80%"),
    ("SearchKmsKeyError", "KMSKeyError", "Maximum", 1, 1, GTE, 1,
     "The KMS key encrypting the OpenSearch domain is disabled"),
    ("SearchKmsKeyInaccessible", "KMSKeyInaccessible", "Maximum", 1, 1, GTE, 1,
     "The KMS key encrypting the OpenSearch domain was deleted or its grants revoked"),
    ("SearchWriteQueueHigh", "ThreadpoolWriteQueue", "Average", 1, 1, GTE, 100,
     "OpenSearch write queue is backing up: indexing cannot keep up"),
    ("SearchSearchQueueHigh", "ThreadpoolSearchQueue", "Average", 1, 1, GTE, 500,
     "OpenSearch search queue is backing up"),
)
_MASTER_ALARMS: tuple[tuple[str, str, str, int, int, cloudwatch.ComparisonOperator, float, str], ...] = (
    ("SearchMasterCpuHigh", "MasterCPUUtilization", "Maximum", 15, 3, GTE, 50,
     "OpenSearch master CPU at or above 50% for 45 minutes: use a larger master type"),
    ("SearchMasterJvmHigh", "MasterJVMMemoryPressure", "Maximum", 1, 3, GTE, 95,
     "OpenSearch master JVM memory pressure at or above 95%"),
    ("SearchMasterOldGenJvmHigh", "MasterOldGenJVMMemoryPressure", "Maximum", 1, 3, GTE, 80,
     "OpenSearch master old-generation JVM memory pressure at or above 80%"),
)
# fmt: on


def domain_alarm_specs(
    *, volume_gb: int, data_nodes: int, dedicated_masters: bool, free_storage_percent: int
) -> list[DomainAlarm]:
    specs = [DomainAlarm(*row) for row in _DOMAIN_ALARMS]
    if dedicated_masters:
        specs += [DomainAlarm(*row) for row in _MASTER_ALARMS]
    breaching = cloudwatch.TreatMissingData.BREACHING
    # FreeStorageSpace is reported per data node in MiB; over the cluster dimensions the
    # Minimum statistic is the fullest node, so compare it with one node's volume (a
    # node-count multiple would fire while every node still had most of its disk free).
    free_mib = volume_gb * 1024 * free_storage_percent / 100
    specs += [
        DomainAlarm(
            "SearchFreeStorageLow",
            "FreeStorageSpace",
            "Minimum",
            5,
            1,
            LTE,
            free_mib,
            f"OpenSearch free storage at or below {free_storage_percent}% on a data node",
        ),
        # Missing data is breaching: a domain that stops reporting nodes is broken.
        DomainAlarm(
            "SearchNodeMissing",
            "Nodes",
            "Minimum",
            1440,
            1,
            LT,
            data_nodes,
            f"OpenSearch has had fewer than {data_nodes} data nodes for a day",
            breaching,
        ),
        # Every domain has an elected master (a data node when there are no dedicated ones).
        DomainAlarm(
            "SearchMasterUnreachable",
            "MasterReachableFromNode",
            "Maximum",
            1440,
            1,
            LT,
            1,
            "The OpenSearch master node has been unreachable for a day",
            breaching,
        ),
    ]
    return specs
