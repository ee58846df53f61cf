"""LogStream: the Kinesis Data Stream Fluent Bit writes to, KMS-encrypted."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kinesis as kinesis
from constructs import Construct

from stacks.config import KinesisConfig


class LogStream(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: KinesisConfig,
        removal_policy: RemovalPolicy,
        consumer_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        on_demand = config.mode == "on_demand"
        self.stream = kinesis.Stream(
            self,
            "Stream",
            stream_mode=kinesis.StreamMode.ON_DEMAND if on_demand else kinesis.StreamMode.PROVISIONED,
            shard_count=None if on_demand else config.shards,
            retention_period=Duration.hours(config.retention_hours),
            # The AWS-managed aws/kinesis KMS key: readers in this account need no key
            # grants, and it is what cdk-nag (KDS3) recommends.
            encryption=kinesis.StreamEncryption.MANAGED,
            removal_policy=removal_policy,
        )
        # Enhanced fan-out gives the Lambda consumer its own 2 MB/s per shard, so the two
        # Firehose readers share the standard 2 MB/s read limit only with each other.
        self.consumer = kinesis.StreamConsumer(
            self, "LambdaFanOut", stream=self.stream, stream_consumer_name=consumer_name
        )
